//! The run as the display, the stats file, the time series and the run
//! page see it: a snapshot taken from the state, changing nothing but the
//! scaling decision it reports once.

use docmill_protocol::Format;

use super::State;
use crate::metrics::{queue_by_tier, RunningJob, Snapshot};

impl State {
    /// The run as the display, the stats file and the time series see it;
    /// `fds_used` and `fd_limit` are the driver's readings.
    pub fn snapshot(&mut self, fds_used: u64, fd_limit: u64) -> Snapshot {
        let epubs = self
            .slots
            .values()
            .filter_map(|s| s.job.as_ref())
            .filter(|j| j.doc.sched_format == Format::Epub)
            .count();
        Snapshot {
            t_ms: self.now_ms(),
            elapsed_s: self.now.duration_since(self.start).as_secs_f64(),
            workers: self.slots.len() as u32,
            busy: self.busy() as u32,
            min_workers: self.cfg.scale.min,
            max_workers: self.cfg.scale.max,
            queue_depth: self.queued() as u64,
            queue_by_tier: queue_by_tier(self.queue.iter().map(|d| d.job_size())),
            docs: self.totals.doc_counts(self.total_docs),
            cpu_percent: self.readings.cpu_total,
            cpu_own_percent: self.readings.cpu_own,
            memory_used_bytes: self.readings.tree_rss,
            memory_budget_bytes: self.cfg.scale.budget,
            fds_used,
            fd_limit,
            failures_by_class: self.totals.failures_by_class(),
            by_format: self.totals.by_format(),
            decision: self.unreported.take(),
            epubs_running: epubs as u32,
            running: self.running_jobs(),
        }
    }

    /// The jobs running now, longest-running first.
    fn running_jobs(&self) -> Vec<RunningJob> {
        let mut jobs: Vec<RunningJob> = self
            .slots
            .values()
            .filter_map(|s| s.job.as_ref().map(|j| (s.pid, j)))
            .map(|(pid, j)| RunningJob {
                doc: j.doc.id,
                path: j.doc.path.to_string_lossy().into_owned(),
                pages: j.doc.chunk.map(|c| (c.first, c.last)),
                attempt: j.attempt,
                started_ms: j.started_ms,
                elapsed_s: self.now.duration_since(j.started).as_secs_f64(),
                pages_done: j.done(),
                pages_expected: j.expected,
                pid,
                rss_bytes: j.rss,
            })
            .collect();
        jobs.sort_by(|a, b| b.elapsed_s.total_cmp(&a.elapsed_s));
        jobs
    }
}
