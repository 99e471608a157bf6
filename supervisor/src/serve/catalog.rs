//! The server's way into the index: read-only SQLite connections, opened as
//! the reading commands open them (`SqliteStore::open_existing`:
//! `SQLITE_OPEN_READ_ONLY`, no pragma that writes, no migration), kept in a
//! small pool, and used on tokio's blocking threads so that a slow query
//! never holds up the event loop. WAL lets them read while an index run
//! writes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::error::ServeError;
use crate::store::{SqliteError, SqliteStore};

/// Connections kept for reuse; more are opened while all are busy.
const KEEP: usize = 4;

#[derive(Clone)]
pub struct Catalog {
    db: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<SqliteStore>>>,
}

impl Catalog {
    /// Opens one connection now, so that a database that cannot be read is
    /// refused before the server starts.
    pub fn open(db: PathBuf) -> Result<Catalog, SqliteError> {
        let first = SqliteStore::open_existing(&db)?;
        Ok(Catalog {
            db: Arc::new(db),
            idle: Arc::new(Mutex::new(vec![first])),
        })
    }

    /// The database's path.
    pub fn db(&self) -> &std::path::Path {
        &self.db
    }

    /// Runs `f` with a connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ServeError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteStore) -> Result<T, ServeError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let taken = this.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            let mut store = match taken {
                Some(s) => s,
                None => SqliteStore::open_existing(&this.db)?,
            };
            let result = f(&mut store);
            if let Ok(mut idle) = this.idle.lock() {
                if idle.len() < KEEP {
                    idle.push(store);
                }
            }
            result
        })
        .await
        .map_err(|e| ServeError::Task(e.to_string()))?
    }
}
