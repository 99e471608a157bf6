//! Writing finished jobs, whole documents and chunks alike: every write is
//! fenced by the job's lease token, so a supervisor that lost its lease
//! writes nothing, and a job's pages, its state and its attempt commit
//! together. A chunk that ends its document merges it (see `chunks`).

use docmill_protocol::{DocSummary, PageRange};
use rusqlite::types::ToSql;
use rusqlite::{params, Transaction};

use super::{SqliteError, SqliteStore};
use crate::store::rules::{attempt_of, Attempt};
use crate::store::{now_ms, DocState, Finished, FinishedResult, Written};

/// Named parameters of one statement.
type Values<'a> = Vec<(&'static str, &'a dyn ToSql)>;

impl SqliteStore {
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
    pub fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, SqliteError> {
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(write(&tx, job)?);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records a new size and modification time for a file that changed
    /// while it was being extracted, so the next claim reads it afresh.
    pub fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), SqliteError> {
        self.conn.execute(
            "UPDATE documents SET size = ?1, mtime_ns = ?2, generation = generation + 1 WHERE id = ?3",
            params![size as i64, mtime_ns, doc],
        )?;
        Ok(())
    }
}

/// The table a job's result goes to, and the fence of its row: still
/// running under the job's token (`:doc`, `:token`, and `:first` for a
/// chunk, as `fenced` binds them).
fn target(job: &Finished) -> (&'static str, &'static str) {
    match job.chunk {
        None => (
            "documents",
            "id = :doc AND lease_token = :token AND status = 'running'",
        ),
        Some(_) => (
            "chunks",
            "doc_id = :doc AND first = :first AND lease_token = :token AND status = 'running'",
        ),
    }
}

/// Runs `set` (the columns an UPDATE of the job's row sets) under the
/// job's fence; true when the lease still held.
fn fenced<'a>(
    tx: &Transaction<'_>,
    job: &'a Finished,
    set: &str,
    mut values: Values<'a>,
) -> Result<bool, SqliteError> {
    let (table, fence) = target(job);
    values.push((":doc", &job.doc));
    values.push((":token", &job.claim.token));
    if let Some(range) = &job.chunk {
        values.push((":first", &range.first));
    }
    let sql = format!(
        "UPDATE {table} SET {set}, lease_owner = NULL, lease_expires = NULL, updated_ms = :now
         WHERE {fence}"
    );
    Ok(tx.execute(&sql, values.as_slice())? == 1)
}

/// Writes one job's result; a chunk that ended its document merges it.
fn write(tx: &Transaction<'_>, job: &Finished) -> Result<Written, SqliteError> {
    let now = now_ms();
    let held = match &job.result {
        FinishedResult::Done { summary, pages } => {
            let held = mark_done(tx, job, summary, &now)?;
            if held {
                chunk_names_its_document(tx, job, summary)?;
                write_pages(tx, job, pages)?;
                // A text chunk that flagged pages: the merge finds them by
                // the document's hash.
                if let (Some(hash), Some(_)) = (&summary.content_hash, &job.chunk) {
                    tx.execute(
                        "UPDATE documents SET content_hash = ?1 WHERE id = ?2",
                        rusqlite::params![hash, job.doc],
                    )?;
                }
            }
            held
        }
        FinishedResult::Flagged {
            summary,
            pages,
            ocr,
        } => {
            let held = mark_done(tx, job, summary, &now)?;
            if held {
                chunk_names_its_document(tx, job, summary)?;
                write_pages(tx, job, pages)?;
                let hash = summary.content_hash.as_deref();
                super::ocr::follow_up(tx, job.doc, job.chunk.is_none(), hash, ocr)?;
            }
            held
        }
        FinishedResult::Recognised { key, pages } => {
            let set = "status = 'done', outcome = 'done', reason = NULL, engine = 'tesseract'";
            let held = fenced(tx, job, set, vec![(":now", &now)])?;
            if held {
                super::ocr::recognised(tx, job.doc, key, pages)?;
            }
            held
        }
        FinishedResult::Failed {
            outcome,
            reason,
            status,
            counts,
        } => {
            let outcome = outcome.as_str();
            let counted = i64::from(*counts);
            let set = "status = :state, outcome = :outcome, reason = :reason,
                       attempts = attempts + :counted";
            let values: Values<'_> = vec![
                (":state", status),
                (":outcome", &outcome),
                (":reason", reason),
                (":counted", &counted),
                (":now", &now),
            ];
            fenced(tx, job, set, values)?
        }
        FinishedResult::Released => {
            let values: Values<'_> = vec![(":state", &DocState::Pending), (":now", &now)];
            fenced(tx, job, "status = :state", values)?
        }
    };
    if !held {
        return Ok(Written::Lost);
    }
    let Some(attempt) = attempt_of(&job.result) else {
        // Handed back before it produced anything: not an attempt.
        return Ok(Written::Held);
    };
    record_attempt(tx, job, attempt)?;
    if job.chunk.is_none() {
        return Ok(Written::Held);
    }
    let merged = if super::ocr::has_ocr_jobs(tx, job.doc)? {
        super::ocr::merge(tx, job.doc)?
    } else {
        super::chunks::merge(tx, job.doc)?
    };
    Ok(match merged {
        Some(m) => Written::Merged(m),
        None => Written::Held,
    })
}

/// A chunk gives its document the title and author it read (the same for
/// every chunk: they come from the file's metadata) before its pages are
/// indexed, so that they are indexed with them. Left to the merge, the
/// change of title re-indexed every page of the document at once, in the
/// supervisor's loop while the workers waited: 200-250 ms for a 300-page
/// manual, in every split document.
fn chunk_names_its_document(
    tx: &Transaction<'_>,
    job: &Finished,
    summary: &DocSummary,
) -> Result<(), SqliteError> {
    if job.chunk.is_some() {
        tx.execute(
            "UPDATE documents SET title = ?2, author = ?3
             WHERE id = ?1 AND (title IS NOT ?2 OR author IS NOT ?3)",
            params![job.doc, summary.title, summary.author],
        )?;
    }
    Ok(())
}

/// A text job's pages replace those of its range (a whole document: all of
/// them).
fn write_pages(
    tx: &Transaction<'_>,
    job: &Finished,
    pages: &[(u32, String, docmill_protocol::PageFlags)],
) -> Result<(), SqliteError> {
    // A chunk's pages are indexed now, while other chunks still run;
    // search and status skip the pages of chunks done but not merged, and
    // export reads only done and partial documents, so the document
    // becomes searchable at once, at the merge.
    let range = job.chunk.unwrap_or(PageRange {
        first: 0,
        last: u32::MAX,
    });
    tx.execute(
        "DELETE FROM pages WHERE doc_id = ?1 AND page BETWEEN ?2 AND ?3",
        params![job.doc, range.first, range.last],
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO pages (doc_id, page, text, flags) VALUES (?1, ?2, ?3, ?4)")?;
    for (page, text, flags) in pages.iter().filter(|(p, _, _)| range.contains(*p)) {
        insert.execute(params![job.doc, page, text, flags.bits()])?;
    }
    Ok(())
}

/// Marks a job's row done with what the engine said of the document; a
/// whole document also takes its page count.
fn mark_done(
    tx: &Transaction<'_>,
    job: &Finished,
    summary: &DocSummary,
    now: &i64,
) -> Result<bool, SqliteError> {
    let mut set = String::from(
        "status = 'done', outcome = 'done', reason = NULL, engine = :engine, title = :title,
         author = :author, language = :language",
    );
    let mut values: Values<'_> = vec![
        (":engine", &summary.engine),
        (":title", &summary.title),
        (":author", &summary.author),
        (":language", &summary.language),
        (":now", now),
    ];
    if job.chunk.is_none() {
        set.push_str(", page_count = :pages");
        values.push((":pages", &summary.page_count));
    }
    fenced(tx, job, &set, values)
}

/// One row in `attempts` for a job that produced a result.
fn record_attempt(
    tx: &Transaction<'_>,
    job: &Finished,
    attempt: Attempt<'_>,
) -> Result<(), SqliteError> {
    tx.execute(
        "INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, engine, worker_pid, started_ms, ended_ms, chunk_first)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            job.doc,
            job.run,
            job.attempt,
            attempt.outcome.as_str(),
            attempt.reason,
            attempt.engine,
            job.worker_pid,
            job.started_ms,
            job.ended_ms,
            job.chunk.map(|r| r.first)
        ],
    )?;
    Ok(())
}
