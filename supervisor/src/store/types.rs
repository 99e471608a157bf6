//! The types every store speaks, whatever its backend: the documents a run
//! queues and claims, what it writes back, what discovery found, and the
//! closed set of states a document (or a chunk of one) moves through.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use docmill_protocol::{DocSummary, Format, Outcome, PageFlags, PageRange};
use serde::Serialize;

/// Where a document, or one chunk of a split document, stands. Stored as
/// its name (`as_str`); a name outside this set is a catalog from a newer
/// docmill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocState {
    /// Waiting for a worker (new, changed, or to be retried).
    Pending,
    /// Claimed under a lease by a supervisor.
    Running,
    /// Extracted as page-range chunk jobs; merged when the last one ends.
    Split,
    Done,
    /// Done except the pages of chunks that kept failing.
    Partial,
    /// A bad file: it fails the same way every time.
    Failed,
    /// Failed every attempt it was given; not tried again unless asked.
    Quarantined,
    /// Not a format docmill reads.
    Unsupported,
    /// Not looked at, on purpose (a symbolic link, an unreadable folder).
    Skipped,
}

impl DocState {
    pub const ALL: [DocState; 9] = [
        DocState::Pending,
        DocState::Running,
        DocState::Split,
        DocState::Done,
        DocState::Partial,
        DocState::Failed,
        DocState::Quarantined,
        DocState::Unsupported,
        DocState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocState::Pending => "pending",
            DocState::Running => "running",
            DocState::Split => "split",
            DocState::Done => "done",
            DocState::Partial => "partial",
            DocState::Failed => "failed",
            DocState::Quarantined => "quarantined",
            DocState::Unsupported => "unsupported",
            DocState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<DocState> {
        DocState::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Whether a run ends a document in this state badly (exit code 1).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            DocState::Failed | DocState::Quarantined | DocState::Partial
        )
    }
}

impl std::fmt::Display for DocState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A document waiting for a worker.
#[derive(Clone, Debug)]
pub struct QueuedDoc {
    pub id: i64,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub format: Format,
    /// Attempts that counted against the document so far.
    pub attempts: u32,
    /// Position in the run's PDF engine order (fallbacks move it on).
    pub engine_idx: usize,
    /// What the engines before this one said, for the final reason.
    pub engine_notes: Vec<String>,
    /// The format and size the scheduler sees: the real ones, except for
    /// mock documents, whose script may pretend (`kind`, `bytes`).
    pub sched_format: Format,
    pub sched_size: u64,
    /// For a chunk job: the pages it covers (the document is `split`).
    pub chunk: Option<PageRange>,
    /// The document's page count when known (chunk jobs); 0 otherwise.
    pub page_total: u32,
    /// For an OCR job: the pages to recognise (ascending, within `chunk`).
    pub ocr_pages: Option<Vec<u32>>,
}

impl QueuedDoc {
    pub fn new(
        id: i64,
        path: PathBuf,
        size: u64,
        mtime_ns: i64,
        format: Format,
        attempts: u32,
    ) -> QueuedDoc {
        QueuedDoc {
            id,
            path,
            size,
            mtime_ns,
            format,
            attempts,
            engine_idx: 0,
            engine_notes: Vec::new(),
            sched_format: format,
            sched_size: size,
            chunk: None,
            page_total: 0,
            ocr_pages: None,
        }
    }

    /// A queued document as both stores keep it: the raw bytes of its
    /// path, its format's name (a name this docmill does not know is read
    /// as a PDF) and the attempts counted so far.
    pub fn from_row(
        id: i64,
        path: &[u8],
        size: i64,
        mtime_ns: i64,
        format: &str,
        attempts: i64,
    ) -> QueuedDoc {
        QueuedDoc::new(
            id,
            PathBuf::from(OsStr::from_bytes(path)),
            size as u64,
            mtime_ns,
            Format::parse(format).unwrap_or(Format::Pdf),
            attempts as u32,
        )
    }

    /// Makes this the job for pages `range`; it is scheduled (and given a
    /// deadline) as its share of the file's bytes.
    pub fn set_chunk(&mut self, range: PageRange) {
        self.chunk = Some(range);
        self.sched_size = self.job_size();
    }

    /// The bytes this job stands for: the whole file, or a chunk's share.
    pub fn job_size(&self) -> u64 {
        match self.chunk {
            Some(r) if self.page_total > 0 => {
                let pages = u64::from(r.last - r.first + 1);
                self.size.saturating_mul(pages) / u64::from(self.page_total)
            }
            _ => self.size,
        }
    }
}

/// The lease a claim took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub token: i64,
}

/// A job that ended, ready to be written.
#[derive(Debug)]
pub struct Finished {
    pub doc: i64,
    /// Set for a chunk job.
    pub chunk: Option<PageRange>,
    pub claim: Claim,
    pub run: i64,
    pub attempt: u32,
    pub worker_pid: u32,
    pub started_ms: i64,
    /// When the result arrived (commits are batched, so not commit time).
    pub ended_ms: i64,
    pub result: FinishedResult,
}

/// What a commit did with one finished job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The lease was lost (another claimer, a changed file): nothing of it
    /// was written.
    Lost,
    Held,
    /// A chunk job that ended its document: the merged result.
    Merged(super::Merged),
}

#[derive(Debug)]
pub enum FinishedResult {
    Done {
        summary: DocSummary,
        pages: Vec<(u32, String, PageFlags)>,
    },
    /// The attempt failed; `status` is where the document goes now
    /// (pending for a retry, failed, quarantined).
    Failed {
        outcome: Outcome,
        reason: String,
        status: DocState,
        counts: bool,
    },
    /// Handed back before its result could count (never started, or the
    /// file changed under it): back to the queue, no attempt recorded.
    Released,
    /// A text job some of whose pages need OCR: written as `Done`, with the
    /// pages the OCR cache held recognised in the same commit; when
    /// `ocr.jobs` is not empty the document is `split` into those OCR jobs
    /// instead of done, and done (or partial) when the last one ends.
    Flagged {
        summary: DocSummary,
        pages: Vec<(u32, String, PageFlags)>,
        ocr: OcrFollowUp,
    },
    /// An OCR job's pages: they replace the rows of the text job's pages,
    /// and those recognised go in the OCR cache under `key`.
    Recognised { key: String, pages: Vec<OcrPage> },
}

/// One page as OCR gave it (or the cache, or a failure).
#[derive(Clone, Debug, PartialEq)]
pub struct OcrPage {
    pub page: u32,
    pub text: String,
    pub flags: PageFlags,
    /// Mean word confidence, 0-100, when the engine gave one.
    pub confidence: Option<f32>,
    /// Why the page failed, for `status`.
    pub note: Option<String>,
}

/// What follows a text job with flagged pages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OcrFollowUp {
    /// The OCR settings key the cache is read and written under.
    pub key: String,
    /// Pages the cache held: written with the text job.
    pub cached: Vec<OcrPage>,
    /// The OCR jobs planned for the rest, each its pages in order.
    pub jobs: Vec<Vec<u32>>,
}

/// What the walk made of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoundKind {
    /// A document to extract.
    Document(Format),
    /// Not a format docmill reads.
    Unsupported(String),
    /// A supported file that cannot be read (empty, permission denied).
    Failed(String),
    /// Not looked at, on purpose (a symbolic link, an unreadable folder).
    Skipped(String),
    /// Left out by `--exclude` or an ignore file (a file, or a folder and
    /// everything under it): never catalogued, and whatever the catalog
    /// holds there leaves it, as a deleted file's row does.
    Excluded,
}

#[derive(Clone, Debug)]
pub struct Found {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub kind: FoundKind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiscoverCounts {
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub requeued: u64,
    pub removed: u64,
}

/// What to retry among unchanged files that did not finish well.
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryPolicy {
    pub failed: bool,
    pub quarantined: bool,
}

/// A database whose schema is newer than this docmill knows; `what` names
/// the kind of database.
#[derive(Debug, thiserror::Error)]
#[error("the {what} was written by a newer docmill (schema {found}, this one knows {known})")]
pub struct TooNew {
    pub what: &'static str,
    pub found: i64,
    pub known: i64,
}

/// When a lease of length `lease` taken now expires (milliseconds since the
/// Unix epoch, by this machine's clock).
pub fn expiry_ms(lease: std::time::Duration) -> i64 {
    now_ms() + lease.as_millis() as i64
}

/// A search as a store runs it: a parsed query, the filters, and which
/// documents of the ranking to return.
#[derive(Clone, Debug)]
pub struct PageSearch<'a> {
    pub query: &'a crate::search::Query,
    /// Only documents whose path matches this SQL `LIKE` pattern (`\`
    /// escapes), compared without regard to ASCII letter case.
    pub path_like: Option<String>,
    pub format: Option<Format>,
    /// How many documents, after skipping `skip` of them.
    pub documents: usize,
    pub skip: usize,
    /// The best pages returned per document.
    pub pages_per_document: usize,
    /// At most this many matching pages are ranked: the first ones in the
    /// index's own order. A query that matches more ranks those only, so
    /// that its cost does not grow with the library (`search::RANKED_PAGES`).
    pub ranked: usize,
    /// Matching pages are counted up to this many, where a store can count
    /// without ranking more cheaply than it ranks (`search::COUNTED_PAGES`).
    pub counted: usize,
}

/// What a search found: totals over every match (or as far as they were
/// counted), and the documents asked for, best first, each with its best
/// pages.
#[derive(Clone, Debug, Default)]
pub struct PageMatches {
    /// Matching pages; more than this when `more_pages`.
    pub pages: u64,
    pub more_pages: bool,
    /// Documents with a matching page; at least this when `more_documents`
    /// (counted among the ranked pages only).
    pub documents: u64,
    pub more_documents: bool,
    /// How many matching pages the ranking looked at: all of them when it
    /// equals `pages` and `more_pages` is not set.
    pub ranked: u64,
    pub found: Vec<DocumentMatch>,
}

#[derive(Clone, Debug)]
pub struct DocumentMatch {
    /// The raw bytes of the path (names need not be UTF-8).
    pub path: Vec<u8>,
    pub display_path: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub format: String,
    /// How many of its pages match.
    pub pages: u64,
    /// Its best page's score; higher is better.
    pub score: f64,
    pub best: Vec<PageMatch>,
}

#[derive(Clone, Debug)]
pub struct PageMatch {
    pub page: u32,
    /// Higher is better (SQLite: the negated bm25 rank; PostgreSQL:
    /// `ts_rank`), so comparable within one store only.
    pub score: f64,
    /// The page's text as extracted.
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub path: String,
    pub status: String,
    pub outcome: Option<String>,
    pub reason: String,
    pub attempts: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub documents: BTreeMap<String, u64>,
    pub pages: u64,
    pub failures: Vec<Failure>,
    /// Attempts cut short by a supervisor that died; not held against
    /// any document.
    pub interrupted: u64,
    /// Pages indexed with their unreadable characters removed, among
    /// `pages`; their documents count as done.
    pub low_quality_pages: u64,
    /// The documents those pages belong to, in path order.
    pub low_quality: Vec<LowQuality>,
    /// Pages whose text came from OCR (recognised, or from the OCR cache).
    pub ocr_pages: u64,
    /// Pages OCR could not read (each with its note in export).
    pub ocr_failed_pages: u64,
    /// Pages without a text layer that were not recognised (OCR off, or no
    /// OCR engine installed), and their documents, in path order.
    pub no_text_pages: u64,
    pub no_text_layer: Vec<LowQuality>,
}

/// A document indexed with pages of low quality (`PageFlags::low_quality`).
#[derive(Clone, Debug, Serialize)]
pub struct LowQuality {
    pub path: String,
    pub pages: u64,
}

/// The stored `flags` bits of OCR: a page flagged for it, and a page whose
/// text came from it, as `PageFlags::bits` writes them.
pub fn ocr_bits() -> (i64, i64) {
    let needs = PageFlags {
        needs_ocr: true,
        ..PageFlags::default()
    };
    let ocr = PageFlags {
        ocr: true,
        ..PageFlags::default()
    };
    (needs.bits(), ocr.bits())
}

/// The stored `flags` bit of a low-quality page, as `PageFlags::bits`
/// writes it.
pub fn low_quality_bit() -> i64 {
    PageFlags {
        low_quality: true,
        ..PageFlags::default()
    }
    .bits()
}

impl Status {
    /// Every state at zero, so a report names the states nothing is in.
    pub fn every_state() -> BTreeMap<String, u64> {
        DocState::ALL
            .into_iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect()
    }
}

/// A document whose last chunk just ended: its final status and pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    pub status: DocState,
    pub pages: u64,
    /// A long document whose text merged done with pages its text chunks
    /// flagged for OCR and that were not recognised yet: read from the
    /// catalog, not from the run's memory, so that a run killed between
    /// two chunks still recognises the earlier chunks' pages.
    pub ocr: Option<PendingOcr>,
}

/// The pages of a merged document waiting for OCR, with what keys the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOcr {
    pub hash: String,
    pub page_total: u32,
    pub pages: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in DocState::ALL {
            assert_eq!(DocState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DocState::parse("bogus"), None);
    }
}
