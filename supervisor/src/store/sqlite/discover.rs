//! Discovery: what the walk found goes into the catalog. New and changed
//! files become pending; unchanged finished ones are skipped; files deleted
//! since the last run over the same root leave the index.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

use super::{Catalog, CatalogError};
use crate::store::now_ms;
use crate::store::{DiscoverCounts, Found, FoundKind, RetryPolicy};

fn status_of(kind: &FoundKind) -> (&'static str, &'static str, Option<&str>) {
    match kind {
        FoundKind::Document(f) => ("pending", f.as_str(), None),
        FoundKind::Unsupported(r) => ("unsupported", "other", Some(r)),
        FoundKind::Failed(r) => ("failed", "other", Some(r)),
        FoundKind::Skipped(r) => ("skipped", "other", Some(r)),
    }
}

impl Catalog {
    /// Puts right what a dead supervisor left: its running jobs go back to
    /// the queue, and the interrupted attempt does not count against them.
    pub fn recover_interrupted(&mut self) -> Result<u64, CatalogError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE documents SET status = 'pending', interrupted = interrupted + 1,
                 lease_owner = NULL, lease_token = NULL, lease_expires = NULL
             WHERE status = 'running'",
            [],
        )? as u64;
        let chunks = super::chunks::recover_chunks(&tx)?;
        tx.commit()?;
        Ok(n + chunks)
    }

    /// Upserts one batch of found files in one transaction.
    pub fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, CatalogError> {
        let mut counts = DiscoverCounts::default();
        let tx = self.conn.transaction()?;
        {
            let mut get = tx.prepare_cached(
                "SELECT id, size, mtime_ns, status FROM documents WHERE path = ?1",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO documents (path, display_path, size, mtime_ns, format, status, reason, seen_run, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut touch =
                tx.prepare_cached("UPDATE documents SET seen_run = ?1 WHERE id = ?2")?;
            let mut change = tx.prepare_cached(
                "UPDATE documents SET size = ?1, mtime_ns = ?2, format = ?3, status = ?4, reason = ?5,
                     outcome = NULL, attempts = 0, generation = generation + 1, seen_run = ?6,
                     updated_ms = ?7
                 WHERE id = ?8",
            )?;
            let mut requeue = tx.prepare_cached(
                "UPDATE documents SET status = 'pending', attempts = 0, seen_run = ?1, updated_ms = ?2
                 WHERE id = ?3",
            )?;
            let mut relabel = tx.prepare_cached(
                "UPDATE documents SET status = ?1, reason = ?2, seen_run = ?3, updated_ms = ?4 WHERE id = ?5",
            )?;
            let mut drop_pages = tx.prepare_cached("DELETE FROM pages WHERE doc_id = ?1")?;
            let now = now_ms();
            for f in found {
                let key = f.path.as_os_str().as_bytes();
                let (status, format, reason) = status_of(&f.kind);
                let existing: Option<(i64, i64, i64, String)> = get
                    .query_row(params![key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()?;
                match existing {
                    None => {
                        insert.execute(params![
                            key,
                            f.path.to_string_lossy(),
                            f.size as i64,
                            f.mtime_ns,
                            format,
                            status,
                            reason,
                            run,
                            now
                        ])?;
                        counts.new += 1;
                    }
                    Some((id, size, mtime, _)) if size != f.size as i64 || mtime != f.mtime_ns => {
                        // The old pages stay searchable until the new text
                        // commits, unless the file is no longer a document.
                        if status != "pending" {
                            drop_pages.execute(params![id])?;
                        }
                        // A page-range plan was for the old file.
                        super::chunks::forget_plan(&tx, id)?;
                        change.execute(params![
                            f.size as i64,
                            f.mtime_ns,
                            format,
                            status,
                            reason,
                            run,
                            now,
                            id
                        ])?;
                        counts.changed += 1;
                    }
                    Some((id, _, _, old)) if status != "pending" && old != "done" => {
                        // Not a document: the walk's latest word stands. (An
                        // unchanged file that was indexed keeps its pages even
                        // if it cannot be read right now.)
                        relabel.execute(params![status, reason, run, now, id])?;
                        counts.unchanged += 1;
                    }
                    Some((id, _, _, old))
                        if old == "partial" && (retry.failed || retry.quarantined) =>
                    {
                        // Only the chunks that failed are tried again.
                        super::chunks::retry_failed_chunks(&tx, id)?;
                        touch.execute(params![run, id])?;
                        counts.requeued += 1;
                    }
                    Some((id, _, _, old)) => {
                        let again = match old.as_str() {
                            "failed" => retry.failed && status == "pending",
                            "quarantined" => retry.quarantined,
                            "pending" | "running" => true,
                            _ => false,
                        };
                        if again {
                            requeue.execute(params![run, now, id])?;
                            counts.requeued += 1;
                        } else {
                            touch.execute(params![run, id])?;
                            counts.unchanged += 1;
                        }
                    }
                }
            }
        }
        tx.commit()?;
        Ok(counts)
    }

    /// Removes documents under `roots` that this run did not see and that
    /// no longer exist on disk. A file that exists but was not reached (an
    /// unreadable folder, say) keeps its pages.
    pub fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, CatalogError> {
        let candidates: Vec<(i64, Vec<u8>, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, path, status FROM documents WHERE seen_run IS NOT ?1")?;
            let rows = stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let gone: Vec<i64> = candidates
            .into_iter()
            .filter(|(_, p, status)| {
                let path = Path::new(std::ffi::OsStr::from_bytes(p));
                // A skipped entry (an unreadable folder, a link) is
                // re-judged by every walk, so one not met again is stale.
                roots.iter().any(|r| path.starts_with(r))
                    && (status == "skipped"
                        || matches!(path.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound))
            })
            .map(|(id, _, _)| id)
            .collect();
        let tx = self.conn.transaction()?;
        for id in &gone {
            tx.execute("DELETE FROM documents WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(gone.len() as u64)
    }
}
