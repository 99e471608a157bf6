//! The stats file: one JSON object that other programs (a dashboard, a shell
//! loop with `jq`) can read at any moment. It is replaced by rename, so a
//! reader sees the old file or the new one, never half of one.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::rate::Rates;
use super::{RunningJob, Snapshot};

const GIB: f64 = (1u64 << 30) as f64;

#[derive(Debug, Serialize)]
pub struct StatsJson {
    /// When the snapshot was taken, ms since the Unix epoch.
    pub time_ms: i64,
    pub elapsed_s: f64,
    /// False while the run goes on; true in the file `finish` writes.
    pub finished: bool,
    pub workers: WorkersJson,
    pub performance: PerformanceJson,
    pub resources: ResourcesJson,
    pub totals: TotalsJson,
    pub queue_by_tier: BTreeMap<String, u64>,
    pub by_format: BTreeMap<String, u64>,
    pub failures_by_class: BTreeMap<String, u64>,
    pub decision: Option<String>,
    /// The jobs running now, longest-running first: `path`, `pages` (a
    /// chunk's first and last, else null), `elapsed_s`, `rss_bytes`.
    pub running: Vec<RunningJob>,
}

#[derive(Debug, Serialize)]
pub struct WorkersJson {
    pub active: u32,
    pub idle: u32,
    /// Busy workers over live ones (0 when none is live).
    pub efficiency: f64,
    pub count: u32,
    pub min: u32,
    pub max: u32,
    pub epubs_running: u32,
}

#[derive(Debug, Serialize)]
pub struct PerformanceJson {
    /// Over the last ~30 s; null until there is a rate to tell.
    pub docs_per_min: Option<f64>,
    pub pages_per_min: Option<f64>,
    /// OCR pages recognised a minute since the run started (an OCR page
    /// costs hundreds of text pages); null before any.
    pub ocr_pages_per_min: Option<f64>,
    pub queue_depth: u64,
    pub eta_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ResourcesJson {
    pub cpu_percent: f32,
    pub cpu_own_percent: f32,
    pub memory_gb: f64,
    pub memory_budget_gb: Option<f64>,
    /// Descriptors used over the limit (0 when the limit is unknown).
    pub fd_usage: f64,
    pub fds_used: u64,
    pub fd_limit: u64,
}

/// `DocCounts` as the stats file shows them, with what remains in the
/// middle (the file's shape predates `DocCounts`).
#[derive(Debug, Serialize)]
pub struct TotalsJson {
    pub docs_total: u64,
    pub docs_done: u64,
    pub docs_failed: u64,
    pub docs_remaining: u64,
    pub pages_done: u64,
    pub ocr_pages_done: u64,
    pub ocr_pages_cached: u64,
}

impl StatsJson {
    pub fn new(s: &Snapshot, rates: &Rates, finished: bool) -> StatsJson {
        let remaining = s.docs.remaining();
        StatsJson {
            time_ms: s.t_ms,
            elapsed_s: s.elapsed_s,
            finished,
            workers: WorkersJson {
                active: s.busy,
                idle: s.workers.saturating_sub(s.busy),
                efficiency: ratio(s.busy as f64, s.workers as f64),
                count: s.workers,
                min: s.min_workers,
                max: s.max_workers,
                epubs_running: s.epubs_running,
            },
            performance: PerformanceJson {
                docs_per_min: rates.docs_per_min,
                pages_per_min: rates.pages_per_min,
                ocr_pages_per_min: (s.docs.ocr_pages_done > 0 && s.elapsed_s > 0.0)
                    .then(|| s.docs.ocr_pages_done as f64 * 60.0 / s.elapsed_s),
                queue_depth: s.queue_depth,
                eta_s: rates.eta_s(remaining),
            },
            resources: ResourcesJson {
                cpu_percent: s.cpu_percent,
                cpu_own_percent: s.cpu_own_percent,
                memory_gb: s.memory_used_bytes as f64 / GIB,
                memory_budget_gb: s.memory_budget_bytes.map(|b| b as f64 / GIB),
                fd_usage: ratio(s.fds_used as f64, s.fd_limit as f64),
                fds_used: s.fds_used,
                fd_limit: s.fd_limit,
            },
            totals: TotalsJson {
                docs_total: s.docs.docs_total,
                docs_done: s.docs.docs_done,
                docs_failed: s.docs.docs_failed,
                docs_remaining: remaining,
                pages_done: s.docs.pages_done,
                ocr_pages_done: s.docs.ocr_pages_done,
                ocr_pages_cached: s.docs.ocr_pages_cached,
            },
            queue_by_tier: s.queue_by_tier.clone(),
            by_format: s.by_format.clone(),
            failures_by_class: s.failures_by_class.clone(),
            decision: s.decision.clone(),
            running: s.running.clone(),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Replaces `path` with `bytes` so that no reader ever sees a partial file:
/// the bytes go to a temporary file in the same folder (a rename is atomic
/// only within one file system), are flushed, and the temporary file is
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        // Flushed before the rename, so a crash right after cannot leave an
        // empty file under the real name.
        f.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DocCounts;

    #[test]
    fn shape() {
        let snap = Snapshot {
            t_ms: 1_700_000_000_000,
            elapsed_s: 90.0,
            workers: 4,
            busy: 3,
            min_workers: 1,
            max_workers: 8,
            queue_depth: 12,
            queue_by_tier: [("tiny".to_string(), 10), ("huge".to_string(), 2)].into(),
            docs: DocCounts {
                docs_total: 40,
                docs_done: 20,
                docs_failed: 2,
                pages_done: 900,
                ocr_pages_done: 30,
                ocr_pages_cached: 4,
            },
            memory_used_bytes: 3 << 29,
            memory_budget_bytes: Some(4 << 30),
            fds_used: 64,
            fd_limit: 1024,
            by_format: [("pdf".to_string(), 20)].into(),
            running: vec![RunningJob {
                path: "/lib/big.pdf".into(),
                pages: Some((1, 50)),
                elapsed_s: 25.5,
                rss_bytes: 1 << 30,
                ..RunningJob::default()
            }],
            ..Snapshot::default()
        };
        let rates = Rates {
            docs_per_min: Some(9.0),
            pages_per_min: Some(450.0),
        };
        let v = serde_json::to_value(StatsJson::new(&snap, &rates, false)).unwrap();
        let running = &v["running"][0];
        assert_eq!(running["path"], "/lib/big.pdf");
        assert_eq!(running["pages"], serde_json::json!([1, 50]));
        assert_eq!(running["elapsed_s"], 25.5);
        assert_eq!(running["rss_bytes"], 1u64 << 30);
        assert_eq!(v["workers"]["active"], 3);
        assert_eq!(v["workers"]["idle"], 1);
        assert_eq!(v["workers"]["efficiency"], 0.75);
        assert_eq!(v["performance"]["docs_per_min"], 9.0);
        assert_eq!(v["performance"]["pages_per_min"], 450.0);
        assert_eq!(v["performance"]["ocr_pages_per_min"], 20.0);
        assert_eq!(v["totals"]["ocr_pages_done"], 30);
        assert_eq!(v["totals"]["ocr_pages_cached"], 4);
        assert_eq!(v["performance"]["queue_depth"], 12);
        assert_eq!(v["performance"]["eta_s"], 120.0); // 18 left at 9/min
        assert_eq!(v["resources"]["cpu_percent"], 0.0);
        assert_eq!(v["resources"]["memory_gb"], 1.5);
        assert_eq!(v["resources"]["memory_budget_gb"], 4.0);
        assert_eq!(v["resources"]["fd_usage"], 0.0625);
        assert_eq!(v["totals"]["docs_remaining"], 18);
        assert_eq!(v["queue_by_tier"]["huge"], 2);
        assert_eq!(v["by_format"]["pdf"], 20);
        assert_eq!(v["time_ms"], 1_700_000_000_000i64);
        assert_eq!(v["finished"], false);
    }

    #[test]
    fn no_workers_no_division_by_zero() {
        let v = serde_json::to_value(StatsJson::new(
            &Snapshot::default(),
            &Rates::default(),
            false,
        ))
        .unwrap();
        assert_eq!(v["workers"]["efficiency"], 0.0);
        assert_eq!(v["resources"]["fd_usage"], 0.0);
        assert!(v["performance"]["docs_per_min"].is_null());
    }

    #[test]
    fn atomic_write_replaces_by_rename() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        write_atomic(&path, b"{\"old\":1}").unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        // A reader holding the old file keeps reading the old, whole bytes.
        let held = fs::File::open(&path).unwrap();
        write_atomic(&path, b"{\"new\":2}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"new\":2}");
        // Replaced by rename: a new inode under the name, never the old one
        // truncated and rewritten in place.
        assert_ne!(fs::metadata(&path).unwrap().ino(), before);
        let mut old = String::new();
        io::Read::read_to_string(&mut &held, &mut old).unwrap();
        assert_eq!(old, "{\"old\":1}");
        // No temporary file is left beside it.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("stats.json")]);
    }

    #[test]
    fn readers_never_see_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let big = |n: u8| -> Vec<u8> {
            let mut v = vec![b'['];
            v.extend(std::iter::repeat_n(n, 1 << 20));
            v.push(b']');
            v
        };
        write_atomic(&path, &big(b'0')).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let b = fs::read(&path).unwrap();
                    assert_eq!(b.len(), (1 << 20) + 2, "a partial file was visible");
                    assert_eq!(b.last(), Some(&b']'));
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..20u8 {
            write_atomic(&path, &big(b'0' + i % 10)).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }

    #[test]
    fn a_missing_folder_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(&dir.path().join("no/such/stats.json"), b"{}").is_err());
    }
}
