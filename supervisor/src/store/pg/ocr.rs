//! OCR on the shared store, as on the embedded one: the cache of
//! recognised pages by content hash, the OCR jobs a text job's commit plans
//! (chunk rows that name their pages, claimed by any machine), the pages an
//! OCR job's commit replaces, and the merge that ends the document once
//! its last OCR job has ended, on whichever machine.

use postgres::Transaction;

use super::{pg_text, PgStore, NOW_MS};
use crate::store::rules::ocr as rules;
use crate::store::{DocState, Finished, FinishedResult, Merged, OcrFollowUp, OcrPage, StoreError};

impl PgStore {
    /// See `Store::ocr_cached`.
    pub(super) fn ocr_cached(
        &mut self,
        hash: &str,
        key: &str,
        pages: &[u32],
    ) -> Result<Vec<OcrPage>, StoreError> {
        let wanted: Vec<i64> = pages.iter().map(|&p| i64::from(p)).collect();
        let rows = self.client.query(
            "SELECT page, text, confidence FROM ocr_cache
             WHERE content_hash = $1 AND settings_key = $2 AND page = ANY($3::bigint[])
             ORDER BY page",
            &[&hash, &key, &wanted],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                rules::cached_page(
                    r.get::<_, i64>(0) as u32,
                    r.get(1),
                    r.get::<_, Option<f32>>(2).map(f64::from),
                )
            })
            .collect())
    }
}

impl PgStore {
    /// See `Store::plan_ocr`: the merged text chunks give way to the OCR
    /// jobs (their pages stay). The document's row is locked first, as a
    /// chunk's commit locks it.
    pub(super) fn plan_ocr(
        &mut self,
        doc: i64,
        hash: &str,
        ocr: &OcrFollowUp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.client.transaction()?;
        let done = tx
            .query_opt(
                "SELECT status = 'done' FROM documents WHERE id = $1 FOR UPDATE",
                &[&doc],
            )?
            .is_some_and(|r| r.get::<_, bool>(0));
        if done {
            tx.execute("DELETE FROM chunks WHERE doc_id = $1 AND merged", &[&doc])?;
            tx.execute(
                "UPDATE documents SET content_hash = $1 WHERE id = $2",
                &[&hash, &doc],
            )?;
            plan(&mut tx, doc, ocr)?;
        }
        tx.commit()?;
        Ok(done)
    }
}

/// After a whole document's text job was written: its content hash, the
/// pages the OCR cache held, over the rows just written, and its OCR jobs:
/// the document is `split` until they end.
pub(super) fn follow_up(tx: &mut Transaction<'_>, job: &Finished) -> Result<(), postgres::Error> {
    let FinishedResult::Flagged { summary, ocr, .. } = &job.result else {
        return Ok(());
    };
    let doc = job.doc;
    tx.execute(
        "UPDATE documents SET content_hash = $1 WHERE id = $2",
        &[&summary.content_hash, &doc],
    )?;
    plan(tx, doc, ocr)
}

/// Writes the cached pages and, when there are OCR jobs, makes the
/// document `split` into them.
fn plan(tx: &mut Transaction<'_>, doc: i64, ocr: &OcrFollowUp) -> Result<(), postgres::Error> {
    for p in &ocr.cached {
        write_page(tx, doc, p)?;
    }
    let jobs: Vec<&Vec<u32>> = ocr.jobs.iter().filter(|j| !j.is_empty()).collect();
    if jobs.is_empty() {
        return Ok(());
    }
    super::chunks::forget_plan(tx, doc)?;
    tx.execute(
        &format!("UPDATE documents SET status = 'split', updated_ms = {NOW_MS} WHERE id = $1"),
        &[&doc],
    )?;
    let firsts: Vec<i64> = jobs.iter().map(|j| i64::from(j[0])).collect();
    let lasts: Vec<i64> = jobs.iter().map(|j| i64::from(j[j.len() - 1])).collect();
    let lists: Vec<String> = jobs.iter().map(|j| rules::page_list(j)).collect();
    tx.execute(
        &format!(
            "INSERT INTO chunks (doc_id, first, last, status, updated_ms, ocr_pages)
             SELECT $1, f, l, 'pending', {NOW_MS}, o
             FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS x(f, l, o)"
        ),
        &[&doc, &firsts, &lasts, &lists],
    )?;
    Ok(())
}

/// An OCR job's pages replace their rows, and those recognised go in the
/// cache.
pub(super) fn recognised(
    tx: &mut Transaction<'_>,
    doc: i64,
    key: &str,
    pages: &[OcrPage],
) -> Result<(), postgres::Error> {
    let hash: Option<String> = tx
        .query_opt("SELECT content_hash FROM documents WHERE id = $1", &[&doc])?
        .and_then(|r| r.get(0));
    for p in pages {
        write_page(tx, doc, p)?;
        if let (Some(hash), false) = (&hash, p.flags.failed) {
            tx.execute(
                "INSERT INTO ocr_cache (content_hash, page, settings_key, text, confidence)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (content_hash, page, settings_key)
                 DO UPDATE SET text = excluded.text, confidence = excluded.confidence",
                &[
                    hash,
                    &i64::from(p.page),
                    &key,
                    &pg_text(&p.text).as_ref(),
                    &p.confidence,
                ],
            )?;
        }
    }
    Ok(())
}

/// Whether `doc` waits on OCR jobs (rather than page-range chunks).
pub(super) fn has_ocr_jobs(tx: &mut Transaction<'_>, doc: i64) -> Result<bool, postgres::Error> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM chunks WHERE doc_id = $1 AND ocr_pages IS NOT NULL)",
            &[&doc],
        )?
        .get(0))
}

/// If every OCR job of `doc` has ended, ends the document as
/// `rules::ocr::merge` decides (see the embedded store's).
pub(super) fn merge(tx: &mut Transaction<'_>, doc: i64) -> Result<Option<Merged>, postgres::Error> {
    let jobs: Vec<rules::Ended> = tx
        .query(
            "SELECT status, reason, ocr_pages FROM chunks WHERE doc_id = $1 ORDER BY first",
            &[&doc],
        )?
        .iter()
        .map(|r| rules::Ended {
            state: DocState::parse(r.get(0)),
            reason: r.get(1),
            pages: rules::parse_page_list(&r.get::<_, Option<String>>(2).unwrap_or_default()),
        })
        .collect();
    // Pages OCR could not read (a text page that failed is not OCR's).
    let failed_bit = docmill_protocol::PageFlags {
        failed: true,
        ocr: true,
        ..Default::default()
    }
    .bits();
    let failed_pages: Vec<(u32, String)> = tx
        .query(
            "SELECT page, coalesce(note, '') FROM pages
             WHERE doc_id = $1 AND flags & $2 = $2 ORDER BY page",
            &[&doc, &failed_bit],
        )?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get(1)))
        .collect();
    let Some(end) = rules::merge(&jobs, &failed_pages) else {
        return Ok(None);
    };
    for (page, note) in &end.failed_pages {
        tx.execute(
            "UPDATE pages SET flags = $1, note = $2, ocr_confidence = NULL,
                 outbox = nextval('outbox_seq')
             WHERE doc_id = $3 AND page = $4",
            &[
                &rules::failed_flags().bits(),
                &pg_text(note).as_ref(),
                &doc,
                &i64::from(*page),
            ],
        )?;
    }
    tx.execute(
        "UPDATE chunks SET merged = true WHERE doc_id = $1 AND status = 'done'",
        &[&doc],
    )?;
    tx.execute(
        &format!(
            "UPDATE documents SET status = $1, outcome = $2, reason = $3, updated_ms = {NOW_MS}
             WHERE id = $4"
        ),
        &[&end.state.as_str(), &end.outcome, &end.reason, &doc],
    )?;
    Ok(Some(Merged {
        status: end.state,
        // The pages were counted when their text job committed.
        pages: 0,
        // Its OCR pages are what just ended.
        ocr: None,
    }))
}

/// One page's row as OCR gave it; the index follows by its trigger.
fn write_page(tx: &mut Transaction<'_>, doc: i64, p: &OcrPage) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO pages (doc_id, page, text, flags, ocr_confidence, note)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (doc_id, page) DO UPDATE SET text = excluded.text, flags = excluded.flags,
             ocr_confidence = excluded.ocr_confidence, note = excluded.note,
             outbox = nextval('outbox_seq')",
        &[
            &doc,
            &i64::from(p.page),
            &pg_text(&p.text).as_ref(),
            &p.flags.bits(),
            &p.confidence,
            &p.note.as_deref().map(pg_text),
        ],
    )?;
    Ok(())
}
