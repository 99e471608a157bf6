//! The run's record for `report`: the time series of snapshots the driver
//! keeps (`samples`), what the `runs` table says about a run, and statistics
//! per size tier, format and outcome computed from the `attempts` of a run.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{SqliteError, SqliteStore};
use crate::metrics::Snapshot;
use crate::schedule::Tier;
use docmill_protocol::Outcome;

/// One row of `runs`.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    pub id: i64,
    pub started_ms: i64,
    /// None while the run goes on, or when it was killed.
    pub ended_ms: Option<i64>,
    pub owner: String,
    /// The run's options and its summary as stored (JSON, or the raw text
    /// as a JSON string when it does not parse).
    pub options: serde_json::Value,
    pub totals: Option<serde_json::Value>,
    pub exit_code: Option<i32>,
}

/// Time spent on the documents of one size tier, from the attempts that
/// ended `done`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TierStats {
    pub tier: String,
    /// Attempts of any outcome, and those that ended done.
    pub attempts: u64,
    pub done: u64,
    pub avg_s_per_doc: Option<f64>,
    pub p95_s_per_doc: Option<f64>,
    /// Over done documents that have pages.
    pub avg_s_per_page: Option<f64>,
    pub p95_s_per_page: Option<f64>,
    /// Done documents per minute of worker time spent on the tier (all
    /// attempts, failed ones included: they cost worker time too).
    pub docs_per_worker_min: Option<f64>,
}

/// How many documents of a kind failed. Counted per document, by the last
/// attempt the run made at it: an engine that gave up before the next one
/// read the PDF, or a crash before a retry that worked, is not a failure.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ErrorRate {
    /// Documents whose last attempt ran to an outcome (a cancelled one says
    /// nothing about the document).
    pub documents: u64,
    pub failed: u64,
    pub rate: f64,
}

/// A document a run left failed, partly failed or quarantined, and why.
#[derive(Clone, Debug, Serialize)]
pub struct FailedFile {
    pub path: String,
    pub status: String,
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

/// A document by the worker time the run spent on it (every attempt).
#[derive(Clone, Debug, Serialize)]
pub struct SlowDocument {
    pub path: String,
    pub status: String,
    pub engine: Option<String>,
    pub pages: Option<u64>,
    pub seconds: f64,
    pub attempts: u64,
}

/// What the attempts of one run say.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    /// Every tier, smallest first, including empty ones.
    pub tiers: Vec<TierStats>,
    pub errors_by_format: BTreeMap<String, ErrorRate>,
    /// Attempts by outcome (`done`, `crashed`, ...).
    pub attempts_by_outcome: BTreeMap<String, u64>,
    /// Documents by the outcome of their last attempt, as a share of the
    /// documents attempted (cancelled ones left out), for every outcome
    /// but done.
    pub error_rate_by_class: BTreeMap<String, f64>,
    /// Documents by the outcome of their last attempt in the run.
    pub documents_by_outcome: BTreeMap<String, u64>,
    /// Pages of the documents done in the run.
    pub pages: u64,
}

impl SqliteStore {
    /// Stores one snapshot of `run` (see `metrics::Recorder::observe`).
    pub fn record_sample(&self, run: i64, snap: &Snapshot) -> Result<(), SqliteError> {
        let json = serde_json::to_string(snap)?;
        self.conn.execute(
            "INSERT INTO samples (run_id, t_ms, json) VALUES (?1, ?2, ?3)",
            params![run, snap.t_ms, json],
        )?;
        Ok(())
    }

    /// The snapshots stored for `run`, oldest first.
    pub fn samples(&self, run: i64) -> Result<Vec<Snapshot>, SqliteError> {
        let mut stmt = self
            .conn
            .prepare("SELECT json FROM samples WHERE run_id = ?1 ORDER BY t_ms, id")?;
        let rows = stmt.query_map([run], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }

    /// The run a report shows by default: the most recent one that did
    /// work (made at least one attempt), so that the no-op re-runs of a
    /// nightly job do not hide the last real one; the most recent run when
    /// none did any.
    pub fn last_run(&self) -> Result<Option<i64>, SqliteError> {
        Ok(self.conn.query_row(
            "SELECT coalesce(
                 (SELECT max(a.run_id) FROM attempts a JOIN runs r ON r.id = a.run_id),
                 (SELECT max(id) FROM runs))",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )?)
    }

    pub fn run_info(&self, run: i64) -> Result<Option<RunInfo>, SqliteError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, started_ms, ended_ms, owner, options, totals, exit_code
                 FROM runs WHERE id = ?1",
                [run],
                |r| {
                    Ok(RunInfo {
                        id: r.get(0)?,
                        started_ms: r.get(1)?,
                        ended_ms: r.get(2)?,
                        owner: r.get(3)?,
                        options: json_or_text(r.get(4)?),
                        totals: r.get::<_, Option<String>>(5)?.map(json_or_text),
                        exit_code: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// The documents `run` saw or tried that are failed, partial or
    /// quarantined, by path.
    pub fn failed_files(&self, run: i64) -> Result<Vec<FailedFile>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.display_path, d.status, d.outcome, d.reason FROM documents d
             WHERE d.status IN ('failed', 'quarantined', 'partial')
               AND (d.seen_run = ?1 OR EXISTS
                    (SELECT 1 FROM attempts a WHERE a.doc_id = d.id AND a.run_id = ?1))
             ORDER BY d.display_path",
        )?;
        let rows = stmt.query_map([run], |r| {
            Ok(FailedFile {
                path: r.get(0)?,
                status: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The `limit` documents `run` spent the most worker time on, slowest
    /// first (a split document's chunks add up).
    pub fn slowest(&self, run: i64, limit: u32) -> Result<Vec<SlowDocument>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.display_path, d.status, d.engine, d.page_count,
                    sum(max(a.ended_ms - a.started_ms, 0)) AS ms, count(*)
             FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE a.run_id = ?1
             GROUP BY a.doc_id ORDER BY ms DESC, d.display_path LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![run, limit], |r| {
            Ok(SlowDocument {
                path: r.get(0)?,
                status: r.get(1)?,
                engine: r.get(2)?,
                pages: r.get::<_, Option<i64>>(3)?.map(|p| p.max(0) as u64),
                seconds: r.get::<_, i64>(4)? as f64 / 1000.0,
                attempts: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Statistics of the attempts made by `run`.
    pub fn run_stats(&self, run: i64) -> Result<RunStats, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.doc_id, a.outcome, a.started_ms, a.ended_ms, d.size, d.format, d.page_count
             FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE a.run_id = ?1 ORDER BY a.id",
        )?;
        let rows = stmt.query_map([run], |r| {
            Ok(Attempt {
                doc: r.get(0)?,
                outcome: r.get(1)?,
                seconds: (r.get::<_, i64>(3)? - r.get::<_, i64>(2)?).max(0) as f64 / 1000.0,
                size: r.get::<_, i64>(4)?.max(0) as u64,
                format: r.get(5)?,
                pages: r.get::<_, Option<i64>>(6)?.unwrap_or(0).max(0) as u64,
            })
        })?;
        let attempts: Vec<Attempt> = rows.collect::<Result<_, _>>()?;
        Ok(stats_of(&attempts))
    }
}

struct Attempt {
    doc: i64,
    outcome: String,
    seconds: f64,
    size: u64,
    format: String,
    pages: u64,
}

fn stats_of(attempts: &[Attempt]) -> RunStats {
    let mut stats = RunStats::default();
    // Attempts are in order, so the last one seen per document is its end.
    let mut last: HashMap<i64, &Attempt> = HashMap::new();
    for a in attempts {
        *stats
            .attempts_by_outcome
            .entry(a.outcome.clone())
            .or_default() += 1;
        last.insert(a.doc, a);
    }
    let cancelled = Outcome::Cancelled.as_str();
    for a in last.values().filter(|a| a.outcome != cancelled) {
        let e = stats.errors_by_format.entry(a.format.clone()).or_default();
        e.documents += 1;
        e.failed += u64::from(a.outcome != Outcome::Done.as_str());
    }
    for e in stats.errors_by_format.values_mut() {
        e.rate = ratio(e.failed as f64, e.documents as f64);
    }
    let ended = last.values().filter(|a| a.outcome != cancelled).count() as f64;
    for a in last.values() {
        *stats
            .documents_by_outcome
            .entry(a.outcome.clone())
            .or_default() += 1;
        if a.outcome == Outcome::Done.as_str() {
            stats.pages += a.pages;
        }
    }
    stats.error_rate_by_class = stats
        .documents_by_outcome
        .iter()
        .filter(|(o, _)| o.as_str() != Outcome::Done.as_str() && o.as_str() != cancelled)
        .map(|(o, n)| (o.clone(), ratio(*n as f64, ended)))
        .collect();
    stats.tiers = Tier::ALL
        .iter()
        .map(|tier| {
            let of_tier: Vec<&Attempt> = attempts
                .iter()
                .filter(|a| Tier::of(a.size) == *tier)
                .collect();
            tier_stats(*tier, &of_tier)
        })
        .collect();
    stats
}

fn tier_stats(tier: Tier, attempts: &[&Attempt]) -> TierStats {
    let done: Vec<&&Attempt> = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Done.as_str())
        .collect();
    let per_doc: Vec<f64> = done.iter().map(|a| a.seconds).collect();
    let per_page: Vec<f64> = done
        .iter()
        .filter(|a| a.pages > 0)
        .map(|a| a.seconds / a.pages as f64)
        .collect();
    let worker_min: f64 = attempts.iter().map(|a| a.seconds).sum::<f64>() / 60.0;
    TierStats {
        tier: tier.as_str().to_string(),
        attempts: attempts.len() as u64,
        done: done.len() as u64,
        avg_s_per_doc: mean(&per_doc),
        p95_s_per_doc: p95(&per_doc),
        avg_s_per_page: mean(&per_page),
        p95_s_per_page: p95(&per_page),
        // Jobs of under a millisecond would divide by zero.
        docs_per_worker_min: (worker_min > 0.0).then(|| done.len() as f64 / worker_min),
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The nearest-rank 95th percentile: a value that occurred, never an
/// interpolation between two documents.
fn p95(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (0.95 * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn json_or_text(s: String) -> serde_json::Value {
    serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(
        doc: i64,
        outcome: &str,
        seconds: f64,
        size: u64,
        format: &str,
        pages: u64,
    ) -> Attempt {
        Attempt {
            doc,
            outcome: outcome.to_string(),
            seconds,
            size,
            format: format.to_string(),
            pages,
        }
    }

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(p95(&[]), None);
        assert_eq!(p95(&[3.0]), Some(3.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&v), Some(95.0));
        assert_eq!(p95(&[1.0, 2.0, 10.0]), Some(10.0));
    }

    #[test]
    fn stats_by_tier_format_and_outcome() {
        const MIB: u64 = 1 << 20;
        let a = [
            attempt(1, "done", 2.0, 100, "pdf", 4),
            attempt(2, "crashed", 1.0, 5 * MIB, "pdf", 0),
            attempt(2, "done", 3.0, 5 * MIB, "pdf", 10),
            attempt(3, "extract-failed", 0.5, 200, "epub", 0),
            attempt(4, "cancelled", 1.0, 300, "epub", 0),
            attempt(5, "done", 4.0, 300, "epub", 2),
        ];
        let s = stats_of(&a);
        assert_eq!(s.tiers.len(), 5);
        let tiny = &s.tiers[0];
        assert_eq!(
            (tiny.tier.as_str(), tiny.attempts, tiny.done),
            ("tiny", 4, 2)
        );
        assert_eq!(tiny.avg_s_per_doc, Some(3.0));
        assert_eq!(tiny.p95_s_per_doc, Some(4.0));
        assert_eq!(tiny.avg_s_per_page, Some((0.5 + 2.0) / 2.0));
        // 2 done in 7.5 s of worker time.
        assert!((tiny.docs_per_worker_min.unwrap() - 16.0).abs() < 1e-9);
        let small = &s.tiers[1];
        assert_eq!(
            (small.attempts, small.done, small.avg_s_per_doc),
            (2, 1, Some(3.0))
        );
        assert_eq!(s.tiers[4].avg_s_per_doc, None);
        assert_eq!(s.tiers[4].docs_per_worker_min, None);

        // Per document: document 2 crashed once and was then done, so no
        // PDF failed; of the EPUBs, 3 failed and 4 was cancelled.
        assert_eq!(s.errors_by_format["pdf"].documents, 2);
        assert_eq!(s.errors_by_format["pdf"].failed, 0);
        assert_eq!(s.errors_by_format["epub"].documents, 2); // cancelled left out
        assert_eq!(s.errors_by_format["epub"].rate, 0.5);
        assert_eq!(s.attempts_by_outcome["done"], 3);
        assert_eq!(s.attempts_by_outcome["crashed"], 1);
        assert!(!s.error_rate_by_class.contains_key("crashed"));
        assert!((s.error_rate_by_class["extract-failed"] - 1.0 / 4.0).abs() < 1e-9);
        assert!(!s.error_rate_by_class.contains_key("done"));
        // Document 2 ended done after a crash.
        assert_eq!(s.documents_by_outcome["done"], 3);
        assert_eq!(s.documents_by_outcome.get("crashed"), None);
        assert_eq!(s.pages, 16);
    }

    #[test]
    fn samples_round_trip_and_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SqliteStore::open(&dir.path().join("x.db")).unwrap();
        assert_eq!(c.last_run().unwrap(), None);
        let run = c.begin_run("me", r#"{"workers":2}"#).unwrap();
        let other = c.begin_run("me", "not json").unwrap();
        for (t, run) in [(2_000, run), (1_000, run), (1_500, other)] {
            let snap = Snapshot {
                t_ms: t,
                workers: 2,
                ..Snapshot::default()
            };
            c.record_sample(run, &snap).unwrap();
        }
        let got = c.samples(run).unwrap();
        assert_eq!(
            got.iter().map(|s| s.t_ms).collect::<Vec<_>>(),
            vec![1_000, 2_000]
        );
        assert_eq!(c.last_run().unwrap(), Some(other));
        c.end_run(run, r#"{"done":3}"#, 0).unwrap();
        let info = c.run_info(run).unwrap().unwrap();
        assert_eq!(info.options["workers"], 2);
        assert_eq!(info.totals.unwrap()["done"], 3);
        assert_eq!(info.exit_code, Some(0));
        assert!(info.ended_ms.is_some());
        let info = c.run_info(other).unwrap().unwrap();
        assert_eq!(info.options, serde_json::Value::String("not json".into()));
        assert!(c.run_info(99).unwrap().is_none());
        assert!(c
            .run_stats(run)
            .unwrap()
            .tiers
            .iter()
            .all(|t| t.attempts == 0));
    }

    #[test]
    fn the_last_run_is_the_last_that_did_work() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SqliteStore::open(&dir.path().join("x.db")).unwrap();
        let worked = c.begin_run("me", "{}").unwrap();
        c.conn
            .execute_batch(&format!(
                "INSERT INTO documents (path, display_path, size, mtime_ns, format, status, updated_ms)
                     VALUES (x'2f61', '/a', 1, 1, 'pdf', 'done', 0);
                 INSERT INTO attempts (doc_id, run_id, attempt, outcome, started_ms, ended_ms)
                     VALUES (1, {worked}, 1, 'done', 0, 1);"
            ))
            .unwrap();
        let idle = c.begin_run("me", "{}").unwrap();
        assert!(idle > worked);
        assert_eq!(c.last_run().unwrap(), Some(worked));
    }

    #[test]
    fn failed_files_and_the_slowest_documents_of_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SqliteStore::open(&dir.path().join("x.db")).unwrap();
        let old = c.begin_run("me", "{}").unwrap();
        let run = c.begin_run("me", "{}").unwrap();
        // /a done in 3 s over two attempts; /b failed in this run; /c
        // quarantined and seen by this run; /d failed, seen only by the
        // earlier run; /e done in 1 s.
        c.conn
            .execute_batch(&format!(
                "INSERT INTO documents (id, path, display_path, size, mtime_ns, format, status, outcome, reason, engine, page_count, seen_run, updated_ms) VALUES
                     (1, x'2f61', '/a', 1, 1, 'pdf', 'done', 'done', NULL, 'mupdf', 4, {run}, 0),
                     (2, x'2f62', '/b', 1, 1, 'pdf', 'failed', 'extract-failed', 'bad xref', NULL, NULL, {run}, 0),
                     (3, x'2f63', '/c', 1, 1, 'pdf', 'quarantined', 'crashed', 'SIGSEGV', NULL, NULL, {run}, 0),
                     (4, x'2f64', '/d', 1, 1, 'pdf', 'failed', 'extract-failed', 'old', NULL, NULL, {old}, 0),
                     (5, x'2f65', '/e', 1, 1, 'epub', 'done', 'done', NULL, 'epub', 2, {run}, 0);
                 INSERT INTO attempts (doc_id, run_id, attempt, outcome, started_ms, ended_ms) VALUES
                     (1, {run}, 1, 'crashed', 0, 1000), (1, {run}, 2, 'done', 1000, 3000),
                     (2, {run}, 1, 'extract-failed', 0, 500), (5, {run}, 1, 'done', 0, 1000),
                     (4, {old}, 1, 'extract-failed', 0, 9000);"
            ))
            .unwrap();
        let failed = c.failed_files(run).unwrap();
        let seen: Vec<(&str, &str, Option<&str>)> = failed
            .iter()
            .map(|f| (f.path.as_str(), f.status.as_str(), f.reason.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("/b", "failed", Some("bad xref")),
                ("/c", "quarantined", Some("SIGSEGV"))
            ]
        );
        let slow = c.slowest(run, 2).unwrap();
        let seen: Vec<_> = slow
            .iter()
            .map(|d| {
                (
                    d.path.as_str(),
                    d.seconds,
                    d.attempts,
                    d.pages,
                    d.engine.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("/a", 3.0, 2, Some(4), Some("mupdf")),
                ("/e", 1.0, 1, Some(2), Some("epub"))
            ]
        );
    }

    #[test]
    fn an_older_database_gains_the_samples_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        drop(SqliteStore::open(&path).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE samples")
            .unwrap();
        let c = SqliteStore::open(&path).unwrap();
        c.record_sample(1, &Snapshot::default()).unwrap();
        assert_eq!(c.samples(1).unwrap().len(), 1);
    }
}
