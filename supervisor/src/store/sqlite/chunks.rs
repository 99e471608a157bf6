//! Page-range chunk jobs. A document found to be long is `split`: its
//! chunks become jobs with leases of their own, their pages wait outside the
//! search index, and the commit that ends the last chunk also merges them
//! into `pages` in page order and gives the document its final status:
//! `done`, `partial` (some chunks kept failing: their page ranges are named
//! in the reason) or `failed`. A crash loses at most the chunks in flight.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use docmill_protocol::{Format, Outcome, PageRange};
use rusqlite::{params, OptionalExtension, Transaction};

use super::{Catalog, CatalogError};
use crate::store::{now_ms, Claim, DocState, Finished, FinishedResult, Merged, QueuedDoc, Written};

impl Catalog {
    /// Turns a claimed document into chunk jobs, fenced by its lease: a
    /// supervisor that lost the lease plans nothing. Any earlier plan (and
    /// its waiting pages) goes.
    pub fn split(
        &mut self,
        doc: i64,
        claim: Claim,
        page_count: u32,
        ranges: &[PageRange],
    ) -> Result<bool, CatalogError> {
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
    pub fn unsplit(&mut self, doc: i64) -> Result<(), CatalogError> {
        let tx = self.conn.transaction()?;
        forget_plan(&tx, doc)?;
        tx.execute(
            "UPDATE documents SET status = 'pending', updated_ms = ?1 WHERE id = ?2 AND status = 'split'",
            params![now_ms(), doc],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Claims one pending chunk of a split document.
    pub fn claim_chunk(
        &mut self,
        doc: i64,
        first: u32,
        owner: &str,
        expires_ms: i64,
    ) -> Result<Option<Claim>, CatalogError> {
        let tx = self.conn.transaction()?;
        let token = next_token(&tx)?;
        let n = tx.execute(
            "UPDATE chunks SET status = 'running', lease_owner = ?1, lease_token = ?2,
                 lease_expires = ?3
             WHERE doc_id = ?4 AND first = ?5 AND status = 'pending'
               AND EXISTS (SELECT 1 FROM documents WHERE id = ?4 AND status = 'split')",
            params![owner, token, expires_ms, doc, first],
        )?;
        tx.commit()?;
        Ok((n == 1).then_some(Claim { token }))
    }

    /// The pending chunks of split documents, in path and page order.
    pub(super) fn pending_chunks(&self) -> Result<Vec<QueuedDoc>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.path, d.size, d.mtime_ns, d.format, c.attempts, c.first, c.last,
                    coalesce(d.page_count, 0)
             FROM chunks c JOIN documents d ON d.id = c.doc_id
             WHERE d.status = 'split' AND c.status = 'pending'
             ORDER BY d.path, c.first",
        )?;
        let rows = stmt.query_map([], |r| {
            let path: Vec<u8> = r.get(1)?;
            let format: String = r.get(4)?;
            let format = Format::parse(&format).unwrap_or(Format::Pdf);
            let size = r.get::<_, i64>(2)? as u64;
            let mut doc = QueuedDoc::new(
                r.get(0)?,
                PathBuf::from(OsStr::from_bytes(&path)),
                size,
                r.get(3)?,
                format,
                r.get::<_, i64>(5)? as u32,
            );
            doc.page_total = r.get(8)?;
            doc.set_chunk(PageRange {
                first: r.get(6)?,
                last: r.get(7)?,
            });
            Ok(doc)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Chunks that were running when their supervisor died go back to pending;
/// the interrupted attempt does not count against them.
pub(super) fn recover_chunks(tx: &Transaction<'_>) -> Result<u64, CatalogError> {
    Ok(tx.execute(
        "UPDATE chunks SET status = 'pending', interrupted = interrupted + 1,
             lease_owner = NULL, lease_token = NULL, lease_expires = NULL
         WHERE status = 'running'",
        [],
    )? as u64)
}

/// Gives a partial document's failed chunks another round.
pub(super) fn retry_failed_chunks(tx: &Transaction<'_>, doc: i64) -> Result<(), CatalogError> {
    tx.execute(
        "UPDATE chunks SET status = 'pending', attempts = 0
         WHERE doc_id = ?1 AND status IN ('failed', 'quarantined')",
        params![doc],
    )?;
    tx.execute(
        "UPDATE documents SET status = 'split' WHERE id = ?1",
        params![doc],
    )?;
    Ok(())
}

pub(super) fn forget_plan(tx: &Transaction<'_>, doc: i64) -> Result<(), CatalogError> {
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

fn next_token(tx: &Transaction<'_>) -> Result<i64, CatalogError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('chunk_token', '1')
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )?;
    Ok(tx.query_row(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'chunk_token'",
        [],
        |r| r.get(0),
    )?)
}

/// Writes one chunk job's result, fenced by its token; merges the document
/// when this was its last open chunk.
pub(super) fn write_chunk(
    tx: &Transaction<'_>,
    job: &Finished,
    range: PageRange,
) -> Result<Written, CatalogError> {
    let now = now_ms();
    let n = match &job.result {
        FinishedResult::Done { summary, pages } => {
            let n = tx.execute(
                "UPDATE chunks SET status = 'done', outcome = 'done', reason = NULL, engine = ?1,
                     title = ?2, author = ?3, language = ?4, lease_owner = NULL,
                     lease_expires = NULL, updated_ms = ?5
                 WHERE doc_id = ?6 AND first = ?7 AND lease_token = ?8 AND status = 'running'",
                params![
                    summary.engine,
                    summary.title,
                    summary.author,
                    summary.language,
                    now,
                    job.doc,
                    range.first,
                    job.claim.token
                ],
            )?;
            if n == 1 {
                // Indexed now, while other chunks still run, rather than
                // all at once after the last one; search and status skip
                // the pages of chunks done but not merged, and export
                // reads only done and partial documents, so the document
                // still becomes searchable at once, at the merge.
                tx.execute(
                    "DELETE FROM pages WHERE doc_id = ?1 AND page BETWEEN ?2 AND ?3",
                    params![job.doc, range.first, range.last],
                )?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO pages (doc_id, page, text, flags) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (page, text, flags) in pages {
                    if range.contains(*page) {
                        insert.execute(params![job.doc, page, text, flags.bits()])?;
                    }
                }
            }
            n
        }
        FinishedResult::Failed {
            outcome,
            reason,
            status,
            counts,
        } => tx.execute(
            "UPDATE chunks SET status = ?1, outcome = ?2, reason = ?3, attempts = attempts + ?4,
                 lease_owner = NULL, lease_expires = NULL, updated_ms = ?5
             WHERE doc_id = ?6 AND first = ?7 AND lease_token = ?8 AND status = 'running'",
            params![
                status.as_str(),
                outcome.as_str(),
                reason,
                i64::from(*counts),
                now,
                job.doc,
                range.first,
                job.claim.token
            ],
        )?,
        FinishedResult::Released => tx.execute(
            "UPDATE chunks SET status = 'pending', lease_owner = NULL, lease_expires = NULL,
                 updated_ms = ?1
             WHERE doc_id = ?2 AND first = ?3 AND lease_token = ?4 AND status = 'running'",
            params![now, job.doc, range.first, job.claim.token],
        )?,
    };
    if n == 0 {
        return Ok(Written::Lost);
    }
    if matches!(job.result, FinishedResult::Released) {
        return Ok(Written::Held);
    }
    super::jobs::record_attempt(tx, job, Some(range.first))?;
    Ok(match merge(tx, job.doc)? {
        Some(m) => Written::Merged(m),
        None => Written::Held,
    })
}

/// If every chunk of `doc` has ended, moves their pages into the index in
/// page order and sets the document's final status.
fn merge(tx: &Transaction<'_>, doc: i64) -> Result<Option<Merged>, CatalogError> {
    let open: i64 = tx.query_row(
        "SELECT count(*) FROM chunks WHERE doc_id = ?1
           AND status NOT IN ('done', 'failed', 'quarantined')",
        params![doc],
        |r| r.get(0),
    )?;
    let split = tx
        .query_row(
            "SELECT 1 FROM documents WHERE id = ?1 AND status = 'split'",
            params![doc],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if open > 0 || !split {
        return Ok(None);
    }
    struct Ended {
        first: u32,
        last: u32,
        status: String,
        outcome: Option<String>,
        reason: Option<String>,
        engine: Option<String>,
        title: Option<String>,
        author: Option<String>,
        language: Option<String>,
    }
    let chunks: Vec<Ended> = {
        let mut stmt = tx.prepare_cached(
            "SELECT first, last, status, outcome, reason, engine, title, author, language
             FROM chunks WHERE doc_id = ?1 ORDER BY first",
        )?;
        let rows = stmt.query_map(params![doc], |r| {
            Ok(Ended {
                first: r.get(0)?,
                last: r.get(1)?,
                status: r.get(2)?,
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
    let done: Vec<&Ended> = chunks.iter().filter(|c| c.status == "done").collect();
    let failed: Vec<&Ended> = chunks.iter().filter(|c| c.status != "done").collect();
    let failed_text = failed
        .iter()
        .map(|c| {
            format!(
                "pages {}-{}: {}",
                c.first,
                c.last,
                c.reason.as_deref().unwrap_or("failed")
            )
        })
        .collect::<Vec<_>>();
    let now = now_ms();
    if done.is_empty() {
        // Nothing of it could be read: the document fails as a whole.
        let status = if failed.iter().any(|c| c.status == "quarantined") {
            DocState::Quarantined
        } else {
            DocState::Failed
        };
        let reason = one_line_list("every chunk failed", &failed_text);
        let outcome = failed[0]
            .outcome
            .clone()
            .unwrap_or_else(|| Outcome::ExtractFailed.as_str().to_string());
        tx.execute(
            "UPDATE documents SET status = ?1, outcome = ?2, reason = ?3, updated_ms = ?4 WHERE id = ?5",
            params![status.as_str(), outcome, reason, now, doc],
        )?;
        return Ok(Some(Merged { status, pages: 0 }));
    }
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
    // The pages this merge makes searchable: those of chunks not merged
    // before (all of them, unless failed chunks of a partial document were
    // retried).
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
    let mut engines: Vec<&str> = done.iter().filter_map(|c| c.engine.as_deref()).collect();
    engines.dedup();
    let engine = engines.join("+");
    let head = done[0];
    let (status, outcome, reason) = if failed.is_empty() {
        (DocState::Done, "done".to_string(), None)
    } else {
        let outcome = failed[0]
            .outcome
            .clone()
            .unwrap_or_else(|| Outcome::ExtractFailed.as_str().to_string());
        (
            DocState::Partial,
            outcome,
            Some(one_line_list("some pages failed", &failed_text)),
        )
    };
    tx.execute(
        "UPDATE documents SET status = ?1, outcome = ?2, reason = ?3, engine = ?4, title = ?5,
             author = ?6, language = ?7, updated_ms = ?8
         WHERE id = ?9",
        params![
            status.as_str(),
            outcome,
            reason,
            engine,
            head.title,
            head.author,
            head.language,
            now,
            doc
        ],
    )?;
    Ok(Some(Merged { status, pages }))
}

/// "what: a; b; c", cut to a readable length.
pub(crate) fn one_line_list(what: &str, items: &[String]) -> String {
    let joined = format!("{what}: {}", items.join("; "));
    match crate::units::clip(&joined, 400) {
        (text, true) => format!("{text}… ({} ranges)", items.len()),
        (_, false) => joined,
    }
}
