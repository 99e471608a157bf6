//! The run's counts, changed in one place (`Totals::record`), from which
//! the run summary, the live display and the stats file are all derived.
//! A document counts when its result is written, never before: a result
//! whose lease was lost is not the run's to count.

use std::collections::{BTreeMap, HashMap};

use docmill_protocol::{Format, Outcome};
use serde::Serialize;

use crate::metrics::DocCounts;
use crate::store::{DocState, Written};

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
    /// Pages recognised by OCR jobs, read from the OCR cache, and that OCR
    /// could not read.
    pub ocr_pages: u64,
    pub ocr_cached: u64,
    pub ocr_failed: u64,
    /// Every attempt by outcome, fallbacks included.
    pub outcomes: HashMap<String, u64>,
    /// The attempts after which a PDF went on to the next engine, by
    /// outcome: counted as fallbacks, not as failures.
    pub fallback_outcomes: HashMap<String, u64>,
    pub done_by_format: HashMap<String, u64>,
}

/// Something that happened that the counts follow.
#[derive(Clone, Debug)]
pub enum Fact {
    /// A worker started; `live` workers run now.
    WorkerStarted {
        live: usize,
    },
    /// A worker ended without being asked to (it died, or was killed).
    WorkerEnded,
    Scaled,
    /// The resident memory of the whole process tree, as last read.
    TreeRss(u64),
    /// A document was planned as chunk jobs.
    Split,
    /// A PDF went on to the next engine after an attempt that ended so.
    Fallback(Outcome),
    /// A document went back to the queue to be tried again.
    Retried,
    /// An attempt ended (counted when it ends, written or not).
    Attempt(Outcome),
    /// A commit wrote (or refused) one job's result.
    Written {
        job: Committed,
        written: Written,
    },
    /// Pages read from the OCR cache for a document split before.
    OcrCached(u64),
}

/// What the run remembers of a job it sent to be written, to count it once
/// the store says what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub doc: i64,
    pub chunk: bool,
    pub format: Format,
    /// Done by an engine after the first.
    pub rescued: bool,
    pub end: JobEnd,
    pub ocr: OcrCounts,
}

/// A job's OCR pages, counted once it is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OcrCounts {
    pub recognised: u64,
    pub cached: u64,
    pub failed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Done { pages: u64 },
    Failed { outcome: Outcome, state: DocState },
    Released,
}

impl Totals {
    /// The one place the counts change.
    pub fn record(&mut self, fact: Fact) {
        match fact {
            Fact::WorkerStarted { live } => {
                self.workers_started += 1;
                self.peak_workers = self.peak_workers.max(live as u64);
            }
            Fact::WorkerEnded => self.worker_deaths += 1,
            Fact::Scaled => self.scale_decisions += 1,
            Fact::TreeRss(rss) => self.peak_rss = self.peak_rss.max(rss),
            Fact::Split => self.split += 1,
            Fact::Fallback(outcome) => {
                self.fallbacks += 1;
                *self
                    .fallback_outcomes
                    .entry(outcome.as_str().into())
                    .or_default() += 1;
            }
            Fact::Retried => self.retried += 1,
            Fact::Attempt(outcome) => {
                *self.outcomes.entry(outcome.as_str().into()).or_default() += 1;
            }
            Fact::Written { job, written } => self.written(&job, &written),
            Fact::OcrCached(n) => self.ocr_cached += n,
        }
    }

    fn written(&mut self, job: &Committed, written: &Written) {
        if *written == Written::Lost {
            return;
        }
        self.ocr_pages += job.ocr.recognised;
        self.ocr_cached += job.ocr.cached;
        self.ocr_failed += job.ocr.failed;
        match job.end {
            JobEnd::Done { pages } => {
                self.pages += pages;
                if !job.chunk {
                    self.done_one(job.format);
                    self.rescued += u64::from(job.rescued);
                }
            }
            // A chunk's failure counts for its document once merged; a
            // cancelled chunk is back in the queue like any cancelled job.
            JobEnd::Failed { outcome, .. } if job.chunk && outcome != Outcome::Cancelled => {}
            JobEnd::Failed { state, outcome } => match state {
                DocState::Failed => self.failed += 1,
                DocState::Quarantined => self.quarantined += 1,
                _ if outcome == Outcome::Cancelled => self.cancelled += 1,
                _ => {}
            },
            JobEnd::Released => {}
        }
        if let Written::Merged(m) = written {
            match m.status {
                DocState::Done => self.done_one(job.format),
                DocState::Partial => self.partial += 1,
                DocState::Quarantined => self.quarantined += 1,
                _ => self.failed += 1,
            }
        }
    }

    fn done_one(&mut self, format: Format) {
        self.done += 1;
        *self
            .done_by_format
            .entry(format.as_str().to_string())
            .or_default() += 1;
    }

    /// The document counts the display and the stats file show.
    pub fn doc_counts(&self, total: u64) -> DocCounts {
        DocCounts {
            docs_total: total,
            docs_done: self.done,
            docs_failed: self.failed + self.quarantined,
            pages_done: self.pages,
            ocr_pages_done: self.ocr_pages,
            ocr_pages_cached: self.ocr_cached,
        }
    }

    /// Failed attempts so far, by outcome class: an engine that gave up on
    /// a PDF the next engine then tried is a fallback, not a failure.
    pub fn failures_by_class(&self) -> BTreeMap<String, u64> {
        self.outcomes
            .iter()
            .filter(|(k, _)| k.as_str() != Outcome::Done.as_str())
            .map(|(k, v)| {
                let fallbacks = self.fallback_outcomes.get(k).copied().unwrap_or(0);
                (k.clone(), v.saturating_sub(fallbacks))
            })
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    pub fn by_format(&self) -> BTreeMap<String, u64> {
        self.done_by_format
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Merged;

    fn job(chunk: bool, end: JobEnd) -> Committed {
        Committed {
            doc: 1,
            chunk,
            format: Format::Pdf,
            rescued: false,
            end,
            ocr: OcrCounts::default(),
        }
    }

    #[test]
    fn documents_count_when_written() {
        let done = JobEnd::Done { pages: 3 };
        let failed = JobEnd::Failed {
            outcome: Outcome::Crashed,
            state: DocState::Quarantined,
        };
        let merged = Written::Merged(Merged {
            status: DocState::Partial,
            pages: 9,
            ocr: None,
        });
        // (job, what the store did, done, quarantined, partial, pages)
        let table = [
            (job(false, done), Written::Held, 1, 0, 0, 3),
            (job(false, done), Written::Lost, 0, 0, 0, 0),
            (job(false, failed), Written::Held, 0, 1, 0, 0),
            (job(false, failed), Written::Lost, 0, 0, 0, 0),
            (job(true, done), Written::Held, 0, 0, 0, 3),
            (job(true, failed), Written::Held, 0, 0, 0, 0),
            (job(true, done), merged.clone(), 0, 0, 1, 3),
            (job(true, failed), merged, 0, 0, 1, 0),
        ];
        for (job, written, done, quarantined, partial, pages) in table {
            let mut t = Totals::default();
            let what = format!("{job:?} {written:?}");
            t.record(Fact::Written { job, written });
            assert_eq!(
                (t.done, t.quarantined, t.partial, t.pages),
                (done, quarantined, partial, pages),
                "{what}"
            );
        }
    }

    #[test]
    fn fallbacks_are_not_failures() {
        let mut t = Totals::default();
        for fact in [
            Fact::Attempt(Outcome::ExtractFailed),
            Fact::Fallback(Outcome::ExtractFailed),
            Fact::Attempt(Outcome::ExtractFailed),
            Fact::Fallback(Outcome::ExtractFailed),
            Fact::Attempt(Outcome::ExtractFailed),
            Fact::Attempt(Outcome::TimedOut),
            Fact::Fallback(Outcome::TimedOut),
            Fact::Attempt(Outcome::Done),
        ] {
            t.record(fact);
        }
        assert_eq!(t.fallbacks, 3);
        assert_eq!(
            t.failures_by_class(),
            BTreeMap::from([("extract-failed".to_string(), 1)])
        );
    }
}
