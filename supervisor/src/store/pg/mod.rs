//! The shared store: one PostgreSQL database that several supervisors, on
//! several machines, index into together. Every write about a job is
//! fenced by its lease token; times come from the server's clock, so
//! machines need not agree. No transaction is open while a worker extracts.
//! Leases are in `leases`, discovery in `discover`, commits in `jobs` and
//! `chunks`, reading in `query`; the rules it shares with the embedded
//! store are in `store::rules`.

mod chunks;
mod discover;
mod forget;
mod jobs;
mod leases;
mod ocr;
mod query;
mod runs;
mod schema;

pub(super) use schema::SCHEMA_VERSION;

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docmill_protocol::{DocSummary, PageFlags, PageRange};
use postgres::error::SqlState;
use postgres::{Client, NoTls, Transaction};

use super::{
    Claim, DiscoverCounts, Finished, Found, PageMatches, PageSearch, QueuedDoc, RetryPolicy,
    RunRow, Status, Store, StoreError, Written,
};
use crate::metrics::Snapshot;

/// The server's clock in milliseconds since the epoch. Leases are judged by
/// one clock, the server's, however far the machines' clocks drift.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

pub struct PgStore {
    client: Client,
    /// Rows removed this run because the walk left their paths out; told
    /// with the deleted files' by `remove_missing`.
    left_out: u64,
}

impl PgStore {
    /// Connects and creates or checks the schema.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut store = PgStore::session(url, false)?;
        schema::migrate(&mut store.client)?;
        Ok(store)
    }

    /// Connects to a database that already holds an index, creating
    /// nothing (`forget`).
    pub fn connect_existing(url: &str) -> Result<PgStore, StoreError> {
        let mut store = PgStore::session(url, false)?;
        schema::check(&mut store.client, url)?;
        Ok(store)
    }

    /// Connects for the reading commands: every transaction of the session
    /// is read-only, so the server refuses any write, and nothing is
    /// created in a database that holds no index.
    pub fn connect_read_only(url: &str) -> Result<PgStore, StoreError> {
        let mut store = PgStore::session(url, true)?;
        schema::check(&mut store.client, url)?;
        Ok(store)
    }

    fn session(url: &str, read_only: bool) -> Result<PgStore, StoreError> {
        let connect_err = |source| StoreError::Connect {
            url: super::redacted(Path::new(url)),
            source,
        };
        let mut config: postgres::Config = url.parse().map_err(connect_err)?;
        // The process id in the session's name tells an operator (and the
        // tests) which supervisor a session belongs to. A supervisor that
        // stalls inside a transaction (stopped, cut off) would hold row
        // locks that every claim skips; the server ends such a session.
        let name = format!("docmill {}", std::process::id());
        let mut ours = "-c idle_in_transaction_session_timeout=60s".to_string();
        if read_only {
            ours.push_str(" -c default_transaction_read_only=on");
        }
        let options = match config.get_options() {
            Some(given) => format!("{given} {ours}"),
            None => ours,
        };
        config
            .application_name(&name)
            .options(&options)
            .connect_timeout(Duration::from_secs(10))
            .keepalives(true);
        let client = config.connect(NoTls).map_err(connect_err)?;
        Ok(PgStore {
            client,
            left_out: 0,
        })
    }
}

/// A queued document from the first six columns of a row: id, path,
/// size, mtime, format, attempts.
fn queued(row: &postgres::Row) -> QueuedDoc {
    QueuedDoc::from_row(
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    )
}

/// PostgreSQL text cannot hold NUL characters; an engine that emits them
/// means nothing by them.
fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "").into()
    } else {
        s.into()
    }
}

/// Pages as the arrays a statement `unnest`s: numbers, texts (as `pg_text`
/// makes them) and flags.
struct PageColumns<'a> {
    numbers: Vec<i64>,
    texts: Vec<Cow<'a, str>>,
    flags: Vec<i64>,
}

impl<'a> PageColumns<'a> {
    fn of(pages: impl Iterator<Item = &'a (u32, String, PageFlags)>) -> PageColumns<'a> {
        let mut columns = PageColumns {
            numbers: Vec::new(),
            texts: Vec::new(),
            flags: Vec::new(),
        };
        for (page, text, flags) in pages {
            columns.numbers.push(i64::from(*page));
            columns.texts.push(pg_text(text));
            columns.flags.push(flags.bits());
        }
        columns
    }

    fn texts(&self) -> Vec<&str> {
        self.texts.iter().map(|t| t.as_ref()).collect()
    }
}

/// A summary's title, author and language, as `pg_text` makes them.
fn summary_texts(summary: &DocSummary) -> [Option<Cow<'_, str>>; 3] {
    [&summary.title, &summary.author, &summary.language].map(|t| t.as_deref().map(pg_text))
}

/// Runs `body` in a transaction and commits it. A transaction the server
/// cancelled (a deadlock, a serialization failure) is tried again, up to
/// five times: it is all or nothing, so nothing of the failed try stays.
fn in_retried_tx<T>(
    client: &mut Client,
    mut body: impl FnMut(&mut Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, StoreError> {
    let mut tries = 0;
    loop {
        let mut tx = client.transaction()?;
        match body(&mut tx) {
            Ok(value) => {
                tx.commit()?;
                return Ok(value);
            }
            // Dropping the transaction rolls it back.
            Err(e) if retryable(&e) && tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether an error is worth one more try of the whole transaction: two
/// supervisors discovering the same files in different orders can deadlock,
/// and the server then cancels one of them.
fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

impl Store for PgStore {
    fn ocr_cached(
        &mut self,
        hash: &str,
        key: &str,
        pages: &[u32],
    ) -> Result<Vec<crate::store::OcrPage>, StoreError> {
        PgStore::ocr_cached(self, hash, key, pages)
    }

    fn plan_ocr(
        &mut self,
        doc: i64,
        hash: &str,
        ocr: &crate::store::OcrFollowUp,
    ) -> Result<bool, StoreError> {
        PgStore::plan_ocr(self, doc, hash, ocr)
    }

    fn ocr_jobs(&self) -> bool {
        true
    }

    fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, StoreError> {
        PgStore::begin_run(self, owner, options)
    }

    fn end_run(&mut self, run: i64, totals: &str, exit_code: i32) -> Result<(), StoreError> {
        PgStore::end_run(self, run, totals, exit_code)
    }

    fn recover_interrupted(&mut self) -> Result<u64, StoreError> {
        PgStore::recover_interrupted(self)
    }

    fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, StoreError> {
        PgStore::upsert_found(self, found, run, retry)
    }

    fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, StoreError> {
        PgStore::remove_missing(self, roots, run)
    }

    fn pending(&mut self) -> Result<Vec<QueuedDoc>, StoreError> {
        PgStore::pending(self)
    }

    fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, StoreError> {
        PgStore::claim(self, docs, owner, lease)
    }

    fn renew(
        &mut self,
        owner: &str,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        PgStore::renew(self, owner, held, lease)
    }

    fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, StoreError> {
        PgStore::commit(self, jobs)
    }

    fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, StoreError> {
        PgStore::split(self, doc, claim, page_count, ranges)
    }

    fn unsplit(&mut self, doc: i64) -> Result<(), StoreError> {
        PgStore::unsplit(self, doc)
    }

    fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        PgStore::claim_chunk(self, doc, first, owner, lease)
    }

    fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), StoreError> {
        PgStore::restat(self, doc, size, mtime_ns)
    }

    fn record_sample(&mut self, run: i64, snap: &Snapshot) -> Result<(), StoreError> {
        PgStore::record_sample(self, run, snap)
    }

    fn failed_in_run(&mut self, run: i64) -> Result<u64, StoreError> {
        PgStore::failed_in_run(self, run)
    }
    fn failures(
        &mut self,
        seen_by: Option<i64>,
    ) -> Result<Vec<(i64, crate::store::DocState)>, StoreError> {
        PgStore::failures(self, seen_by)
    }

    fn held_elsewhere(&mut self, owner: &str) -> Result<u64, StoreError> {
        PgStore::held_elsewhere(self, owner)
    }

    fn search(&mut self, search: &PageSearch<'_>) -> Result<PageMatches, StoreError> {
        PgStore::search(self, search)
    }

    fn status(&mut self) -> Result<Status, StoreError> {
        PgStore::status(self)
    }

    fn export(&mut self, out: &mut dyn Write) -> Result<u64, StoreError> {
        PgStore::export(self, out)
    }

    fn chunks(&self) -> bool {
        true
    }

    fn shared(&self) -> bool {
        true
    }

    fn forget(&mut self, paths: &[PathBuf]) -> Result<u64, StoreError> {
        PgStore::forget(self, paths)
    }

    fn runs(&mut self) -> Result<Vec<RunRow>, StoreError> {
        PgStore::runs(self)
    }
}
