//! Reading the shared store: full-text search, status counts and
//! failures, the deterministic export, and the run's record.

use std::io::Write;

use super::PgStore;
use crate::metrics::Snapshot;
use postgres::types::ToSql;

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

    pub(super) fn search(&mut self, search: &PageSearch<'_>) -> Result<PageMatches, StoreError> {
        // The query's terms are bound from $6 on.
        let (tsquery, terms) = render::tsquery(search.query, 6);
        let sql = format!(
            "WITH q AS (SELECT {tsquery} AS q),
             hits AS MATERIALIZED (
                 SELECT p.doc_id AS doc, p.page AS page, ts_rank(p.tsv, q.q)::float8 AS score
                 FROM pages p JOIN documents d ON d.id = p.doc_id, q
                 WHERE p.tsv @@ q.q
                   AND ($1::text IS NULL OR d.display_path ILIKE $1)
                   AND ($2::text IS NULL OR d.format = $2)),
             ranked AS (
                 SELECT doc, page, score,
                        row_number() OVER (PARTITION BY doc ORDER BY score DESC, page) AS r,
                        count(*) OVER (PARTITION BY doc) AS n
                 FROM hits),
             docs AS (
                 SELECT ranked.doc, ranked.n, ranked.score AS best,
                        row_number() OVER (ORDER BY ranked.score DESC, d.path) AS place,
                        count(*) OVER () AS ndocs, sum(ranked.n) OVER () AS npages
                 FROM ranked JOIN documents d ON d.id = ranked.doc
                 WHERE ranked.r = 1)
             SELECT docs.ndocs, docs.npages::bigint, docs.n, docs.best, d.path, d.display_path,
                    d.title, d.author, d.format, ranked.page, ranked.score, p.text
             FROM docs
             JOIN ranked ON ranked.doc = docs.doc AND ranked.r <= $3
             JOIN documents d ON d.id = docs.doc
             JOIN pages p ON p.doc_id = ranked.doc AND p.page = ranked.page
             WHERE docs.place > $4 AND docs.place <= $4 + $5
             ORDER BY docs.place, ranked.r"
        );
        let format = search.format.map(|f| f.as_str());
        let per_doc = search.pages_per_document as i64;
        let skip = search.skip as i64;
        let documents = search.documents as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&search.path_like, &format, &per_doc, &skip, &documents];
        for t in &terms {
            params.push(t);
        }
        let rows = self.client.query(&sql, &params)?;
        let mut out = PageMatches::default();
        for r in &rows {
            out.documents = r.get::<_, i64>(0) as u64;
            out.pages = r.get::<_, i64>(1) as u64;
            let path: Vec<u8> = r.get(4);
            if out.found.last().is_none_or(|d| d.path != path) {
                out.found.push(DocumentMatch {
                    path,
                    display_path: r.get(5),
                    title: r.get(6),
                    author: r.get(7),
                    format: r.get(8),
                    pages: r.get::<_, i64>(2) as u64,
                    score: r.get(3),
                    best: Vec::new(),
                });
            }
            if let Some(doc) = out.found.last_mut() {
                doc.best.push(PageMatch {
                    page: r.get::<_, i64>(9) as u32,
                    score: r.get(10),
                    text: r.get(11),
                });
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
