//! Leases on the shared store, all in one place. Claims take rows with
//! `FOR UPDATE SKIP LOCKED` and take back expired leases themselves (the
//! attempt counted as interrupted, never against the document), so no
//! reaper runs anywhere; renewal extends a lease while its token matches;
//! expiry is judged by the server's clock alone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use docmill_protocol::PageRange;

use super::{queued, PgStore, NOW_MS};
use crate::store::{Claim, QueuedDoc, StoreError};

impl PgStore {
    pub(super) fn recover_interrupted(&mut self) -> Result<u64, StoreError> {
        // Other supervisors may be running: their jobs are theirs until
        // their leases expire, and the claim takes those back itself.
        Ok(0)
    }

    pub(super) fn pending(&mut self) -> Result<Vec<QueuedDoc>, StoreError> {
        let rows = self.client.query(
            &format!(
                "SELECT id, path, size, mtime_ns, format, attempts FROM documents
                 WHERE status = 'pending' OR (status = 'running' AND lease_expires < {NOW_MS})
                 ORDER BY path"
            ),
            &[],
        )?;
        let mut docs: Vec<QueuedDoc> = rows.iter().map(queued).collect();
        let chunks = self.client.query(
            &format!(
                "SELECT d.id, d.path, d.size, d.mtime_ns, d.format, c.attempts, c.first, c.last,
                        coalesce(d.page_count, 0), c.ocr_pages
                 FROM chunks c JOIN documents d ON d.id = c.doc_id
                 WHERE d.status = 'split'
                   AND (c.status = 'pending' OR (c.status = 'running' AND c.lease_expires < {NOW_MS}))
                 ORDER BY d.path, c.first"
            ),
            &[],
        )?;
        for r in &chunks {
            let mut doc = queued(r);
            doc.page_total = r.get::<_, i64>(8) as u32;
            doc.set_chunk(PageRange {
                first: r.get::<_, i64>(6) as u32,
                last: r.get::<_, i64>(7) as u32,
            });
            doc.ocr_pages = r
                .get::<_, Option<String>>(9)
                .map(|l| crate::store::rules::ocr::parse_page_list(&l));
            docs.push(doc);
        }
        Ok(docs)
    }

    pub(super) fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, StoreError> {
        let lease_ms = lease.as_millis() as i64;
        // A running row here has an expired lease: its holder is gone (or
        // stalled past it), so the attempt counts as interrupted.
        let rows = self.client.query(
            &format!(
                "UPDATE documents d SET status = 'running', lease_owner = $1,
                     lease_token = d.lease_token + 1, lease_expires = {NOW_MS} + $2,
                     interrupted = d.interrupted + (d.status = 'running')::int
                 WHERE d.id IN (
                     SELECT id FROM documents
                     WHERE id = ANY($3)
                       AND (status = 'pending' OR (status = 'running' AND lease_expires < {NOW_MS}))
                     FOR UPDATE SKIP LOCKED)
                 RETURNING d.id, d.lease_token"
            ),
            &[&owner, &lease_ms, &docs],
        )?;
        let got: HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(docs
            .iter()
            .filter_map(|id| got.get(id).map(|&token| (*id, Claim { token })))
            .collect())
    }

    pub(super) fn renew(
        &mut self,
        owner: &str,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = held.iter().map(|(id, _)| *id).collect();
        let tokens: Vec<i64> = held.iter().map(|(_, c)| c.token).collect();
        // A document's lease, or one of its chunks': the same renewal on
        // each table, keyed by the document id.
        let mut kept = HashSet::new();
        for (table, id) in [("documents", "id"), ("chunks", "doc_id")] {
            let rows = self.client.query(
                &format!(
                    "UPDATE {table} t SET lease_expires = {NOW_MS} + $1
                     FROM unnest($2::bigint[], $3::bigint[]) AS h(id, token)
                     WHERE t.{id} = h.id AND t.lease_token = h.token AND t.status = 'running'
                       AND t.lease_owner = $4
                     RETURNING t.{id}"
                ),
                &[&(lease.as_millis() as i64), &ids, &tokens, &owner],
            )?;
            kept.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        }
        Ok(ids.into_iter().filter(|id| !kept.contains(id)).collect())
    }

    pub(super) fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        // As for documents: an expired lease is taken back, counted as
        // interrupted.
        let row = self.client.query_opt(
            &format!(
                "UPDATE chunks c SET status = 'running', lease_owner = $1,
                     lease_token = nextval('chunk_token_seq'), lease_expires = {NOW_MS} + $2,
                     interrupted = c.interrupted + (c.status = 'running')::int
                 WHERE (c.doc_id, c.first) IN (
                     SELECT doc_id, first FROM chunks
                     WHERE doc_id = $3 AND first = $4
                       AND (status = 'pending' OR (status = 'running' AND lease_expires < {NOW_MS}))
                     FOR UPDATE SKIP LOCKED)
                   AND EXISTS (SELECT 1 FROM documents WHERE id = $3 AND status = 'split')
                 RETURNING c.lease_token"
            ),
            &[&owner, &(lease.as_millis() as i64), &doc, &i64::from(first)],
        )?;
        Ok(row.map(|r| Claim { token: r.get(0) }))
    }

    pub(super) fn held_elsewhere(&mut self, owner: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM documents
                             WHERE status = 'running' AND lease_owner IS DISTINCT FROM $1
                               AND lease_expires >= {NOW_MS})
                          + (SELECT count(*) FROM chunks
                             WHERE status = 'running' AND lease_owner IS DISTINCT FROM $1
                               AND lease_expires >= {NOW_MS})"
                ),
                &[&owner],
            )?
            .get(0);
        Ok(n as u64)
    }
}
