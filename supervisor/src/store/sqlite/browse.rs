//! Reading the index one document at a time, for the local web page
//! (`docmill serve`): a document's record, attempts and pages, the file a
//! document id stands for, what a search's matches hold by folder and
//! format, and the latest run with its newest samples and failures.
//! Every statement here only reads.

use rusqlite::{params, OptionalExtension};

use super::{SqliteError, SqliteStore};
use crate::metrics::Snapshot;
use crate::search::render;
use crate::store::PageSearch;

/// A document's record in the catalog.
#[derive(Clone, Debug)]
pub struct DocumentInfo {
    pub id: i64,
    /// The path as the OS gave it (names need not be UTF-8).
    pub path: Vec<u8>,
    pub display_path: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub format: String,
    pub status: String,
    pub attempts: u32,
    pub interrupted: u32,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub page_count: Option<u32>,
    pub engine: Option<String>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
    /// Pages stored (searchable or waiting for a merge).
    pub pages_stored: u64,
}

/// One finished attempt at a document.
#[derive(Clone, Debug)]
pub struct AttemptInfo {
    pub run: i64,
    pub attempt: u32,
    pub outcome: String,
    pub reason: Option<String>,
    pub engine: Option<String>,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// The first page of the chunk it was, for a split document.
    pub chunk_first: Option<u32>,
}

/// A failed attempt of a run, with its document.
#[derive(Clone, Debug)]
pub struct RunFailure {
    pub doc: i64,
    pub path: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub ended_ms: i64,
}

impl SqliteStore {
    pub fn document(&self, id: i64) -> Result<Option<DocumentInfo>, SqliteError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, path, display_path, size, mtime_ns, format, status, attempts,
                        interrupted, outcome, reason, page_count, engine, title, author,
                        language, (SELECT count(*) FROM pages p WHERE p.doc_id = d.id)
                 FROM documents d WHERE id = ?1",
                [id],
                |r| {
                    Ok(DocumentInfo {
                        id: r.get(0)?,
                        path: r.get(1)?,
                        display_path: r.get(2)?,
                        size: r.get::<_, i64>(3)?.max(0) as u64,
                        mtime_ns: r.get(4)?,
                        format: r.get(5)?,
                        status: r.get(6)?,
                        attempts: r.get(7)?,
                        interrupted: r.get(8)?,
                        outcome: r.get(9)?,
                        reason: r.get(10)?,
                        page_count: r.get(11)?,
                        engine: r.get(12)?,
                        title: r.get(13)?,
                        author: r.get(14)?,
                        language: r.get(15)?,
                        pages_stored: r.get::<_, i64>(16)?.max(0) as u64,
                    })
                },
            )
            .optional()?)
    }

    /// A document's path as text, without the rest of its record.
    pub fn display_path(&self, id: i64) -> Result<Option<String>, SqliteError> {
        Ok(self
            .conn
            .query_row(
                "SELECT display_path FROM documents WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The document stored under `path` (the OS's bytes), if any.
    pub fn document_id(&self, path: &[u8]) -> Result<Option<i64>, SqliteError> {
        Ok(self
            .conn
            .query_row("SELECT id FROM documents WHERE path = ?1", [path], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Every finished attempt at a document, oldest first.
    pub fn attempts_of(&self, id: i64) -> Result<Vec<AttemptInfo>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT run_id, attempt, outcome, reason, engine, started_ms, ended_ms, chunk_first
             FROM attempts WHERE doc_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(AttemptInfo {
                run: r.get(0)?,
                attempt: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
                engine: r.get(4)?,
                started_ms: r.get(5)?,
                ended_ms: r.get(6)?,
                chunk_first: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored pages `first..=last` of a document: (page, text, flags).
    pub fn pages_of(
        &self,
        id: i64,
        first: u32,
        last: u32,
    ) -> Result<Vec<(u32, String, i64)>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT page, text, flags FROM pages
             WHERE doc_id = ?1 AND page BETWEEN ?2 AND ?3 ORDER BY page",
        )?;
        let rows = stmt.query_map(params![id, first, last], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (display path, format) of every document with a page matching
    /// `search` (its query and filters; paging is ignored), at most `cap`.
    pub fn matching_documents(
        &self,
        search: &PageSearch<'_>,
        cap: usize,
    ) -> Result<Vec<(String, String)>, SqliteError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.display_path, d.format FROM documents d
             WHERE d.id IN (
                 SELECT p.doc_id FROM pages_fts JOIN pages p ON p.id = pages_fts.rowid
                 WHERE pages_fts MATCH ?1
                   AND NOT EXISTS (
                       SELECT 1 FROM chunks c WHERE c.doc_id = p.doc_id AND c.merged = 0
                         AND c.status = 'done' AND p.page BETWEEN c.first AND c.last))
               AND (?2 IS NULL OR d.display_path LIKE ?2 ESCAPE '\\')
               AND (?3 IS NULL OR d.format = ?3)
             ORDER BY d.path LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                render::fts5(search.query),
                search.path_like,
                search.format.map(|f| f.as_str()),
                cap as i64
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest run's id, whether or not it did work.
    pub fn newest_run(&self) -> Result<Option<i64>, SqliteError> {
        Ok(self
            .conn
            .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))?)
    }

    /// The newest `n` samples of `run`, oldest first.
    pub fn last_samples(&self, run: i64, n: usize) -> Result<Vec<Snapshot>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT json FROM (SELECT id, t_ms, json FROM samples WHERE run_id = ?1
                               ORDER BY t_ms DESC, id DESC LIMIT ?2)
             ORDER BY t_ms, id",
        )?;
        let rows = stmt.query_map(params![run, n as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for json in rows {
            out.push(serde_json::from_str(&json?)?);
        }
        Ok(out)
    }

    /// The newest `n` attempts of `run` that failed, newest first.
    pub fn failures_in_run(&self, run: i64, n: usize) -> Result<Vec<RunFailure>, SqliteError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.doc_id, d.display_path, a.outcome, a.reason, a.ended_ms
             FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE a.run_id = ?1 AND a.outcome NOT IN ('done', 'cancelled')
             ORDER BY a.ended_ms DESC, a.id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![run, n as i64], |r| {
            Ok(RunFailure {
                doc: r.get(0)?,
                path: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
                ended_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_samples_and_failures_of_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SqliteStore::open(&dir.path().join("x.db")).unwrap();
        assert_eq!(c.newest_run().unwrap(), None);
        let run = c.begin_run("me", "{}").unwrap();
        for t in [3_000, 1_000, 2_000, 4_000] {
            let snap = Snapshot {
                t_ms: t,
                ..Snapshot::default()
            };
            c.record_sample(run, &snap).unwrap();
        }
        let last: Vec<i64> = c
            .last_samples(run, 2)
            .unwrap()
            .iter()
            .map(|s| s.t_ms)
            .collect();
        assert_eq!(last, [3_000, 4_000]);
        c.conn
            .execute_batch(&format!(
                "INSERT INTO documents (path, display_path, size, mtime_ns, format, status, updated_ms)
                     VALUES (x'2f61', '/a', 1, 1, 'pdf', 'failed', 0);
                 INSERT INTO attempts (doc_id, run_id, attempt, outcome, reason, started_ms, ended_ms)
                     VALUES (1, {run}, 1, 'done', NULL, 0, 1),
                            (1, {run}, 2, 'crashed', 'signal 11', 0, 5),
                            (1, {run}, 3, 'cancelled', NULL, 0, 6),
                            (1, {run}, 4, 'timed-out', 'deadline', 0, 7);"
            ))
            .unwrap();
        let f = c.failures_in_run(run, 10).unwrap();
        let outcomes: Vec<&str> = f.iter().map(|f| f.outcome.as_str()).collect();
        assert_eq!(outcomes, ["timed-out", "crashed"]);
        assert_eq!(c.document_id(b"/a").unwrap(), Some(1));
        assert_eq!(c.document_id(b"/b").unwrap(), None);
        assert_eq!(c.display_path(1).unwrap().as_deref(), Some("/a"));
        assert_eq!(c.display_path(2).unwrap(), None);
        let d = c.document(1).unwrap().unwrap();
        assert_eq!(
            (d.display_path.as_str(), d.status.as_str()),
            ("/a", "failed")
        );
        assert_eq!(c.attempts_of(1).unwrap().len(), 4);
        assert!(c.document(2).unwrap().is_none());
    }
}
