//! Leases on the embedded store, all in one place. A claim sets an owner,
//! a token and an expiry on a document (or one chunk of a split document);
//! renewal extends it while the token still matches; a lease that expired
//! is taken back before anyone claims the job again, and the jobs a dead
//! run left running are taken back at the start of the next. A job taken
//! back is pending again, its attempt counted as interrupted, never
//! against the document.

use std::time::Duration;

use rusqlite::{params, Connection, Params, Transaction};

use super::{SqliteError, SqliteStore};
use crate::store::{expiry_ms, now_ms, Claim, QueuedDoc};
use docmill_protocol::PageRange;

/// Puts the running rows of `table` that `filter` selects back in the
/// queue, counted as interrupted. The token stays: tokens only grow.
fn take_back(
    conn: &Connection,
    table: &str,
    filter: &str,
    params: impl Params,
) -> Result<u64, SqliteError> {
    Ok(conn.execute(
        &format!(
            "UPDATE {table} SET status = 'pending', interrupted = interrupted + 1,
                 lease_owner = NULL, lease_expires = NULL
             WHERE status = 'running' AND {filter}"
        ),
        params,
    )? as u64)
}

impl SqliteStore {
    /// Puts right what a dead supervisor left: its running jobs go back to
    /// the queue. One index run per SQLite file at a time (the run lock),
    /// so every running job at the start of a run was left by a dead one.
    pub fn recover_interrupted(&mut self) -> Result<u64, SqliteError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for table in ["documents", "chunks"] {
            n += take_back(&tx, table, "true", [])?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Every document a claim may take, in path order, then the chunks of
    /// split documents, in path and page order. Expired leases are offered
    /// again, as the shared store does.
    pub fn pending(&mut self) -> Result<Vec<QueuedDoc>, SqliteError> {
        let now = now_ms();
        for table in ["documents", "chunks"] {
            take_back(&self.conn, table, "lease_expires < ?1", [now])?;
        }
        let mut docs = self.pending_documents()?;
        docs.extend(self.pending_chunks()?);
        Ok(docs)
    }

    fn pending_documents(&self) -> Result<Vec<QueuedDoc>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, path, size, mtime_ns, format, attempts FROM documents
             WHERE status = 'pending' ORDER BY path",
        )?;
        let rows = stmt.query_map([], queued)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn pending_chunks(&self) -> Result<Vec<QueuedDoc>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.path, d.size, d.mtime_ns, d.format, c.attempts, c.first, c.last,
                    coalesce(d.page_count, 0), c.ocr_pages
             FROM chunks c JOIN documents d ON d.id = c.doc_id
             WHERE d.status = 'split' AND c.status = 'pending'
             ORDER BY d.path, c.first",
        )?;
        let rows = stmt.query_map([], |r| {
            let mut doc = queued(r)?;
            doc.page_total = r.get(8)?;
            doc.set_chunk(PageRange {
                first: r.get(6)?,
                last: r.get(7)?,
            });
            doc.ocr_pages = r
                .get::<_, Option<String>>(9)?
                .map(|l| crate::store::rules::ocr::parse_page_list(&l));
            Ok(doc)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Claims pending documents for `owner` for `lease`, taking back
    /// expired leases first. Returns the claims that succeeded, in the order
    /// asked (a document another claimer took first is left out).
    pub fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<(i64, Claim)>, SqliteError> {
        let now = now_ms();
        let expires = expiry_ms(lease);
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(docs.len());
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE documents SET status = 'running', lease_owner = ?1,
                     lease_token = coalesce(lease_token, 0) + 1, lease_expires = ?2
                 WHERE id = ?3 AND status = 'pending'
                 RETURNING lease_token",
            )?;
            for &id in docs {
                take_back(
                    &tx,
                    "documents",
                    "id = ?1 AND lease_expires < ?2",
                    params![id, now],
                )?;
                let mut rows = stmt.query(params![owner, expires, id])?;
                if let Some(row) = rows.next()? {
                    out.push((id, Claim { token: row.get(0)? }));
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Claims the chunk of `doc` starting at page `first`, taking back an
    /// expired lease on it first. Chunk tokens come from one sequence, so a
    /// chunk planned again never accepts a stale job's result.
    pub fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, SqliteError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        take_back(
            &tx,
            "chunks",
            "doc_id = ?1 AND first = ?2 AND lease_expires < ?3",
            params![doc, first, now],
        )?;
        let token = next_token(&tx)?;
        let n = tx.execute(
            "UPDATE chunks SET status = 'running', lease_owner = ?1, lease_token = ?2,
                 lease_expires = ?3
             WHERE doc_id = ?4 AND first = ?5 AND status = 'pending'
               AND EXISTS (SELECT 1 FROM documents WHERE id = ?4 AND status = 'split')",
            params![owner, token, expiry_ms(lease), doc, first],
        )?;
        tx.commit()?;
        Ok((n == 1).then_some(Claim { token }))
    }

    /// Extends the leases in `held` (documents, or chunks named by their
    /// document) whose token still matches; returns the documents whose
    /// lease was lost.
    pub fn renew(
        &mut self,
        held: &[(i64, Claim)],
        lease: Duration,
    ) -> Result<Vec<i64>, SqliteError> {
        let expires = expiry_ms(lease);
        let tx = self.conn.transaction()?;
        let mut lost = Vec::new();
        {
            // A chunk job's claim names its document and a token from the
            // chunks' own sequence; a split document is not `running`.
            let mut docs = tx.prepare_cached(
                "UPDATE documents SET lease_expires = ?1
                 WHERE id = ?2 AND lease_token = ?3 AND status = 'running'",
            )?;
            let mut chunks = tx.prepare_cached(
                "UPDATE chunks SET lease_expires = ?1
                 WHERE doc_id = ?2 AND lease_token = ?3 AND status = 'running'",
            )?;
            for (id, claim) in held {
                let n = docs.execute(params![expires, id, claim.token])?
                    + chunks.execute(params![expires, id, claim.token])?;
                if n == 0 {
                    lost.push(*id);
                }
            }
        }
        tx.commit()?;
        Ok(lost)
    }

    /// Unexpired document leases held by owners other than `owner`.
    pub fn held_elsewhere(&self, owner: &str) -> Result<u64, SqliteError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM documents
             WHERE status = 'running' AND lease_owner IS NOT ?1 AND lease_expires >= ?2",
            params![owner, now_ms()],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}

/// A queued document from the first six columns of a row: id, path,
/// size, mtime, format, attempts.
fn queued(r: &rusqlite::Row<'_>) -> rusqlite::Result<QueuedDoc> {
    Ok(QueuedDoc::from_row(
        r.get(0)?,
        &r.get::<_, Vec<u8>>(1)?,
        r.get(2)?,
        r.get(3)?,
        &r.get::<_, String>(4)?,
        r.get(5)?,
    ))
}

fn next_token(tx: &Transaction<'_>) -> Result<i64, SqliteError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('chunk_token', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    Ok(tx.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'chunk_token'",
        [],
        |r| r.get(0),
    )?)
}
