//! Page-range chunk jobs on the embedded store. A document found to be long
//! is `split`: its chunks become jobs with leases of their own (see
//! `leases`), their pages are indexed as they commit but stay hidden, and
//! the commit that ends the last chunk merges the document as
//! `rules::merge` decides. A crash loses at most the chunks in flight.

use docmill_protocol::PageRange;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{SqliteError, SqliteStore};
use crate::store::rules::{self, Ended};
use crate::store::{now_ms, Claim, DocState, Merged, PendingOcr};

impl SqliteStore {
    /// Turns a claimed document into chunk jobs, fenced by its lease: a
    /// supervisor that lost the lease plans nothing. Any earlier plan (and
    /// its waiting pages) goes.
    pub fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, SqliteError> {
        let tx = self.conn.transaction()?;
        let now = now_ms();
        let n = tx.execute(
            "UPDATE documents SET status = 'split', page_count = ?1, outcome = NULL, reason = NULL,
                 lease_owner = NULL, lease_expires = NULL, updated_ms = ?2
             WHERE id = ?3 AND lease_token = ?4 AND status = 'running'",
            params![page_count, now, doc, claim.token],
        )?;
        if n == 1 {
            forget_plan(&tx, doc)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO chunks (doc_id, first, last, status, updated_ms)
                 VALUES (?1, ?2, ?3, 'pending', ?4)",
            )?;
            for r in ranges {
                insert.execute(params![doc, r.first, r.last, now])?;
            }
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Undoes a plan (the file changed under a chunk): the document is
    /// pending again as a whole, and jobs still out on the old chunks will
    /// find nothing to write to.
    pub fn unsplit(&mut self, doc: i64) -> Result<(), SqliteError> {
        let tx = self.conn.transaction()?;
        forget_plan(&tx, doc)?;
        tx.execute(
            "UPDATE documents SET status = 'pending', updated_ms = ?1 WHERE id = ?2 AND status = 'split'",
            params![now_ms(), doc],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// Gives a partial document's failed chunks another round; the document is
/// split again, and seen by `run`.
pub(super) fn retry_failed_chunks(
    tx: &Transaction<'_>,
    doc: i64,
    run: i64,
) -> Result<(), SqliteError> {
    tx.execute(
        "UPDATE chunks SET status = 'pending', attempts = 0
         WHERE doc_id = ?1 AND status IN ('failed', 'quarantined')",
        params![doc],
    )?;
    tx.execute(
        "UPDATE documents SET status = 'split', seen_run = ?1 WHERE id = ?2",
        params![run, doc],
    )?;
    Ok(())
}

pub(super) fn forget_plan(tx: &Transaction<'_>, doc: i64) -> Result<(), SqliteError> {
    // Pages of chunks not merged yet are in `pages` but hidden; they go
    // with their plan.
    tx.execute(
        "DELETE FROM pages WHERE doc_id = ?1 AND EXISTS (
             SELECT 1 FROM chunks c WHERE c.doc_id = ?1 AND c.merged = 0
               AND pages.page BETWEEN c.first AND c.last)",
        params![doc],
    )?;
    tx.execute("DELETE FROM chunks WHERE doc_id = ?1", params![doc])?;
    tx.execute("DELETE FROM chunk_pages WHERE doc_id = ?1", params![doc])?;
    Ok(())
}

/// If every chunk of `doc` has ended, makes the pages of its done chunks
/// searchable and gives the document the state `rules::merge` decides.
pub(super) fn merge(tx: &Transaction<'_>, doc: i64) -> Result<Option<Merged>, SqliteError> {
    let state = tx
        .query_row(
            "SELECT status FROM documents WHERE id = ?1",
            params![doc],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|s| DocState::parse(&s));
    let chunks: Vec<Ended> = {
        let mut stmt = tx.prepare_cached(
            "SELECT first, last, status, outcome, reason, engine, title, author, language
             FROM chunks WHERE doc_id = ?1 ORDER BY first",
        )?;
        let rows = stmt.query_map(params![doc], |r| {
            Ok(Ended {
                first: r.get(0)?,
                last: r.get(1)?,
                state: DocState::parse(&r.get::<_, String>(2)?),
                outcome: r.get(3)?,
                reason: r.get(4)?,
                engine: r.get(5)?,
                title: r.get(6)?,
                author: r.get(7)?,
                language: r.get(8)?,
            })
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let Some(merge) = rules::merge(state, &chunks) else {
        return Ok(None);
    };
    let pages = match &merge.indexed {
        Some(ix) => {
            tx.execute(
                "UPDATE documents SET engine = ?1, title = ?2, author = ?3, language = ?4
                 WHERE id = ?5",
                params![ix.engine, ix.title, ix.author, ix.language, doc],
            )?;
            reveal_pages(tx, doc)?
        }
        None => 0,
    };
    tx.execute(
        "UPDATE documents SET status = ?1, outcome = ?2, reason = ?3, updated_ms = ?4
         WHERE id = ?5",
        params![merge.state, merge.outcome, merge.reason, now_ms(), doc],
    )?;
    let ocr = if merge.state == DocState::Done {
        pending_ocr(tx, doc)?
    } else {
        None
    };
    Ok(Some(Merged {
        status: merge.state,
        pages,
        ocr,
    }))
}

/// The pages of `doc` flagged for OCR (bit 2) and not recognised (bit 3),
/// with the hash that keys the cache; None when there are none or no hash.
fn pending_ocr(tx: &Transaction<'_>, doc: i64) -> Result<Option<PendingOcr>, SqliteError> {
    let (hash, total): (Option<String>, Option<i64>) = tx.query_row(
        "SELECT content_hash, page_count FROM documents WHERE id = ?1",
        params![doc],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some(hash) = hash else {
        return Ok(None);
    };
    let mut stmt = tx.prepare_cached(
        "SELECT page FROM pages WHERE doc_id = ?1 AND flags & 4 != 0 AND flags & 8 = 0
         ORDER BY page",
    )?;
    let pages: Vec<u32> = stmt
        .query_map(params![doc], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok((!pages.is_empty()).then(|| PendingOcr {
        hash,
        page_total: total.map_or(0, |t| t as u32),
        pages,
    }))
}

/// Makes the pages of a document's done chunks its own and returns how many
/// became searchable: those of chunks not merged before (all of them,
/// unless failed chunks of a partial document were retried).
fn reveal_pages(tx: &Transaction<'_>, doc: i64) -> Result<u64, SqliteError> {
    // Pages outside the chunks that are done belong to an older text of the
    // file: they give way. Chunk pages left in `chunk_pages` by a run of an
    // older docmill (which indexed them only here) move in now.
    tx.execute(
        "DELETE FROM pages WHERE doc_id = ?1 AND NOT EXISTS (
             SELECT 1 FROM chunks c WHERE c.doc_id = ?1 AND c.status = 'done'
               AND pages.page BETWEEN c.first AND c.last)",
        params![doc],
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO pages (doc_id, page, text, flags)
         SELECT doc_id, page, text, flags FROM chunk_pages WHERE doc_id = ?1 ORDER BY page",
        params![doc],
    )?;
    tx.execute("DELETE FROM chunk_pages WHERE doc_id = ?1", params![doc])?;
    let pages = tx.query_row(
        "SELECT count(*) FROM pages p JOIN chunks c
           ON c.doc_id = p.doc_id AND p.page BETWEEN c.first AND c.last
         WHERE p.doc_id = ?1 AND c.status = 'done' AND c.merged = 0",
        params![doc],
        |r| r.get::<_, i64>(0),
    )? as u64;
    tx.execute(
        "UPDATE chunks SET merged = 1 WHERE doc_id = ?1 AND status = 'done'",
        params![doc],
    )?;
    Ok(pages)
}
