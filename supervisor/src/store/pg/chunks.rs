//! Page-range chunk jobs on the shared store: a long PDF's chunks have
//! leases of their own (see `leases`), so they run on any machines; their
//! pages wait in `chunk_pages` until the commit that ends the last chunk,
//! on whichever machine, merges the document as `rules::merge` decides.

use docmill_protocol::PageRange;
use postgres::Transaction;

use super::{pg_text, summary_texts, PageColumns, PgStore, NOW_MS};
use crate::store::rules::{self, attempt_of, Ended};
use crate::store::{
    Claim, DocState, Finished, FinishedResult, Merged, PendingOcr, StoreError, Written,
};

impl PgStore {
    pub(super) fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, StoreError> {
        let mut tx = self.client.transaction()?;
        let n = tx.execute(
            &format!(
                "UPDATE documents SET status = 'split', page_count = $1, outcome = NULL,
                     reason = NULL, lease_owner = NULL, lease_expires = NULL,
                     updated_ms = {NOW_MS}
                 WHERE id = $2 AND lease_token = $3 AND status = 'running'"
            ),
            &[&i64::from(page_count), &doc, &claim.token],
        )?;
        if n == 1 {
            forget_plan(&mut tx, doc)?;
            let firsts: Vec<i64> = ranges.iter().map(|r| i64::from(r.first)).collect();
            let lasts: Vec<i64> = ranges.iter().map(|r| i64::from(r.last)).collect();
            tx.execute(
                &format!(
                    "INSERT INTO chunks (doc_id, first, last, status, updated_ms)
                     SELECT $1, f, l, 'pending', {NOW_MS}
                     FROM unnest($2::bigint[], $3::bigint[]) AS x(f, l)"
                ),
                &[&doc, &firsts, &lasts],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    pub(super) fn unsplit(&mut self, doc: i64) -> Result<(), StoreError> {
        let mut tx = self.client.transaction()?;
        forget_plan(&mut tx, doc)?;
        tx.execute(
            &format!(
                "UPDATE documents SET status = 'pending', updated_ms = {NOW_MS}
                 WHERE id = $1 AND status = 'split'"
            ),
            &[&doc],
        )?;
        tx.commit()?;
        Ok(())
    }
}

pub(super) fn forget_plan(tx: &mut Transaction<'_>, doc: i64) -> Result<(), postgres::Error> {
    tx.execute("DELETE FROM chunks WHERE doc_id = $1", &[&doc])?;
    tx.execute("DELETE FROM chunk_pages WHERE doc_id = $1", &[&doc])?;
    Ok(())
}

/// Gives a partial document's failed chunks another round; the document is
/// split again, and seen by `run`.
pub(super) fn retry_failed_chunks(
    tx: &mut Transaction<'_>,
    doc: i64,
    run: i64,
) -> Result<(), postgres::Error> {
    tx.execute(
        "UPDATE chunks SET status = 'pending', attempts = 0
         WHERE doc_id = $1 AND status IN ('failed', 'quarantined')",
        &[&doc],
    )?;
    tx.execute(
        "UPDATE documents SET status = 'split', seen_run = $1 WHERE id = $2",
        &[&run, &doc],
    )?;
    Ok(())
}

/// Writes one chunk job's result, fenced by its token; merges the document
/// when this was its last open chunk. The document's row is locked first:
/// two machines ending its last two chunks at once would otherwise each
/// see the other's chunk still open, and neither would merge.
pub(super) fn write_chunk(
    tx: &mut Transaction<'_>,
    job: &Finished,
    range: PageRange,
) -> Result<Written, postgres::Error> {
    tx.query_opt(
        "SELECT 1 FROM documents WHERE id = $1 FOR UPDATE",
        &[&job.doc],
    )?;
    let first = i64::from(range.first);
    let token = job.claim.token;
    let n = match &job.result {
        FinishedResult::Recognised { key, pages } => {
            let n = tx.execute(
                &format!(
                    "UPDATE chunks SET status = 'done', outcome = 'done', reason = NULL,
                         engine = 'tesseract', lease_owner = NULL, lease_expires = NULL,
                         updated_ms = {NOW_MS}
                     WHERE doc_id = $1 AND first = $2 AND lease_token = $3 AND status = 'running'"
                ),
                &[&job.doc, &first, &token],
            )?;
            if n == 1 {
                super::ocr::recognised(tx, job.doc, key, pages)?;
            }
            n
        }
        FinishedResult::Done { summary, pages }
        | FinishedResult::Flagged { summary, pages, .. } => {
            let [title, author, language] = summary_texts(summary);
            let n = tx.execute(
                &format!(
                    "UPDATE chunks SET status = 'done', outcome = 'done', reason = NULL, engine = $1,
                         title = $2, author = $3, language = $4, lease_owner = NULL,
                         lease_expires = NULL, updated_ms = {NOW_MS}
                     WHERE doc_id = $5 AND first = $6 AND lease_token = $7 AND status = 'running'"
                ),
                &[
                    &summary.engine,
                    &title,
                    &author,
                    &language,
                    &job.doc,
                    &first,
                    &token,
                ],
            )?;
            if n == 1 {
                // A text chunk that flagged pages: the merge finds them by
                // the document's hash.
                if let Some(hash) = &summary.content_hash {
                    tx.execute(
                        "UPDATE documents SET content_hash = $1 WHERE id = $2",
                        &[hash, &job.doc],
                    )?;
                }
                tx.execute(
                    "DELETE FROM chunk_pages WHERE doc_id = $1 AND page BETWEEN $2 AND $3",
                    &[&job.doc, &first, &i64::from(range.last)],
                )?;
                let inside = PageColumns::of(pages.iter().filter(|(p, _, _)| range.contains(*p)));
                tx.execute(
                    "INSERT INTO chunk_pages (doc_id, page, text, flags)
                     SELECT $1, p, t, f FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS x(p, t, f)",
                    &[&job.doc, &inside.numbers, &inside.texts(), &inside.flags],
                )?;
            }
            n
        }
        FinishedResult::Failed {
            outcome,
            reason,
            status,
            counts,
        } => tx.execute(
            &format!(
                "UPDATE chunks SET status = $1, outcome = $2, reason = $3, attempts = attempts + $4,
                     lease_owner = NULL, lease_expires = NULL, updated_ms = {NOW_MS}
                 WHERE doc_id = $5 AND first = $6 AND lease_token = $7 AND status = 'running'"
            ),
            &[
                &status.as_str(),
                &outcome.as_str(),
                &pg_text(reason).as_ref(),
                &i64::from(*counts),
                &job.doc,
                &first,
                &token,
            ],
        )?,
        FinishedResult::Released => tx.execute(
            &format!(
                "UPDATE chunks SET status = 'pending', lease_owner = NULL, lease_expires = NULL,
                     updated_ms = {NOW_MS}
                 WHERE doc_id = $1 AND first = $2 AND lease_token = $3 AND status = 'running'"
            ),
            &[&job.doc, &first, &token],
        )?,
    };
    if n == 0 {
        return Ok(Written::Lost);
    }
    // A released chunk is pending again and recorded no attempt.
    let Some(tried) = attempt_of(&job.result) else {
        return Ok(Written::Held);
    };
    tx.execute(
        "INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, engine, worker_pid, started_ms, ended_ms, chunk_first)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &job.doc,
            &job.run,
            &i64::from(job.attempt),
            &tried.outcome.as_str(),
            &tried.reason.map(pg_text),
            &tried.engine,
            &i64::from(job.worker_pid),
            &job.started_ms,
            &job.ended_ms,
            &first,
        ],
    )?;
    let merged = if super::ocr::has_ocr_jobs(tx, job.doc)? {
        super::ocr::merge(tx, job.doc)?
    } else {
        merge(tx, job.doc)?
    };
    Ok(match merged {
        Some(m) => Written::Merged(m),
        None => Written::Held,
    })
}

/// If every chunk of `doc` has ended, moves the pages of its done chunks
/// into the index in page order and gives the document the state
/// `rules::merge` decides.
fn merge(tx: &mut Transaction<'_>, doc: i64) -> Result<Option<Merged>, postgres::Error> {
    let state = tx
        .query_opt("SELECT status FROM documents WHERE id = $1", &[&doc])?
        .and_then(|r| DocState::parse(r.get(0)));
    let chunks: Vec<Ended> = tx
        .query(
            "SELECT first, last, status, outcome, reason, engine, title, author, language
             FROM chunks WHERE doc_id = $1 ORDER BY first",
            &[&doc],
        )?
        .iter()
        .map(|r| Ended {
            first: r.get::<_, i64>(0) as u32,
            last: r.get::<_, i64>(1) as u32,
            state: DocState::parse(r.get(2)),
            outcome: r.get(3),
            reason: r.get(4),
            engine: r.get(5),
            title: r.get(6),
            author: r.get(7),
            language: r.get(8),
        })
        .collect();
    let Some(merge) = rules::merge(state, &chunks) else {
        return Ok(None);
    };
    let pages = match &merge.indexed {
        Some(ix) => {
            tx.execute(
                "UPDATE documents SET engine = $1, title = $2, author = $3, language = $4
                 WHERE id = $5",
                &[&ix.engine, &ix.title, &ix.author, &ix.language, &doc],
            )?;
            reveal_pages(tx, doc)?
        }
        None => 0,
    };
    tx.execute(
        &format!(
            "UPDATE documents SET status = $1, outcome = $2, reason = $3, updated_ms = {NOW_MS}
             WHERE id = $4"
        ),
        &[&merge.state.as_str(), &merge.outcome, &merge.reason, &doc],
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
fn pending_ocr(tx: &mut Transaction<'_>, doc: i64) -> Result<Option<PendingOcr>, postgres::Error> {
    let row = tx.query_one(
        "SELECT content_hash, page_count FROM documents WHERE id = $1",
        &[&doc],
    )?;
    let (hash, total): (Option<String>, Option<i64>) = (row.get(0), row.get(1));
    let Some(hash) = hash else {
        return Ok(None);
    };
    let pages: Vec<u32> = tx
        .query(
            "SELECT page FROM pages WHERE doc_id = $1 AND flags & 4 <> 0 AND flags & 8 = 0
             ORDER BY page",
            &[&doc],
        )?
        .iter()
        .map(|r| r.get::<_, i64>(0) as u32)
        .collect();
    Ok((!pages.is_empty()).then(|| PendingOcr {
        hash,
        page_total: total.map_or(0, |t| t as u32),
        pages,
    }))
}

/// Moves the pages waiting in `chunk_pages` into the index and returns how
/// many moved.
fn reveal_pages(tx: &mut Transaction<'_>, doc: i64) -> Result<u64, postgres::Error> {
    // Pages of an older text of the file (or of a chunk merged before, in
    // a partial document retried) give way to the new ones.
    tx.execute(
        "DELETE FROM pages WHERE doc_id = $1 AND NOT EXISTS (
             SELECT 1 FROM chunks c WHERE c.doc_id = $1 AND c.merged
               AND pages.page BETWEEN c.first AND c.last)",
        &[&doc],
    )?;
    let pages = tx.execute(
        "INSERT INTO pages (doc_id, page, text, flags)
         SELECT doc_id, page, text, flags FROM chunk_pages WHERE doc_id = $1 ORDER BY page",
        &[&doc],
    )?;
    tx.execute("DELETE FROM chunk_pages WHERE doc_id = $1", &[&doc])?;
    tx.execute(
        "UPDATE chunks SET merged = true WHERE doc_id = $1 AND status = 'done'",
        &[&doc],
    )?;
    Ok(pages)
}
