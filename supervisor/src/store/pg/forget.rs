//! `docmill forget` on the shared store, and the walk's left-out paths:
//! documents leave the catalog with their pages, chunks and attempts by
//! the foreign keys' cascade; each removed page is logged in the outbox
//! (`page_removals`) by its trigger, as for a deleted file.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use postgres::Transaction;

use super::{in_retried_tx, PgStore};
use crate::store::{rules, StoreError};

impl PgStore {
    /// Removes the documents at or under each of `paths` in one
    /// transaction; returns how many.
    pub(super) fn forget(&mut self, paths: &[PathBuf]) -> Result<u64, StoreError> {
        in_retried_tx(&mut self.client, |tx| forget_in(tx, paths))
    }
}

/// The deletion itself, inside the caller's transaction.
pub(super) fn forget_in(
    tx: &mut Transaction<'_>,
    paths: &[PathBuf],
) -> Result<u64, postgres::Error> {
    let delete =
        tx.prepare("DELETE FROM documents WHERE path = $1 OR (path >= $2 AND path < $3)")?;
    let mut n = 0;
    for path in paths {
        let (low, high) = rules::subtree(path);
        n += tx.execute(&delete, &[&path.as_os_str().as_bytes(), &low, &high])?;
    }
    Ok(n)
}
