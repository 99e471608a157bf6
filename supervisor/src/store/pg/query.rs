//! Reading the shared store: full-text search, status counts and
//! failures, the deterministic export, and the run's record.

use std::io::Write;

use super::PgStore;
use crate::metrics::Snapshot;
use postgres::types::ToSql;

use crate::search::group::{group, RankedPage};
use crate::search::render;
use crate::store::{
    low_quality_bit, now_ms, page_note, tenths, DocumentMatch, ExportPage, Failure, LowQuality,
    PageMatch, PageMatches, PageSearch, Status, StoreError,
};

impl PgStore {
    pub(super) fn begin_run(&mut self, owner: &str, options: &str) -> Result<i64, StoreError> {
        let row = self.client.query_one(
            "INSERT INTO runs (started_ms, owner, options) VALUES ($1, $2, $3) RETURNING id",
            &[&now_ms(), &owner, &options],
        )?;
        Ok(row.get(0))
    }

    pub(super) fn end_run(
        &mut self,
        run: i64,
        totals: &str,
        exit_code: i32,
    ) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE runs SET ended_ms = $1, totals = $2, exit_code = $3 WHERE id = $4",
            &[&now_ms(), &totals, &exit_code, &run],
        )?;
        Ok(())
    }

    pub(super) fn record_sample(&mut self, run: i64, snap: &Snapshot) -> Result<(), StoreError> {
        let json = serde_json::to_string(snap)?;
        self.client.execute(
            "INSERT INTO samples (run_id, t_ms, json) VALUES ($1, $2, $3)",
            &[&run, &snap.t_ms, &json],
        )?;
        Ok(())
    }

    pub(super) fn failed_in_run(&mut self, run: i64) -> Result<u64, StoreError> {
        let n: i64 = self
            .client
            .query_one(
                "SELECT count(*) FROM documents WHERE seen_run = $1 AND status IN ('failed', 'quarantined', 'partial')",
                &[&run],
            )?
            .get(0);
        Ok(n as u64)
    }

    /// Failed, partial and quarantined documents (see `Store::failures`).
    pub(super) fn failures(
        &mut self,
        seen_by: Option<i64>,
    ) -> Result<Vec<(i64, crate::store::DocState)>, StoreError> {
        let rows = self.client.query(
            "SELECT id, status FROM documents
             WHERE status IN ('failed', 'quarantined', 'partial')
               AND ($1::bigint IS NULL OR seen_run = $1)",
            &[&seen_by],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                crate::store::DocState::parse(r.get(1)).map(|s| (r.get::<_, i64>(0), s))
            })
            .collect())
    }

    /// Pages matching a query, grouped by document, as SQLite's search
    /// does, and bounded the same way: only the first `search.ranked`
    /// matching pages the GIN index yields are ranked and counted, since
    /// `ts_rank`, and the recheck of a term's weights, read every page's
    /// vector from TOAST. The documents shown are counted in full. The
    /// window is the scan's order (the table's, in a bitmap scan) with no
    /// ORDER BY, which would read every match to sort them.
    pub(super) fn search(&mut self, search: &PageSearch<'_>) -> Result<PageMatches, StoreError> {
        // The query's terms are bound from $4 on. One page past the limit
        // tells that there are more.
        let (tsquery, terms) = render::tsquery(search.query, 4);
        let sql = format!(
            "WITH q AS (SELECT {tsquery} AS q)
             SELECT p.doc_id, p.page, ts_rank(p.tsv, q.q)::float8, d.path
             FROM pages p JOIN documents d ON d.id = p.doc_id, q
             WHERE p.tsv @@ q.q
               AND ($1::text IS NULL OR d.display_path ILIKE $1)
               AND ($2::text IS NULL OR d.format = $2)
             LIMIT $3"
        );
        let format = search.format.map(|f| f.as_str());
        let ranked = search.ranked.max(1) as u64;
        let limit = ranked as i64 + 1;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&search.path_like, &format, &limit];
        for t in &terms {
            params.push(t);
        }
        let mut hits: Vec<RankedPage> = self
            .client
            .query(&sql, &params)?
            .iter()
            .map(|r| RankedPage {
                doc: r.get(0),
                key: r.get(1),
                page: r.get::<_, i64>(1) as u32,
                score: r.get(2),
                path: r.get(3),
            })
            .collect();
        let more = hits.len() as u64 > ranked;
        hits.truncate(ranked as usize);
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
        let mut ids: Vec<i64> = Vec::new();
        let document = self
            .client
            .prepare("SELECT display_path, title, author, format FROM documents WHERE id = $1")?;
        let text = self
            .client
            .prepare("SELECT text FROM pages WHERE doc_id = $1 AND page = $2")?;
        for g in grouped.shown {
            let row = self.client.query_one(&document, &[&g.doc])?;
            let mut best = Vec::with_capacity(g.best.len());
            for p in &g.best {
                best.push(PageMatch {
                    page: p.page,
                    score: p.score,
                    text: self.client.query_one(&text, &[&g.doc, &p.key])?.get(0),
                });
            }
            ids.push(g.doc);
            out.found.push(DocumentMatch {
                path: g.path,
                display_path: row.get(0),
                title: row.get(1),
                author: row.get(2),
                format: row.get(3),
                pages: g.pages,
                score: g.score,
                best,
            });
        }
        out.ranked = out.pages;
        if !more {
            return Ok(out);
        }
        out.more_pages = true;
        out.more_documents = true;
        // The documents shown are read by their key, a hundred-odd pages each.
        let (tsquery, terms) = render::tsquery(search.query, 2);
        let sql = format!(
            "SELECT p.doc_id, count(*) FROM pages p
             WHERE p.doc_id = ANY($1) AND p.tsv @@ ({tsquery})
             GROUP BY p.doc_id"
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ids];
        for t in &terms {
            params.push(t);
        }
        for r in self.client.query(&sql, &params)? {
            let (doc, n): (i64, i64) = (r.get(0), r.get(1));
            if let Some(i) = ids.iter().position(|&d| d == doc) {
                out.found[i].pages = n as u64;
            }
        }
        Ok(out)
    }

    pub(super) fn status(&mut self) -> Result<Status, StoreError> {
        let mut status = Status {
            documents: Status::every_state(),
            ..Status::default()
        };
        for row in self.client.query(
            "SELECT status, count(*) FROM documents GROUP BY status",
            &[],
        )? {
            status
                .documents
                .insert(row.get(0), row.get::<_, i64>(1) as u64);
        }
        status.pages = self
            .client
            .query_one("SELECT count(*) FROM pages", &[])?
            .get::<_, i64>(0) as u64;
        status.interrupted = self
            .client
            .query_one(
                "SELECT ((SELECT coalesce(sum(interrupted), 0) FROM documents)
                       + (SELECT coalesce(sum(interrupted), 0) FROM chunks))::bigint",
                &[],
            )?
            .get::<_, i64>(0) as u64;
        status.failures = self
            .client
            .query(
                "SELECT display_path, status, outcome, coalesce(reason, ''), attempts FROM documents
                 WHERE status IN ('failed', 'quarantined', 'skipped', 'partial')
                    OR (status = 'pending' AND reason IS NOT NULL)
                 ORDER BY path",
                &[],
            )?
            .iter()
            .map(|r| Failure {
                path: r.get(0),
                status: r.get(1),
                outcome: r.get(2),
                reason: r.get(3),
                attempts: r.get::<_, i64>(4) as u32,
            })
            .collect();
        status.low_quality = self
            .client
            .query(
                "SELECT d.display_path, count(*) FROM pages p JOIN documents d ON d.id = p.doc_id
                 WHERE d.status IN ('done', 'partial') AND p.flags & $1 != 0
                 GROUP BY d.id, d.path, d.display_path ORDER BY d.path",
                &[&low_quality_bit()],
            )?
            .iter()
            .map(|r| LowQuality {
                path: r.get(0),
                pages: r.get::<_, i64>(1) as u64,
            })
            .collect();
        status.low_quality_pages = status.low_quality.iter().map(|d| d.pages).sum();
        let (needs, ocr) = crate::store::ocr_bits();
        let failed = docmill_protocol::PageFlags {
            failed: true,
            ..Default::default()
        }
        .bits();
        let row = self.client.query_one(
            "SELECT count(*) FILTER (WHERE p.flags & $1 != 0 AND p.flags & $2 = 0),
                    count(*) FILTER (WHERE p.flags & $1 != 0 AND p.flags & $2 != 0)
             FROM pages p JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial', 'split')",
            &[&ocr, &failed],
        )?;
        status.ocr_pages = row.get::<_, i64>(0) as u64;
        status.ocr_failed_pages = row.get::<_, i64>(1) as u64;
        status.no_text_layer = self
            .client
            .query(
                "SELECT d.display_path, count(*) FROM pages p JOIN documents d ON d.id = p.doc_id
                 WHERE d.status IN ('done', 'partial') AND p.flags & $1 != 0 AND p.flags & $2 = 0
                 GROUP BY d.id, d.path, d.display_path ORDER BY d.path",
                &[&needs, &ocr],
            )?
            .iter()
            .map(|r| LowQuality {
                path: r.get(0),
                pages: r.get::<_, i64>(1) as u64,
            })
            .collect();
        status.no_text_pages = status.no_text_layer.iter().map(|d| d.pages).sum();
        Ok(status)
    }

    pub(super) fn export(&mut self, out: &mut dyn Write) -> Result<u64, StoreError> {
        // A portal streams the pages in slices, so a library of millions of
        // pages never sits in memory at once.
        let mut tx = self.client.transaction()?;
        let portal = tx.bind(
            "SELECT d.display_path, p.page, p.text, p.flags, p.ocr_confidence, p.note FROM pages p
             JOIN documents d ON d.id = p.doc_id
             WHERE d.status IN ('done', 'partial')
             ORDER BY d.path, p.page",
            &[],
        )?;
        let low = low_quality_bit();
        let (_, ocr) = crate::store::ocr_bits();
        let mut n = 0;
        loop {
            let rows = tx.query_portal(&portal, 1000)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let flags: i64 = row.get(3);
                let page = ExportPage {
                    path: row.get(0),
                    page: row.get::<_, i64>(1) as u32,
                    text: row.get(2),
                    low_quality: flags & low != 0,
                    ocr: flags & ocr != 0,
                    confidence: row.get::<_, Option<f32>>(4).map(|c| tenths(f64::from(c))),
                    note: page_note(flags, row.get(5)),
                };
                serde_json::to_writer(&mut *out, &page).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                n += 1;
            }
        }
        tx.commit()?;
        out.flush()?;
        Ok(n)
    }
}
