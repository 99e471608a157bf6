//! Reading the index: full-text search, status counts and failures, and the
//! deterministic export.

use std::io::Write;

use rusqlite::params;
use serde::Serialize;

use super::{SqliteError, SqliteStore};
use crate::search::group::{group, RankedPage};
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
pub const NO_TEXT_LAYER: &str =
    "no text layer, not read by OCR (tesseract-ocr missing, or --ocr off)";

/// A page's export note: its stored note, or the no-text-layer one for a
/// flagged page that was never recognised.
pub fn page_note(flags: i64, note: Option<&str>) -> Option<&str> {
    let (needs, ocr) = crate::store::ocr_bits();
    note.or((flags & needs != 0 && flags & ocr == 0).then_some(NO_TEXT_LAYER))
}

impl SqliteStore {
    /// Pages matching a query, grouped by document: each document ranked by
    /// its best page, with its best pages and how many of its pages match.
    ///
    /// The cost is bounded whatever the library's size: only the first
    /// `search.ranked` matching pages (in the index's order, oldest first)
    /// are ranked, and without filters the matches are counted up to
    /// `search.counted` by the index alone, which needs no rank and no
    /// lookup of the page. FTS5's own `ORDER BY rank` would not help: it
    /// ranks and sorts every match before the first row comes out.
    pub fn search(&self, search: &PageSearch<'_>) -> Result<PageMatches, SqliteError> {
        let expr = render::fts5(search.query);
        // Reading the index through a memory map rather than SQLite's page
        // cache halved the time of a broad query (BENCHMARKS.md). The
        // setting belongs to this connection only and writes nothing, so a
        // read-only opening takes it too; SQLite caps it at its build's
        // limit (2 GiB).
        self.conn
            .pragma_update(None, "mmap_size", 2_147_418_112_i64)?;
        // The pages of chunks done and not merged yet are in the index but
        // not shown. There are seldom any, and then no hit pays for the check.
        let hidden: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM chunks WHERE merged = 0 AND status = 'done')",
            [],
            |r| r.get(0),
        )?;
        // Title and author count more than a page's words; the path only
        // filters (`path:`). One page past the limit tells that there are
        // more.
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.doc_id, p.id, p.page, -bm25(pages_fts, 1.0, 4.0, 4.0, 0.0), d.path
             FROM pages_fts
             JOIN pages p ON p.id = pages_fts.rowid
             JOIN documents d ON d.id = p.doc_id
             WHERE pages_fts MATCH ?1
               AND (?2 IS NULL OR d.display_path LIKE ?2 ESCAPE '\\')
               AND (?3 IS NULL OR d.format = ?3)
               AND (?4 = 0 OR NOT EXISTS (
                   SELECT 1 FROM chunks c WHERE c.doc_id = p.doc_id AND c.merged = 0
                     AND c.status = 'done' AND p.page BETWEEN c.first AND c.last))
             ORDER BY pages_fts.rowid
             LIMIT ?5",
        )?;
        let format = search.format.map(|f| f.as_str());
        let ranked = search.ranked.max(1) as u64;
        let mut hits: Vec<RankedPage> = stmt
            .query_map(
                params![expr, search.path_like, format, hidden, (ranked + 1) as i64],
                |r| {
                    Ok(RankedPage {
                        doc: r.get(0)?,
                        key: r.get(1)?,
                        page: r.get(2)?,
                        score: r.get(3)?,
                        path: r.get(4)?,
                    })
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let more = hits.len() as u64 > ranked;
        hits.truncate(ranked as usize);
        // The index yields its matches by ascending row id, so the ranked
        // pages are every match up to the last one's id.
        let last = hits.iter().map(|h| h.key).max().unwrap_or(0);
        let grouped = group(
            hits,
            search.skip,
            search.documents,
            search.pages_per_document,
        );
        let mut out = PageMatches {
            pages: grouped.pages,
            documents: grouped.documents,
            ..PageMatches::default()
        };
        let mut ids = Vec::new();
        let mut document = self.conn.prepare_cached(
            "SELECT display_path, title, author, format FROM documents WHERE id = ?1",
        )?;
        let mut text = self
            .conn
            .prepare_cached("SELECT text FROM pages WHERE id = ?1")?;
        for g in grouped.shown {
            let (display_path, title, author, format) = document.query_row([g.doc], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            let mut best = Vec::with_capacity(g.best.len());
            for p in &g.best {
                best.push(PageMatch {
                    page: p.page,
                    score: p.score,
                    text: text.query_row([p.key], |r| r.get(0))?,
                });
            }
            ids.push(g.doc);
            out.found.push(DocumentMatch {
                path: g.path,
                display_path,
                title,
                author,
                format,
                pages: g.pages,
                score: g.score,
                best,
            });
        }
        out.ranked = out.pages;
        if !more {
            return Ok(out);
        }
        // More pages match than were ranked. The documents shown are counted
        // in full, and so are the pages where the index alone can count them.
        out.more_pages = true;
        out.more_documents = true;
        // A document whose pages all come before the last ranked one was
        // counted in full; one that reaches past it (seldom more than one of
        // those shown) is counted again. Asking the index about one document
        // still costs a prefix query (`ver*`) its whole merge of terms.
        let mut reach = self
            .conn
            .prepare_cached("SELECT max(id) FROM pages WHERE doc_id = ?1")?;
        for (doc, id) in out.found.iter_mut().zip(&ids) {
            let end: i64 = reach.query_row([id], |r| r.get(0))?;
            if end > last {
                doc.pages = self.document_matches(&expr, *id, hidden)?;
            }
        }
        let counted = search.counted as u64;
        if counted > ranked && search.path_like.is_none() && search.format.is_none() && !hidden {
            let n = self.conn.query_row(
                "SELECT count(*) FROM (SELECT 1 FROM pages_fts WHERE pages_fts MATCH ?1 LIMIT ?2)",
                params![expr, (counted + 1) as i64],
                |r| r.get::<_, i64>(0),
            )? as u64;
            out.pages = n.min(counted);
            out.more_pages = n > counted;
        }
        Ok(out)
    }

    /// How many pages of one document match: its pages are read by their
    /// range of ids, which the index seeks to without reading the rest.
    fn document_matches(&self, expr: &str, doc: i64, hidden: bool) -> Result<u64, SqliteError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*) FROM pages_fts JOIN pages p ON p.id = pages_fts.rowid
             WHERE pages_fts MATCH ?1
               AND pages_fts.rowid BETWEEN (SELECT min(id) FROM pages WHERE doc_id = ?2)
                                       AND (SELECT max(id) FROM pages WHERE doc_id = ?2)
               AND p.doc_id = ?2
               AND (?3 = 0 OR NOT EXISTS (
                   SELECT 1 FROM chunks c WHERE c.doc_id = p.doc_id AND c.merged = 0
                     AND c.status = 'done' AND p.page BETWEEN c.first AND c.last))",
        )?;
        Ok(stmt.query_row(params![expr, doc, hidden], |r| r.get::<_, i64>(0))? as u64)
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

    /// Failed, partial and quarantined documents (see `Store::failures`).
    pub fn failures(
        &self,
        seen_by: Option<i64>,
    ) -> Result<Vec<(i64, crate::store::DocState)>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, status FROM documents
             WHERE status IN ('failed', 'quarantined', 'partial') AND (?1 IS NULL OR seen_run = ?1)",
        )?;
        let rows = stmt.query_map(params![seen_by], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, status) = row?;
            out.extend(crate::store::DocState::parse(&status).map(|s| (id, s)));
        }
        Ok(out)
    }
}
