//! Which worker runs what: workers are started up to the scaler's count (as
//! many as there is work for), idle ones over it retire, and each idle
//! worker gets the first document in the queue within the EPUB limit and
//! its tier's quota (or, when none is within its quota, the first that is
//! not huge), once claimed. A document that hit the memory limit runs alone, in a
//! fresh worker with a larger limit.
//!
//! While every worker is busy, the next document is claimed ahead (the
//! spare), so that the first worker to finish starts it at once, without a
//! trip to the store: a claim waits behind the store's commit of the job
//! that just ended, and on two workers whose chunks end together the second
//! waited for the whole of the first one's commit.

use std::time::Duration;

use docmill_protocol::Job;

use super::{Ending, InFlight, Slot, State};
use crate::run::action::Action;
use crate::run::event::WorkerId;
use crate::run::totals::Fact;
use crate::store::{Claim, FinishedResult, QueuedDoc};
use crate::{policy, schedule};

/// Consecutive failed starts of ordinary workers before the run gives up.
const SPAWN_RETRIES: u32 = 5;

/// A worker asked for and not yet up.
#[derive(Debug)]
pub(super) enum Spawning {
    /// One more for the pool.
    Pool,
    /// A worker with a larger limit for this claimed document.
    Larger(Ready),
}

/// A document taken off the queue, waiting for its claim: for an idle
/// worker, or to be the spare.
#[derive(Debug)]
pub(super) struct Claiming {
    worker: Option<WorkerId>,
    doc: QueuedDoc,
    alone: bool,
}

/// A claimed document, ready to be sent.
#[derive(Debug)]
pub(super) struct Ready {
    doc: QueuedDoc,
    claim: Claim,
    split_over: Option<u32>,
    alone: bool,
}

impl State {
    /// Starts one more worker if there is work for it, else hands out jobs.
    pub(super) fn fill(&mut self) {
        if self.spawning.is_some() {
            return;
        }
        let want = (self.target as usize).min(self.queued() + self.busy());
        if self.slots.len() < want {
            self.spawning = Some(Spawning::Pool);
            self.out.push(Action::Spawn {
                mem_limit: self.cfg.mem_limit,
            });
            return;
        }
        self.dispatch();
    }

    pub(super) fn worker_up(&mut self, worker: WorkerId, pid: u32, mem_limit: u64) {
        self.slots.insert(
            worker,
            Slot {
                pid,
                mem_limit,
                job: None,
                recycle: false,
            },
        );
        self.totals.record(Fact::WorkerStarted {
            live: self.slots.len(),
        });
        match self.spawning.take() {
            Some(Spawning::Larger(ready)) => {
                if let Some(slot) = self.slots.get_mut(&worker) {
                    slot.recycle = true;
                }
                self.start(worker, ready);
                self.next_job();
            }
            _ => {
                self.spawn_failures = 0;
                self.fill();
            }
        }
    }

    pub(super) fn spawn_failed(&mut self, error: String) {
        match self.spawning.take() {
            Some(Spawning::Larger(ready)) => {
                tracing::warn!("cannot start a larger worker: {error}");
                self.release(&ready.doc, ready.claim);
                self.next_job();
            }
            _ => {
                tracing::warn!("cannot start a worker: {error}");
                self.spawn_failures += 1;
                if self.spawn_failures >= SPAWN_RETRIES {
                    self.out.push(Action::Abort {
                        error: format!("cannot start workers: {error}"),
                    });
                    return;
                }
                self.dispatch();
            }
        }
    }

    /// Over the scaler's target, idle workers retire rather than being
    /// handed new jobs; the others get the next documents.
    fn dispatch(&mut self) {
        let mut idle = self.idle();
        while self.slots.len() > self.target as usize {
            let Some(id) = idle.pop() else { break };
            self.retire(id);
        }
        self.next_job();
    }

    /// Hands the spare to the first idle worker, or takes the next document
    /// for it off the queue and claims it; with no idle worker, claims the
    /// next spare. The claim's answer goes on from `claimed`.
    pub(super) fn next_job(&mut self) {
        // One claim at a time: its answer goes on from here. A stopping or
        // ended run starts nothing.
        if self.claiming.is_some() || self.stop_at.is_some() || self.ended {
            return;
        }
        // A document that hit the memory limit is retried alone: nothing
        // starts beside it, and it starts only once the others finished.
        let alone_running = self
            .slots
            .values()
            .any(|s| s.job.as_ref().is_some_and(|j| j.alone));
        if alone_running {
            return;
        }
        let worker = self.idle().first().copied();
        if let Some(idle) = worker {
            if let Some(spare) = self.spare.take() {
                self.start(idle, spare);
                return self.next_job();
            }
        } else if self.spare.is_some()
            // Ahead only with the pool as the scaler wants it: a worker on
            // its way takes a document when it is up.
            || self.spawning.is_some()
            || self.slots.len() != self.target as usize
        {
            return;
        }
        let mut running = schedule::Running::default();
        for j in self.slots.values().filter_map(|s| s.job.as_ref()) {
            running.add(&j.doc);
        }
        let Some(at) = schedule::pick(&self.queue, &running, self.target, self.cfg.max_epubs)
        else {
            return;
        };
        let alone = self
            .mem_failures
            .get(&self.queue[at].id)
            .is_some_and(|n| *n > 0);
        if alone && (self.busy() > 0 || worker.is_none()) {
            return;
        }
        let Some(doc) = self.queue.remove(at) else {
            return;
        };
        self.out.push(Action::Claim {
            doc: doc.id,
            chunk: doc.chunk.map(|r| r.first),
        });
        self.claiming = Some(Claiming { worker, doc, alone });
    }

    pub(super) fn claimed(&mut self, claim: Option<Claim>) {
        let Some(Claiming { worker, doc, alone }) = self.claiming.take() else {
            return;
        };
        // Taken by someone else, or no longer pending: the next one.
        let Some(claim) = claim else {
            self.next_job();
            return;
        };
        // Stopping or ended: what was claimed goes back.
        if self.stop_at.is_some() || self.ended {
            self.requeue(doc, claim);
            return;
        }
        // Fewer jobs left than workers: a long document would finish last,
        // alone; ask for it to be split instead.
        let near_end = self.queue.len() < self.target as usize;
        let split_over = self
            .cfg
            .chunking
            .split_over(&doc, near_end, self.target)
            .filter(|_| self.cfg.chunks);
        let mem_failures = self.mem_failures.get(&doc.id).copied().unwrap_or(0);
        let ready = Ready {
            doc,
            claim,
            split_over,
            alone,
        };
        // Claimed ahead: the first worker idle now, or the next to be.
        let Some(worker) = worker.or_else(|| self.idle().first().copied()) else {
            self.spare = Some(ready);
            return;
        };
        // A document that hit the memory limit runs in a fresh worker with
        // a larger one.
        if mem_failures > 0 && self.cfg.mem_limit > 0 {
            let limit = policy::escalated_mem_limit(self.cfg.mem_limit, mem_failures, 0);
            self.retire(worker);
            self.spawning = Some(Spawning::Larger(ready));
            self.out.push(Action::Spawn { mem_limit: limit });
            return;
        }
        self.start(worker, ready);
        self.next_job();
    }

    /// Hands a claimed document to an idle worker.
    fn start(&mut self, worker: WorkerId, ready: Ready) {
        let Ready {
            doc,
            claim,
            split_over,
            alone,
        } = ready;
        let id = self.next_job;
        self.next_job += 1;
        let attempt = doc.attempts + 1;
        let engines = &self.cfg.engines;
        let job = Job {
            id,
            path: std::os::unix::ffi::OsStrExt::as_bytes(doc.path.as_os_str()).to_vec(),
            format: doc.format,
            range: doc.chunk,
            split_over,
            attempt,
            engine: engines[doc.engine_idx.min(engines.len() - 1)],
            allow_mock: self.cfg.allow_mock,
            epub_entry_cap: self.cfg.epub_entry_cap,
            epub_book_cap: self.cfg.epub_book_cap,
            ocr: self.cfg.ocr.settings.clone(),
            ocr_pages: doc.ocr_pages.clone(),
        };
        // A chunk's pages are known, and an OCR job's; a whole document's
        // once the worker has opened it.
        let expected = match &doc.ocr_pages {
            Some(pages) => pages.len() as u32,
            None => doc.chunk.map_or(0, |r| r.last - r.first + 1),
        };
        let deadline = self.now + self.job_deadline(&doc, expected);
        let started_ms = self.now_ms();
        let Some(slot) = self.slots.get_mut(&worker) else {
            self.requeue(doc, claim);
            return;
        };
        slot.job = Some(InFlight {
            doc,
            claim,
            job: id,
            attempt,
            started_ms,
            started: self.now,
            deadline,
            last_beat: self.now,
            last_progress: self.now,
            expected,
            opened: false,
            rss_floor: u64::MAX,
            rss: 0,
            slowest: Duration::ZERO,
            pages: Vec::new(),
            ocr_extra: Default::default(),
            alone,
        });
        self.out.push(Action::Send { worker, job });
    }

    /// The worker died before it could take its job: it is reaped, and the
    /// job goes back to the front of the queue untouched.
    pub(super) fn send_failed(&mut self, worker: WorkerId) {
        let Some(slot) = self.slots.remove(&worker) else {
            return;
        };
        self.totals.record(Fact::WorkerEnded);
        self.out.push(Action::Discard { worker });
        if let Some(job) = slot.job {
            self.requeue(job.doc, job.claim);
        }
        self.next_job();
    }

    /// Shuts a worker down now that it is idle.
    pub(super) fn retire(&mut self, worker: WorkerId) {
        if self.slots.remove(&worker).is_some() {
            self.out.push(Action::Retire { worker });
        }
    }

    /// Documents waiting for a worker: the queue's and the spare.
    pub(super) fn queued(&self) -> usize {
        self.queue.len() + usize::from(self.spare.is_some())
    }

    /// Puts the spare back in the queue, its claim released.
    pub(super) fn release_spare(&mut self) {
        if let Some(Ready { doc, claim, .. }) = self.spare.take() {
            self.requeue(doc, claim);
        }
    }

    /// Puts a claimed document back at the front of the queue, its claim
    /// released without counting an attempt.
    fn requeue(&mut self, doc: QueuedDoc, claim: Claim) {
        self.release(&doc, claim);
        self.queue.push_front(doc);
    }

    /// The spare's lease, to renew.
    pub(super) fn spare_claim(&self) -> Option<(i64, Claim)> {
        self.spare.as_ref().map(|r| (r.doc.id, r.claim))
    }

    /// Puts a claimed document back without counting an attempt.
    pub(super) fn release(&mut self, doc: &QueuedDoc, claim: Claim) {
        let ending = Ending {
            doc,
            claim,
            attempt: doc.attempts + 1,
            pid: 0,
            started_ms: self.now_ms(),
        };
        let (job, note) = self.to_commit(ending, FinishedResult::Released);
        self.commit(vec![job], vec![note]);
    }
}
