//! `docmill runs`: one row per index run, as both stores read it from
//! their `runs` table. The counts come from the summary a run stores when
//! it ends, read leniently, so that a summary from an older or newer
//! docmill shows what it has and leaves the rest blank.

use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub started_ms: i64,
    /// None while the run goes on, or when it was killed.
    pub ended_ms: Option<i64>,
    /// The machine and process that ran it (`host:pid`).
    pub owner: String,
    /// The paths it was given, as it made them absolute.
    pub roots: Vec<String>,
    /// Documents it extracted (done or partial).
    pub done: Option<u64>,
    /// Documents it saw that ended failed or quarantined: the count behind
    /// its exit code.
    pub failed: Option<u64>,
    /// Pages it extracted.
    pub pages: Option<u64>,
    /// Seconds from start to end.
    pub wall_s: Option<f64>,
    pub exit_code: Option<i32>,
}

impl RunRow {
    /// A row from what a store keeps: the options and summary as the JSON
    /// text the run wrote.
    pub fn from_stored(
        id: i64,
        started_ms: i64,
        ended_ms: Option<i64>,
        owner: String,
        options: &str,
        totals: Option<&str>,
        exit_code: Option<i32>,
    ) -> RunRow {
        let options: Value = serde_json::from_str(options).unwrap_or(Value::Null);
        let totals: Value = totals
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let count = |ptr: &str| totals.pointer(ptr).and_then(Value::as_u64);
        let roots = options["roots"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let done = match (count("/totals/done"), count("/totals/partial")) {
            (Some(d), p) => Some(d + p.unwrap_or(0)),
            (None, _) => None,
        };
        let wall_s = totals["seconds"]
            .as_f64()
            .or_else(|| ended_ms.map(|e| (e - started_ms).max(0) as f64 / 1000.0));
        RunRow {
            id,
            started_ms,
            ended_ms,
            owner,
            roots,
            done,
            failed: count("/failed_documents"),
            pages: count("/totals/pages"),
            wall_s,
            exit_code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_is_read_leniently() {
        let row = RunRow::from_stored(
            3,
            1_000,
            Some(4_000),
            "h:1".into(),
            r#"{"roots":["/lib/a","/lib/b"],"workers":2}"#,
            Some(
                r#"{"totals":{"done":5,"partial":1,"pages":70},"failed_documents":2,"seconds":2.5}"#,
            ),
            Some(1),
        );
        assert_eq!(row.roots, ["/lib/a", "/lib/b"]);
        assert_eq!(
            (row.done, row.failed, row.pages, row.wall_s),
            (Some(6), Some(2), Some(70), Some(2.5))
        );
        // A run that never ended, with options that are not JSON.
        let row = RunRow::from_stored(4, 1_000, None, "h:2".into(), "x", None, None);
        assert!(row.roots.is_empty());
        assert_eq!((row.done, row.wall_s, row.exit_code), (None, None, None));
        // No summary, but an end: the wall time from the two stamps.
        let row = RunRow::from_stored(5, 1_000, Some(3_500), "h".into(), "{}", None, Some(0));
        assert_eq!(row.wall_s, Some(2.5));
    }
}
