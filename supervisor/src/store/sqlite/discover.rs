//! Discovery on the embedded store: each found file's row is read, and
//! `rules::rediscover` says what it means (new, changed, requeued, seen);
//! this file writes the answer. Files deleted since the last run over the
//! same root leave the index as `rules::removed` says, and so do the files
//! and folders the walk left out (`--exclude`, ignore files).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::types::ToSql;
use rusqlite::{params, OptionalExtension};

use super::{SqliteError, SqliteStore};
use crate::store::rules::{self, Lease, Rediscovered, Stored};
use crate::store::{now_ms, DiscoverCounts, DocState, Found, FoundKind, RetryPolicy};

impl SqliteStore {
    /// Upserts one batch of found files in one transaction.
    pub fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, SqliteError> {
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
            // A changed file also bumps the token: whoever extracts the old
            // version now holds a lease that no longer matches.
            let mut change = tx.prepare_cached(
                "UPDATE documents SET size = ?1, mtime_ns = ?2, format = ?3, status = ?4, reason = ?5,
                     outcome = NULL, attempts = 0, generation = generation + 1,
                     lease_token = coalesce(lease_token, 0) + 1, lease_owner = NULL,
                     lease_expires = NULL, seen_run = ?6, updated_ms = ?7
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
            let mut left_out = Vec::new();
            for f in found {
                if f.kind == FoundKind::Excluded {
                    left_out.push(f.path.clone());
                    continue;
                }
                let key = f.path.as_os_str().as_bytes();
                let listed = rules::listing(&f.kind);
                let existing: Option<(i64, Stored)> = get
                    .query_row(params![key], |r| {
                        Ok((
                            r.get(0)?,
                            Stored {
                                size: r.get(1)?,
                                mtime_ns: r.get(2)?,
                                state: DocState::parse(&r.get::<_, String>(3)?),
                                lease: Lease::Abandoned,
                            },
                        ))
                    })
                    .optional()?;
                let verdict = rules::rediscover(f, existing.as_ref().map(|(_, s)| s), retry);
                verdict.tally(&mut counts);
                // The columns a new or changed row takes, in the order both
                // statements name them.
                let size = f.size as i64;
                let columns: [&dyn ToSql; 7] = [
                    &size,
                    &f.mtime_ns,
                    &listed.format,
                    &listed.state,
                    &listed.reason,
                    &run,
                    &now,
                ];
                let id = match existing {
                    Some((id, _)) => id,
                    None => {
                        let display = f.path.to_string_lossy();
                        let named: [&dyn ToSql; 2] = [&key, &display];
                        insert.execute([&named[..], &columns[..]].concat().as_slice())?;
                        continue;
                    }
                };
                match verdict {
                    Rediscovered::Changed { drop_pages: drop } => {
                        if drop {
                            drop_pages.execute(params![id])?;
                        }
                        super::chunks::forget_plan(&tx, id)?;
                        change.execute([&columns[..], &[&id]].concat().as_slice())?;
                    }
                    Rediscovered::Relabelled => {
                        relabel.execute(params![listed.state, listed.reason, run, now, id])?;
                    }
                    Rediscovered::RetryChunks => {
                        super::chunks::retry_failed_chunks(&tx, id, run)?;
                    }
                    Rediscovered::Requeued => {
                        requeue.execute(params![run, now, id])?;
                    }
                    Rediscovered::New | Rediscovered::Seen { .. } => {
                        touch.execute(params![run, id])?;
                    }
                }
            }
            self.left_out += super::forget::forget_in(&tx, &left_out)?;
        }
        tx.commit()?;
        Ok(counts)
    }

    /// Removes documents under `roots` that this run did not see and that
    /// `rules::removed` says are gone. Returns how many, with those that
    /// discovery removed because the walk left them out.
    pub fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, SqliteError> {
        let candidates: Vec<(i64, Vec<u8>, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, path, status FROM documents WHERE seen_run IS NOT ?1")?;
            let rows = stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for (id, path, state) in candidates {
            let path = Path::new(OsStr::from_bytes(&path));
            if rules::removed(path, DocState::parse(&state), roots, rules::on_disk) {
                tx.execute("DELETE FROM documents WHERE id = ?1", params![id])?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n + std::mem::take(&mut self.left_out))
    }
}
