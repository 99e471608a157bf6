//! OCR on the shared store: the cache of recognised pages by content hash,
//! and what a text job with flagged pages adds to its commit (the file's
//! content hash and the pages the cache held). OCR jobs themselves are
//! planned on the embedded store only, for now (`Store::ocr_jobs`).

use postgres::Transaction;

use super::{pg_text, PgStore};
use crate::store::rules::ocr as rules;
use crate::store::{Finished, FinishedResult, OcrPage, StoreError};

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

/// After a whole document's text job was written: its content hash, and
/// the pages the OCR cache held, over the rows just written.
pub(super) fn follow_up(tx: &mut Transaction<'_>, job: &Finished) -> Result<(), postgres::Error> {
    let FinishedResult::Flagged { summary, ocr, .. } = &job.result else {
        return Ok(());
    };
    tx.execute(
        "UPDATE documents SET content_hash = $1 WHERE id = $2",
        &[&summary.content_hash, &job.doc],
    )?;
    for p in &ocr.cached {
        write_page(tx, job.doc, p)?;
    }
    Ok(())
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
