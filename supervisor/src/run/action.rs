//! What the run state asks the driver to do, and why it ends a worker.
//! Every start, stop and kill of a worker is one of these actions, decided
//! in `state/`; the driver only carries them out.

use std::fmt;

use docmill_protocol::{Job, Outcome, PageRange};

use super::event::WorkerId;
use crate::store::{Claim, Finished, FinishedResult};
use crate::units::format_size;

#[derive(Debug)]
pub enum Action {
    /// Start a worker with this address-space limit (0: none); answered by
    /// `Event::WorkerUp` or `Event::SpawnFailed`.
    Spawn { mem_limit: u64 },
    /// Hand a job to an idle worker; `Event::SendFailed` if it is gone.
    Send { worker: WorkerId, job: Job },
    /// End a busy (or surplus) worker now: SIGTERM to its group, a short
    /// grace, SIGKILL. What its job's end means is already decided.
    Kill {
        worker: WorkerId,
        reason: KillReason,
    },
    /// Ask an idle worker to exit: it has no job, or may have leaked.
    Retire { worker: WorkerId },
    /// Reap a worker found dead when it was handed a job.
    Discard { worker: WorkerId },
    /// Claim a document (or the chunk of it starting at page `chunk`);
    /// answered by `Event::Claimed`.
    Claim { doc: i64, chunk: Option<u32> },
    /// Write these finished jobs; answered by `Event::Committed`.
    Commit { batch: u64, jobs: Vec<Finished> },
    /// Extend the leases of the jobs this run holds.
    Renew { held: Vec<(i64, Claim)> },
    /// Plan a claimed document as chunk jobs; answered by
    /// `Event::SplitWritten`.
    Split {
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: Vec<PageRange>,
    },
    /// Forget the chunk plan of a document whose file changed.
    Unsplit { doc: i64 },
    /// Record a file's new size and modification time.
    Restat { doc: i64, size: u64, mtime_ns: i64 },
    /// Read the machine now (a scaling decision waits for it); answered by
    /// `Event::Readings`.
    Sample,
    /// The worker count changed: tell the user why.
    Scaled { from: u32, to: u32, reason: String },
    /// Look for work in the shared store; answered by `Event::Polled`.
    Poll,
    /// A split document whose text chunks merged done had pages flagged:
    /// write its cached pages and turn it into OCR jobs; answered by
    /// `Event::OcrPlanned`.
    PlanOcr {
        doc: i64,
        hash: String,
        ocr: crate::store::OcrFollowUp,
    },
    /// Read the OCR cache for `pages` of the file whose content hash is
    /// `hash`, under the settings `key`; answered by `Event::OcrCached`.
    OcrLookup {
        doc: i64,
        hash: String,
        key: String,
        pages: Vec<u32>,
    },
    /// The run is over: every result is committed.
    End,
    /// Workers cannot be started: the run cannot go on.
    Abort { error: String },
}

/// Why the run ends a worker.
#[derive(Clone, Debug, PartialEq)]
pub enum KillReason {
    /// The job overran its deadline.
    Deadline { secs: f64 },
    /// No heartbeat for this long.
    Silent { secs: f64 },
    /// No page for this long: `done` pages of the job were done, of `of`
    /// (0 while its page count is not known).
    Stalled { secs: f64, done: u32, of: u32 },
    /// The worker's memory grew from `from` to `to` with no page done for
    /// `secs`: an engine caught in a loop, long before any limit.
    Climbing { from: u64, to: u64, secs: f64 },
    /// The worker's resident memory grew past its limit.
    Memory { rss: u64, limit: u64 },
    /// The grace period after a stop request is over.
    Cancelled,
    /// The scaler needs the memory back; the job is requeued.
    MemoryPressure,
}

impl KillReason {
    /// What the kill means for the job that was running.
    pub fn outcome(&self) -> (Outcome, String) {
        match self {
            KillReason::Deadline { secs } => (
                Outcome::TimedOut,
                format!("no result within its {secs:.1}s deadline"),
            ),
            KillReason::Silent { secs } => {
                (Outcome::TimedOut, format!("no heartbeat for {secs:.1}s"))
            }
            // A stall is a timeout that need not wait for the deadline: the
            // document goes to the next engine the same way.
            KillReason::Stalled { secs, done, of } => {
                let pages = match of {
                    0 => format!("{done} pages done"),
                    n => format!("{done} of {n} pages done"),
                };
                (
                    Outcome::TimedOut,
                    format!("stalled: no page for {secs:.1}s ({pages})"),
                )
            }
            KillReason::Climbing { from, to, secs } => (
                Outcome::TimedOut,
                format!(
                    "stalled: memory grew from {} to {} with no page for {secs:.1}s",
                    format_size(*from),
                    format_size(*to)
                ),
            ),
            KillReason::Memory { rss, limit } => (
                Outcome::MemoryLimit,
                format!(
                    "resident memory {} over the {} limit",
                    format_size(*rss),
                    format_size(*limit)
                ),
            ),
            KillReason::Cancelled | KillReason::MemoryPressure => {
                (Outcome::Cancelled, "run interrupted".to_string())
            }
        }
    }
}

/// One short line per action, for logs and for the run state's tables.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Spawn { mem_limit } => write!(f, "spawn {}MiB", mem_limit >> 20),
            Action::Send { worker, job } => {
                let engine = match job.format {
                    docmill_protocol::Format::Pdf => job.engine.as_str(),
                    other => other.as_str(),
                };
                write!(
                    f,
                    "send w{worker} job{} {} attempt={} {engine}",
                    job.id,
                    String::from_utf8_lossy(&job.path),
                    job.attempt
                )?;
                if let Some(r) = job.range {
                    write!(f, " pages={}-{}", r.first, r.last)?;
                }
                if let Some(n) = job.split_over {
                    write!(f, " split_over={n}")?;
                }
                if let Some(pages) = &job.ocr_pages {
                    write!(f, " ocr={}", page_list(pages))?;
                }
                Ok(())
            }
            Action::Kill { worker, reason } => {
                let why = match reason {
                    KillReason::Deadline { .. } => "deadline",
                    KillReason::Silent { .. } => "silent",
                    KillReason::Stalled { .. } => "stalled",
                    KillReason::Climbing { .. } => "climbing",
                    KillReason::Memory { .. } => "memory",
                    KillReason::Cancelled => "cancelled",
                    KillReason::MemoryPressure => "memory-pressure",
                };
                write!(f, "kill w{worker} {why}")
            }
            Action::Retire { worker } => write!(f, "retire w{worker}"),
            Action::Discard { worker } => write!(f, "discard w{worker}"),
            Action::Claim { doc, chunk: None } => write!(f, "claim {doc}"),
            Action::Claim {
                doc,
                chunk: Some(first),
            } => write!(f, "claim {doc}@{first}"),
            Action::Commit { jobs, .. } => {
                let each: Vec<String> = jobs.iter().map(commit_line).collect();
                write!(f, "commit [{}]", each.join(", "))
            }
            Action::Renew { held } => {
                let docs: Vec<String> = held.iter().map(|(d, _)| d.to_string()).collect();
                write!(f, "renew [{}]", docs.join(", "))
            }
            Action::Split {
                doc,
                page_count,
                ranges,
                ..
            } => write!(f, "split {doc} pages={page_count} chunks={}", ranges.len()),
            Action::Unsplit { doc } => write!(f, "unsplit {doc}"),
            Action::Restat { doc, size, .. } => write!(f, "restat {doc} size={size}"),
            Action::Sample => write!(f, "sample"),
            Action::Scaled { from, to, .. } => write!(f, "scaled {from}->{to}"),
            Action::Poll => write!(f, "poll"),
            Action::PlanOcr { doc, ocr, .. } => write!(
                f,
                "plan-ocr {doc} cached={} jobs={}",
                ocr.cached.len(),
                ocr.jobs.len()
            ),
            Action::OcrLookup { doc, pages, .. } => {
                write!(f, "ocr-lookup {doc} pages={}", page_list(pages))
            }
            Action::End => write!(f, "end"),
            Action::Abort { error } => write!(f, "abort: {error}"),
        }
    }
}

fn page_list(pages: &[u32]) -> String {
    crate::store::ocr_page_list(pages)
}

fn commit_line(job: &Finished) -> String {
    let what = match (&job.chunk, &job.result) {
        (Some(r), _) => format!("{}@{}", job.doc, r.first),
        (None, _) => job.doc.to_string(),
    };
    match &job.result {
        FinishedResult::Done { pages, .. } => format!("{what} done pages={}", pages.len()),
        FinishedResult::Failed {
            outcome,
            status,
            counts,
            ..
        } => {
            let counted = if *counts { "" } else { " uncounted" };
            format!("{what} {} -> {status}{counted}", outcome.as_str())
        }
        FinishedResult::Flagged { pages, ocr, .. } => format!(
            "{what} done pages={} ocr_cached={} ocr_jobs={}",
            pages.len(),
            ocr.cached.len(),
            ocr.jobs.len()
        ),
        FinishedResult::Recognised { pages, .. } => {
            format!("{what} recognised pages={}", pages.len())
        }
        FinishedResult::Released => format!("{what} released"),
    }
}
