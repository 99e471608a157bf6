//! Discovery on the shared store: each found file's row is inserted or
//! read and locked, and `rules::rediscover` says what it means; this file
//! writes the answer. Several supervisors may discover the same library at
//! once: the batch is one transaction, tried again if the server cancels it.
//! Files deleted since the last run over the same root leave the index as
//! `rules::removed` says, and so do the files and folders the walk left
//! out (`--exclude`, ignore files).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use postgres::types::ToSql;
use postgres::Transaction;

use super::{in_retried_tx, PgStore, NOW_MS};
use crate::store::rules::{self, Lease, Rediscovered, Stored};
use crate::store::{now_ms, DiscoverCounts, DocState, Found, FoundKind, RetryPolicy, StoreError};

impl PgStore {
    pub(super) fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, StoreError> {
        let mut counts = in_retried_tx(&mut self.client, |tx| upsert_batch(tx, found, run, retry))?;
        // Told by `remove_missing`, with the deleted files.
        self.left_out += std::mem::take(&mut counts.removed);
        Ok(counts)
    }

    pub(super) fn remove_missing(
        &mut self,
        roots: &[PathBuf],
        run: i64,
    ) -> Result<u64, StoreError> {
        let rows = self.client.query(
            "SELECT id, path, status FROM documents WHERE seen_run IS DISTINCT FROM $1",
            &[&run],
        )?;
        let gone: Vec<i64> = rows
            .iter()
            .filter(|r| {
                let path = Path::new(OsStr::from_bytes(r.get(1)));
                rules::removed(path, DocState::parse(r.get(2)), roots, rules::on_disk)
            })
            .map(|r| r.get(0))
            .collect();
        if !gone.is_empty() {
            self.client
                .execute("DELETE FROM documents WHERE id = ANY($1)", &[&gone])?;
        }
        Ok(gone.len() as u64 + std::mem::take(&mut self.left_out))
    }
}

fn upsert_batch(
    tx: &mut Transaction<'_>,
    found: &[Found],
    run: i64,
    retry: RetryPolicy,
) -> Result<DiscoverCounts, postgres::Error> {
    let mut counts = DiscoverCounts::default();
    let now = now_ms();
    let insert = tx.prepare(
        "INSERT INTO documents (path, display_path, size, mtime_ns, format, status, reason, seen_run, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (path) DO NOTHING RETURNING id",
    )?;
    let get = tx.prepare(&format!(
        "SELECT id, size, mtime_ns, status,
                status = 'running' AND lease_expires >= {NOW_MS} AS leased
         FROM documents WHERE path = $1 FOR UPDATE"
    ))?;
    let touch = tx.prepare("UPDATE documents SET seen_run = $1 WHERE id = $2")?;
    // A changed file also bumps the token: whoever extracts the old version
    // now holds a lease that no longer matches.
    let change = tx.prepare(
        "UPDATE documents SET size = $1, mtime_ns = $2, format = $3, status = $4, reason = $5,
             outcome = NULL, attempts = 0, generation = generation + 1,
             lease_token = lease_token + 1, lease_owner = NULL, lease_expires = NULL,
             seen_run = $6, updated_ms = $7
         WHERE id = $8",
    )?;
    let requeue = tx.prepare(
        "UPDATE documents SET status = 'pending', attempts = 0, seen_run = $1, updated_ms = $2
         WHERE id = $3",
    )?;
    let relabel = tx.prepare(
        "UPDATE documents SET status = $1, reason = $2, seen_run = $3, updated_ms = $4 WHERE id = $5",
    )?;
    let drop_pages = tx.prepare("DELETE FROM pages WHERE doc_id = $1")?;
    let mut left_out = Vec::new();
    for f in found {
        if f.kind == FoundKind::Excluded {
            left_out.push(f.path.clone());
            continue;
        }
        let key = f.path.as_os_str().as_bytes();
        let listed = rules::listing(&f.kind);
        let state = listed.state.as_str();
        let size = f.size as i64;
        // The columns a new or changed row takes, in the order both
        // statements name them.
        let columns: [&(dyn ToSql + Sync); 7] = [
            &size,
            &f.mtime_ns,
            &listed.format,
            &state,
            &listed.reason,
            &run,
            &now,
        ];
        let display = f.path.to_string_lossy();
        let named: [&(dyn ToSql + Sync); 2] = [&key, &display];
        let inserted = tx.query_opt(&insert, &[&named[..], &columns[..]].concat())?;
        if inserted.is_some() {
            rules::rediscover(f, None, retry).tally(&mut counts);
            continue;
        }
        let row = tx.query_one(&get, &[&key])?;
        let id: i64 = row.get(0);
        let stored = Stored {
            size: row.get(1),
            mtime_ns: row.get(2),
            state: DocState::parse(row.get(3)),
            lease: if row.get(4) {
                Lease::Live
            } else {
                Lease::Expired
            },
        };
        let verdict = rules::rediscover(f, Some(&stored), retry);
        verdict.tally(&mut counts);
        match verdict {
            Rediscovered::Changed { drop_pages: drop } => {
                if drop {
                    tx.execute(&drop_pages, &[&id])?;
                }
                super::chunks::forget_plan(tx, id)?;
                tx.execute(&change, &[&columns[..], &[&id]].concat())?;
            }
            Rediscovered::Relabelled => {
                tx.execute(&relabel, &[&state, &listed.reason, &run, &now, &id])?;
            }
            Rediscovered::RetryChunks => {
                super::chunks::retry_failed_chunks(tx, id, run)?;
            }
            Rediscovered::Requeued => {
                tx.execute(&requeue, &[&run, &now, &id])?;
            }
            Rediscovered::New | Rediscovered::Seen { .. } => {
                tx.execute(&touch, &[&run, &id])?;
            }
        }
    }
    // Passed on as removed by the caller, which tells them later.
    counts.removed = super::forget::forget_in(tx, &left_out)?;
    Ok(counts)
}
