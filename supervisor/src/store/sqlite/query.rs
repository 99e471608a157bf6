//! Reading the index: full-text search, status counts and failures, and the
//! deterministic export.

use std::io::Write;

use rusqlite::params;
use serde::Serialize;

use super::{SqliteError, SqliteStore};
use crate::store::{low_quality_bit, Failure, LowQuality, SearchHit, Status, HIT_END, HIT_START};

#[derive(Serialize)]
pub struct ExportPage<'a> {
    pub path: &'a str,
    pub page: u32,
    pub text: &'a str,
    /// Written only when set, so that other pages export as before.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub low_quality: bool,
}

impl SqliteStore {
    /// Ranked pages matching `query` (FTS5 syntax; a query that is not valid
    /// FTS5 is retried as a plain list of words).
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, SqliteError> {
        match self.search_raw(query, limit) {
            Ok(hits) => Ok(hits),
            // Hyphens, colons and the like are FTS5 operators; a query that
            // does not parse is most likely plain words meant literally.
            Err(SqliteError::Sql(rusqlite::Error::SqliteFailure(_, _))) => {
                self.search_raw(&quote_words(query), limit)
            }
            Err(e) => Err(e),
        }
    }

    fn search_raw(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>, SqliteError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.display_path, p.page, bm25(pages_fts) AS rank,
                    snippet(pages_fts, 0, ?3, ?4, '…', 16)
             FROM pages_fts
             JOIN pages p ON p.id = pages_fts.rowid
             JOIN documents d ON d.id = p.doc_id
             WHERE pages_fts MATCH ?1 AND NOT EXISTS (
                 SELECT 1 FROM chunks c WHERE c.doc_id = p.doc_id AND c.merged = 0
                   AND c.status = 'done' AND p.page BETWEEN c.first AND c.last)
             ORDER BY rank, d.path, p.page
             LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![query, limit as i64, HIT_START, HIT_END], |r| {
            let rank: f64 = r.get(2)?;
            Ok(SearchHit {
                path: r.get(0)?,
                page: r.get(1)?,
                score: -rank,
                snippet: r.get::<_, String>(3)?.replace(['\n', '\r'], " "),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        Ok(status)
    }

    /// Writes one JSON object per page, ordered by path then page: the same
    /// library gives the same bytes whatever the worker count or history.
    pub fn export(&self, out: &mut dyn Write) -> Result<u64, ExportError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.display_path, p.page, p.text, p.flags FROM pages p
             JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial')
             ORDER BY d.path, p.page",
        )?;
        let low = low_quality_bit();
        let mut rows = stmt.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let path: String = row.get(0)?;
            let text: String = row.get(2)?;
            let page = ExportPage {
                path: &path,
                page: row.get(1)?,
                text: &text,
                low_quality: row.get::<_, i64>(3)? & low != 0,
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

/// Turns arbitrary text into an FTS5 query of quoted words (all must match).
fn quote_words(query: &str) -> String {
    query
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
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
