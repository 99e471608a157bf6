//! Jobs under a lease: claim sets an owner, a token and an expiry; a commit
//! or a failure is fenced by the token, so a supervisor that lost its lease
//! writes nothing. A job's pages and its `done` mark commit together.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use docmill_protocol::{Format, Outcome};
use rusqlite::{params, Transaction};

use super::{Catalog, CatalogError};
use crate::store::now_ms;
use crate::store::{Claim, Finished, FinishedResult, QueuedDoc, Written};

impl Catalog {
    /// Every pending document, in path order, then the pending chunks of
    /// split documents.
    pub fn pending(&self) -> Result<Vec<QueuedDoc>, CatalogError> {
        let mut docs = self.pending_documents()?;
        docs.extend(self.pending_chunks()?);
        Ok(docs)
    }

    fn pending_documents(&self) -> Result<Vec<QueuedDoc>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, path, size, mtime_ns, format, attempts FROM documents
             WHERE status = 'pending' ORDER BY path",
        )?;
        let rows = stmt.query_map([], |r| {
            let path: Vec<u8> = r.get(1)?;
            let format: String = r.get(4)?;
            let format = Format::parse(&format).unwrap_or(Format::Pdf);
            Ok(QueuedDoc::new(
                r.get(0)?,
                PathBuf::from(OsStr::from_bytes(&path)),
                r.get::<_, i64>(2)? as u64,
                r.get(3)?,
                format,
                r.get::<_, i64>(5)? as u32,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Claims pending documents for `owner` until `expires_ms`. Returns the
    /// claims that succeeded, in the order asked (a document another claimer
    /// took first is left out).
    pub fn claim(
        &mut self,
        docs: &[i64],
        owner: &str,
        expires_ms: i64,
    ) -> Result<Vec<(i64, Claim)>, CatalogError> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(docs.len());
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE documents SET status = 'running', lease_owner = ?1,
                     lease_token = coalesce(lease_token, 0) + 1, lease_expires = ?2
                 WHERE id = ?3 AND status = 'pending'
                 RETURNING lease_token",
            )?;
            for &id in docs {
                let mut rows = stmt.query(params![owner, expires_ms, id])?;
                if let Some(row) = rows.next()? {
                    out.push((id, Claim { token: row.get(0)? }));
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Extends the leases of running jobs (and chunk jobs) held by `owner`.
    pub fn renew(&mut self, owner: &str, expires_ms: i64) -> Result<(), CatalogError> {
        for table in ["documents", "chunks"] {
            self.conn.execute(
                &format!(
                    "UPDATE {table} SET lease_expires = ?1 WHERE status = 'running' AND lease_owner = ?2"
                ),
                params![expires_ms, owner],
            )?;
        }
        Ok(())
    }

    /// Writes finished jobs in one transaction; each job is all or nothing.
    /// Returns, per job, what was written (`Lost`: nothing, the lease no
    /// longer held).
    ///
    /// Every write starts with the fenced status update and writes nothing
    /// more when that matches no row, so a lost job needs no rollback of its
    /// own, and an error rolls back the whole transaction. No savepoint per
    /// job: FTS5 flushes its pending terms to a new index segment at every
    /// savepoint, and a segment per document instead of per transaction
    /// doubled the supervisor's indexing work (segment merges).
    pub fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, CatalogError> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let written = match job.chunk {
                Some(range) => super::chunks::write_chunk(&tx, job, range)?,
                None if write_one(&tx, job)? => Written::Held,
                None => Written::Lost,
            };
            out.push(written);
        }
        tx.commit()?;
        Ok(out)
    }
}

fn write_one(tx: &Transaction<'_>, job: &Finished) -> Result<bool, CatalogError> {
    let now = now_ms();
    let fenced = match &job.result {
        FinishedResult::Done { summary, pages } => {
            let n = tx.execute(
                "UPDATE documents SET status = 'done', outcome = 'done', reason = NULL,
                     page_count = ?1, engine = ?2, title = ?3, author = ?4, language = ?5,
                     lease_owner = NULL, lease_expires = NULL, updated_ms = ?6
                 WHERE id = ?7 AND lease_token = ?8 AND status = 'running'",
                params![
                    summary.page_count,
                    summary.engine,
                    summary.title,
                    summary.author,
                    summary.language,
                    now,
                    job.doc,
                    job.claim.token
                ],
            )?;
            if n == 1 {
                tx.execute("DELETE FROM pages WHERE doc_id = ?1", params![job.doc])?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO pages (doc_id, page, text, flags) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (page, text, flags) in pages {
                    insert.execute(params![job.doc, page, text, flags.bits()])?;
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
            "UPDATE documents SET status = ?1, outcome = ?2, reason = ?3,
                 attempts = attempts + ?4, lease_owner = NULL, lease_expires = NULL, updated_ms = ?5
             WHERE id = ?6 AND lease_token = ?7 AND status = 'running'",
            params![
                status.as_str(),
                outcome.as_str(),
                reason,
                i64::from(*counts),
                now,
                job.doc,
                job.claim.token
            ],
        )?,
        FinishedResult::Released => tx.execute(
            "UPDATE documents SET status = 'pending', lease_owner = NULL, lease_expires = NULL,
                 updated_ms = ?1
             WHERE id = ?2 AND lease_token = ?3 AND status = 'running'",
            params![now, job.doc, job.claim.token],
        )?,
    };
    if fenced == 0 {
        return Ok(false);
    }
    if matches!(job.result, FinishedResult::Released) {
        // Handed back before it produced anything: not an attempt.
        return Ok(true);
    }
    record_attempt(tx, job, None)?;
    Ok(true)
}

/// One row in `attempts` for a job that produced a result.
pub(super) fn record_attempt(
    tx: &Transaction<'_>,
    job: &Finished,
    chunk_first: Option<u32>,
) -> Result<(), CatalogError> {
    let (outcome, reason, engine) = match &job.result {
        FinishedResult::Done { summary, .. } => {
            (Outcome::Done, None, Some(summary.engine.as_str()))
        }
        FinishedResult::Failed {
            outcome, reason, ..
        } => (*outcome, Some(reason.as_str()), None),
        FinishedResult::Released => unreachable!("released jobs record no attempt"),
    };
    tx.execute(
        "INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, engine, worker_pid, started_ms, ended_ms, chunk_first)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            job.doc,
            job.run,
            job.attempt,
            outcome.as_str(),
            reason,
            engine,
            job.worker_pid,
            job.started_ms,
            job.ended_ms,
            chunk_first
        ],
    )?;
    Ok(())
}

impl Catalog {
    /// Records a new size and modification time for a file that changed
    /// while it was being extracted, so the next claim reads it afresh.
    pub fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), CatalogError> {
        self.conn.execute(
            "UPDATE documents SET size = ?1, mtime_ns = ?2, generation = generation + 1 WHERE id = ?3",
            params![size as i64, mtime_ns, doc],
        )?;
        Ok(())
    }
}
