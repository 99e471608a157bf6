//! The catalog and the index: one SQLite database in WAL mode holding every
//! document seen, its pages, an FTS5 index over them, and the record of runs
//! and attempts.

mod browse;
mod chunks;
mod discover;
mod forget;
mod jobs;
mod leases;
mod ocr;
mod open;
mod query;
mod runs;
mod samples;
mod schema;
mod store;

use std::path::{Path, PathBuf};

use open::{Access, Identity};
use rusqlite::Connection;
use thiserror::Error;

use super::{now_ms, TooNew};

pub use browse::{AttemptInfo, DocumentInfo, RunFailure};
pub(super) use open::damaged;
pub use open::APPLICATION_ID;
pub use query::{page_note, tenths, ExportError, ExportPage, NO_TEXT_LAYER};
pub use samples::{ErrorRate, FailedFile, RunInfo, RunStats, SlowDocument, TierStats};
pub use schema::VERSION as SCHEMA_VERSION;

#[derive(Debug, Error)]
pub enum SqliteError {
    #[error("the database folder {0} does not exist")]
    MissingFolder(PathBuf),
    #[error("no index at {0}: run `docmill index` first")]
    NoIndex(PathBuf),
    #[error("permission denied: this user cannot read {0} (or the folder it is in)")]
    PermissionDenied(PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not a docmill index but another program's SQLite database; \
         it was left as it is: name another file with --db"
    )]
    NotDocmill(PathBuf),
    #[error(
        "{0} is not a SQLite database (another kind of file, or a damaged one); \
         it was left as it is: if it was a docmill index, move it aside and run \
         `docmill index` to build it again, or name another file with --db"
    )]
    NotSqlite(PathBuf),
    #[error(
        "the index {path} is damaged ({reason}): move it aside and run `docmill index` \
         to build it again"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the index {0} was made by an older docmill: run `docmill index` once to bring it \
         up to date"
    )]
    Outdated(PathBuf),
    #[error("cannot open the database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    TooNew(#[from] TooNew),
    #[error("database error")]
    Sql(#[from] rusqlite::Error),
    #[error("a stored sample is not valid JSON")]
    Sample(#[from] serde_json::Error),
}

/// A state is stored as its name.
impl rusqlite::ToSql for super::DocState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

pub struct SqliteStore {
    conn: Connection,
    /// Rows removed this run because the walk left their paths out; told
    /// with the deleted files' by `remove_missing`.
    left_out: u64,
}

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl SqliteStore {
    /// Opens (creating if needed) the database for an index run. A file
    /// that is not docmill's is refused before anything is written to it;
    /// an index made before docmill marked its files is marked now.
    pub fn open(path: &Path) -> Result<SqliteStore, SqliteError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(SqliteError::MissingFolder(parent.to_path_buf()));
            }
        }
        let identity = match open::identify(path) {
            Err(SqliteError::NoIndex(_)) => Identity::Empty,
            other => other?,
        };
        SqliteStore::for_writing(path, identity, Access::Create)
    }

    /// Opens an existing index for a command that changes it (`forget`):
    /// as `open`, but a missing or empty file is no index.
    pub fn open_writable(path: &Path) -> Result<SqliteStore, SqliteError> {
        match open::identify(path)? {
            Identity::Empty => Err(SqliteError::NoIndex(path.to_path_buf())),
            identity => SqliteStore::for_writing(path, identity, Access::Write),
        }
    }

    /// Opens an existing index for the reading commands, read-only
    /// (`SQLITE_OPEN_READ_ONLY`): no pragma that writes, no migration, so
    /// the file is never changed, and an index in a folder this user
    /// cannot write is still read (see `open::read_access`).
    pub fn open_existing(path: &Path) -> Result<SqliteStore, SqliteError> {
        match open::identify(path)? {
            Identity::Docmill | Identity::OlderDocmill => {}
            Identity::Empty => return Err(SqliteError::NoIndex(path.to_path_buf())),
            Identity::Foreign => return Err(SqliteError::NotDocmill(path.to_path_buf())),
            Identity::NotSqlite => return Err(SqliteError::NotSqlite(path.to_path_buf())),
        }
        let conn = open::connect(path, open::read_access(path))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        open::check_readable(&conn, path)?;
        Ok(SqliteStore { conn, left_out: 0 })
    }

    /// Opens `path`, already identified, for writing: configured, migrated
    /// and marked as docmill's.
    fn for_writing(
        path: &Path,
        identity: Identity,
        access: Access,
    ) -> Result<SqliteStore, SqliteError> {
        match identity {
            Identity::Docmill | Identity::OlderDocmill | Identity::Empty => {}
            Identity::Foreign => return Err(SqliteError::NotDocmill(path.to_path_buf())),
            Identity::NotSqlite => return Err(SqliteError::NotSqlite(path.to_path_buf())),
        }
        let mut catalog = SqliteStore {
            conn: open::connect(path, access)?,
            left_out: 0,
        };
        // Another docmill may be opening the same file this moment (a
        // `forget` beside a starting run): every write waits for it. A
        // write transaction takes the write lock when it begins: one that
        // read first and found another's commit since would fail at once
        // ("database is locked"), the wait notwithstanding.
        catalog.conn.busy_timeout(BUSY_TIMEOUT)?;
        catalog
            .conn
            .set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // While the file is new (no WAL yet), two openers can each hold a
        // read lock the other's write needs: SQLite then fails one at once
        // rather than wait ("database is locked"). Every step below can be
        // taken again, so that one takes them again, until the same wait.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        let mut pause = std::time::Duration::from_millis(2);
        loop {
            match catalog.prepare(path, identity) {
                Err(SqliteError::Sql(e))
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
                other => break other?,
            }
        }
        Ok(catalog)
    }

    /// Marks, configures and migrates a file opened for writing.
    fn prepare(&self, path: &Path, identity: Identity) -> Result<(), SqliteError> {
        // The mark goes first: on a new file it is written before the
        // switch to WAL, into the main file, where `open::identify` reads
        // it even while the first run's tables are still only in the log.
        if identity != Identity::Docmill {
            self.conn
                .pragma_update(None, "application_id", open::APPLICATION_ID)
                .map_err(|e| open::damaged(path, e))?;
        }
        self.configure().map_err(|e| match e {
            SqliteError::Sql(e) => open::damaged(path, e),
            e => e,
        })?;
        self.migrate()
    }

    fn configure(&self) -> Result<(), SqliteError> {
        // WAL lets `status` read beside a running index; NORMAL sync is
        // durable across a process crash and loses at most the last
        // transactions on a power cut, never consistency.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::register_functions(&self.conn)?;
        Ok(())
    }

    /// Brings the schema up to date, in one transaction that holds the
    /// write lock from the start: two docmills opening a new or older file
    /// at once (a `forget` beside a starting run) would otherwise both see
    /// a column missing and both add it, and the second would fail.
    fn migrate(&self) -> Result<(), SqliteError> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > schema::VERSION {
            return Err(TooNew {
                what: "database",
                found: version,
                known: schema::VERSION,
            }
            .into());
        }
        if version < schema::VERSION {
            // Schema 1's index knew neither titles nor CJK grams: it is
            // made again, once, from the pages (see the README for what
            // that costs).
            if version == 1 {
                tx.execute_batch(schema::DROP_V1_INDEX)?;
            }
            tx.execute_batch(schema::SCHEMA)?;
            if version == 1 {
                tx.execute_batch(schema::FILL_INDEX)?;
            }
            tx.pragma_update(None, "user_version", schema::VERSION)?;
        } else if !self.has_table("samples")?
            || !self.has_table("chunks")?
            || !self.has_table("ocr_cache")?
        {
            // A database made before the samples or chunks tables: it only
            // adds tables (every statement is IF NOT EXISTS), so the version
            // stays and older docmills still open it.
            tx.execute_batch(schema::SCHEMA)?;
        }
        for (table, column, kind) in schema::ADDED_COLUMNS {
            if !self.has_column(table, column)? {
                tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn has_column(&self, table: &str, column: &str) -> Result<bool, SqliteError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get::<_, i64>(0),
        )? > 0)
    }

    fn has_table(&self, name: &str) -> Result<bool, SqliteError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )? > 0)
    }

    /// Records the start of an index run.
    pub fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, SqliteError> {
        self.conn.execute(
            "INSERT INTO runs (started_ms, owner, options) VALUES (?1, ?2, ?3)",
            rusqlite::params![now_ms(), owner, options],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn end_run(&mut self, run: i64, totals: &str, exit_code: i32) -> Result<(), SqliteError> {
        self.conn.execute(
            "UPDATE runs SET ended_ms = ?1, totals = ?2, exit_code = ?3 WHERE id = ?4",
            rusqlite::params![now_ms(), totals, exit_code, run],
        )?;
        Ok(())
    }
}
