//! The shared store's schema, and its creation or check at connect time,
//! serialised among supervisors that start together.

use postgres::Client;

use crate::store::{StoreError, TooNew};

/// The schema this docmill writes; a newer one is refused. 2: pages' text
/// vectors hold their document's title, author and path, and CJK text as
/// two-character grams (`index_sql`).
const VERSION: i64 = 2;

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
    tsv     tsvector,
    outbox  BIGINT NOT NULL DEFAULT nextval('outbox_seq'),
    PRIMARY KEY (doc_id, page)
);
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

/// The text index, made after the tables: `pages.tsv` is the page's text
/// (weight D) with its document's title (A), author (B) and path (C), every
/// part as `docmill_fts_text` gives it: CJK runs as two-character grams, the
/// same bytes as the SQLite index's (search/cjk.rs). A trigger fills it as
/// a page is written, and again for every page of a document whose title,
/// author or path changes. `docmill_term` turns one query term into a
/// `tsquery` of those weights (search/render.rs builds the rest).
fn index_sql() -> String {
    let class = crate::search::cjk::regex_class();
    let not_class = format!("[^{}", &class[1..]);
    format!(
        r#"
CREATE OR REPLACE FUNCTION docmill_cjk_grams(run text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
    SELECT CASE WHEN length(run) = 1 THEN run ELSE
        (SELECT string_agg(substr(run, i, 2), ' ' ORDER BY i)
         FROM generate_series(1, length(run) - 1) AS i) || ' ' || right(run, 1)
    END
$f$;
CREATE OR REPLACE FUNCTION docmill_fts_text(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
    SELECT CASE WHEN t !~ '{class}' THEN t ELSE (
        SELECT string_agg(CASE WHEN m[1] ~ '^{class}'
                               THEN ' ' || docmill_cjk_grams(m[1]) || ' '
                               ELSE m[1] END, '' ORDER BY n)
        FROM regexp_matches(t, '{class}+|{not_class}+', 'g') WITH ORDINALITY AS r(m, n))
    END
$f$;
CREATE OR REPLACE FUNCTION docmill_page_tsv(body text, title text, author text, path text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
    SELECT to_tsvector('simple', coalesce(docmill_fts_text(body), ''))
        || setweight(to_tsvector('simple', coalesce(docmill_fts_text(title), '')), 'A')
        || setweight(to_tsvector('simple', coalesce(docmill_fts_text(author), '')), 'B')
        || setweight(to_tsvector('simple',
               regexp_replace(coalesce(docmill_fts_text(path), ''), '[[:punct:]]+', ' ', 'g')), 'C')
$f$;
-- One term: its words as a phrase, each restricted to `weights`, the last
-- a prefix when asked.
CREATE OR REPLACE FUNCTION docmill_term(term text, weights text, prefix boolean)
RETURNS tsquery LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
    SELECT CASE WHEN prefix THEN regexp_replace(w, ':([A-D]+)$', ':*\1') ELSE w END::tsquery
    FROM (SELECT regexp_replace(phraseto_tsquery('simple', term)::text,
                                '''(?:[^'']|'''')*''', '\&:' || weights, 'g') AS w) AS q
$f$;
CREATE OR REPLACE FUNCTION docmill_page_indexed() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    SELECT docmill_page_tsv(NEW.text, d.title, d.author, d.display_path) INTO NEW.tsv
    FROM documents d WHERE d.id = NEW.doc_id;
    RETURN NEW;
END
$f$;
DROP TRIGGER IF EXISTS pages_indexed ON pages;
CREATE TRIGGER pages_indexed BEFORE INSERT OR UPDATE OF text, doc_id ON pages
    FOR EACH ROW EXECUTE FUNCTION docmill_page_indexed();
CREATE OR REPLACE FUNCTION docmill_document_renamed() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    UPDATE pages SET tsv = docmill_page_tsv(text, NEW.title, NEW.author, NEW.display_path)
    WHERE doc_id = NEW.id;
    RETURN NULL;
END
$f$;
DROP TRIGGER IF EXISTS documents_indexed ON documents;
CREATE TRIGGER documents_indexed AFTER UPDATE OF title, author, display_path ON documents
    FOR EACH ROW
    WHEN (OLD.title IS DISTINCT FROM NEW.title OR OLD.author IS DISTINCT FROM NEW.author
          OR OLD.display_path IS DISTINCT FROM NEW.display_path)
    EXECUTE FUNCTION docmill_document_renamed();
CREATE INDEX IF NOT EXISTS pages_tsv ON pages USING GIN (tsv);
"#
    )
}

/// Schema 1 kept `tsv` as a column generated from the text alone: it is
/// replaced, and filled once from every page (see the README for the cost).
const UPGRADE_FROM_1: &str = "
ALTER TABLE pages DROP COLUMN tsv;
ALTER TABLE pages ADD COLUMN tsv tsvector;
";
const FILL_FROM_1: &str = "
UPDATE pages p SET tsv = docmill_page_tsv(p.text, d.title, d.author, d.display_path)
FROM documents d WHERE d.id = p.doc_id;
";

/// Creates the schema, or checks that this docmill knows the one there.
/// Added after schema 2 without a version of their own (every statement
/// is IF NOT EXISTS, and older docmills ignore them): OCR's page columns,
/// the file's content hash, an OCR job's page list, and the OCR cache (see
/// the SQLite schema for what each holds).
const OCR_ADDITIONS: &str = "
ALTER TABLE pages ADD COLUMN IF NOT EXISTS ocr_confidence REAL;
ALTER TABLE pages ADD COLUMN IF NOT EXISTS note TEXT;
ALTER TABLE documents ADD COLUMN IF NOT EXISTS content_hash TEXT;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS ocr_pages TEXT;
CREATE TABLE IF NOT EXISTS ocr_cache (
    content_hash  TEXT NOT NULL,
    page          BIGINT NOT NULL,
    settings_key  TEXT NOT NULL,
    text          TEXT NOT NULL,
    confidence    REAL,
    PRIMARY KEY (content_hash, page, settings_key)
);
";

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
        Some(1) => {
            tx.batch_execute(UPGRADE_FROM_1)?;
            tx.batch_execute(SCHEMA)?;
            tx.batch_execute(&index_sql())?;
            tx.batch_execute(FILL_FROM_1)?;
            tx.execute(
                "UPDATE meta SET value = $1 WHERE key = 'schema'",
                &[&VERSION.to_string()],
            )?;
        }
        _ => {
            tx.batch_execute(SCHEMA)?;
            tx.batch_execute(&index_sql())?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', $1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&VERSION.to_string()],
            )?;
        }
    }
    // ALTER TABLE takes its table's strongest lock even when the column is
    // there, and would wait on any supervisor in a transaction (one that
    // is paused, say): the additions run only when something is missing.
    if !has_ocr_additions(&mut tx)? {
        tx.batch_execute(OCR_ADDITIONS)?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether the OCR additions are there (see `OCR_ADDITIONS`).
fn has_ocr_additions(client: &mut impl postgres::GenericClient) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one(
            "SELECT to_regclass('ocr_cache') IS NOT NULL AND (
                 SELECT count(*) FROM information_schema.columns
                 WHERE table_schema = current_schema()
                   AND (table_name, column_name) IN (('pages', 'ocr_confidence'),
                       ('pages', 'note'), ('documents', 'content_hash'), ('chunks', 'ocr_pages'))
             ) = 4",
            &[],
        )?
        .get(0))
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
        // The reading commands read the OCR columns.
        Some(_) if !has_ocr_additions(client)? => Err(StoreError::Outdated(named())),
        Some(_) => Ok(()),
    }
}
