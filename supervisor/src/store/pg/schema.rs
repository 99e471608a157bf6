//! The shared store's schema, and its creation or check at connect time,
//! serialised among supervisors that start together.

use postgres::Client;

use crate::store::{StoreError, TooNew};

/// The schema this docmill writes; a newer one is refused.
const VERSION: i64 = 1;

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

/// Creates the schema, or checks that this docmill knows the one there.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
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
            return Err(TooNew {
                what: "shared database",
                found: v,
                known: VERSION,
            }
            .into())
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

/// The schema this docmill writes, for `docmill --version`.
pub(crate) const SCHEMA_VERSION: i64 = VERSION;

/// Checks, creating and changing nothing, that the database holds a
/// docmill schema this docmill can read: for the commands that must not
/// turn an empty or foreign database into an index.
pub(super) fn check(client: &mut Client, url: &str) -> Result<(), StoreError> {
    let has_meta: bool = client
        .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])?
        .get(0);
    let found: Option<i64> = if has_meta {
        client
            .query_opt("SELECT value FROM meta WHERE key = 'schema'", &[])?
            .and_then(|r| r.get::<_, String>(0).parse().ok())
    } else {
        None
    };
    let named = || crate::store::redacted(std::path::Path::new(url));
    match found {
        None => Err(StoreError::NoSharedIndex(named())),
        Some(v) if v > VERSION => Err(TooNew {
            what: "shared database",
            found: v,
            known: VERSION,
        }
        .into()),
        Some(v) if v < VERSION => Err(StoreError::Outdated(named())),
        Some(_) => Ok(()),
    }
}
