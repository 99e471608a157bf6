//! When a worker is ended, and for which reason: a job past its deadline, a
//! worker silent past the heartbeat timeout or grown past its memory limit,
//! the grace period of a stop running out, the scaler wanting fewer (idle
//! ones retire; a busy one is killed only for memory pressure). A worker
//! that died on its own is reported by the driver; its end is classified
//! there (`pool::classify_exit`) and its job's fate decided here.

use docmill_protocol::Outcome;

use super::State;
use crate::run::action::{Action, KillReason};
use crate::run::event::WorkerId;
use crate::run::totals::Fact;
use crate::{policy, scale};

impl State {
    /// Kills workers whose job overran its deadline, made no progress for
    /// too long (stalled), or went silent.
    pub(super) fn watchdog(&mut self) {
        let now = self.now;
        let mut kills = Vec::new();
        for (id, slot) in &self.slots {
            let Some(job) = &slot.job else { continue };
            let still = now.duration_since(job.last_progress);
            // An OCR page takes far longer than the text page timeout.
            let stall = match &job.doc.ocr_pages {
                Some(_) => policy::ocr_stall_limit(std::time::Duration::from_millis(
                    self.cfg.ocr.settings.page_timeout_ms,
                )),
                None => policy::stall_limit(
                    &self.cfg.timeouts,
                    job.doc.job_size(),
                    job.opened,
                    job.doc.attempts,
                ),
            };
            if now >= job.deadline {
                let secs = job.deadline.duration_since(job.started).as_secs_f64();
                kills.push((*id, KillReason::Deadline { secs }));
            } else if still >= stall {
                let why = KillReason::Stalled {
                    secs: still.as_secs_f64(),
                    done: job.done(),
                    of: job.expected,
                };
                kills.push((*id, why));
            } else if now.duration_since(job.last_beat) >= self.cfg.heartbeat_timeout {
                let secs = now.duration_since(job.last_beat).as_secs_f64();
                kills.push((*id, KillReason::Silent { secs }));
            }
        }
        for (id, why) in kills {
            self.kill(id, why);
        }
    }

    /// Kills a busy worker whose process tree grew past its limit, or whose
    /// memory keeps climbing while its job makes no progress.
    pub(super) fn rss(&mut self, worker: WorkerId, rss: u64) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&worker) else {
            return;
        };
        let limit = slot.mem_limit;
        let Some(job) = slot.job.as_mut() else {
            return;
        };
        job.rss = rss;
        if limit > 0 && rss > limit {
            self.kill(worker, KillReason::Memory { rss, limit });
            return;
        }
        if !job.opened {
            return;
        }
        job.rss_floor = job.rss_floor.min(rss);
        let still = now.duration_since(job.last_progress);
        let size = job.doc.job_size();
        if policy::climbing(job.rss_floor, rss, still, size, job.doc.attempts) {
            let why = KillReason::Climbing {
                from: job.rss_floor,
                to: rss,
                secs: still.as_secs_f64(),
            };
            self.kill(worker, why);
        }
    }

    pub(super) fn kill(&mut self, worker: WorkerId, why: KillReason) {
        let Some(slot) = self.slots.remove(&worker) else {
            return;
        };
        self.totals.record(Fact::WorkerEnded);
        let (outcome, reason) = why.outcome();
        self.out.push(Action::Kill {
            worker,
            reason: why,
        });
        if let Some(job) = slot.job {
            self.on_failed(job, outcome, reason, slot.pid);
        }
    }

    /// A worker ended on its own.
    pub(super) fn exited(&mut self, worker: WorkerId, outcome: Outcome, reason: String) {
        let Some(slot) = self.slots.remove(&worker) else {
            return;
        };
        self.totals.record(Fact::WorkerEnded);
        match slot.job {
            Some(job) => self.on_failed(job, outcome, reason, slot.pid),
            None => tracing::warn!(pid = slot.pid, "an idle worker ended: {reason}"),
        }
    }

    /// The grace period is over: kill what still runs; its documents go back
    /// to the queue for the next run, not counted against them.
    pub(super) fn cancel_all(&mut self) {
        let busy: Vec<WorkerId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.job.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in busy {
            self.kill(id, KillReason::Cancelled);
        }
        self.flush();
    }

    /// Asks the scaling policy, with the readings just taken, and carries
    /// out its decision: idle workers retire first; a busy one is stopped
    /// only for memory pressure, its job requeued without counting.
    pub(super) fn rescale(&mut self) {
        let mut r = self.readings.clone();
        r.queue_depth = self.queued() as u64;
        r.idle = (self.slots.len() - self.busy()) as u32;
        r.recent_jobs = std::mem::take(&mut self.recent_jobs);
        r.recent_failures = std::mem::take(&mut self.recent_failures);
        let current = self.target;
        let now_ms = self.now_ms();
        let Some(d) = scale::decide(current, &r, &self.cfg.scale, &mut self.scale_state, now_ms)
        else {
            return;
        };
        self.unreported = Some(format!("{current} -> {}: {}", d.target, d.reason));
        self.totals.record(Fact::Scaled);
        self.target = d.target;
        self.out.push(Action::Scaled {
            from: current,
            to: d.target,
            reason: d.reason,
        });
        for id in self.idle() {
            if self.slots.len() <= self.target as usize {
                break;
            }
            self.retire(id);
        }
        if d.may_kill_busy {
            while self.slots.len() > self.target as usize {
                let Some(&id) = self.slots.keys().next() else {
                    break;
                };
                self.kill(id, KillReason::MemoryPressure);
            }
        }
    }
}
