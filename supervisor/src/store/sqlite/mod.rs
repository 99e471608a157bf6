//! The catalog and the index: one SQLite database in WAL mode holding every
//! document seen, its pages, an FTS5 index over them, and the record of runs
//! and attempts.

mod chunks;
mod discover;
mod jobs;
mod leases;
mod query;
mod samples;
mod schema;
mod store;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use super::{now_ms, TooNew};

pub use query::{ExportError, ExportPage};
pub use samples::{ErrorRate, RunInfo, RunStats, TierStats};

#[derive(Debug, Error)]
pub enum SqliteError {
    #[error("the database folder {0} does not exist")]
    MissingFolder(PathBuf),
    #[error("no index at {0}: run `docmill index` first")]
    NoIndex(PathBuf),
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
}

impl SqliteStore {
    /// Opens (creating if needed) the database for writing.
    pub fn open(path: &Path) -> Result<SqliteStore, SqliteError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(SqliteError::MissingFolder(parent.to_path_buf()));
            }
        }
        SqliteStore::ready(path, Connection::open(path))
    }

    /// Opens an existing database for reading while a run may be writing it.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, SqliteError> {
        if !path.is_file() {
            return Err(SqliteError::NoIndex(path.to_path_buf()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        SqliteStore::ready(path, Connection::open_with_flags(path, flags))
    }

    /// Configures and migrates a connection just opened on `path`.
    fn ready(
        path: &Path,
        opened: rusqlite::Result<Connection>,
    ) -> Result<SqliteStore, SqliteError> {
        let conn = opened.map_err(|source| SqliteError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let catalog = SqliteStore { conn };
        catalog.configure()?;
        catalog.migrate()?;
        Ok(catalog)
    }

    fn configure(&self) -> Result<(), SqliteError> {
        // WAL lets `status` read beside a running index; NORMAL sync is
        // durable across a process crash and loses at most the last
        // transactions on a power cut, never consistency.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        self.conn.busy_timeout(std::time::Duration::from_secs(30))?;
        schema::register_functions(&self.conn)?;
        Ok(())
    }

    fn migrate(&self) -> Result<(), SqliteError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
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
            let tx = self.conn.unchecked_transaction()?;
            if version == 1 {
                tx.execute_batch(schema::DROP_V1_INDEX)?;
            }
            tx.execute_batch(schema::SCHEMA)?;
            if version == 1 {
                tx.execute_batch(schema::FILL_INDEX)?;
            }
            tx.pragma_update(None, "user_version", schema::VERSION)?;
            tx.commit()?;
        } else if !self.has_table("samples")? || !self.has_table("chunks")? {
            // A database made before the samples or chunks tables: it only
            // adds tables (every statement is IF NOT EXISTS), so the version
            // stays and older docmills still open it.
            self.conn.execute_batch(schema::SCHEMA)?;
        }
        for (table, column, kind) in schema::ADDED_COLUMNS {
            if !self.has_column(table, column)? {
                self.conn
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
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
