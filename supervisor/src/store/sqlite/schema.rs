//! The SQLite schema. Documents carry their lease (owner, token, expiry)
//! from the start, so a shared store for several machines is another
//! implementation of the same claims, not a rewrite.

/// 2: the full-text index covers titles, authors and paths, and sees CJK
/// text as two-character grams (`upgrade_index`).
pub const VERSION: i64 = 2;

/// Columns added after a table was first released: (table, column, type).
/// Added in place when missing; older docmills ignore them.
pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("attempts", "chunk_first", "INTEGER"),
    // OCR: a recognised page's mean word confidence, and why a page
    // failed; the file's content hash (the OCR cache's key); an OCR job's
    // pages (comma-separated; NULL for a page-range chunk).
    ("pages", "ocr_confidence", "REAL"),
    ("pages", "note", "TEXT"),
    ("documents", "content_hash", "TEXT"),
    ("chunks", "ocr_pages", "TEXT"),
];

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER,
    owner       TEXT NOT NULL,
    options     TEXT NOT NULL,
    totals      TEXT,
    exit_code   INTEGER
);

-- One row per file seen under a root. `path` is the raw OS bytes (names need
-- not be UTF-8); `display_path` is its lossy text for people.
-- status: pending | running | split | done | partial | failed | quarantined |
-- unsupported | skipped. `split`: extracted as page-range chunks (see
-- `chunks`); `partial`: done except the pages of chunks that kept failing.
CREATE TABLE IF NOT EXISTS documents (
    id             INTEGER PRIMARY KEY,
    path           BLOB NOT NULL UNIQUE,
    display_path   TEXT NOT NULL,
    size           INTEGER NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    format         TEXT NOT NULL,
    status         TEXT NOT NULL,
    generation     INTEGER NOT NULL DEFAULT 1,
    attempts       INTEGER NOT NULL DEFAULT 0,
    interrupted    INTEGER NOT NULL DEFAULT 0,
    outcome        TEXT,
    reason         TEXT,
    page_count     INTEGER,
    engine         TEXT,
    title          TEXT,
    author         TEXT,
    language       TEXT,
    lease_owner    TEXT,
    lease_token    INTEGER,
    lease_expires  INTEGER,
    seen_run       INTEGER,
    updated_ms     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_status ON documents(status);

-- Text per page (PDF) or chapter (EPUB).
CREATE TABLE IF NOT EXISTS pages (
    id      INTEGER PRIMARY KEY,
    doc_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page    INTEGER NOT NULL,
    text    TEXT NOT NULL,
    flags   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (doc_id, page)
);

-- The full-text index: one row per page, holding the page's text and its
-- document's title, author and path, each as `docmill_fts_text` gives it
-- (CJK runs as two-character grams; see search/cjk.rs). It keeps no copy
-- of the text (`content = ''`): hits are read from `pages`, and a row is
-- deleted by its id alone (`contentless_delete`), so removing a page never
-- needs the values it was indexed with.
CREATE VIRTUAL TABLE IF NOT EXISTS pages_fts USING fts5(
    text, title, author, path,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
-- Merge index segments 16 at a time instead of 4: a bulk run writes one
-- segment per commit, and the default merged them so often that merging
-- cost as much as tokenizing (measured: supervisor CPU -12%). A search
-- reads a few more segments.
INSERT INTO pages_fts(pages_fts, rank) VALUES ('automerge', 16);
CREATE TRIGGER IF NOT EXISTS pages_ai AFTER INSERT ON pages BEGIN
    INSERT INTO pages_fts(rowid, text, title, author, path)
    SELECT new.id, docmill_fts_text(new.text), docmill_fts_text(d.title),
           docmill_fts_text(d.author), docmill_fts_text(d.display_path)
    FROM documents d WHERE d.id = new.doc_id;
END;
CREATE TRIGGER IF NOT EXISTS pages_ad AFTER DELETE ON pages BEGIN
    DELETE FROM pages_fts WHERE rowid = old.id;
END;
CREATE TRIGGER IF NOT EXISTS pages_au AFTER UPDATE OF text, doc_id ON pages BEGIN
    DELETE FROM pages_fts WHERE rowid = old.id;
    INSERT INTO pages_fts(rowid, text, title, author, path)
    SELECT new.id, docmill_fts_text(new.text), docmill_fts_text(d.title),
           docmill_fts_text(d.author), docmill_fts_text(d.display_path)
    FROM documents d WHERE d.id = new.doc_id;
END;
-- A document's title is written with its pages, before them (a split
-- document's by each chunk, before the chunk's pages); it changes after
-- them only when a changed file gets a new title, or chunks read different
-- titles and the merge keeps the first chunk's, and then its pages are
-- indexed again.
CREATE TRIGGER IF NOT EXISTS documents_fts AFTER UPDATE OF title, author, display_path
ON documents
WHEN old.title IS NOT new.title OR old.author IS NOT new.author
  OR old.display_path IS NOT new.display_path
BEGIN
    DELETE FROM pages_fts WHERE rowid IN (SELECT id FROM pages WHERE doc_id = new.id);
    INSERT INTO pages_fts(rowid, text, title, author, path)
    SELECT p.id, docmill_fts_text(p.text), docmill_fts_text(new.title),
           docmill_fts_text(new.author), docmill_fts_text(new.display_path)
    FROM pages p WHERE p.doc_id = new.id;
END;

-- Every finished attempt, kept for status and for the run's record.
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY,
    doc_id      INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    run_id      INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    engine      TEXT,
    worker_pid  INTEGER,
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER NOT NULL,
    chunk_first INTEGER
);
CREATE INDEX IF NOT EXISTS attempts_doc ON attempts(doc_id);

-- A long PDF is extracted as page-range chunks, each a job with its own
-- lease, so several workers (or machines) share it. A chunk's pages go into
-- `pages` (and the index) when it commits, but search and status skip the
-- pages of chunks done and not merged, and export reads only `done` and
-- `partial` documents, so the document becomes searchable at once when the
-- commit of its last chunk merges it.
-- (`chunk_pages` held them outside the index until the merge in earlier
-- versions; the merge still moves any left there.) Tokens come
-- from one sequence (meta 'chunk_token'), so a chunk planned again after
-- the file changed never accepts a stale job's result.
CREATE TABLE IF NOT EXISTS chunks (
    doc_id         INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    first          INTEGER NOT NULL,
    last           INTEGER NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    interrupted    INTEGER NOT NULL DEFAULT 0,
    outcome        TEXT,
    reason         TEXT,
    engine         TEXT,
    title          TEXT,
    author         TEXT,
    language       TEXT,
    merged         INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_token    INTEGER,
    lease_expires  INTEGER,
    updated_ms     INTEGER NOT NULL,
    PRIMARY KEY (doc_id, first)
);

CREATE TABLE IF NOT EXISTS chunk_pages (
    doc_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page    INTEGER NOT NULL,
    text    TEXT NOT NULL,
    flags   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (doc_id, page)
);

-- OCR text by the file's content (BLAKE3 of its bytes), page and the
-- settings that change what is recognised (`ocr::settings_key`): a renamed,
-- moved or touched file, or a run after an interruption, finds its pages
-- here and never recognises them again.
CREATE TABLE IF NOT EXISTS ocr_cache (
    content_hash  TEXT NOT NULL,
    page          INTEGER NOT NULL,
    settings_key  TEXT NOT NULL,
    text          TEXT NOT NULL,
    confidence    REAL,
    PRIMARY KEY (content_hash, page, settings_key)
);

-- The run's time series: a metrics::Snapshot as JSON every few seconds and
-- at each scaling decision, drawn by `docmill report`.
CREATE TABLE IF NOT EXISTS samples (
    id      INTEGER PRIMARY KEY,
    run_id  INTEGER NOT NULL,
    t_ms    INTEGER NOT NULL,
    json    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id, t_ms);
"#;

/// What a database of schema 1 had for its index: dropped before the new
/// one is made.
pub const DROP_V1_INDEX: &str = "
DROP TRIGGER IF EXISTS pages_ai;
DROP TRIGGER IF EXISTS pages_ad;
DROP TRIGGER IF EXISTS pages_au;
DROP TABLE IF EXISTS pages_fts;
";

/// Fills a new, empty index from the pages and documents there.
pub const FILL_INDEX: &str = "
INSERT INTO pages_fts(rowid, text, title, author, path)
SELECT p.id, docmill_fts_text(p.text), docmill_fts_text(d.title),
       docmill_fts_text(d.author), docmill_fts_text(d.display_path)
FROM pages p JOIN documents d ON d.id = p.doc_id;
";

/// Registers the SQL functions the index's triggers call; every connection
/// that writes pages needs them.
pub fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "docmill_fts_text",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = ctx.get_raw(0).as_str_or_null()?;
            Ok(text.map(|t| crate::search::cjk::index_text(t).into_owned()))
        },
    )
}
