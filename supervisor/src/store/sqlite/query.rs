//! Reading the index: full-text search, status counts and failures, and the
//! deterministic export.

use std::io::Write;

use rusqlite::params;
use serde::Serialize;

use super::{SqliteError, SqliteStore};
use crate::search::render;
use crate::store::{
    low_quality_bit, DocumentMatch, Failure, LowQuality, PageMatch, PageMatches, PageSearch, Status,
};

#[derive(Serialize)]
pub struct ExportPage<'a> {
    pub path: &'a str,
    pub page: u32,
    pub text: &'a str,
    /// Whether the text came from OCR.
    pub ocr: bool,
    /// Written only when set, so that other pages export as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub low_quality: bool,
    /// OCR's mean word confidence (0-100), where the engine gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Why the page has no text (OCR failed, or no OCR engine read it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'a str>,
}

/// A confidence as people read it: to a tenth, whatever the store's float
/// made of it.
pub fn tenths(c: f64) -> f64 {
    (c * 10.0).round() / 10.0
}

/// What a page's note says when it has no text layer and OCR did not run.
pub const NO_TEXT_LAYER: &str = "no text layer; install tesseract-ocr to read it";

/// A page's export note: its stored note, or the no-text-layer one for a
/// flagged page that was never recognised.
pub fn page_note(flags: i64, note: Option<&str>) -> Option<&str> {
    let (needs, ocr) = crate::store::ocr_bits();
    note.or((flags & needs != 0 && flags & ocr == 0).then_some(NO_TEXT_LAYER))
}

impl SqliteStore {
    /// Pages matching a query, grouped by document: each document ranked by
    /// its best page, with its best pages and how many of its pages match.
    pub fn search(&self, search: &PageSearch<'_>) -> Result<PageMatches, SqliteError> {
        let expr = render::fts5(search.query);
        // Title and author count more than a page's words; the path only
        // filters (`path:`).
        let mut stmt = self.conn.prepare_cached(
            "WITH hits AS MATERIALIZED (
                 SELECT p.doc_id AS doc, p.id AS pid, p.page AS page,
                        -bm25(pages_fts, 1.0, 4.0, 4.0, 0.0) AS score
                 FROM pages_fts
                 JOIN pages p ON p.id = pages_fts.rowid
                 JOIN documents d ON d.id = p.doc_id
                 WHERE pages_fts MATCH ?1
                   AND (?2 IS NULL OR d.display_path LIKE ?2 ESCAPE '\\')
                   AND (?3 IS NULL OR d.format = ?3)
                   AND NOT EXISTS (
                       SELECT 1 FROM chunks c WHERE c.doc_id = p.doc_id AND c.merged = 0
                         AND c.status = 'done' AND p.page BETWEEN c.first AND c.last)),
             ranked AS (
                 SELECT doc, pid, page, score,
                        row_number() OVER (PARTITION BY doc ORDER BY score DESC, page) AS r,
                        count(*) OVER (PARTITION BY doc) AS n
                 FROM hits),
             docs AS (
                 SELECT ranked.doc, ranked.n, ranked.score AS best,
                        row_number() OVER (ORDER BY ranked.score DESC, d.path) AS place,
                        count(*) OVER () AS ndocs, sum(ranked.n) OVER () AS npages
                 FROM ranked JOIN documents d ON d.id = ranked.doc
                 WHERE ranked.r = 1)
             SELECT docs.ndocs, docs.npages, docs.n, docs.best, d.path, d.display_path,
                    d.title, d.author, d.format, ranked.page, ranked.score, p.text
             FROM docs
             JOIN ranked ON ranked.doc = docs.doc AND ranked.r <= ?6
             JOIN documents d ON d.id = docs.doc
             JOIN pages p ON p.id = ranked.pid
             WHERE docs.place > ?4 AND docs.place <= ?4 + ?5
             ORDER BY docs.place, ranked.r",
        )?;
        let format = search.format.map(|f| f.as_str());
        let mut rows = stmt.query(params![
            expr,
            search.path_like,
            format,
            search.skip as i64,
            search.documents as i64,
            search.pages_per_document as i64,
        ])?;
        let mut out = PageMatches::default();
        while let Some(r) = rows.next()? {
            out.documents = r.get::<_, i64>(0)? as u64;
            out.pages = r.get::<_, i64>(1)? as u64;
            let path: Vec<u8> = r.get(4)?;
            if out.found.last().is_none_or(|d| d.path != path) {
                out.found.push(DocumentMatch {
                    path,
                    display_path: r.get(5)?,
                    title: r.get(6)?,
                    author: r.get(7)?,
                    format: r.get(8)?,
                    pages: r.get::<_, i64>(2)? as u64,
                    score: r.get(3)?,
                    best: Vec::new(),
                });
            }
            if let Some(doc) = out.found.last_mut() {
                doc.best.push(PageMatch {
                    page: r.get(9)?,
                    score: r.get(10)?,
                    text: r.get(11)?,
                });
            }
        }
        drop(rows);
        Ok(out)
    }

    pub fn status(&self) -> Result<Status, SqliteError> {
        let mut status = Status {
            documents: Status::every_state(),
            ..Status::default()
        };
        {
            let mut stmt = self
                .conn
                .prepare("SELECT status, count(*) FROM documents GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (s, n) = row?;
                status.documents.insert(s, n as u64);
            }
        }
        status.pages = self.conn.query_row(
            // The pages of chunks done but not merged yet are not
            // searchable, so not counted.
            "SELECT (SELECT count(*) FROM pages)
                      - (SELECT count(*) FROM pages p JOIN chunks c
                           ON c.doc_id = p.doc_id AND p.page BETWEEN c.first AND c.last
                         WHERE c.status = 'done' AND c.merged = 0)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64;
        status.interrupted = self.conn.query_row(
            "SELECT (SELECT coalesce(sum(interrupted), 0) FROM documents)
                  + (SELECT coalesce(sum(interrupted), 0) FROM chunks)",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64;
        let mut stmt = self.conn.prepare(
            "SELECT display_path, status, outcome, coalesce(reason, ''), attempts FROM documents
             WHERE status IN ('failed', 'quarantined', 'skipped', 'partial')
                OR (status = 'pending' AND reason IS NOT NULL)
             ORDER BY path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Failure {
                path: r.get(0)?,
                status: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
                attempts: r.get::<_, i64>(4)? as u32,
            })
        })?;
        status.failures = rows.collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT d.display_path, count(*) FROM pages p JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial') AND p.flags & ?1 != 0
             GROUP BY d.id ORDER BY d.path",
        )?;
        let rows = stmt.query_map(params![low_quality_bit()], |r| {
            Ok(LowQuality {
                path: r.get(0)?,
                pages: r.get::<_, i64>(1)? as u64,
            })
        })?;
        status.low_quality = rows.collect::<Result<_, _>>()?;
        status.low_quality_pages = status.low_quality.iter().map(|d| d.pages).sum();
        let (needs, ocr) = crate::store::ocr_bits();
        let failed = docmill_protocol::PageFlags {
            failed: true,
            ..Default::default()
        }
        .bits();
        (status.ocr_pages, status.ocr_failed_pages) = self.conn.query_row(
            "SELECT coalesce(sum(p.flags & ?1 != 0 AND p.flags & ?2 = 0), 0),
                    coalesce(sum(p.flags & ?1 != 0 AND p.flags & ?2 != 0), 0)
             FROM pages p JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial', 'split')",
            params![ocr, failed],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?;
        let mut stmt = self.conn.prepare(
            "SELECT d.display_path, count(*) FROM pages p JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial') AND p.flags & ?1 != 0 AND p.flags & ?2 = 0
             GROUP BY d.id ORDER BY d.path",
        )?;
        let rows = stmt.query_map(params![needs, ocr], |r| {
            Ok(LowQuality {
                path: r.get(0)?,
                pages: r.get::<_, i64>(1)? as u64,
            })
        })?;
        status.no_text_layer = rows.collect::<Result<_, _>>()?;
        status.no_text_pages = status.no_text_layer.iter().map(|d| d.pages).sum();
        Ok(status)
    }

    /// Writes one JSON object per page, ordered by path then page: the same
    /// library gives the same bytes whatever the worker count or history.
    pub fn export(&self, out: &mut dyn Write) -> Result<u64, ExportError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.display_path, p.page, p.text, p.flags, p.ocr_confidence, p.note FROM pages p
             JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial')
             ORDER BY d.path, p.page",
        )?;
        let low = low_quality_bit();
        let (_, ocr) = crate::store::ocr_bits();
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let path: String = row.get(0)?;
            let text: String = row.get(2)?;
            let flags: i64 = row.get(3)?;
            let note: Option<String> = row.get(5)?;
            let page = ExportPage {
                path: &path,
                page: row.get(1)?,
                text: &text,
                low_quality: flags & low != 0,
                ocr: flags & ocr != 0,
                confidence: row.get::<_, Option<f64>>(4)?.map(tenths),
                note: page_note(flags, note.as_deref()),
            };
            serde_json::to_writer(&mut *out, &page).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        out.flush()?;
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database error")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot write the export")]
    Write(#[from] std::io::Error),
}

impl SqliteStore {
    /// Documents seen by `run` that ended failed or quarantined.
    pub fn failed_in_run(&self, run: i64) -> Result<u64, SqliteError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM documents WHERE seen_run = ?1 AND status IN ('failed', 'quarantined', 'partial')",
            params![run],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }
}
