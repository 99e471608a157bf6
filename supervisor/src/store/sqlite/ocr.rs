//! OCR on the embedded store: the cache of recognised pages by content
//! hash, the OCR jobs a text job's commit plans (chunk rows that name their
//! pages), the pages an OCR job's commit replaces, and the merge that ends
//! the document once its last OCR job has ended.

use docmill_protocol::PageFlags;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{SqliteError, SqliteStore};
use crate::store::rules::ocr as rules;
use crate::store::{now_ms, DocState, Merged, OcrFollowUp, OcrPage};

impl SqliteStore {
    /// See `Store::plan_ocr`: the merged text chunks give way to the OCR
    /// jobs (their pages stay).
    pub fn plan_ocr(
        &mut self,
        doc: i64,
        hash: &str,
        ocr: &OcrFollowUp,
    ) -> Result<bool, SqliteError> {
        let tx = self.conn.transaction()?;
        let done = tx
            .query_row(
                "SELECT status = 'done' FROM documents WHERE id = ?1",
                params![doc],
                |r| r.get::<_, bool>(0),
            )
            .optional()?
            .unwrap_or(false);
        if done {
            tx.execute(
                "DELETE FROM chunks WHERE doc_id = ?1 AND merged = 1",
                params![doc],
            )?;
            follow_up(&tx, doc, true, Some(hash), ocr)?;
        }
        tx.commit()?;
        Ok(done)
    }

    /// See `Store::ocr_cached`.
    pub fn ocr_cached(
        &self,
        hash: &str,
        key: &str,
        pages: &[u32],
    ) -> Result<Vec<OcrPage>, SqliteError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT text, confidence FROM ocr_cache
             WHERE content_hash = ?1 AND page = ?2 AND settings_key = ?3",
        )?;
        let mut out = Vec::new();
        for &page in pages {
            let hit = stmt
                .query_row(params![hash, page, key], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<f64>>(1)?))
                })
                .optional()?;
            if let Some((text, confidence)) = hit {
                out.push(rules::cached_page(page, text, confidence));
            }
        }
        Ok(out)
    }
}

/// Writes what a text job with flagged pages adds to its pages (already
/// written): the file's content hash, the pages the cache held, and, for a
/// whole document with pages left to recognise, its OCR jobs: the document
/// is `split` until they end.
pub(super) fn follow_up(
    tx: &Transaction<'_>,
    doc: i64,
    whole: bool,
    hash: Option<&str>,
    ocr: &OcrFollowUp,
) -> Result<(), SqliteError> {
    tx.execute(
        "UPDATE documents SET content_hash = ?1 WHERE id = ?2",
        params![hash, doc],
    )?;
    for p in &ocr.cached {
        write_page(tx, doc, p)?;
    }
    if !whole || ocr.jobs.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    super::chunks::forget_plan(tx, doc)?;
    tx.execute(
        "UPDATE documents SET status = 'split', updated_ms = ?1 WHERE id = ?2",
        params![now, doc],
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO chunks (doc_id, first, last, status, updated_ms, ocr_pages)
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
    )?;
    for pages in ocr.jobs.iter().filter(|j| !j.is_empty()) {
        let (first, last) = (pages[0], pages[pages.len() - 1]);
        insert.execute(params![doc, first, last, now, rules::page_list(pages)])?;
    }
    Ok(())
}

/// An OCR job's pages replace their rows (the full-text index follows by
/// its triggers), and those recognised go in the cache.
pub(super) fn recognised(
    tx: &Transaction<'_>,
    doc: i64,
    key: &str,
    pages: &[OcrPage],
) -> Result<(), SqliteError> {
    let hash: Option<String> = tx
        .query_row(
            "SELECT content_hash FROM documents WHERE id = ?1",
            params![doc],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let mut cache = tx.prepare_cached(
        "INSERT OR REPLACE INTO ocr_cache (content_hash, page, settings_key, text, confidence)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for p in pages {
        write_page(tx, doc, p)?;
        if let (Some(hash), false) = (&hash, p.flags.failed) {
            cache.execute(params![hash, p.page, key, p.text, p.confidence])?;
        }
    }
    Ok(())
}

/// One page's row as OCR gave it.
fn write_page(tx: &Transaction<'_>, doc: i64, p: &OcrPage) -> Result<(), SqliteError> {
    tx.prepare_cached(
        "INSERT INTO pages (doc_id, page, text, flags, ocr_confidence, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (doc_id, page) DO UPDATE SET text = excluded.text, flags = excluded.flags,
             ocr_confidence = excluded.ocr_confidence, note = excluded.note",
    )?
    .execute(params![
        doc,
        p.page,
        p.text,
        p.flags.bits(),
        p.confidence,
        p.note
    ])?;
    Ok(())
}

/// Whether `doc` waits on OCR jobs (rather than page-range chunks).
pub(super) fn has_ocr_jobs(tx: &Transaction<'_>, doc: i64) -> Result<bool, SqliteError> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE doc_id = ?1 AND ocr_pages IS NOT NULL)",
        params![doc],
        |r| r.get::<_, bool>(0),
    )?)
}

/// If every OCR job of `doc` has ended, ends the document as
/// `rules::ocr::merge` decides: the pages of a job that failed are marked
/// failed with its reason, and its text-layer pages stay.
pub(super) fn merge(tx: &Transaction<'_>, doc: i64) -> Result<Option<Merged>, SqliteError> {
    let jobs: Vec<rules::Ended> = {
        let mut stmt = tx.prepare_cached(
            "SELECT status, reason, ocr_pages FROM chunks WHERE doc_id = ?1 ORDER BY first",
        )?;
        let rows = stmt.query_map(params![doc], |r| {
            Ok(rules::Ended {
                state: DocState::parse(&r.get::<_, String>(0)?),
                reason: r.get(1)?,
                pages: rules::parse_page_list(&r.get::<_, Option<String>>(2)?.unwrap_or_default()),
            })
        })?;
        rows.collect::<Result<_, _>>()?
    };
    // Pages OCR could not read (a text page that failed is not OCR's).
    let failed_bit = PageFlags {
        failed: true,
        ocr: true,
        ..PageFlags::default()
    }
    .bits();
    let failed_pages: Vec<(u32, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT page, coalesce(note, '') FROM pages
             WHERE doc_id = ?1 AND flags & ?2 = ?2 ORDER BY page",
        )?;
        let rows = stmt.query_map(params![doc, failed_bit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let Some(end) = rules::merge(&jobs, &failed_pages) else {
        return Ok(None);
    };
    for (page, note) in &end.failed_pages {
        tx.execute(
            "UPDATE pages SET flags = ?1, note = ?2, ocr_confidence = NULL
             WHERE doc_id = ?3 AND page = ?4",
            params![rules::failed_flags().bits(), note, doc, page],
        )?;
    }
    tx.execute(
        "UPDATE chunks SET merged = 1 WHERE doc_id = ?1 AND status = 'done'",
        params![doc],
    )?;
    tx.execute(
        "UPDATE documents SET status = ?1, outcome = ?2, reason = ?3, updated_ms = ?4
         WHERE id = ?5",
        params![end.state, end.outcome, end.reason, now_ms(), doc],
    )?;
    Ok(Some(Merged {
        status: end.state,
        // The pages were counted when their text job committed.
        pages: 0,
        // Its OCR pages are what just ended.
        ocr: None,
    }))
}
