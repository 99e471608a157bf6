//! The embedded store behind the storage trait: each operation is one of
//! SqliteStore's own (leases in `leases`, discovery in `discover`, commits
//! in `jobs` and `chunks`, reading in `query`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{ExportError, SqliteError, SqliteStore};
use crate::metrics::Snapshot;
use crate::store::{
    Claim, DiscoverCounts, Finished, Found, PageMatches, PageSearch, QueuedDoc, RetryPolicy,
    RunRow, Status, Store, StoreError, Written,
};
use docmill_protocol::PageRange;

impl Store for SqliteStore {
    fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, StoreError> {
        Ok(SqliteStore::begin_run(self, owner, options)?)
    }

    fn end_run(&mut self, run: i64, totals: &str, exit_code: i32) -> Result<(), StoreError> {
        Ok(SqliteStore::end_run(self, run, totals, exit_code)?)
    }

    fn recover_interrupted(&mut self) -> Result<u64, StoreError> {
        Ok(SqliteStore::recover_interrupted(self)?)
    }

    fn upsert_found(
        &mut self,
        found: &[Found],
        run: i64,
        retry: RetryPolicy,
    ) -> Result<DiscoverCounts, StoreError> {
        Ok(SqliteStore::upsert_found(self, found, run, retry)?)
    }

    fn remove_missing(&mut self, roots: &[PathBuf], run: i64) -> Result<u64, StoreError> {
        Ok(SqliteStore::remove_missing(self, roots, run)?)
    }

    fn pending(&mut self) -> Result<Vec<QueuedDoc>, StoreError> {
        Ok(SqliteStore::pending(self)?)
    }

    fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, StoreError> {
        Ok(SqliteStore::claim(self, docs, owner, lease)?)
    }

    fn renew(
        &mut self,
        _owner: &str,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(SqliteStore::renew(self, held, lease)?)
    }

    fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, StoreError> {
        Ok(SqliteStore::commit(self, jobs)?)
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
        Ok(SqliteStore::split(self, doc, claim, page_count, ranges)?)
    }

    fn unsplit(&mut self, doc: i64) -> Result<(), StoreError> {
        Ok(SqliteStore::unsplit(self, doc)?)
    }

    fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(SqliteStore::claim_chunk(self, doc, first, owner, lease)?)
    }

    fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), StoreError> {
        Ok(SqliteStore::restat(self, doc, size, mtime_ns)?)
    }

    fn record_sample(&mut self, run: i64, snap: &Snapshot) -> Result<(), StoreError> {
        Ok(SqliteStore::record_sample(self, run, snap)?)
    }

    fn failed_in_run(&mut self, run: i64) -> Result<u64, StoreError> {
        Ok(SqliteStore::failed_in_run(self, run)?)
    }
    fn failures(
        &mut self,
        seen_by: Option<i64>,
    ) -> Result<Vec<(i64, crate::store::DocState)>, StoreError> {
        Ok(SqliteStore::failures(self, seen_by)?)
    }

    fn held_elsewhere(&mut self, owner: &str) -> Result<u64, StoreError> {
        Ok(SqliteStore::held_elsewhere(self, owner)?)
    }

    fn search(&mut self, search: &PageSearch<'_>) -> Result<PageMatches, StoreError> {
        Ok(SqliteStore::search(self, search)?)
    }

    fn status(&mut self) -> Result<Status, StoreError> {
        Ok(SqliteStore::status(self)?)
    }

    fn export(&mut self, out: &mut dyn Write) -> Result<u64, StoreError> {
        SqliteStore::export(self, out).map_err(|e| match e {
            ExportError::Sql(e) => StoreError::Sqlite(SqliteError::Sql(e)),
            ExportError::Write(e) => StoreError::Write(e),
        })
    }

    fn shared(&self) -> bool {
        false
    }

    fn forget(&mut self, paths: &[PathBuf]) -> Result<u64, StoreError> {
        Ok(SqliteStore::forget(self, paths)?)
    }

    fn runs(&mut self) -> Result<Vec<RunRow>, StoreError> {
        Ok(SqliteStore::runs(self)?)
    }

    fn plan_ocr(
        &mut self,
        doc: i64,
        hash: &str,
        ocr: &crate::store::OcrFollowUp,
    ) -> Result<bool, StoreError> {
        Ok(SqliteStore::plan_ocr(self, doc, hash, ocr)?)
    }

    fn ocr_jobs(&self) -> bool {
        true
    }

    fn ocr_cached(
        &mut self,
        hash: &str,
        key: &str,
        pages: &[u32],
    ) -> Result<Vec<crate::store::OcrPage>, StoreError> {
        Ok(SqliteStore::ocr_cached(self, hash, key, pages)?)
    }
}
