//! What an attempt that did not succeed means for its document: the next
//! engine (a PDF one engine cannot read), a retry (first in the queue, with
//! a larger memory limit after a memory-limit failure), or its end (failed,
//! quarantined). `policy::after_failure` says what the attempt counts for;
//! this file applies it to the run.

use docmill_protocol::{Format, Outcome, WorkerFailure, WorkerFailureKind};

use super::{bytes_of, InFlight, State};
use crate::policy;
use crate::run::totals::Fact;
use crate::store::{DocState, FinishedResult};

impl State {
    pub(super) fn on_failed(&mut self, job: InFlight, outcome: Outcome, reason: String, pid: u32) {
        let verdict = policy::after_failure(outcome, job.doc.attempts, self.cfg.max_attempts);
        let stopping = self.stop_at.is_some();
        // Under `auto`, a PDF that one engine cannot read (an error, a
        // panic, garbage text, a timeout) goes to the next engine at once,
        // without counting against it. A crash or a limit hit may be the
        // machine's doing (a kill, memory pressure), so those are retried
        // with the same engine first and fall back only once exhausted.
        let fallback = job.doc.format == Format::Pdf
            && job.doc.engine_idx + 1 < self.cfg.engines.len()
            && match outcome {
                Outcome::ExtractFailed | Outcome::TimedOut => true,
                Outcome::Done | Outcome::Cancelled => false,
                _ => verdict.status != DocState::Pending,
            };
        let engine = self.cfg.engines[job.doc.engine_idx.min(self.cfg.engines.len() - 1)];
        if fallback {
            let counts = !matches!(outcome, Outcome::ExtractFailed | Outcome::TimedOut);
            let note = format!("{}: {reason}", engine.as_str());
            let mut next = job.doc.clone();
            next.engine_idx += 1;
            next.attempts += u32::from(counts);
            next.engine_notes.push(note.clone());
            self.totals.record(Fact::Fallback(outcome));
            self.record_failure(job, outcome, note, DocState::Pending, counts, pid);
            if !stopping {
                self.flush();
                self.queue.push_front(next);
            }
            return;
        }
        if outcome == Outcome::MemoryLimit {
            *self.mem_failures.entry(job.doc.id).or_default() += 1;
        }
        let mut retry = job.doc.clone();
        retry.attempts += u32::from(verdict.counts);
        let reason = if job.doc.engine_notes.is_empty() || verdict.status == DocState::Pending {
            reason
        } else {
            let last = format!("{}: {reason}", engine.as_str());
            final_engine_reason(&job.doc.engine_notes, &last)
        };
        self.record_failure(job, outcome, reason, verdict.status, verdict.counts, pid);
        if verdict.status == DocState::Pending && !stopping {
            // The retry queue comes first. Its failure must be written
            // before it can be claimed again.
            self.flush();
            if outcome == Outcome::MemoryLimit {
                // It runs alone: what was claimed ahead waits behind it.
                self.release_spare();
            }
            self.queue.push_front(retry);
            if outcome != Outcome::Cancelled {
                self.totals.record(Fact::Retried);
            }
        }
    }

    /// Adds a failed attempt to the commit batch; `state` is where its
    /// document goes (pending for a retry, failed, quarantined).
    pub(super) fn record_failure(
        &mut self,
        job: InFlight,
        outcome: Outcome,
        reason: String,
        state: DocState,
        counts: bool,
        pid: u32,
    ) {
        self.batch.bytes = self.batch.bytes.saturating_sub(bytes_of(&job.pages));
        tracing::info!(
            path = %job.doc.path.display(),
            attempt = job.attempt,
            outcome = outcome.as_str(),
            "{reason}"
        );
        self.totals.record(Fact::Attempt(outcome));
        if outcome != Outcome::Cancelled {
            self.recent_jobs += 1;
        }
        if matches!(
            outcome,
            Outcome::Crashed | Outcome::TimedOut | Outcome::MemoryLimit | Outcome::FdLimit
        ) {
            self.recent_failures += 1;
        }
        let result = FinishedResult::Failed {
            outcome,
            reason,
            status: state,
            counts,
        };
        self.push_result(job.ending(pid), result);
    }
}

/// The outcome class of a failure the worker reported itself.
pub(super) fn worker_failure(f: &WorkerFailure) -> (Outcome, String) {
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
