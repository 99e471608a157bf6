//! The storage trait the supervisor runs on: discover, claim under a lease,
//! renew, commit (fenced by the lease's token), fail, search. SQLite is the
//! embedded default; a `postgres://` URL selects the shared store that lets
//! several machines index one library together.

mod pg;
mod rules;
mod runs;
mod sqlite;
mod types;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::metrics::Snapshot;
use docmill_protocol::PageRange;
pub use sqlite::{
    page_note, tenths, AttemptInfo, DocumentInfo, ErrorRate, ExportError, ExportPage, FailedFile,
    RunFailure, RunInfo, RunStats, SlowDocument, SqliteError, SqliteStore, TierStats,
    APPLICATION_ID, NO_TEXT_LAYER,
};
pub use types::{
    expiry_ms, low_quality_bit, now_ms, ocr_bits, Claim, DiscoverCounts, DocState, DocumentMatch,
    Failure, Finished, FinishedResult, Found, FoundKind, LowQuality, Merged, OcrFollowUp, OcrPage,
    PageMatch, PageMatches, PageSearch, PendingOcr, QueuedDoc, RetryPolicy, Status, TooNew,
    Written,
};

pub use pg::PgStore;
pub use rules::ocr::page_list as ocr_page_list;
pub use runs::RunRow;

/// The catalog schema this docmill writes and reads, per store; a newer
/// one is refused. Shown by `docmill --version`.
pub const SQLITE_SCHEMA_VERSION: i64 = sqlite::SCHEMA_VERSION;
pub const PG_SCHEMA_VERSION: i64 = pg::SCHEMA_VERSION;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlite(#[from] SqliteError),
    #[error("cannot connect to the database at {url}")]
    Connect {
        url: String,
        #[source]
        source: postgres::Error,
    },
    #[error(transparent)]
    TooNew(#[from] TooNew),
    #[error("no docmill index in the database at {0}: run `docmill index` first")]
    NoSharedIndex(String),
    #[error("the index at {0} was made by an older docmill: run `docmill index` once to bring it up to date")]
    Outdated(String),
    #[error("database error")]
    Pg(#[from] postgres::Error),
    #[error("cannot write the export")]
    Write(#[from] std::io::Error),
    #[error("a stored sample is not valid JSON")]
    Sample(#[from] serde_json::Error),
}

impl StoreError {
    /// Errors that mean "the database given is not usable", which the
    /// command line reports as a usage error rather than a failure.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(
                SqliteError::MissingFolder(_)
                    | SqliteError::NoIndex(_)
                    | SqliteError::Open { .. }
                    | SqliteError::TooNew(_)
                    | SqliteError::PermissionDenied(_)
                    | SqliteError::Read { .. }
                    | SqliteError::NotDocmill(_)
                    | SqliteError::NotSqlite(_)
                    | SqliteError::Corrupt { .. }
                    | SqliteError::Outdated(_)
            ) | StoreError::Connect { .. }
                | StoreError::TooNew(_)
                | StoreError::NoSharedIndex(_)
                | StoreError::Outdated(_)
        )
    }

    /// The same error, naming `db` when SQLite found it damaged in the
    /// middle of a command (a damaged header is found when it is opened).
    pub fn naming(self, db: &Path) -> StoreError {
        match self {
            StoreError::Sqlite(SqliteError::Sql(e)) => StoreError::Sqlite(sqlite::damaged(db, e)),
            other => other,
        }
    }
}

/// Everything the run loop and the reading commands ask of a store.
///
/// A claim hands out a lease (owner, token, expiry); every later write about
/// the job names the token, and a write whose token no longer matches is
/// refused whole: the job's supervisor lost its lease (it stalled, was cut
/// off, or the file changed) and someone else owns the document now.
///
/// `Send`: an index run lends its store to a thread of its own.
pub trait Store: Send {
    /// Records the start of an index run and returns its id.
    fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, StoreError>;
    fn end_run(&mut self, run: i64, totals: &str, exit_code: i32) -> Result<(), StoreError>;
    /// Puts back what a dead run of this store left running, without
    /// counting it against the documents; returns how many.
    fn recover_interrupted(&mut self) -> Result<u64, StoreError>;
    /// Upserts one batch of found files; running it twice, or from two
    /// machines at once, gives the same catalog.
    fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, StoreError>;
    fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, StoreError>;
    /// Documents a claim may take: pending ones, and running ones whose
    /// lease expired. In path order.
    fn pending(&mut self) -> Result<Vec<QueuedDoc>, StoreError>;
    /// Claims documents for `owner` for `lease`, taking back expired leases
    /// (counted as interrupted, not against the document). Returns the
    /// claims that succeeded, in the order asked.
    fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, StoreError>;
    /// Extends the leases in `held` (documents or chunks of them) whose
    /// token still matches; returns the documents whose lease was lost.
    fn renew(
        &mut self,
        owner: &str,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError>;
    /// Writes finished jobs; each is all or nothing, and fenced by its
    /// token. Returns, per job, what was written (`Lost`: nothing, the lease
    /// no longer held; `Merged`: a chunk that ended its document).
    fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, StoreError>;
    /// Whether this store takes page-range chunk jobs (see `split`).
    fn chunks(&self) -> bool;
    /// Turns a claimed document into chunk jobs over `ranges`, fenced by
    /// its lease; false (nothing planned) when the lease was lost.
    fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, StoreError>;
    /// Undoes a plan whose file changed: the document is pending as a whole.
    fn unsplit(&mut self, doc: i64) -> Result<(), StoreError>;
    /// Claims the chunk of `doc` starting at page `first`.
    fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError>;
    /// Records a new size and modification time for a file that changed
    /// while it was read.
    fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), StoreError>;
    fn record_sample(&mut self, run: i64, snap: &Snapshot) -> Result<(), StoreError>;
    /// Documents seen by `run` that ended failed or quarantined.
    fn failed_in_run(&mut self, run: i64) -> Result<u64, StoreError>;
    /// The documents failed, partial or quarantined, with their state:
    /// those seen by run `seen_by`, or every one when None (before a run's
    /// discovery, to tell its new failures from old ones).
    fn failures(&mut self, seen_by: Option<i64>) -> Result<Vec<(i64, DocState)>, StoreError>;
    /// Unexpired leases held by owners other than `owner`: work another
    /// supervisor may still finish, or leave for us once its lease expires.
    fn held_elsewhere(&mut self, owner: &str) -> Result<u64, StoreError>;
    /// Pages matching a query, grouped by document, best first.
    fn search(&mut self, search: &PageSearch<'_>) -> Result<PageMatches, StoreError>;
    fn status(&mut self) -> Result<Status, StoreError>;
    /// One JSON object per page, ordered by path then page.
    fn export(&mut self, out: &mut dyn Write) -> Result<u64, StoreError>;
    /// Whether other supervisors may work on the same catalog at once, so a
    /// run that emptied its queue should look again before it ends.
    fn shared(&self) -> bool;
    /// Removes the documents at `paths` (absolute; a folder stands for
    /// everything under it) with their pages, index entries and chunks;
    /// returns how many.
    fn forget(&mut self, paths: &[PathBuf]) -> Result<u64, StoreError>;
    /// Every run, oldest first.
    fn runs(&mut self) -> Result<Vec<RunRow>, StoreError>;
    /// Whether this store takes OCR jobs (a document `split` into the
    /// flagged pages to recognise); else flagged pages are read from the
    /// OCR cache only.
    fn ocr_jobs(&self) -> bool;
    /// A document whose text chunks merged done, with pages flagged for
    /// OCR: writes its content hash and cached pages and, when `ocr.jobs`
    /// is not empty, makes it `split` into those OCR jobs; false (nothing
    /// written) when it is no longer done.
    fn plan_ocr(&mut self, doc: i64, hash: &str, ocr: &OcrFollowUp) -> Result<bool, StoreError>;
    /// The OCR text the cache holds for `pages` of the file whose content
    /// hash is `hash`, recognised under the settings `key`; pages it does
    /// not hold are left out.
    fn ocr_cached(
        &mut self,
        hash: &str,
        key: &str,
        pages: &[u32],
    ) -> Result<Vec<OcrPage>, StoreError>;
}

/// Whether `--db` names a PostgreSQL server rather than a SQLite file.
pub fn is_postgres(db: &Path) -> bool {
    let s = db.to_string_lossy();
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// Opens (creating if needed) the store `db` names, for an index run.
pub fn open(db: &Path) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres(db) {
        Ok(Box::new(PgStore::connect(&db.to_string_lossy())?))
    } else {
        Ok(Box::new(SqliteStore::open(db)?))
    }
}

/// Opens an existing store for the reading commands, read-only: a SQLite
/// file is opened with `SQLITE_OPEN_READ_ONLY`, a PostgreSQL session in
/// read-only transactions, and neither is created or migrated.
pub fn open_existing(db: &Path) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres(db) {
        Ok(Box::new(PgStore::connect_read_only(&db.to_string_lossy())?))
    } else {
        Ok(Box::new(SqliteStore::open_existing(db)?))
    }
}

/// Opens an existing store for a command that changes it (`forget`):
/// nothing is created where there is no index.
pub fn open_writable(db: &Path) -> Result<Box<dyn Store>, StoreError> {
    if is_postgres(db) {
        Ok(Box::new(PgStore::connect_existing(&db.to_string_lossy())?))
    } else {
        Ok(Box::new(SqliteStore::open_writable(db)?))
    }
}

/// A database name fit to store or print: a URL's password is hidden.
pub fn redacted(db: &Path) -> String {
    let s = db.to_string_lossy().into_owned();
    if !is_postgres(db) {
        return s;
    }
    let Some(scheme_end) = s.find("://").map(|i| i + 3) else {
        return s;
    };
    let rest = &s[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return s;
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &s[..scheme_end], &rest[..colon], &rest[at..]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths_and_passwords_hidden() {
        assert!(is_postgres(Path::new("postgres://h/db")));
        assert!(is_postgres(Path::new("postgresql://h/db")));
        assert!(!is_postgres(Path::new("docmill.db")));
        assert_eq!(
            redacted(Path::new("postgres://me:secret@host:5432/db")),
            "postgres://me:***@host:5432/db"
        );
        assert_eq!(
            redacted(Path::new("postgres://me@host/db")),
            "postgres://me@host/db"
        );
        assert_eq!(redacted(Path::new("a/b.db")), "a/b.db");
    }
}
