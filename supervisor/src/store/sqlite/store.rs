//! The embedded store: the SQLite catalog behind the storage trait. Most
//! operations are the catalog's own; the lease statements it does not need
//! for one supervisor (taking back an expired lease, renewing by token) are
//! here, so both stores keep the same promises.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use rusqlite::params;

use super::{Catalog, CatalogError, ExportError};
use crate::metrics::Snapshot;
use crate::store::{
    now_ms, Claim, DiscoverCounts, Finished, Found, QueuedDoc, RetryPolicy, SearchHit, Status,
    Store, StoreError, Written,
};
use docmill_protocol::PageRange;

impl Store for Catalog {
    fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, StoreError> {
        Ok(Catalog::begin_run(self, owner, options)?)
    }

    fn end_run(&mut self, run: i64, totals: &str, exit_code: i32) -> Result<(), StoreError> {
        Ok(Catalog::end_run(self, run, totals, exit_code)?)
    }

    fn recover_interrupted(&mut self) -> Result<u64, StoreError> {
        // One index run per SQLite file at a time (the run lock), so every
        // running job at the start of a run was left by a dead one.
        Ok(Catalog::recover_interrupted(self)?)
    }

    fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, StoreError> {
        Ok(Catalog::upsert_found(self, found, run, retry)?)
    }

    fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, StoreError> {
        Ok(Catalog::remove_missing(self, roots, run)?)
    }

    fn pending(&mut self) -> Result<Vec<QueuedDoc>, StoreError> {
        // Expired leases are offered again, as the shared store does.
        for table in ["documents", "chunks"] {
            self.connection()
                .execute(
                    &format!(
                        "UPDATE {table} SET status = 'pending', interrupted = interrupted + 1,
                             lease_owner = NULL, lease_expires = NULL
                         WHERE status = 'running' AND lease_expires < ?1"
                    ),
                    params![now_ms()],
                )
                .map_err(CatalogError::from)?;
        }
        Ok(Catalog::pending(self)?)
    }

    fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, StoreError> {
        let now = now_ms();
        {
            // An expired lease goes back to the queue first, its attempt
            // counted as interrupted; the catalog's claim then takes it.
            let tx = self
                .connection()
                .transaction()
                .map_err(CatalogError::from)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE documents SET status = 'pending', interrupted = interrupted + 1,
                             lease_owner = NULL, lease_expires = NULL
                         WHERE id = ?1 AND status = 'running' AND lease_expires < ?2",
                    )
                    .map_err(CatalogError::from)?;
                for &id in docs {
                    stmt.execute(params![id, now]).map_err(CatalogError::from)?;
                }
            }
            tx.commit().map_err(CatalogError::from)?;
        }
        Ok(Catalog::claim(
            self,
            docs,
            owner,
            now + lease.as_millis() as i64,
        )?)
    }

    fn renew(
        &mut self,
        _owner: &str,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        let expires = now_ms() + lease.as_millis() as i64;
        let tx = self
            .connection()
            .transaction()
            .map_err(CatalogError::from)?;
        let mut lost = Vec::new();
        {
            // A chunk job's claim names its document and a token from the
            // chunks' own sequence; a split document is not `running`.
            let mut docs = tx
                .prepare_cached(
                    "UPDATE documents SET lease_expires = ?1
                     WHERE id = ?2 AND lease_token = ?3 AND status = 'running'",
                )
                .map_err(CatalogError::from)?;
            let mut chunks = tx
                .prepare_cached(
                    "UPDATE chunks SET lease_expires = ?1
                     WHERE doc_id = ?2 AND lease_token = ?3 AND status = 'running'",
                )
                .map_err(CatalogError::from)?;
            for (id, claim) in held {
                let n = docs
                    .execute(params![expires, id, claim.token])
                    .map_err(CatalogError::from)?
                    + chunks
                        .execute(params![expires, id, claim.token])
                        .map_err(CatalogError::from)?;
                if n == 0 {
                    lost.push(*id);
                }
            }
        }
        tx.commit().map_err(CatalogError::from)?;
        Ok(lost)
    }

    fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, StoreError> {
        Ok(Catalog::commit(self, jobs)?)
    }

    fn chunks(&self) -> bool {
        true
    }

    fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, StoreError> {
        Ok(Catalog::split(self, doc, claim, page_count, ranges)?)
    }

    fn unsplit(&mut self, doc: i64) -> Result<(), StoreError> {
        Ok(Catalog::unsplit(self, doc)?)
    }

    fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let now = now_ms();
        self.connection()
            .execute(
                "UPDATE chunks SET status = 'pending', interrupted = interrupted + 1,
                     lease_owner = NULL, lease_expires = NULL
                 WHERE doc_id = ?1 AND first = ?2 AND status = 'running' AND lease_expires < ?3",
                params![doc, first, now],
            )
            .map_err(CatalogError::from)?;
        let expires = now + lease.as_millis() as i64;
        Ok(Catalog::claim_chunk(self, doc, first, owner, expires)?)
    }

    fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), StoreError> {
        Ok(Catalog::restat(self, doc, size, mtime_ns)?)
    }

    fn record_sample(&mut self, run: i64, snap: &Snapshot) -> Result<(), StoreError> {
        Ok(Catalog::record_sample(self, run, snap)?)
    }

    fn failed_in_run(&mut self, run: i64) -> Result<u64, StoreError> {
        Ok(Catalog::failed_in_run(self, run)?)
    }

    fn held_elsewhere(&mut self, owner: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .connection()
            .query_row(
                "SELECT count(*) FROM documents
                 WHERE status = 'running' AND lease_owner IS NOT ?1 AND lease_expires >= ?2",
                params![owner, now_ms()],
                |r| r.get(0),
            )
            .map_err(CatalogError::from)?;
        Ok(n as u64)
    }

    fn search(&mut self, query: &str, limit: usize) -> Result<Vec<SearchHit>, StoreError> {
        Ok(Catalog::search(self, query, limit)?)
    }

    fn status(&mut self) -> Result<Status, StoreError> {
        Ok(Catalog::status(self)?)
    }

    fn export(&mut self, out: &mut dyn Write) -> Result<u64, StoreError> {
        Catalog::export(self, out).map_err(|e| match e {
            ExportError::Sql(e) => StoreError::Catalog(CatalogError::Sql(e)),
            ExportError::Write(e) => StoreError::Write(e),
        })
    }

    fn shared(&self) -> bool {
        false
    }
}
