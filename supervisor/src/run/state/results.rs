//! What becomes of a job's result: the text is only good if the file is
//! still the one that was read; a long document becomes chunk jobs; finished
//! jobs wait in a batch written together (64 jobs, 16 MiB of text, or 25
//! ms, whichever comes first), and are counted once the store says what it
//! wrote.

use std::time::{Duration, Instant};

use docmill_protocol::{DocSummary, Outcome, PageRange};

use super::{bytes_of, Ending, InFlight, State};
use crate::run::action::Action;
use crate::run::event::FileSeen;
use crate::run::totals::{Committed, Fact, JobEnd, OcrCounts};
use crate::store::{DocState, Finished, FinishedResult, QueuedDoc, Written};

/// Finished jobs are written together once this many wait, once their text
/// reaches `COMMIT_BYTES`, or once the oldest has waited `COMMIT_AFTER`.
///
/// The run's loop waits for a commit, and so does a worker whose job ends
/// meanwhile: short commits keep that wait short. Over the normal corpus
/// PDFs ×2 on 2 workers, 250 ms gave 2.77 s, 60 ms 2.69 s and 25 ms 2.63 s
/// (medians of 3, same CPU time); 2,000 one-page PDFs took the same with
/// either (0.75 s).
const COMMIT_JOBS: usize = 64;
const COMMIT_BYTES: usize = 16 << 20;
const COMMIT_AFTER: Duration = Duration::from_millis(25);

/// A document whose chunk plan is being stored.
#[derive(Debug)]
pub(super) struct Splitting {
    job: InFlight,
    page_count: u32,
    ranges: Vec<PageRange>,
}

/// Finished jobs not yet sent to the store.
#[derive(Debug, Default)]
pub(super) struct Batch {
    jobs: Vec<Finished>,
    notes: Vec<Committed>,
    /// Text of the batch and of the jobs still running.
    pub(super) bytes: usize,
    oldest: Option<Instant>,
    next: u64,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        self.jobs.len() >= COMMIT_JOBS
            || self.bytes >= COMMIT_BYTES
            || self
                .oldest
                .is_some_and(|t| now.duration_since(t) >= COMMIT_AFTER)
    }
}

impl State {
    pub(super) fn on_done(&mut self, job: InFlight, summary: DocSummary, file: FileSeen, pid: u32) {
        let changed = match file {
            FileSeen::Present { size, mtime_ns } => {
                (size != job.doc.size || mtime_ns != job.doc.mtime_ns).then_some((size, mtime_ns))
            }
            FileSeen::Vanished => {
                self.unreadable(job, "the file vanished while it was read", pid);
                return;
            }
        };
        if let Some((size, mtime_ns)) = changed {
            self.file_changed(job, size, mtime_ns, pid);
            return;
        }
        tracing::debug!(
            path = %job.doc.path.display(),
            pages = job.pages.len(),
            slowest_ms = job.slowest.as_millis() as u64,
            "extracted; the slowest page took {:.3}s",
            job.slowest.as_secs_f64()
        );
        self.recent_jobs += 1;
        self.totals.record(Fact::Attempt(Outcome::Done));
        if job.doc.ocr_pages.is_some() {
            self.on_recognised(job, pid);
            return;
        }
        let Some((mut job, summary)) = self.ocr_follow_up(job, summary, pid) else {
            return;
        };
        let pages = std::mem::take(&mut job.pages);
        self.push_result(job.ending(pid), FinishedResult::Done { summary, pages });
    }

    /// The file could not be read as it was when the job began: the
    /// document fails, without the attempt counting against it.
    fn unreadable(&mut self, job: InFlight, reason: &str, pid: u32) {
        let failed = DocState::Failed;
        self.record_failure(
            job,
            Outcome::ExtractFailed,
            reason.into(),
            failed,
            false,
            pid,
        );
    }

    /// The file changed while it was read: the first time, it goes back to
    /// the queue as the file it is now (a split document as a whole, its
    /// plan being for the old file); the second time, it fails.
    fn file_changed(&mut self, job: InFlight, size: u64, mtime_ns: i64, pid: u32) {
        self.batch.bytes = self.batch.bytes.saturating_sub(bytes_of(&job.pages));
        if !self.changed_once.insert(job.doc.id) {
            self.unreadable(job, "the file kept changing while it was read", pid);
            return;
        }
        let id = job.doc.id;
        self.out.push(Action::Restat {
            doc: id,
            size,
            mtime_ns,
        });
        let mut doc = job.doc.clone();
        doc.size = size;
        doc.mtime_ns = mtime_ns;
        if doc.chunk.is_some() {
            // The other chunks' results will find no lease to write to.
            self.out.push(Action::Unsplit { doc: id });
            self.queue.retain(|d| d.id != id);
            let mut whole = QueuedDoc::new(id, doc.path, size, mtime_ns, doc.format, doc.attempts);
            whole.sched_format = doc.sched_format;
            self.queue.push_front(whole);
            return;
        }
        self.release(&job.doc, job.claim);
        self.queue.push_front(doc);
    }

    /// The worker found the document long enough to split: plan its chunks;
    /// `split_written` queues them once the plan is stored.
    pub(super) fn on_split(&mut self, job: InFlight, page_count: u32) {
        // What opening the file cost this job (it did nothing else): each
        // chunk pays it again. The workers are this run's; other machines
        // on a shared store are not known here.
        let reopen = self.now.saturating_duration_since(job.started);
        let ranges = self.cfg.chunking.plan(page_count, self.target, reopen);
        tracing::debug!(
            path = %job.doc.path.display(),
            pages = page_count,
            workers = self.target,
            reopen_ms = reopen.as_millis() as u64,
            chunks = ranges.len(),
            first_chunk_pages = ranges.first().map_or(0, |r| r.last - r.first + 1),
            "chunk plan"
        );
        self.out.push(Action::Split {
            doc: job.doc.id,
            claim: job.claim,
            page_count,
            ranges: ranges.clone(),
        });
        self.splitting = Some(Splitting {
            job,
            page_count,
            ranges,
        });
    }

    /// The chunks go first in the queue, so idle workers take them at once.
    pub(super) fn split_written(&mut self, planned: bool) {
        let Some(Splitting {
            job,
            page_count,
            ranges,
        }) = self.splitting.take()
        else {
            return;
        };
        if !planned {
            tracing::warn!(doc = job.doc.id, "lease lost: the split was not written");
            return;
        }
        tracing::info!(
            path = %job.doc.path.display(),
            pages = page_count,
            chunks = ranges.len(),
            "split into page-range chunks"
        );
        self.totals.record(Fact::Split);
        for r in ranges.iter().rev() {
            let mut chunk = job.doc.clone();
            chunk.attempts = 0;
            chunk.engine_notes.clear();
            chunk.page_total = page_count;
            chunk.set_chunk(*r);
            self.queue.push_front(chunk);
        }
    }

    /// Adds the end of an attempt to the batch.
    pub(super) fn push_result(&mut self, ending: Ending, result: FinishedResult) {
        let (job, note) = self.to_commit(ending, result);
        self.batch.oldest.get_or_insert(self.now);
        self.batch.jobs.push(job);
        self.batch.notes.push(note);
    }

    /// What the store writes of an attempt's end, and what the counts will
    /// need to know of it once written.
    pub(super) fn to_commit(&self, e: Ending, result: FinishedResult) -> (Finished, Committed) {
        let mut ocr = OcrCounts::default();
        // A document waiting for its OCR jobs is counted done when the
        // last one ends, as a split document is.
        let mut waits = e.doc.chunk.is_some();
        let end = match &result {
            FinishedResult::Done { pages, .. } => JobEnd::Done {
                pages: pages.len() as u64,
            },
            FinishedResult::Flagged {
                pages, ocr: follow, ..
            } => {
                ocr.cached = follow.cached.len() as u64;
                waits |= !follow.jobs.is_empty();
                JobEnd::Done {
                    pages: pages.len() as u64,
                }
            }
            FinishedResult::Recognised { pages, .. } => {
                let failed = pages.iter().filter(|p| p.flags.failed).count() as u64;
                ocr.failed = failed;
                ocr.recognised = pages.len() as u64 - failed;
                // Its pages were counted with the text job.
                JobEnd::Done { pages: 0 }
            }
            FinishedResult::Failed {
                outcome, status, ..
            } => {
                // An OCR job that will not be tried again: its pages fail.
                if let (Some(pages), true) = (&e.doc.ocr_pages, status.is_failure()) {
                    ocr.failed = pages.len() as u64;
                }
                JobEnd::Failed {
                    outcome: *outcome,
                    state: *status,
                }
            }
            FinishedResult::Released => JobEnd::Released,
        };
        let note = Committed {
            doc: e.doc.id,
            chunk: waits,
            ocr,
            format: e.doc.format,
            rescued: e.doc.engine_idx > 0,
            end,
        };
        let job = Finished {
            doc: e.doc.id,
            chunk: e.doc.chunk,
            claim: e.claim,
            run: self.cfg.run,
            attempt: e.attempt,
            worker_pid: e.pid,
            started_ms: e.started_ms,
            ended_ms: self.now_ms(),
            result,
        };
        (job, note)
    }

    /// Sends the batch to the store.
    pub(super) fn flush(&mut self) {
        let jobs = std::mem::take(&mut self.batch.jobs);
        let notes = std::mem::take(&mut self.batch.notes);
        self.batch.bytes = 0;
        self.batch.oldest = None;
        if !jobs.is_empty() {
            self.commit(jobs, notes);
        }
    }

    /// Sends `jobs` to the store now, remembering what to count of each.
    pub(super) fn commit(&mut self, jobs: Vec<Finished>, notes: Vec<Committed>) {
        let batch = self.batch.next;
        self.batch.next += 1;
        self.committing.insert(batch, notes);
        self.out.push(Action::Commit { batch, jobs });
    }

    pub(super) fn committed(&mut self, batch: u64, written: Vec<Written>) {
        let notes = self.committing.remove(&batch).unwrap_or_default();
        for (job, written) in notes.into_iter().zip(written) {
            match &written {
                Written::Lost => {
                    tracing::warn!(doc = job.doc, "lease lost: the result was not written");
                }
                Written::Merged(m) => {
                    tracing::info!(
                        doc = job.doc,
                        pages = m.pages,
                        "chunks merged: {}",
                        m.status
                    );
                }
                Written::Held => {}
            }
            self.ocr_planned(job.doc, written != Written::Lost);
            let written = match written {
                Written::Merged(m) => {
                    if self.text_merged(&m, job.doc) {
                        // Counted when its text merged.
                        Written::Held
                    } else {
                        Written::Merged(m)
                    }
                }
                other => other,
            };
            self.totals.record(Fact::Written { job, written });
        }
    }

    /// Extends the leases of every job this run holds: those running and
    /// those finished but not yet written.
    pub(super) fn renew(&mut self) {
        let held = self
            .slots
            .values()
            .filter_map(|s| s.job.as_ref().map(|j| (j.doc.id, j.claim)))
            .chain(self.batch.jobs.iter().map(|f| (f.doc, f.claim)))
            .chain(self.spare_claim())
            .collect();
        self.out.push(Action::Renew { held });
    }
}
