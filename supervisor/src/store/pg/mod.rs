//! The shared store: one PostgreSQL database that several supervisors, on
//! several machines, index into together. Claims take rows with
//! `FOR UPDATE SKIP LOCKED` and take back expired leases themselves, so no
//! reaper runs anywhere; every write about a job is fenced by its lease
//! token; times come from the server's clock, so machines need not agree.
//! No transaction is open while a worker extracts.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docmill_protocol::{Format, Outcome, PageRange};
use postgres::error::SqlState;
use postgres::{Client, NoTls, Transaction};

use super::sqlite::one_line_list;
use super::{
    now_ms, Claim, DiscoverCounts, DocState, ExportPage, Failure, Finished, FinishedResult, Found,
    FoundKind, Merged, QueuedDoc, RetryPolicy, SearchHit, Status, Written, HIT_END, HIT_START,
};
use super::{Store, StoreError};
use crate::metrics::Snapshot;

/// The schema this docmill writes; a newer one is refused.
const VERSION: i64 = 1;

/// The server's clock in milliseconds since the epoch. Leases are judged by
/// one clock, the server's, however far the machines' clocks drift.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Serialises schema creation among supervisors that start together (the
/// key is "docmill" in ASCII).
const SCHEMA_LOCK: i64 = 0x0064_6f63_6d69_6c6c;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id          BIGSERIAL PRIMARY KEY,
    started_ms  BIGINT NOT NULL,
    ended_ms    BIGINT,
    owner       TEXT NOT NULL,
    options     TEXT NOT NULL,
    totals      TEXT,
    exit_code   INTEGER
);

-- As in the SQLite catalog: `path` is the raw OS bytes, the lease is
-- (lease_owner, lease_token, lease_expires). The token only ever grows, and
-- a changed file bumps both generation and token, so an extraction of an
-- older version can never be written over a newer one.
CREATE TABLE IF NOT EXISTS documents (
    id             BIGSERIAL PRIMARY KEY,
    path           BYTEA NOT NULL UNIQUE,
    display_path   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    mtime_ns       BIGINT NOT NULL,
    format         TEXT NOT NULL,
    status         TEXT NOT NULL,
    generation     BIGINT NOT NULL DEFAULT 1,
    attempts       BIGINT NOT NULL DEFAULT 0,
    interrupted    BIGINT NOT NULL DEFAULT 0,
    outcome        TEXT,
    reason         TEXT,
    page_count     BIGINT,
    engine         TEXT,
    title          TEXT,
    author         TEXT,
    language       TEXT,
    lease_owner    TEXT,
    lease_token    BIGINT NOT NULL DEFAULT 0,
    lease_expires  BIGINT,
    seen_run       BIGINT,
    updated_ms     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_status ON documents(status);

-- The outbox for a later exporter to a distributed search engine (ids
-- `doc:page`): every write of a page takes a fresh number from one sequence,
-- and every removal of a page is logged under the same sequence, so an
-- exporter that remembers the last number it shipped replays changes in
-- order without scanning the table.
CREATE SEQUENCE IF NOT EXISTS outbox_seq;
CREATE TABLE IF NOT EXISTS pages (
    doc_id  BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page    BIGINT NOT NULL,
    text    TEXT NOT NULL,
    flags   BIGINT NOT NULL DEFAULT 0,
    tsv     tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    outbox  BIGINT NOT NULL DEFAULT nextval('outbox_seq'),
    PRIMARY KEY (doc_id, page)
);
CREATE INDEX IF NOT EXISTS pages_tsv ON pages USING GIN (tsv);
CREATE INDEX IF NOT EXISTS pages_outbox ON pages (outbox);
CREATE TABLE IF NOT EXISTS page_removals (
    outbox  BIGINT PRIMARY KEY DEFAULT nextval('outbox_seq'),
    doc_id  BIGINT NOT NULL,
    page    BIGINT NOT NULL
);
CREATE OR REPLACE FUNCTION docmill_page_removed() RETURNS trigger AS $$
BEGIN
    INSERT INTO page_removals (doc_id, page) VALUES (OLD.doc_id, OLD.page);
    RETURN OLD;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS pages_removed ON pages;
CREATE TRIGGER pages_removed AFTER DELETE ON pages
    FOR EACH ROW EXECUTE FUNCTION docmill_page_removed();

CREATE TABLE IF NOT EXISTS attempts (
    id          BIGSERIAL PRIMARY KEY,
    doc_id      BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    run_id      BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    engine      TEXT,
    worker_pid  BIGINT,
    started_ms  BIGINT NOT NULL,
    ended_ms    BIGINT NOT NULL,
    chunk_first BIGINT
);
CREATE INDEX IF NOT EXISTS attempts_doc ON attempts(doc_id);

-- Page-range chunk jobs of long PDFs, as in the SQLite catalog: each chunk
-- has its own lease, so chunks of one document run on any machines; their
-- pages wait in chunk_pages until the commit that ends the last chunk, on
-- whichever machine, merges them into pages. Chunk tokens come from one
-- sequence, so a chunk planned again never accepts a stale job's result.
CREATE SEQUENCE IF NOT EXISTS chunk_token_seq;
CREATE TABLE IF NOT EXISTS chunks (
    doc_id         BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    first          BIGINT NOT NULL,
    last           BIGINT NOT NULL,
    status         TEXT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    interrupted    BIGINT NOT NULL DEFAULT 0,
    outcome        TEXT,
    reason         TEXT,
    engine         TEXT,
    title          TEXT,
    author         TEXT,
    language       TEXT,
    merged         BOOLEAN NOT NULL DEFAULT false,
    lease_owner    TEXT,
    lease_token    BIGINT,
    lease_expires  BIGINT,
    updated_ms     BIGINT NOT NULL,
    PRIMARY KEY (doc_id, first)
);
CREATE TABLE IF NOT EXISTS chunk_pages (
    doc_id  BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page    BIGINT NOT NULL,
    text    TEXT NOT NULL,
    flags   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (doc_id, page)
);

CREATE TABLE IF NOT EXISTS samples (
    id      BIGSERIAL PRIMARY KEY,
    run_id  BIGINT NOT NULL,
    t_ms    BIGINT NOT NULL,
    json    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id, t_ms);
"#;

pub struct PgStore {
    client: Client,
}

impl PgStore {
    /// Connects and creates or checks the schema.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
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
        let options = match config.get_options() {
            Some(given) => format!("{given} -c idle_in_transaction_session_timeout=60s"),
            None => "-c idle_in_transaction_session_timeout=60s".to_string(),
        };
        config
            .application_name(&name)
            .options(&options)
            .connect_timeout(Duration::from_secs(10))
            .keepalives(true);
        let client = config.connect(NoTls).map_err(connect_err)?;
        let mut store = PgStore { client };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        let has_meta: bool = tx
            .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])?
            .get(0);
        let found: Option<i64> = if has_meta {
            tx.query_opt("SELECT value FROM meta WHERE key = 'schema'", &[])?
                .and_then(|r| r.get::<_, String>(0).parse().ok())
        } else {
            None
        };
        match found {
            Some(v) if v > VERSION => {
                return Err(StoreError::TooNew {
                    found: v,
                    known: VERSION,
                })
            }
            Some(v) if v == VERSION => {}
            _ => {
                tx.batch_execute(SCHEMA)?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&VERSION.to_string()],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn queued(row: &postgres::Row) -> QueuedDoc {
    let path: Vec<u8> = row.get(1);
    let format: String = row.get(4);
    let format = Format::parse(&format).unwrap_or(Format::Pdf);
    QueuedDoc::new(
        row.get(0),
        PathBuf::from(OsStr::from_bytes(&path)),
        row.get::<_, i64>(2) as u64,
        row.get(3),
        format,
        row.get::<_, i64>(5) as u32,
    )
}

/// PostgreSQL text cannot hold NUL characters; an engine that emits them
/// means nothing by them.
fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "").into()
    } else {
        s.into()
    }
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

fn status_of(kind: &FoundKind) -> (&'static str, &'static str, Option<&str>) {
    match kind {
        FoundKind::Document(f) => ("pending", f.as_str(), None),
        FoundKind::Unsupported(r) => ("unsupported", "other", Some(r)),
        FoundKind::Failed(r) => ("failed", "other", Some(r)),
        FoundKind::Skipped(r) => ("skipped", "other", Some(r)),
    }
}

fn upsert_batch(
    tx: &mut Transaction<'_>,
    found: &[Found],
    run: i64,
    retry: RetryPolicy,
) -> Result<DiscoverCounts, postgres::Error> {
    let mut counts = DiscoverCounts::default();
    let now = now_ms();
    let insert = tx.prepare(
        "INSERT INTO documents (path, display_path, size, mtime_ns, format, status, reason, seen_run, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (path) DO NOTHING RETURNING id",
    )?;
    let get = tx.prepare(&format!(
        "SELECT id, size, mtime_ns, status,
                status = 'running' AND lease_expires >= {NOW_MS} AS leased
         FROM documents WHERE path = $1 FOR UPDATE"
    ))?;
    let touch = tx.prepare("UPDATE documents SET seen_run = $1 WHERE id = $2")?;
    // A changed file also bumps the token: whoever extracts the old version
    // now holds a lease that no longer matches.
    let change = tx.prepare(
        "UPDATE documents SET size = $1, mtime_ns = $2, format = $3, status = $4, reason = $5,
             outcome = NULL, attempts = 0, generation = generation + 1,
             lease_token = lease_token + 1, lease_owner = NULL, lease_expires = NULL,
             seen_run = $6, updated_ms = $7
         WHERE id = $8",
    )?;
    let requeue = tx.prepare(
        "UPDATE documents SET status = 'pending', attempts = 0, seen_run = $1, updated_ms = $2
         WHERE id = $3",
    )?;
    let relabel = tx.prepare(
        "UPDATE documents SET status = $1, reason = $2, seen_run = $3, updated_ms = $4 WHERE id = $5",
    )?;
    let drop_pages = tx.prepare("DELETE FROM pages WHERE doc_id = $1")?;
    for f in found {
        let key = f.path.as_os_str().as_bytes();
        let (status, format, reason) = status_of(&f.kind);
        let size = f.size as i64;
        let inserted = tx.query_opt(
            &insert,
            &[
                &key,
                &f.path.to_string_lossy(),
                &size,
                &f.mtime_ns,
                &format,
                &status,
                &reason,
                &run,
                &now,
            ],
        )?;
        if inserted.is_some() {
            counts.new += 1;
            continue;
        }
        let row = tx.query_one(&get, &[&key])?;
        let id: i64 = row.get(0);
        let old: String = row.get(3);
        let leased: bool = row.get(4);
        if row.get::<_, i64>(1) != size || row.get::<_, i64>(2) != f.mtime_ns {
            // The old pages stay searchable until the new text commits,
            // unless the file is no longer a document.
            if status != "pending" {
                tx.execute(&drop_pages, &[&id])?;
            }
            // A page-range plan was for the old file.
            forget_plan(tx, id)?;
            tx.execute(
                &change,
                &[
                    &size,
                    &f.mtime_ns,
                    &format,
                    &status,
                    &reason,
                    &run,
                    &now,
                    &id,
                ],
            )?;
            counts.changed += 1;
        } else if status != "pending" && old != "done" {
            tx.execute(&relabel, &[&status, &reason, &run, &now, &id])?;
            counts.unchanged += 1;
        } else if old == "partial" && (retry.failed || retry.quarantined) {
            // Only the chunks that failed are tried again.
            tx.execute(
                "UPDATE chunks SET status = 'pending', attempts = 0
                 WHERE doc_id = $1 AND status IN ('failed', 'quarantined')",
                &[&id],
            )?;
            tx.execute(
                "UPDATE documents SET status = 'split', seen_run = $1 WHERE id = $2",
                &[&run, &id],
            )?;
            counts.requeued += 1;
        } else {
            let again = match old.as_str() {
                "failed" => retry.failed && status == "pending",
                "quarantined" => retry.quarantined,
                "pending" => true,
                // Another supervisor's job: its lease decides, not us. An
                // expired one is taken back by the next claim.
                "running" => false,
                _ => false,
            };
            if again {
                tx.execute(&requeue, &[&run, &now, &id])?;
                counts.requeued += 1;
            } else {
                tx.execute(&touch, &[&run, &id])?;
                if !leased {
                    counts.unchanged += 1;
                }
            }
        }
    }
    Ok(counts)
}

/// The attempt row a fenced write adds, as a data-modifying CTE over the
/// `fenced` one: $1 run, $2 attempt, $3 outcome, $4 reason, $5 engine,
/// $6 worker pid, $7 started, $8 ended.
const ATTEMPT: &str = "tried AS (
    INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, engine, worker_pid, started_ms, ended_ms)
    SELECT id, $1, $2, $3, $4, $5, $6, $7, $8 FROM fenced)";

/// Writes one finished job in one statement (one round trip, since each
/// waits on the server while workers wait on the supervisor); false, and
/// nothing written, when its lease no longer holds. The pages are replaced
/// by upsert plus removal of the pages no longer there, so the statement
/// never deletes and inserts the same row.
fn write_one(tx: &mut Transaction<'_>, job: &Finished) -> Result<bool, postgres::Error> {
    let token = job.claim.token;
    let attempt = i64::from(job.attempt);
    let pid = i64::from(job.worker_pid);
    let row = match &job.result {
        FinishedResult::Done { summary, pages } => {
            let numbers: Vec<i64> = pages.iter().map(|(p, _, _)| i64::from(*p)).collect();
            let texts: Vec<std::borrow::Cow<'_, str>> =
                pages.iter().map(|(_, t, _)| pg_text(t)).collect();
            let texts: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
            let flags: Vec<i64> = pages.iter().map(|(_, _, f)| f.bits()).collect();
            tx.query_one(
                &format!(
                    "WITH fenced AS (
                         UPDATE documents SET status = 'done', outcome = 'done', reason = NULL,
                             page_count = $9, engine = $5, title = $10, author = $11, language = $12,
                             lease_owner = NULL, lease_expires = NULL, updated_ms = {NOW_MS}
                         WHERE id = $13 AND lease_token = $14 AND status = 'running'
                         RETURNING id),
                     gone AS (
                         DELETE FROM pages
                         WHERE doc_id IN (SELECT id FROM fenced) AND page <> ALL($15::bigint[])),
                     put AS (
                         INSERT INTO pages (doc_id, page, text, flags)
                         SELECT fenced.id, x.p, x.t, x.f
                         FROM fenced, unnest($15::bigint[], $16::text[], $17::bigint[]) AS x(p, t, f)
                         ON CONFLICT (doc_id, page) DO UPDATE
                             SET text = excluded.text, flags = excluded.flags,
                                 outbox = nextval('outbox_seq')),
                     {ATTEMPT}
                     SELECT count(*) FROM fenced"
                ),
                &[
                    &job.run,
                    &attempt,
                    &Outcome::Done.as_str(),
                    &None::<&str>,
                    &summary.engine,
                    &pid,
                    &job.started_ms,
                    &job.ended_ms,
                    &i64::from(summary.page_count),
                    &summary.title.as_deref().map(pg_text),
                    &summary.author.as_deref().map(pg_text),
                    &summary.language.as_deref().map(pg_text),
                    &job.doc,
                    &token,
                    &numbers,
                    &texts,
                    &flags,
                ],
            )?
        }
        FinishedResult::Failed {
            outcome,
            reason,
            status,
            counts,
        } => {
            let reason = pg_text(reason);
            tx.query_one(
                &format!(
                    "WITH fenced AS (
                         UPDATE documents SET status = $9, outcome = $3, reason = $4,
                             attempts = attempts + $10, lease_owner = NULL, lease_expires = NULL,
                             updated_ms = {NOW_MS}
                         WHERE id = $11 AND lease_token = $12 AND status = 'running'
                         RETURNING id),
                     {ATTEMPT}
                     SELECT count(*) FROM fenced"
                ),
                &[
                    &job.run,
                    &attempt,
                    &outcome.as_str(),
                    &reason.as_ref(),
                    &None::<&str>,
                    &pid,
                    &job.started_ms,
                    &job.ended_ms,
                    &status.as_str(),
                    &i64::from(*counts),
                    &job.doc,
                    &token,
                ],
            )?
        }
        // Handed back before it produced anything: not an attempt.
        FinishedResult::Released => tx.query_one(
            &format!(
                "WITH fenced AS (
                     UPDATE documents SET status = 'pending', lease_owner = NULL,
                         lease_expires = NULL, updated_ms = {NOW_MS}
                     WHERE id = $1 AND lease_token = $2 AND status = 'running'
                     RETURNING id)
                 SELECT count(*) FROM fenced"
            ),
            &[&job.doc, &token],
        )?,
    };
    Ok(row.get::<_, i64>(0) == 1)
}

fn forget_plan(tx: &mut Transaction<'_>, doc: i64) -> Result<(), postgres::Error> {
    tx.execute("DELETE FROM chunks WHERE doc_id = $1", &[&doc])?;
    tx.execute("DELETE FROM chunk_pages WHERE doc_id = $1", &[&doc])?;
    Ok(())
}

/// Writes one chunk job's result, fenced by its token; merges the document
/// when this was its last open chunk. The document's row is locked first:
/// two machines ending its last two chunks at once would otherwise each
/// see the other's chunk still open, and neither would merge.
fn write_chunk(
    tx: &mut Transaction<'_>,
    job: &Finished,
    range: PageRange,
) -> Result<Written, postgres::Error> {
    tx.query_opt(
        "SELECT 1 FROM documents WHERE id = $1 FOR UPDATE",
        &[&job.doc],
    )?;
    let first = i64::from(range.first);
    let token = job.claim.token;
    let n = match &job.result {
        FinishedResult::Done { summary, pages } => {
            let n = tx.execute(
                &format!(
                    "UPDATE chunks SET status = 'done', outcome = 'done', reason = NULL, engine = $1,
                         title = $2, author = $3, language = $4, lease_owner = NULL,
                         lease_expires = NULL, updated_ms = {NOW_MS}
                     WHERE doc_id = $5 AND first = $6 AND lease_token = $7 AND status = 'running'"
                ),
                &[
                    &summary.engine,
                    &summary.title.as_deref().map(pg_text),
                    &summary.author.as_deref().map(pg_text),
                    &summary.language.as_deref().map(pg_text),
                    &job.doc,
                    &first,
                    &token,
                ],
            )?;
            if n == 1 {
                tx.execute(
                    "DELETE FROM chunk_pages WHERE doc_id = $1 AND page BETWEEN $2 AND $3",
                    &[&job.doc, &first, &i64::from(range.last)],
                )?;
                let inside: Vec<_> = pages
                    .iter()
                    .filter(|(p, _, _)| range.contains(*p))
                    .collect();
                let numbers: Vec<i64> = inside.iter().map(|(p, _, _)| i64::from(*p)).collect();
                let texts: Vec<std::borrow::Cow<'_, str>> =
                    inside.iter().map(|(_, t, _)| pg_text(t)).collect();
                let texts: Vec<&str> = texts.iter().map(|t| t.as_ref()).collect();
                let flags: Vec<i64> = inside.iter().map(|(_, _, f)| f.bits()).collect();
                tx.execute(
                    "INSERT INTO chunk_pages (doc_id, page, text, flags)
                     SELECT $1, p, t, f FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS x(p, t, f)",
                    &[&job.doc, &numbers, &texts, &flags],
                )?;
            }
            n
        }
        FinishedResult::Failed {
            outcome,
            reason,
            status,
            counts,
        } => tx.execute(
            &format!(
                "UPDATE chunks SET status = $1, outcome = $2, reason = $3, attempts = attempts + $4,
                     lease_owner = NULL, lease_expires = NULL, updated_ms = {NOW_MS}
                 WHERE doc_id = $5 AND first = $6 AND lease_token = $7 AND status = 'running'"
            ),
            &[
                &status.as_str(),
                &outcome.as_str(),
                &pg_text(reason).as_ref(),
                &i64::from(*counts),
                &job.doc,
                &first,
                &token,
            ],
        )?,
        FinishedResult::Released => tx.execute(
            &format!(
                "UPDATE chunks SET status = 'pending', lease_owner = NULL, lease_expires = NULL,
                     updated_ms = {NOW_MS}
                 WHERE doc_id = $1 AND first = $2 AND lease_token = $3 AND status = 'running'"
            ),
            &[&job.doc, &first, &token],
        )?,
    };
    if n == 0 {
        return Ok(Written::Lost);
    }
    if matches!(job.result, FinishedResult::Released) {
        return Ok(Written::Held);
    }
    let (outcome, reason, engine) = match &job.result {
        FinishedResult::Done { summary, .. } => {
            (Outcome::Done, None, Some(summary.engine.as_str()))
        }
        FinishedResult::Failed {
            outcome, reason, ..
        } => (*outcome, Some(pg_text(reason)), None),
        FinishedResult::Released => return Ok(Written::Held),
    };
    tx.execute(
        "INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, engine, worker_pid, started_ms, ended_ms, chunk_first)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &job.doc,
            &job.run,
            &i64::from(job.attempt),
            &outcome.as_str(),
            &reason,
            &engine,
            &i64::from(job.worker_pid),
            &job.started_ms,
            &job.ended_ms,
            &first,
        ],
    )?;
    Ok(match merge(tx, job.doc)? {
        Some(m) => Written::Merged(m),
        None => Written::Held,
    })
}

/// If every chunk of `doc` has ended, moves their pages into the index in
/// page order and sets the document's final status (as the SQLite
/// catalog's merge does).
fn merge(tx: &mut Transaction<'_>, doc: i64) -> Result<Option<Merged>, postgres::Error> {
    let open: i64 = tx
        .query_one(
            "SELECT count(*) FROM chunks WHERE doc_id = $1
               AND status NOT IN ('done', 'failed', 'quarantined')",
            &[&doc],
        )?
        .get(0);
    let split = tx
        .query_opt(
            "SELECT 1 FROM documents WHERE id = $1 AND status = 'split'",
            &[&doc],
        )?
        .is_some();
    if open > 0 || !split {
        return Ok(None);
    }
    let chunks = tx.query(
        "SELECT first, last, status, outcome, reason, engine, title, author, language
         FROM chunks WHERE doc_id = $1 ORDER BY first",
        &[&doc],
    )?;
    let status_of = |r: &postgres::Row| r.get::<_, String>(2);
    let done: Vec<&postgres::Row> = chunks.iter().filter(|r| status_of(r) == "done").collect();
    let failed: Vec<&postgres::Row> = chunks.iter().filter(|r| status_of(r) != "done").collect();
    let failed_text: Vec<String> = failed
        .iter()
        .map(|r| {
            format!(
                "pages {}-{}: {}",
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, Option<String>>(4)
                    .unwrap_or_else(|| "failed".to_string())
            )
        })
        .collect();
    let first_outcome = || {
        failed[0]
            .get::<_, Option<String>>(3)
            .unwrap_or_else(|| Outcome::ExtractFailed.as_str().to_string())
    };
    if done.is_empty() {
        // Nothing of it could be read: the document fails as a whole.
        let status = if failed.iter().any(|r| status_of(r) == "quarantined") {
            DocState::Quarantined
        } else {
            DocState::Failed
        };
        tx.execute(
            &format!(
                "UPDATE documents SET status = $1, outcome = $2, reason = $3, updated_ms = {NOW_MS}
                 WHERE id = $4"
            ),
            &[
                &status.as_str(),
                &first_outcome(),
                &one_line_list("every chunk failed", &failed_text),
                &doc,
            ],
        )?;
        return Ok(Some(Merged { status, pages: 0 }));
    }
    // Pages of an older text of the file (or of a chunk merged before, in
    // a partial document retried) give way to the new ones.
    tx.execute(
        "DELETE FROM pages WHERE doc_id = $1 AND NOT EXISTS (
             SELECT 1 FROM chunks c WHERE c.doc_id = $1 AND c.merged
               AND pages.page BETWEEN c.first AND c.last)",
        &[&doc],
    )?;
    let pages = tx.execute(
        "INSERT INTO pages (doc_id, page, text, flags)
         SELECT doc_id, page, text, flags FROM chunk_pages WHERE doc_id = $1 ORDER BY page",
        &[&doc],
    )?;
    tx.execute("DELETE FROM chunk_pages WHERE doc_id = $1", &[&doc])?;
    tx.execute(
        "UPDATE chunks SET merged = true WHERE doc_id = $1 AND status = 'done'",
        &[&doc],
    )?;
    let mut engines: Vec<String> = done
        .iter()
        .filter_map(|r| r.get::<_, Option<String>>(5))
        .collect();
    engines.dedup();
    let head = done[0];
    let (status, outcome, reason) = if failed.is_empty() {
        (DocState::Done, "done".to_string(), None)
    } else {
        (
            DocState::Partial,
            first_outcome(),
            Some(one_line_list("some pages failed", &failed_text)),
        )
    };
    tx.execute(
        &format!(
            "UPDATE documents SET status = $1, outcome = $2, reason = $3, engine = $4, title = $5,
                 author = $6, language = $7, updated_ms = {NOW_MS}
             WHERE id = $8"
        ),
        &[
            &status.as_str(),
            &outcome,
            &reason,
            &engines.join("+"),
            &head.get::<_, Option<String>>(6),
            &head.get::<_, Option<String>>(7),
            &head.get::<_, Option<String>>(8),
            &doc,
        ],
    )?;
    Ok(Some(Merged { status, pages }))
}

impl Store for PgStore {
    fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, StoreError> {
        let row = self.client.query_one(
            "INSERT INTO runs (started_ms, owner, options) VALUES ($1, $2, $3) RETURNING id",
            &[&now_ms(), &owner, &options],
        )?;
        Ok(row.get(0))
    }

    fn end_run(&mut self, run: i64, totals: &str, exit_code: i32) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE runs SET ended_ms = $1, totals = $2, exit_code = $3 WHERE id = $4",
            &[&now_ms(), &totals, &exit_code, &run],
        )?;
        Ok(())
    }

    fn recover_interrupted(&mut self) -> Result<u64, StoreError> {
        // Other supervisors may be running: their jobs are theirs until
        // their leases expire, and the claim takes those back itself.
        Ok(0)
    }

    fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, StoreError> {
        in_retried_tx(&mut self.client, |tx| upsert_batch(tx, found, run, retry))
    }

    fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, StoreError> {
        let rows = self.client.query(
            "SELECT id, path, status FROM documents WHERE seen_run IS DISTINCT FROM $1",
            &[&run],
        )?;
        let gone: Vec<i64> = rows
            .iter()
            .filter(|r| {
                let p: &[u8] = r.get(1);
                let status: &str = r.get(2);
                let path = Path::new(OsStr::from_bytes(p));
                roots.iter().any(|root| path.starts_with(root))
                    && (status == "skipped"
                        || matches!(path.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound))
            })
            .map(|r| r.get(0))
            .collect();
        if !gone.is_empty() {
            self.client
                .execute("DELETE FROM documents WHERE id = ANY($1)", &[&gone])?;
        }
        Ok(gone.len() as u64)
    }

    fn pending(&mut self) -> Result<Vec<QueuedDoc>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT id, path, size, mtime_ns, format, attempts FROM documents
                 WHERE status = 'pending' OR (status = 'running' AND lease_expires < {NOW_MS})
                 ORDER BY path"
            ),
            &[],
        )?;
        let mut docs: Vec<QueuedDoc> = rows.iter().map(queued).collect();
        let chunks = self.client.query(
            &format!(
                "SELECT d.id, d.path, d.size, d.mtime_ns, d.format, c.attempts, c.first, c.last,
                        coalesce(d.page_count, 0)
                 FROM chunks c JOIN documents d ON d.id = c.doc_id
                 WHERE d.status = 'split'
                   AND (c.status = 'pending' OR (c.status = 'running' AND c.lease_expires < {NOW_MS}))
                 ORDER BY d.path, c.first"
            ),
            &[],
        )?;
        for r in &chunks {
            let mut doc = queued(r);
            doc.page_total = r.get::<_, i64>(8) as u32;
            doc.set_chunk(PageRange {
                first: r.get::<_, i64>(6) as u32,
                last: r.get::<_, i64>(7) as u32,
            });
            docs.push(doc);
        }
        Ok(docs)
    }

    fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, StoreError> {
        let lease_ms = lease.as_millis() as i64;
        // A running row here has an expired lease: its holder is gone (or
        // stalled past it), so the attempt counts as interrupted.
        let rows = self.client.query(
            &format!(
                "UPDATE documents d SET status = 'running', lease_owner = $1,
                     lease_token = d.lease_token + 1, lease_expires = {NOW_MS} + $2,
                     interrupted = d.interrupted + (d.status = 'running')::int
                 WHERE d.id IN (
                     SELECT id FROM documents
                     WHERE id = ANY($3)
                       AND (status = 'pending' OR (status = 'running' AND lease_expires < {NOW_MS}))
                     FOR UPDATE SKIP LOCKED)
                 RETURNING d.id, d.lease_token"
            ),
            &[&owner, &lease_ms, &docs],
        )?;
        let got: HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(docs
            .iter()
            .filter_map(|id| got.get(id).map(|&token| (*id, Claim { token })))
            .collect())
    }

    fn renew(
        &mut self,
        owner: &str,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = held.iter().map(|(id, _)| *id).collect();
        let tokens: Vec<i64> = held.iter().map(|(_, c)| c.token).collect();
        // A document's lease, or one of its chunks': the same renewal on
        // each table, keyed by the document id.
        let mut kept = std::collections::HashSet::new();
        for (table, id) in [("documents", "id"), ("chunks", "doc_id")] {
            let rows = self.client.query(
                &format!(
                    "UPDATE {table} t SET lease_expires = {NOW_MS} + $1
                     FROM unnest($2::bigint[], $3::bigint[]) AS h(id, token)
                     WHERE t.{id} = h.id AND t.lease_token = h.token AND t.status = 'running'
                       AND t.lease_owner = $4
                     RETURNING t.{id}"
                ),
                &[&(lease.as_millis() as i64), &ids, &tokens, &owner],
            )?;
            kept.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        }
        Ok(ids.into_iter().filter(|id| !kept.contains(id)).collect())
    }

    fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, StoreError> {
        // Rows are locked in document order, so two machines' batches that
        // share split documents cannot deadlock; should the server still
        // cancel one (it may), the whole batch is tried again: it is all or
        // nothing.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| (jobs[i].doc, jobs[i].chunk.map(|r| r.first)));
        in_retried_tx(&mut self.client, |tx| {
            let mut out = vec![Written::Lost; jobs.len()];
            for &i in &order {
                let job = &jobs[i];
                out[i] = match job.chunk {
                    Some(range) => write_chunk(tx, job, range)?,
                    None if write_one(tx, job)? => Written::Held,
                    None => Written::Lost,
                };
            }
            Ok(out)
        })
    }

    fn chunks(&self) -> bool {
        true
    }

    fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, StoreError> {
        let mut tx = self.client.transaction()?;
        let n = tx.execute(
            &format!(
                "UPDATE documents SET status = 'split', page_count = $1, outcome = NULL,
                     reason = NULL, lease_owner = NULL, lease_expires = NULL,
                     updated_ms = {NOW_MS}
                 WHERE id = $2 AND lease_token = $3 AND status = 'running'"
            ),
            &[&i64::from(page_count), &doc, &claim.token],
        )?;
        if n == 1 {
            forget_plan(&mut tx, doc)?;
            let firsts: Vec<i64> = ranges.iter().map(|r| i64::from(r.first)).collect();
            let lasts: Vec<i64> = ranges.iter().map(|r| i64::from(r.last)).collect();
            tx.execute(
                &format!(
                    "INSERT INTO chunks (doc_id, first, last, status, updated_ms)
                     SELECT $1, f, l, 'pending', {NOW_MS}
                     FROM unnest($2::bigint[], $3::bigint[]) AS x(f, l)"
                ),
                &[&doc, &firsts, &lasts],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    fn unsplit(&mut self, doc: i64) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        forget_plan(&mut tx, doc)?;
        tx.execute(
            &format!(
                "UPDATE documents SET status = 'pending', updated_ms = {NOW_MS}
                 WHERE id = $1 AND status = 'split'"
            ),
            &[&doc],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        // As for documents: an expired lease is taken back, counted as
        // interrupted.
        let row = self.client.query_opt(
            &format!(
                "UPDATE chunks c SET status = 'running', lease_owner = $1,
                     lease_token = nextval('chunk_token_seq'), lease_expires = {NOW_MS} + $2,
                     interrupted = c.interrupted + (c.status = 'running')::int
                 WHERE (c.doc_id, c.first) IN (
                     SELECT doc_id, first FROM chunks
                     WHERE doc_id = $3 AND first = $4
                       AND (status = 'pending' OR (status = 'running' AND lease_expires < {NOW_MS}))
                     FOR UPDATE SKIP LOCKED)
                   AND EXISTS (SELECT 1 FROM documents WHERE id = $3 AND status = 'split')
                 RETURNING c.lease_token"
            ),
            &[&owner, &(lease.as_millis() as i64), &doc, &i64::from(first)],
        )?;
        Ok(row.map(|r| Claim { token: r.get(0) }))
    }

    fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE documents SET size = $1, mtime_ns = $2, generation = generation + 1 WHERE id = $3",
            &[&(size as i64), &mtime_ns, &doc],
        )?;
        Ok(())
    }

    fn record_sample(&mut self, run: i64, snap: &Snapshot) -> Result<(), StoreError> {
        let json = serde_json::to_string(snap)?;
        self.client.execute(
            "INSERT INTO samples (run_id, t_ms, json) VALUES ($1, $2, $3)",
            &[&run, &snap.t_ms, &json],
        )?;
        Ok(())
    }

    fn failed_in_run(&mut self, run: i64) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM documents WHERE seen_run = $1 AND status IN ('failed', 'quarantined', 'partial')",
                &[&run],
            )?
            .get(0);
        Ok(n as u64)
    }

    fn held_elsewhere(&mut self, owner: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM documents
                             WHERE status = 'running' AND lease_owner IS DISTINCT FROM $1
                               AND lease_expires >= {NOW_MS})
                          + (SELECT count(*) FROM chunks
                             WHERE status = 'running' AND lease_owner IS DISTINCT FROM $1
                               AND lease_expires >= {NOW_MS})"
                ),
                &[&owner],
            )?
            .get(0);
        Ok(n as u64)
    }

    fn search(&mut self, query: &str, limit: usize) -> Result<Vec<SearchHit>, StoreError> {
        // websearch_to_tsquery takes what people type (quotes, `or`, `-`)
        // and never fails on syntax, so no second, quoted try is needed.
        let options = format!(
            "StartSel={HIT_START}, StopSel={HIT_END}, MaxWords=16, MinWords=6, MaxFragments=1"
        );
        let rows = self.client.query(
            "WITH q AS (SELECT websearch_to_tsquery('simple', $1) AS q),
             hits AS (
                 SELECT d.display_path, d.path, p.page, p.text, ts_rank(p.tsv, q.q)::float8 AS rank
                 FROM pages p JOIN documents d ON d.id = p.doc_id, q
                 WHERE p.tsv @@ q.q
                 ORDER BY rank DESC, d.path, p.page
                 LIMIT $2)
             SELECT display_path, page, rank, ts_headline('simple', text, (SELECT q FROM q), $3)
             FROM hits ORDER BY rank DESC, path, page",
            &[&query, &(limit as i64), &options],
        )?;
        Ok(rows
            .iter()
            .map(|r| SearchHit {
                path: r.get(0),
                page: r.get::<_, i64>(1) as u32,
                score: r.get(2),
                snippet: r.get::<_, String>(3).replace(['\n', '\r'], " "),
            })
            .collect())
    }

    fn status(&mut self) -> Result<Status, StoreError> {
        let mut status = Status::default();
        for s in [
            "done",
            "failed",
            "pending",
            "running",
            "unsupported",
            "quarantined",
            "skipped",
            "partial",
            "split",
        ] {
            status.documents.insert(s.to_string(), 0);
        }
        for row in self.client.query(
            "SELECT status, count(*) FROM documents GROUP BY status",
            &[],
        )? {
            status
                .documents
                .insert(row.get(0), row.get::<_, i64>(1) as u64);
        }
        status.pages = self
            .client
            .query_one("SELECT count(*) FROM pages", &[])?
            .get::<_, i64>(0) as u64;
        status.interrupted = self
            .client
            .query_one(
                "SELECT ((SELECT coalesce(sum(interrupted), 0) FROM documents)
                       + (SELECT coalesce(sum(interrupted), 0) FROM chunks))::bigint",
                &[],
            )?
            .get::<_, i64>(0) as u64;
        status.failures = self
            .client
            .query(
                "SELECT display_path, status, outcome, coalesce(reason, ''), attempts FROM documents
                 WHERE status IN ('failed', 'quarantined', 'skipped', 'partial')
                    OR (status = 'pending' AND reason IS NOT NULL)
                 ORDER BY path",
                &[],
            )?
            .iter()
            .map(|r| Failure {
                path: r.get(0),
                status: r.get(1),
                outcome: r.get(2),
                reason: r.get(3),
                attempts: r.get::<_, i64>(4) as u32,
            })
            .collect();
        Ok(status)
    }

    fn export(&mut self, out: &mut dyn Write) -> Result<u64, StoreError> {
        // A portal streams the pages in slices, so a library of millions of
        // pages never sits in memory at once.
        let mut tx = self.client.transaction()?;
        let portal = tx.bind(
            "SELECT d.display_path, p.page, p.text FROM pages p
             JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial')
             ORDER BY d.path, p.page",
            &[],
        )?;
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, 1000)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let page = ExportPage {
                    path: row.get(0),
                    page: row.get::<_, i64>(1) as u32,
                    text: row.get(2),
                };
                serde_json::to_writer(&mut *out, &page).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
        tx.commit()?;
        out.flush()?;
        Ok(n)
    }

    fn shared(&self) -> bool {
        true
    }
}
