//! The run loop: events in (worker messages, closed channels, clocks,
//! signals), actions out (spawn, dispatch, kill, commit). Decisions about
//! what a failure means live in `policy`; this file only drives.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use docmill_protocol::{
    EngineChoice, Format, FromWorker, Job, Outcome, PageFlags, ToWorker, WorkerFailure,
    WorkerFailureKind,
};
use ipc_channel::ipc::{IpcReceiverSet, IpcSelectionResult};
use serde::Serialize;

use super::IndexOptions;
use crate::metrics::{queue_by_tier, MetricsOptions, Recorder, Snapshot};
use crate::policy;
use crate::pool::{self, classify_exit, KillReason, SpawnSpec, Worker};
use crate::scale::{self, Readings, Sampler, ScaleState, SystemSampler};
use crate::schedule;
use crate::schedule::plan_ranges;
use crate::signals::Signals;
use crate::store::FinishedResult;
use crate::store::{now_ms, Claim, DocState, Finished, QueuedDoc, Written};
use crate::store::{Store, StoreError};

/// With a shared store, how often a run whose queue is empty looks for
/// work again while other supervisors still hold leases.
const POLL_SHARED: Duration = Duration::from_millis(500);
/// Finished jobs are written together once this many wait, or once the
/// oldest has waited `COMMIT_AFTER`.
const COMMIT_JOBS: usize = 64;
const COMMIT_BYTES: usize = 16 << 20;
const COMMIT_AFTER: Duration = Duration::from_millis(250);
/// How long the reason for a worker's death waits for the last lines of its
/// stderr (a grandchild holding the pipe open keeps it from ending).
const STDERR_SETTLE: Duration = Duration::from_millis(300);
const TICK: Duration = Duration::from_millis(50);
/// The live display and stats file see the run this often; the machine
/// readings behind them are refreshed every `SAMPLE_EVERY`.
const OBSERVE_EVERY: Duration = Duration::from_millis(250);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const RSS_EVERY: Duration = Duration::from_millis(250);
/// Consecutive failed spawns before the run gives up.
const SPAWN_RETRIES: u32 = 5;
const KILL_GRACE: Duration = Duration::from_millis(300);

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub done: u64,
    /// Documents done except the pages of chunks that kept failing.
    pub partial: u64,
    /// Documents split into page-range chunk jobs.
    pub split: u64,
    /// Documents done by a fallback engine after the first one failed.
    pub rescued: u64,
    pub fallbacks: u64,
    pub failed: u64,
    pub quarantined: u64,
    pub retried: u64,
    pub cancelled: u64,
    pub pages: u64,
    pub workers_started: u64,
    pub worker_deaths: u64,
    pub peak_workers: u64,
    pub scale_decisions: u64,
    /// Largest resident memory of the whole process tree seen.
    pub peak_rss: u64,
    pub outcomes: HashMap<String, u64>,
    pub done_by_format: HashMap<String, u64>,
}

struct InFlight {
    doc: QueuedDoc,
    claim: Claim,
    job: u64,
    attempt: u32,
    started_ms: i64,
    deadline: Instant,
    last_beat: Instant,
    pages: Vec<(u32, String, PageFlags)>,
    /// A memory-limit retry: it runs with nothing beside it.
    alone: bool,
}

struct Slot {
    worker: Worker,
    job: Option<InFlight>,
    /// Replace this worker once its job ends (it may have leaked).
    recycle: bool,
}

pub struct Driver<'a> {
    opts: &'a IndexOptions,
    /// PDF engines in the order they are tried.
    engines: Vec<EngineChoice>,
    catalog: &'a mut dyn Store,
    run: i64,
    owner: String,
    signals: Signals,
    spec: SpawnSpec,
    set: IpcReceiverSet,
    slots: HashMap<u64, Slot>,
    next_job: u64,
    pending_commits: Vec<Finished>,
    pending_bytes: usize,
    oldest_commit: Option<Instant>,
    /// Memory-limit failures per document in this run, for escalation.
    mem_failures: HashMap<i64, u32>,
    changed_once: HashSet<i64>,
    /// The format of each split document seen, for counting it once merged.
    split_formats: HashMap<i64, Format>,
    totals: Totals,
    /// The worker count the scaler wants now.
    target: u32,
    scale_state: ScaleState,
    sampler: SystemSampler,
    last_scale: Instant,
    /// Jobs ended and failed since the last scaling decision.
    recent_jobs: u32,
    recent_failures: u32,
    recorder: Recorder,
    /// The latest machine readings, for the live display.
    readings: Readings,
    /// A scaling decision not yet shown in a snapshot.
    unreported: Option<String>,
    started: Instant,
}

impl<'a> Driver<'a> {
    pub fn new(
        opts: &'a IndexOptions,
        engines: Vec<EngineChoice>,
        catalog: &'a mut dyn Store,
        run: i64,
        owner: String,
        signals: Signals,
        scratch: std::path::PathBuf,
    ) -> Driver<'a> {
        let exe = std::env::current_exe().unwrap_or_else(|_| "docmill".into());
        Driver {
            spec: SpawnSpec {
                exe,
                mem_limit: opts.worker_mem,
                fd_limit: opts.worker_fds,
                tmpdir: Some(scratch),
            },
            opts,
            engines,
            catalog,
            run,
            owner,
            signals,
            set: IpcReceiverSet::new().expect("IPC receiver set"),
            slots: HashMap::new(),
            next_job: 1,
            pending_commits: Vec::new(),
            pending_bytes: 0,
            oldest_commit: None,
            mem_failures: HashMap::new(),
            changed_once: HashSet::new(),
            split_formats: HashMap::new(),
            totals: Totals::default(),
            target: 0,
            scale_state: ScaleState::default(),
            sampler: SystemSampler::new(),
            last_scale: Instant::now(),
            recent_jobs: 0,
            recent_failures: 0,
            recorder: Recorder::new(MetricsOptions {
                stats_file: opts.stats_file.clone(),
                progress: opts.progress,
                quiet: opts.quiet,
                log_interval: opts.log_interval,
            }),
            readings: Readings::default(),
            unreported: None,
            started: Instant::now(),
        }
    }

    pub fn run(&mut self, mut queue: VecDeque<QueuedDoc>) -> anyhow::Result<Totals> {
        let total_docs = queue.len();
        let (cpu, available) = self.sampler.machine();
        self.target =
            scale::initial_workers(&self.opts.scale, self.sampler.cores(), cpu, available);
        tracing::info!(
            workers = self.target,
            cpu,
            available_mib = available >> 20,
            "initial worker count"
        );
        let mut stop_at: Option<Instant> = None;
        let mut spawn_failures = 0u32;
        let mut last_rss = Instant::now();
        let mut last_renew = Instant::now();
        let mut last_observe = Instant::now();
        let mut last_sample = Instant::now();
        let mut last_poll: Option<Instant> = None;
        loop {
            if stop_at.is_none() && self.signals.requested().is_some() {
                stop_at = Some(Instant::now() + self.opts.grace);
                if !self.opts.quiet {
                    eprintln!(
                        "docmill: stopping: letting {} running jobs finish (up to {:?}); press Ctrl-C again to exit now",
                        self.busy(),
                        self.opts.grace
                    );
                }
            }
            let stopping = stop_at.is_some();
            let in_flight = self.busy();
            let idle_workers = in_flight < self.target as usize;
            if queue.is_empty() && !stopping && idle_workers && self.catalog.shared() {
                // Other supervisors may have left work (a lease that
                // expired, the chunks of a long document they split) or
                // may still leave some: look again, and end only once no
                // one else holds a lease.
                if last_poll.is_none_or(|t| t.elapsed() >= POLL_SHARED) {
                    last_poll = Some(Instant::now());
                    if in_flight == 0 {
                        self.flush()?;
                    }
                    let mut more = self.catalog.pending()?;
                    super::scheduling_hints(self.opts, &mut more);
                    if more.is_empty()
                        && in_flight == 0
                        && self.catalog.held_elsewhere(&self.owner)? == 0
                    {
                        break;
                    }
                    queue.extend(more);
                }
            } else if in_flight == 0 && (queue.is_empty() || stopping) {
                break;
            }
            if let Some(at) = stop_at {
                if Instant::now() >= at {
                    self.cancel_all()?;
                    break;
                }
            }

            if !stopping {
                // Keep as many workers as there is work for, up to the count.
                let want = (self.target as usize).min(queue.len() + in_flight);
                while self.slots.len() < want {
                    match self.spawn(self.spec.mem_limit) {
                        Ok(_) => spawn_failures = 0,
                        Err(e) => {
                            spawn_failures += 1;
                            tracing::warn!("cannot start a worker: {}", crate::cli::chain(&e));
                            if spawn_failures >= SPAWN_RETRIES {
                                anyhow::bail!("cannot start workers: {}", crate::cli::chain(&e));
                            }
                            break;
                        }
                    }
                }
                self.dispatch(&mut queue)?;
            }

            self.wait_events(&mut queue)?;
            self.watchdog(&mut queue, &mut last_rss)?;
            if !stopping && self.last_scale.elapsed() >= self.opts.scale_interval {
                self.last_scale = Instant::now();
                self.rescale(&mut queue)?;
            }
            if last_renew.elapsed() > self.opts.lease / 3 {
                self.renew()?;
                last_renew = Instant::now();
            }
            if self.commit_due() {
                self.flush()?;
            }
            if last_observe.elapsed() >= OBSERVE_EVERY {
                last_observe = Instant::now();
                if last_sample.elapsed() >= SAMPLE_EVERY {
                    last_sample = Instant::now();
                    self.sample_machine();
                }
                let snap = self.snapshot(&queue, total_docs as u64);
                if self.recorder.observe(&snap) {
                    self.catalog.record_sample(self.run, &snap)?;
                }
            }
        }
        self.flush()?;
        let ids: Vec<u64> = self.slots.keys().copied().collect();
        for id in ids {
            if let Some(mut slot) = self.slots.remove(&id) {
                slot.worker.shutdown(Duration::from_millis(500));
            }
        }
        let last = self.snapshot(&queue, total_docs as u64);
        self.catalog.record_sample(self.run, &last)?;
        if let Err(e) = self.recorder.finish(&last) {
            tracing::warn!(
                "cannot write the final stats file: {}",
                crate::cli::chain(&e)
            );
        }
        Ok(std::mem::take(&mut self.totals))
    }

    /// Samples the machine, asks the policy, and carries out its decision:
    /// idle workers retire first; a busy one is stopped only for memory
    /// pressure, its job requeued without counting against it.
    fn rescale(&mut self, queue: &mut VecDeque<QueuedDoc>) -> anyhow::Result<()> {
        self.sample_machine();
        let mut r = self.readings.clone();
        r.queue_depth = queue.len() as u64;
        r.idle = (self.slots.len() - self.busy()) as u32;
        r.recent_jobs = std::mem::take(&mut self.recent_jobs);
        r.recent_failures = std::mem::take(&mut self.recent_failures);
        let current = self.target;
        let Some(d) = scale::decide(
            current,
            &r,
            &self.opts.scale,
            &mut self.scale_state,
            now_ms(),
        ) else {
            return Ok(());
        };
        tracing::info!(
            from = current,
            to = d.target,
            cpu = r.cpu_total,
            cpu_own = r.cpu_own,
            available_mib = r.available_mem >> 20,
            rss_mib = r.tree_rss >> 20,
            queue = r.queue_depth,
            "scaling: {}",
            d.reason
        );
        if !self.opts.quiet {
            self.recorder.println(&format!(
                "docmill: workers {current} -> {}: {}",
                d.target, d.reason
            ));
        }
        self.unreported = Some(format!("{current} -> {}: {}", d.target, d.reason));
        self.totals.scale_decisions += 1;
        self.target = d.target;
        let idle: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.job.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if self.slots.len() <= self.target as usize {
                break;
            }
            self.retire(id);
        }
        if d.may_kill_busy {
            while self.slots.len() > self.target as usize {
                let Some(id) = self.slots.keys().next().copied() else {
                    break;
                };
                self.kill(id, KillReason::Cancelled, queue)?;
            }
        }
        Ok(())
    }

    /// Refreshes the machine readings shown between scaling decisions.
    fn sample_machine(&mut self) {
        let pids: Vec<u32> = self.slots.values().map(|s| s.worker.pid).collect();
        self.readings = self.sampler.sample(&pids, self.opts.worker_fds);
        self.totals.peak_rss = self.totals.peak_rss.max(self.readings.tree_rss);
    }

    fn snapshot(&mut self, queue: &VecDeque<QueuedDoc>, total: u64) -> Snapshot {
        let t = &self.totals;
        let fds_used = pool::open_fds(std::process::id()).unwrap_or(0)
            + self
                .slots
                .values()
                .filter_map(|s| pool::open_fds(s.worker.pid))
                .sum::<u64>();
        let fd_limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
            + self.opts.worker_fds * self.slots.len() as u64;
        let mut by_format = std::collections::BTreeMap::new();
        for (k, v) in &t.done_by_format {
            by_format.insert(k.clone(), *v);
        }
        Snapshot {
            t_ms: now_ms(),
            elapsed_s: self.started.elapsed().as_secs_f64(),
            workers: self.slots.len() as u32,
            busy: self.busy() as u32,
            min_workers: self.opts.scale.min,
            max_workers: self.opts.scale.max,
            queue_depth: queue.len() as u64,
            queue_by_tier: queue_by_tier(queue.iter().map(|d| d.job_size())),
            docs_total: total,
            docs_done: t.done,
            docs_failed: t.failed + t.quarantined,
            pages_done: t.pages,
            cpu_percent: self.readings.cpu_total,
            cpu_own_percent: self.readings.cpu_own,
            memory_used_bytes: self.readings.tree_rss,
            memory_budget_bytes: self.opts.scale.budget,
            fds_used,
            fd_limit,
            failures_by_class: t
                .outcomes
                .iter()
                .filter(|(k, _)| k.as_str() != "done")
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            by_format,
            decision: self.unreported.take(),
            epubs_running: self
                .slots
                .values()
                .filter(|s| {
                    s.job
                        .as_ref()
                        .is_some_and(|j| j.doc.sched_format == Format::Epub)
                })
                .count() as u32,
        }
    }

    fn busy(&self) -> usize {
        self.slots.values().filter(|s| s.job.is_some()).count()
    }

    fn spawn(&mut self, mem_limit: u64) -> Result<u64, pool::SpawnError> {
        let spec = SpawnSpec {
            mem_limit,
            ..self.spec.clone()
        };
        let (worker, results) = pool::spawn(&spec)?;
        let id = self.set.add(results).map_err(pool::SpawnError::Server)?;
        tracing::debug!(pid = worker.pid, "worker started");
        self.slots.insert(
            id,
            Slot {
                worker,
                job: None,
                recycle: false,
            },
        );
        self.totals.workers_started += 1;
        self.totals.peak_workers = self.totals.peak_workers.max(self.slots.len() as u64);
        Ok(id)
    }

    fn dispatch(&mut self, queue: &mut VecDeque<QueuedDoc>) -> anyhow::Result<()> {
        let mut idle: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.job.is_none())
            .map(|(id, _)| *id)
            .collect();
        // Over the scaler's target: workers retire as their jobs end,
        // rather than being handed new ones.
        while self.slots.len() > self.target as usize {
            let Some(id) = idle.pop() else { break };
            self.retire(id);
        }
        for mut id in idle {
            // A document that hit the memory limit is retried alone, in a
            // worker with a larger limit: nothing starts beside it, and it
            // starts only once the others have finished.
            if self
                .slots
                .values()
                .any(|s| s.job.as_ref().is_some_and(|j| j.alone))
            {
                break;
            }
            // Tier quotas and the EPUB limit pick the document.
            let mut running = schedule::Running::default();
            for j in self.slots.values().filter_map(|s| s.job.as_ref()) {
                running.add(&j.doc);
            }
            let Some(at) = schedule::pick(queue, &running, self.target, self.opts.max_epubs) else {
                break;
            };
            let needs_alone = self.mem_failures.get(&queue[at].id).is_some_and(|n| *n > 0);
            if needs_alone && self.busy() > 0 {
                break;
            }
            let Some(doc) = queue.remove(at) else { break };
            let claim = match doc.chunk {
                Some(r) => {
                    self.split_formats.insert(doc.id, doc.format);
                    self.catalog
                        .claim_chunk(doc.id, r.first, &self.owner, self.opts.lease)?
                }
                None => self
                    .catalog
                    .claim(&[doc.id], &self.owner, self.opts.lease)?
                    .first()
                    .map(|(_, c)| *c),
            };
            let Some(claim) = claim else {
                continue; // taken by someone else, or no longer pending
            };
            // Fewer jobs left than workers: a long document would finish
            // last, alone; ask for it to be split instead.
            let near_end = queue.len() < self.target as usize;
            let split_over = self
                .opts
                .chunking
                .split_over(&doc, near_end, self.target)
                .filter(|_| self.catalog.chunks());
            // A document that hit the memory limit runs in a fresh worker
            // with a larger one.
            let mem_failures = self.mem_failures.get(&doc.id).copied().unwrap_or(0);
            if mem_failures > 0 && self.spec.mem_limit > 0 {
                let limit = policy::escalated_mem_limit(self.spec.mem_limit, mem_failures, 0);
                if let Some(mut old) = self.slots.remove(&id) {
                    old.worker.shutdown(Duration::from_millis(200));
                }
                match self.spawn(limit) {
                    Ok(new_id) => id = new_id,
                    Err(e) => {
                        tracing::warn!("cannot start a larger worker: {}", crate::cli::chain(&e));
                        self.release(doc, claim)?;
                        continue;
                    }
                }
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.recycle = true;
                }
            }
            let job_id = self.next_job;
            self.next_job += 1;
            let attempt = doc.attempts + 1;
            let job = Job {
                id: job_id,
                path: std::os::unix::ffi::OsStrExt::as_bytes(doc.path.as_os_str()).to_vec(),
                format: doc.format,
                range: doc.chunk,
                split_over,
                attempt,
                engine: self.engines[doc.engine_idx.min(self.engines.len() - 1)],
                allow_mock: self.opts.allow_mock,
                epub_entry_cap: self.opts.epub_entry_cap,
                epub_book_cap: self.opts.epub_book_cap,
            };
            let deadline = self.job_deadline(&doc);
            let slot = self.slots.get_mut(&id).expect("slot just chosen");
            if slot.worker.jobs.send(ToWorker::Job(job)).is_err() {
                // The worker died before it could take the job: reap it, and
                // the job goes back to the front of the queue untouched.
                if let Some(mut dead) = self.slots.remove(&id) {
                    dead.worker.kill_now();
                    self.totals.worker_deaths += 1;
                }
                self.release(doc.clone(), claim)?;
                queue.push_front(doc);
                continue;
            }
            let now = Instant::now();
            slot.job = Some(InFlight {
                doc,
                claim,
                job: job_id,
                attempt,
                started_ms: now_ms(),
                deadline: now + deadline,
                last_beat: now,
                pages: Vec::new(),
                alone: needs_alone,
            });
        }
        Ok(())
    }

    /// Extends the leases of every job this run holds: those running and
    /// those finished but not yet written.
    fn renew(&mut self) -> Result<(), StoreError> {
        let held: Vec<(i64, Claim)> = self
            .slots
            .values()
            .filter_map(|s| s.job.as_ref().map(|j| (j.doc.id, j.claim)))
            .chain(self.pending_commits.iter().map(|f| (f.doc, f.claim)))
            .collect();
        for doc in self.catalog.renew(&self.owner, &held, self.opts.lease)? {
            tracing::warn!(doc, "lease lost: another supervisor may have taken the job");
        }
        Ok(())
    }

    /// Puts a claimed document back without counting an attempt.
    fn release(&mut self, doc: QueuedDoc, claim: Claim) -> Result<(), StoreError> {
        self.catalog.commit(&[Finished {
            doc: doc.id,
            chunk: doc.chunk,
            claim,
            run: self.run,
            attempt: doc.attempts + 1,
            worker_pid: 0,
            started_ms: now_ms(),
            ended_ms: now_ms(),
            result: FinishedResult::Released,
        }])?;
        Ok(())
    }

    fn wait_events(&mut self, queue: &mut VecDeque<QueuedDoc>) -> anyhow::Result<()> {
        let timeout = if self.pending_commits.is_empty() {
            TICK
        } else {
            TICK.min(COMMIT_AFTER)
        };
        let events = match self.set.try_select_timeout(timeout) {
            Ok(events) => events,
            Err(ipc_channel::TrySelectError::Empty) => return Ok(()),
            Err(ipc_channel::TrySelectError::IoError(e)) => {
                // Nothing to select on yet (no workers): wait one tick.
                if self.slots.is_empty() {
                    std::thread::sleep(TICK);
                    return Ok(());
                }
                return Err(anyhow::anyhow!("IPC select failed: {e:?}"));
            }
        };
        for event in events {
            match event {
                IpcSelectionResult::MessageReceived(id, msg) => match msg.to::<FromWorker>() {
                    Ok(m) => self.on_message(id, m, queue)?,
                    Err(e) => tracing::warn!("unreadable message from a worker: {e:?}"),
                },
                IpcSelectionResult::ChannelClosed(id) => self.on_closed(id, queue)?,
            }
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        id: u64,
        msg: FromWorker,
        queue: &mut VecDeque<QueuedDoc>,
    ) -> anyhow::Result<()> {
        let Some(slot) = self.slots.get_mut(&id) else {
            return Ok(());
        };
        let current = slot.job.as_ref().map(|j| j.job);
        match msg {
            FromWorker::Heartbeat { job } if Some(job) == current => {
                if let Some(j) = slot.job.as_mut() {
                    j.last_beat = Instant::now();
                }
            }
            FromWorker::Page {
                job,
                page,
                text,
                flags,
            } if Some(job) == current => {
                if let Some(j) = slot.job.as_mut() {
                    j.last_beat = Instant::now();
                    self.pending_bytes += text.len();
                    j.pages.push((page, text, flags));
                }
            }
            FromWorker::Done { job, summary } if Some(job) == current => {
                let inflight = slot.job.take().expect("current job");
                let pid = slot.worker.pid;
                let recycle = slot.recycle;
                if recycle {
                    self.retire(id);
                }
                self.on_done(inflight, summary, pid, queue)?;
            }
            FromWorker::Failed { job, failure } if Some(job) == current => {
                let inflight = slot.job.take().expect("current job");
                let pid = slot.worker.pid;
                // A worker that ran out of memory or descriptors may have
                // leaked them: replace it.
                let leaky = matches!(
                    failure.kind,
                    WorkerFailureKind::OutOfMemory | WorkerFailureKind::OutOfDescriptors
                );
                if leaky || slot.recycle {
                    self.retire(id);
                }
                let (outcome, reason) = worker_failure(&failure);
                self.on_failed(inflight, outcome, reason, pid, queue)?;
            }
            FromWorker::Split { job, page_count } if Some(job) == current => {
                let inflight = slot.job.take().expect("current job");
                if slot.recycle {
                    self.retire(id);
                }
                self.on_split(inflight, page_count, queue)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Shuts a worker down now that it is idle.
    fn retire(&mut self, id: u64) {
        if let Some(mut slot) = self.slots.remove(&id) {
            slot.worker.shutdown(Duration::from_millis(200));
        }
    }

    /// The worker found the document long enough to split: plan its chunks
    /// and queue them first, so idle workers take them at once.
    fn on_split(
        &mut self,
        job: InFlight,
        page_count: u32,
        queue: &mut VecDeque<QueuedDoc>,
    ) -> anyhow::Result<()> {
        let size = self
            .opts
            .chunking
            .chunk_size(job.doc.size, page_count, self.target);
        let ranges = plan_ranges(page_count, size);
        if !self
            .catalog
            .split(job.doc.id, job.claim, page_count, &ranges)?
        {
            tracing::warn!(doc = job.doc.id, "lease lost: the split was not written");
            return Ok(());
        }
        tracing::info!(
            path = %job.doc.path.display(),
            pages = page_count,
            chunks = ranges.len(),
            "split into page-range chunks"
        );
        self.totals.split += 1;
        self.split_formats.insert(job.doc.id, job.doc.format);
        for r in ranges.iter().rev() {
            let mut chunk = job.doc.clone();
            chunk.attempts = 0;
            chunk.engine_notes.clear();
            chunk.page_total = page_count;
            chunk.set_chunk(*r);
            queue.push_front(chunk);
        }
        Ok(())
    }

    fn on_done(
        &mut self,
        job: InFlight,
        summary: docmill_protocol::DocSummary,
        pid: u32,
        queue: &mut VecDeque<QueuedDoc>,
    ) -> anyhow::Result<()> {
        // The text is only good if the file is still the one that was read.
        match std::fs::metadata(&job.doc.path) {
            Ok(md) => {
                let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
                if md.len() != job.doc.size || mtime_ns != job.doc.mtime_ns {
                    self.pending_bytes = self.pending_bytes.saturating_sub(bytes_of(&job.pages));
                    if self.changed_once.insert(job.doc.id) {
                        self.catalog.restat(job.doc.id, md.len(), mtime_ns)?;
                        let mut doc = job.doc.clone();
                        doc.size = md.len();
                        doc.mtime_ns = mtime_ns;
                        if job.doc.chunk.is_some() {
                            // The plan was for the old file: start over with
                            // the whole document; the other chunks' results
                            // will find no lease to write to.
                            self.catalog.unsplit(job.doc.id)?;
                            queue.retain(|d| d.id != job.doc.id);
                            let mut whole = QueuedDoc::new(
                                doc.id,
                                doc.path,
                                doc.size,
                                doc.mtime_ns,
                                doc.format,
                                doc.attempts,
                            );
                            whole.sched_format = doc.sched_format;
                            queue.push_front(whole);
                            return Ok(());
                        }
                        self.release(job.doc, job.claim)?;
                        queue.push_front(doc);
                        return Ok(());
                    }
                    return self.record_failure(
                        job,
                        Outcome::ExtractFailed,
                        "the file kept changing while it was read".to_string(),
                        DocState::Failed,
                        false,
                        pid,
                    );
                }
            }
            Err(_) => {
                return self.record_failure(
                    job,
                    Outcome::ExtractFailed,
                    "the file vanished while it was read".to_string(),
                    DocState::Failed,
                    false,
                    pid,
                );
            }
        }
        self.recent_jobs += 1;
        if job.doc.chunk.is_none() {
            // A chunked document counts once merged (see `flush`).
            self.totals.done += 1;
            *self
                .totals
                .done_by_format
                .entry(job.doc.format.as_str().to_string())
                .or_default() += 1;
            if job.doc.engine_idx > 0 {
                self.totals.rescued += 1;
            }
        }
        self.totals.pages += job.pages.len() as u64;
        *self.totals.outcomes.entry("done".into()).or_default() += 1;
        self.oldest_commit.get_or_insert_with(Instant::now);
        self.pending_commits.push(Finished {
            doc: job.doc.id,
            chunk: job.doc.chunk,
            claim: job.claim,
            run: self.run,
            attempt: job.attempt,
            worker_pid: pid,
            started_ms: job.started_ms,
            ended_ms: now_ms(),
            result: FinishedResult::Done {
                summary,
                pages: job.pages,
            },
        });
        Ok(())
    }

    fn on_failed(
        &mut self,
        job: InFlight,
        outcome: Outcome,
        reason: String,
        pid: u32,
        queue: &mut VecDeque<QueuedDoc>,
    ) -> anyhow::Result<()> {
        let verdict = policy::after_failure(outcome, job.doc.attempts, self.opts.max_attempts);
        // Under `auto`, a PDF that one engine cannot read (an error, a
        // panic, garbage text, a timeout) goes to the next engine at once,
        // without counting against it. A crash or a limit hit may be the
        // machine's doing (a kill, memory pressure), so those are retried
        // with the same engine first and fall back only once exhausted.
        let fallback = job.doc.format == Format::Pdf
            && job.doc.engine_idx + 1 < self.engines.len()
            && match outcome {
                Outcome::ExtractFailed | Outcome::TimedOut => true,
                Outcome::Done | Outcome::Cancelled => false,
                _ => verdict.status != DocState::Pending,
            };
        if fallback {
            let counts = !matches!(outcome, Outcome::ExtractFailed | Outcome::TimedOut);
            let engine = self.engines[job.doc.engine_idx].as_str();
            let note = format!("{engine}: {reason}");
            let mut next = job.doc.clone();
            next.engine_idx += 1;
            next.attempts += u32::from(counts);
            next.engine_notes.push(note.clone());
            self.totals.fallbacks += 1;
            self.record_failure(job, outcome, note, DocState::Pending, counts, pid)?;
            if self.signals.requested().is_none() {
                self.flush()?;
                queue.push_front(next);
            }
            return Ok(());
        }
        if outcome == Outcome::MemoryLimit {
            *self.mem_failures.entry(job.doc.id).or_default() += 1;
        }
        let mut retry = job.doc.clone();
        retry.attempts += u32::from(verdict.counts);
        let reason = if job.doc.engine_notes.is_empty() || verdict.status == DocState::Pending {
            reason
        } else {
            let engine = self.engines[job.doc.engine_idx].as_str();
            final_engine_reason(&job.doc.engine_notes, &format!("{engine}: {reason}"))
        };
        self.record_failure(job, outcome, reason, verdict.status, verdict.counts, pid)?;
        if verdict.status == DocState::Pending && self.signals.requested().is_none() {
            // The retry queue comes first. Its failure must be written
            // before it can be claimed again.
            self.flush()?;
            queue.push_front(retry);
            if outcome != Outcome::Cancelled {
                self.totals.retried += 1;
            }
        }
        Ok(())
    }

    fn record_failure(
        &mut self,
        job: InFlight,
        outcome: Outcome,
        reason: String,
        status: DocState,
        counts: bool,
        pid: u32,
    ) -> anyhow::Result<()> {
        self.pending_bytes = self.pending_bytes.saturating_sub(bytes_of(&job.pages));
        tracing::info!(
            path = %job.doc.path.display(),
            attempt = job.attempt,
            outcome = outcome.as_str(),
            "{reason}"
        );
        *self
            .totals
            .outcomes
            .entry(outcome.as_str().into())
            .or_default() += 1;
        match status {
            // A chunk's end counts for its document once merged.
            _ if job.doc.chunk.is_some() && outcome != Outcome::Cancelled => {}
            DocState::Failed => self.totals.failed += 1,
            DocState::Quarantined => self.totals.quarantined += 1,
            _ if outcome == Outcome::Cancelled => self.totals.cancelled += 1,
            _ => {}
        }
        self.oldest_commit.get_or_insert_with(Instant::now);
        self.pending_commits.push(Finished {
            doc: job.doc.id,
            chunk: job.doc.chunk,
            claim: job.claim,
            run: self.run,
            attempt: job.attempt,
            worker_pid: pid,
            started_ms: job.started_ms,
            ended_ms: now_ms(),
            result: FinishedResult::Failed {
                outcome,
                reason,
                status,
                counts,
            },
        });
        Ok(())
    }

    fn on_closed(&mut self, id: u64, queue: &mut VecDeque<QueuedDoc>) -> anyhow::Result<()> {
        let Some(mut slot) = self.slots.remove(&id) else {
            return Ok(());
        };
        let status = slot.worker.reap(Duration::from_millis(500));
        self.totals.worker_deaths += 1;
        if let Some(job) = slot.job.take() {
            let (outcome, reason) = classify_exit(
                status,
                None,
                &slot.worker.stderr.final_lines(STDERR_SETTLE),
                slot.worker.mem_limit,
            );
            self.on_failed(job, outcome, reason, slot.worker.pid, queue)?;
        } else {
            tracing::warn!(pid = slot.worker.pid, "an idle worker ended: {status:?}");
        }
        Ok(())
    }

    /// Kills workers that overran their deadline, went silent, or grew past
    /// their memory limit.
    fn watchdog(
        &mut self,
        queue: &mut VecDeque<QueuedDoc>,
        last_rss: &mut Instant,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        let check_rss = now.duration_since(*last_rss) >= RSS_EVERY;
        if check_rss {
            *last_rss = now;
        }
        let mut kills = Vec::new();
        for (id, slot) in &self.slots {
            let Some(job) = &slot.job else { continue };
            if now >= job.deadline {
                let total = self.job_deadline(&job.doc);
                kills.push((
                    *id,
                    KillReason::Deadline {
                        secs: total.as_secs_f64(),
                    },
                ));
            } else if now.duration_since(job.last_beat) >= self.opts.heartbeat_timeout {
                kills.push((
                    *id,
                    KillReason::Silent {
                        secs: now.duration_since(job.last_beat).as_secs_f64(),
                    },
                ));
            } else if check_rss && slot.worker.mem_limit > 0 {
                let rss = pool::tree_rss(slot.worker.pid);
                if rss > slot.worker.mem_limit {
                    kills.push((
                        *id,
                        KillReason::Memory {
                            rss,
                            limit: slot.worker.mem_limit,
                        },
                    ));
                }
            }
        }
        for (id, why) in kills {
            self.kill(id, why, queue)?;
        }
        Ok(())
    }

    fn kill(
        &mut self,
        id: u64,
        why: KillReason,
        queue: &mut VecDeque<QueuedDoc>,
    ) -> anyhow::Result<()> {
        let Some(mut slot) = self.slots.remove(&id) else {
            return Ok(());
        };
        let status = slot.worker.terminate(KILL_GRACE);
        self.totals.worker_deaths += 1;
        if let Some(job) = slot.job.take() {
            let (outcome, reason) = classify_exit(
                status,
                Some(&why),
                &slot.worker.stderr.final_lines(STDERR_SETTLE),
                slot.worker.mem_limit,
            );
            self.on_failed(job, outcome, reason, slot.worker.pid, queue)?;
        }
        Ok(())
    }

    /// The grace period is over: kill what still runs; its documents go back
    /// to the queue for the next run, not counted against them.
    fn cancel_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.slots.keys().copied().collect();
        let mut none = VecDeque::new();
        for id in ids {
            let busy = self.slots.get(&id).is_some_and(|s| s.job.is_some());
            if busy {
                self.kill(id, KillReason::Cancelled, &mut none)?;
            }
        }
        self.flush()?;
        Ok(())
    }

    /// A job's deadline: its share of the file's bytes and, for a chunk, of
    /// its pages, escalated by earlier attempts.
    fn job_deadline(&self, doc: &QueuedDoc) -> Duration {
        let pages = doc.chunk.map_or(0, |r| r.last - r.first + 1);
        policy::chunk_deadline(&self.opts.timeouts, doc.job_size(), pages, doc.attempts)
    }

    fn commit_due(&self) -> bool {
        self.pending_commits.len() >= COMMIT_JOBS
            || self.pending_bytes >= COMMIT_BYTES
            || self
                .oldest_commit
                .is_some_and(|t| t.elapsed() >= COMMIT_AFTER)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending_commits.is_empty() {
            return Ok(());
        }
        let jobs = std::mem::take(&mut self.pending_commits);
        let written = self.catalog.commit(&jobs)?;
        for (job, w) in jobs.iter().zip(written) {
            match w {
                Written::Lost => {
                    tracing::warn!(doc = job.doc, "lease lost: the result was not written");
                    // Counted done when the text arrived; another
                    // supervisor owns the document now.
                    if let (None, FinishedResult::Done { pages, .. }) = (job.chunk, &job.result) {
                        self.totals.done = self.totals.done.saturating_sub(1);
                        self.totals.pages = self.totals.pages.saturating_sub(pages.len() as u64);
                    }
                }
                Written::Held => {}
                Written::Merged(m) => {
                    tracing::info!(
                        doc = job.doc,
                        pages = m.pages,
                        "chunks merged: {}",
                        m.status
                    );
                    match m.status {
                        DocState::Done => {
                            self.totals.done += 1;
                            let format = self
                                .split_formats
                                .get(&job.doc)
                                .copied()
                                .unwrap_or(Format::Pdf);
                            *self
                                .totals
                                .done_by_format
                                .entry(format.as_str().to_string())
                                .or_default() += 1;
                        }
                        DocState::Partial => self.totals.partial += 1,
                        DocState::Quarantined => self.totals.quarantined += 1,
                        _ => self.totals.failed += 1,
                    }
                }
            }
        }
        self.pending_bytes = 0;
        self.oldest_commit = None;
        Ok(())
    }
}

fn worker_failure(f: &WorkerFailure) -> (Outcome, String) {
    let outcome = match f.kind {
        WorkerFailureKind::Deterministic
        | WorkerFailureKind::Panicked
        | WorkerFailureKind::Garbage => Outcome::ExtractFailed,
        WorkerFailureKind::OutOfMemory => Outcome::MemoryLimit,
        WorkerFailureKind::OutOfDescriptors => Outcome::FdLimit,
    };
    (outcome, f.reason.clone())
}

/// The reason a PDF failed with every engine: "password required" when any
/// engine said so (the others only fail less clearly), else what each said.
fn final_engine_reason(earlier: &[String], last: &str) -> String {
    let all: Vec<&str> = earlier.iter().map(String::as_str).chain([last]).collect();
    if all.iter().any(|r| r.ends_with("password required")) {
        return "password required".to_string();
    }
    let joined = format!("every engine failed: {}", all.join("; "));
    match crate::units::clip(&joined, 400) {
        (text, true) => format!("{text}…"),
        (_, false) => joined,
    }
}

fn bytes_of(pages: &[(u32, String, PageFlags)]) -> usize {
    pages.iter().map(|(_, t, _)| t.len()).sum()
}
