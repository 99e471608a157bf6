//! `docmill forget` on the embedded store, and the walk's left-out paths:
//! documents leave the catalog with their pages (the FTS index follows by
//! trigger), chunks and attempts, by the foreign keys' cascade.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rusqlite::params;

use super::{SqliteError, SqliteStore};
use crate::store::rules;

impl SqliteStore {
    /// Removes the documents at or under each of `paths` in one
    /// transaction; returns how many.
    pub fn forget(&mut self, paths: &[PathBuf]) -> Result<u64, SqliteError> {
        let tx = self.conn.transaction()?;
        let n = forget_in(&tx, paths)?;
        tx.commit()?;
        Ok(n)
    }
}

/// The deletion itself, inside the caller's transaction.
pub(super) fn forget_in(
    tx: &rusqlite::Transaction<'_>,
    paths: &[PathBuf],
) -> Result<u64, SqliteError> {
    let mut delete =
        tx.prepare_cached("DELETE FROM documents WHERE path = ?1 OR (path >= ?2 AND path < ?3)")?;
    let mut n = 0;
    for path in paths {
        let (low, high) = rules::subtree(path);
        n += delete.execute(params![path.as_os_str().as_bytes(), low, high])? as u64;
    }
    Ok(n)
}
