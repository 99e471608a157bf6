//! Writing finished jobs on the shared store: every write is fenced by the
//! job's lease token, so a supervisor that lost its lease writes nothing,
//! and a job's pages, its state and its attempt commit together. A batch
//! is one transaction, tried again whole if the server cancels it.

use postgres::types::ToSql;
use postgres::Transaction;

use super::{in_retried_tx, pg_text, summary_texts, PageColumns, PgStore, NOW_MS};
use crate::store::rules::attempt_of;
use crate::store::{Finished, FinishedResult, StoreError, Written};

impl PgStore {
    pub(super) fn commit(&mut self, jobs: &[Finished]) -> Result<Vec<Written>, StoreError> {
        // Rows are locked in document order, so two machines' batches that
        // share split documents cannot deadlock; should the server still
        // cancel one (it may), the whole batch is tried again: it is all or
        // nothing.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| (jobs[i].doc, jobs[i].chunk.map(|r| r.first)));
        in_retried_tx(&mut self.client, |tx| {
            let mut out = vec![Written::Lost; jobs.len()];
            for &i in &order {
                let job = &jobs[i];
                out[i] = match job.chunk {
                    Some(range) => super::chunks::write_chunk(tx, job, range)?,
                    None if write_one(tx, job)? => {
                        super::ocr::follow_up(tx, job)?;
                        Written::Held
                    }
                    None => Written::Lost,
                };
            }
            Ok(out)
        })
    }

    pub(super) fn restat(&mut self, doc: i64, size: u64, mtime_ns: i64) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE documents SET size = $1, mtime_ns = $2, generation = generation + 1 WHERE id = $3",
            &[&(size as i64), &mtime_ns, &doc],
        )?;
        Ok(())
    }
}

/// The attempt row a fenced write adds, as a data-modifying CTE over the
/// `fenced` one: $1 run, $2 attempt, $3 outcome, $4 reason, $5 engine,
/// $6 worker pid, $7 started, $8 ended.
const ATTEMPT: &str = "tried AS (
    INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, engine, worker_pid, started_ms, ended_ms)
    SELECT id, $1, $2, $3, $4, $5, $6, $7, $8 FROM fenced)";

/// Writes one finished job in one statement (one round trip, since each
/// waits on the server while workers wait on the supervisor); false, and
/// nothing written, when its lease no longer holds. The pages are replaced
/// by upsert plus removal of the pages no longer there, so the statement
/// never deletes and inserts the same row.
fn write_one(tx: &mut Transaction<'_>, job: &Finished) -> Result<bool, postgres::Error> {
    let token = job.claim.token;
    let Some(tried) = attempt_of(&job.result) else {
        // Handed back before it produced anything: not an attempt.
        let row = tx.query_one(
            &format!(
                "WITH fenced AS (
                     UPDATE documents SET status = 'pending', lease_owner = NULL,
                         lease_expires = NULL, updated_ms = {NOW_MS}
                     WHERE id = $1 AND lease_token = $2 AND status = 'running'
                     RETURNING id)
                 SELECT count(*) FROM fenced"
            ),
            &[&job.doc, &token],
        )?;
        return Ok(row.get::<_, i64>(0) == 1);
    };
    let reason = tried.reason.map(pg_text);
    let attempt = i64::from(job.attempt);
    let pid = i64::from(job.worker_pid);
    let outcome = tried.outcome.as_str();
    // The attempt's columns, $1 to $8, as `ATTEMPT` reads them.
    let tried_values: [&(dyn ToSql + Sync); 8] = [
        &job.run,
        &attempt,
        &outcome,
        &reason,
        &tried.engine,
        &pid,
        &job.started_ms,
        &job.ended_ms,
    ];
    let row = match &job.result {
        FinishedResult::Done { summary, pages }
        | FinishedResult::Flagged { summary, pages, .. } => {
            let columns = PageColumns::of(pages.iter());
            let [title, author, language] = summary_texts(summary);
            let page_count = i64::from(summary.page_count);
            let texts = columns.texts();
            let values: [&(dyn ToSql + Sync); 9] = [
                &page_count,
                &title,
                &author,
                &language,
                &job.doc,
                &token,
                &columns.numbers,
                &texts,
                &columns.flags,
            ];
            tx.query_one(
                &format!(
                    "WITH fenced AS (
                         UPDATE documents SET status = 'done', outcome = 'done', reason = NULL,
                             page_count = $9, engine = $5, title = $10, author = $11, language = $12,
                             lease_owner = NULL, lease_expires = NULL, updated_ms = {NOW_MS}
                         WHERE id = $13 AND lease_token = $14 AND status = 'running'
                         RETURNING id),
                     gone AS (
                         DELETE FROM pages
                         WHERE doc_id IN (SELECT id FROM fenced) AND page <> ALL($15::bigint[])),
                     put AS (
                         INSERT INTO pages (doc_id, page, text, flags)
                         SELECT fenced.id, x.p, x.t, x.f
                         FROM fenced, unnest($15::bigint[], $16::text[], $17::bigint[]) AS x(p, t, f)
                         ON CONFLICT (doc_id, page) DO UPDATE
                             SET text = excluded.text, flags = excluded.flags,
                                 outbox = nextval('outbox_seq')),
                     {ATTEMPT}
                     SELECT count(*) FROM fenced"
                ),
                &[&tried_values[..], &values[..]].concat(),
            )?
        }
        FinishedResult::Failed { status, counts, .. } => {
            let state = status.as_str();
            let counted = i64::from(*counts);
            let values: [&(dyn ToSql + Sync); 4] = [&state, &counted, &job.doc, &token];
            tx.query_one(
                &format!(
                    "WITH fenced AS (
                         UPDATE documents SET status = $9, outcome = $3, reason = $4,
                             attempts = attempts + $10, lease_owner = NULL, lease_expires = NULL,
                             updated_ms = {NOW_MS}
                         WHERE id = $11 AND lease_token = $12 AND status = 'running'
                         RETURNING id),
                     {ATTEMPT}
                     SELECT count(*) FROM fenced"
                ),
                &[&tried_values[..], &values[..]].concat(),
            )?
        }
        FinishedResult::Released => unreachable!("a released job records no attempt"),
        FinishedResult::Recognised { .. } => unreachable!("an OCR job is a chunk job"),
    };
    Ok(row.get::<_, i64>(0) == 1)
}
