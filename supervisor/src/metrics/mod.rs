//! Seeing a run: the `Snapshot` the driver takes of itself, and the
//! `Recorder` that turns successive snapshots into a live display, a stats
//! file for other programs, and the decision of which snapshots to keep as
//! the run's time series (`samples` in the catalog, drawn by `report`).
//!
//! The recorder only reads snapshots; it never asks the driver for anything,
//! so its clock is the snapshots' own `t_ms` and it can be tested with made-up
//! ones.

mod display;
mod rate;
pub mod report;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::schedule::{queue_by_tier, Tier};
pub use rate::{RateWindow, Rates};
pub use stats::{write_atomic, StatsJson};

use display::Display;

/// How often a snapshot is kept as a time-series sample.
pub const SAMPLE_EVERY_MS: i64 = 3_000;
/// How often the stats file is rewritten.
pub const STATS_EVERY_MS: i64 = 2_000;

/// The run as it stands at one instant. The driver fills it; everything here
/// is plain data so that it can be stored as JSON and read back by `report`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// When it was taken, milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Live worker processes.
    pub workers: u32,
    /// Workers with a job.
    pub busy: u32,
    /// The bounds the worker count may move between.
    pub min_workers: u32,
    pub max_workers: u32,
    /// Documents waiting for a worker.
    pub queue_depth: u64,
    /// The queue by size tier (`size_tier`).
    pub queue_by_tier: BTreeMap<String, u64>,
    /// The run's document and page counts.
    #[serde(flatten)]
    pub docs: DocCounts,
    /// The whole machine's CPU use, 100 per core.
    pub cpu_percent: f32,
    /// The run's own process tree, 100 per core.
    pub cpu_own_percent: f32,
    /// Resident memory of the run's process tree.
    pub memory_used_bytes: u64,
    /// The memory the run may use in all, when it has a budget.
    pub memory_budget_bytes: Option<u64>,
    /// Open descriptors of the supervisor, and its limit.
    pub fds_used: u64,
    pub fd_limit: u64,
    /// Failed attempts so far, by outcome (`crashed`, `timed-out`, ...).
    pub failures_by_class: BTreeMap<String, u64>,
    /// Documents done so far, by format.
    pub by_format: BTreeMap<String, u64>,
    /// A scaling decision and its reason, when one was taken since the last
    /// snapshot.
    pub decision: Option<String>,
    /// EPUB jobs running now (they are held to a smaller share of memory).
    pub epubs_running: u32,
    /// The jobs running now, longest-running first: the display names the
    /// stragglers a run waits on, and `docmill serve`'s run page shows them.
    /// Left out of the stored JSON when empty, so samples of an idle run
    /// keep their size.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<RunningJob>,
}

/// A job a worker is running at the instant of a snapshot, as the display,
/// the stats file and the run page show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunningJob {
    /// The document's id in the catalog.
    pub doc: i64,
    /// The document's path.
    pub path: String,
    /// For a chunk job, its first and last page.
    pub pages: Option<(u32, u32)>,
    /// The attempt (1 for the first), counting only those that counted.
    pub attempt: u32,
    /// When the job started, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// Seconds since its attempt started.
    pub elapsed_s: f64,
    /// Pages the worker has sent so far, and how many it is to send (0
    /// until it said its page count).
    pub pages_done: u32,
    pub pages_expected: u32,
    pub pid: u32,
    /// Resident memory of its worker's process tree, as last read (0 until
    /// the first reading).
    pub rss_bytes: u64,
}

/// Documents and pages so far, as `run::Totals` derives them; flattened
/// into a snapshot, so stored samples keep their shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DocCounts {
    /// Documents this run set out to extract.
    pub docs_total: u64,
    pub docs_done: u64,
    /// Documents that ended failed or quarantined.
    pub docs_failed: u64,
    pub pages_done: u64,
    /// Pages recognised by OCR jobs, and read from the OCR cache (their
    /// text-layer pages are in `pages_done` already).
    pub ocr_pages_done: u64,
    pub ocr_pages_cached: u64,
}

impl DocCounts {
    /// Documents neither done nor failed yet.
    pub fn remaining(&self) -> u64 {
        self.docs_total
            .saturating_sub(self.docs_done + self.docs_failed)
    }
}

/// What the live display looks like (`--progress auto|plain|off`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// One line every `log_interval`, whatever stderr is.
    Plain,
    /// No live display.
    Off,
}

impl std::str::FromStr for ProgressMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ProgressMode, String> {
        match s {
            "auto" => Ok(ProgressMode::Auto),
            "plain" => Ok(ProgressMode::Plain),
            "off" => Ok(ProgressMode::Off),
            _ => Err(format!(
                "unknown progress display {s:?}: auto, plain or off"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MetricsOptions {
    /// Rewritten (atomically) every couple of seconds for other programs.
    pub stats_file: Option<PathBuf>,
    pub progress: ProgressMode,
    /// No live display at all (the stats file is still written).
    pub quiet: bool,
    /// How often a plain progress line is printed.
    pub log_interval: Duration,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            stats_file: None,
            progress: ProgressMode::Auto,
            quiet: false,
            log_interval: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("cannot write the stats file {path}")]
    Stats {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the stats")]
    Encode(#[from] serde_json::Error),
}

/// Turns the driver's snapshots into a display, a stats file and samples.
pub struct Recorder {
    opts: MetricsOptions,
    rates: RateWindow,
    display: Display,
    last_stats_ms: Option<i64>,
    last_sample_ms: Option<i64>,
    /// A failed stats write is reported once, not every two seconds; the run
    /// goes on either way, since seeing it is not worth stopping it.
    stats_warned: bool,
}

impl Recorder {
    pub fn new(opts: MetricsOptions) -> Recorder {
        let display = Display::new(&opts);
        Recorder {
            opts,
            rates: RateWindow::default(),
            display,
            last_stats_ms: None,
            last_sample_ms: None,
            stats_warned: false,
        }
    }

    /// Takes one snapshot (call it as often as you like: the display, the
    /// stats file and the samples each keep their own pace). Returns true
    /// when this snapshot should be stored as a sample: every
    /// `SAMPLE_EVERY_MS`, and whenever it carries a scaling decision.
    pub fn observe(&mut self, snap: &Snapshot) -> bool {
        self.rates
            .push(snap.t_ms, snap.docs.docs_done, snap.docs.pages_done);
        let rates = self.rates.rates();
        self.display.update(snap, &rates);

        if due(self.last_stats_ms, snap.t_ms, STATS_EVERY_MS) {
            self.last_stats_ms = Some(snap.t_ms);
            self.write_stats(snap, &rates, false);
        }

        let sample =
            snap.decision.is_some() || due(self.last_sample_ms, snap.t_ms, SAMPLE_EVERY_MS);
        if sample {
            self.last_sample_ms = Some(snap.t_ms);
        }
        sample
    }

    /// Prints a line to stderr without tearing the progress bar (above it,
    /// when there is one). Nothing when quiet or off.
    pub fn println(&self, line: &str) {
        self.display.println(line);
    }

    /// Rates over the last ~30 s, as the display shows them.
    pub fn rates(&self) -> Rates {
        self.rates.rates()
    }

    /// Clears the live display and writes the final stats file (marked
    /// `"finished": true`). Errors writing it are returned, not swallowed:
    /// the run is over and the caller decides what they mean.
    pub fn finish(&mut self, last: &Snapshot) -> Result<(), MetricsError> {
        self.rates
            .push(last.t_ms, last.docs.docs_done, last.docs.pages_done);
        self.display.finish();
        let rates = self.rates.rates();
        if let Some(path) = &self.opts.stats_file {
            let json = StatsJson::new(last, &rates, true);
            let bytes = serde_json::to_vec_pretty(&json)?;
            write_atomic(path, &bytes).map_err(|source| MetricsError::Stats {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn write_stats(&mut self, snap: &Snapshot, rates: &Rates, finished: bool) {
        let Some(path) = &self.opts.stats_file else {
            return;
        };
        let json = StatsJson::new(snap, rates, finished);
        let result = serde_json::to_vec_pretty(&json)
            .map_err(std::io::Error::from)
            .and_then(|bytes| write_atomic(path, &bytes));
        if let Err(e) = result {
            if !self.stats_warned {
                self.stats_warned = true;
                tracing::warn!("cannot write the stats file {}: {e}", path.display());
            }
        }
    }
}

/// Whether at least `every` ms passed since `last` (always, the first time).
/// A clock that steps back counts as due, so a stalled pace cannot stick.
fn due(last: Option<i64>, now: i64, every: i64) -> bool {
    match last {
        None => true,
        Some(l) => now - l >= every || now < l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> MetricsOptions {
        MetricsOptions {
            progress: ProgressMode::Off,
            quiet: true,
            ..MetricsOptions::default()
        }
    }

    #[test]
    fn samples_every_three_seconds_and_on_decisions() {
        let mut r = Recorder::new(quiet());
        let mut snap = Snapshot {
            t_ms: 1_000_000,
            ..Snapshot::default()
        };
        let mut kept = Vec::new();
        for i in 0..=20 {
            snap.t_ms = 1_000_000 + i * 500;
            snap.decision = (i == 3).then(|| "up to 3 workers: queue deep, CPU idle".into());
            if r.observe(&snap) {
                kept.push(i * 500);
            }
        }
        // 0, then the decision at 1.5 s, then every 3 s from there.
        assert_eq!(kept, vec![0, 1500, 4500, 7500]);
    }

    #[test]
    fn snapshot_round_trips_and_tolerates_missing_fields() {
        let snap = Snapshot {
            t_ms: 5,
            workers: 3,
            decision: Some("down: memory".into()),
            memory_budget_bytes: Some(1 << 30),
            ..Snapshot::default()
        };
        let json = serde_json::to_string(&snap).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snap);
        // Samples written by an older docmill lack newer fields.
        let old: Snapshot = serde_json::from_str(r#"{"t_ms":7,"workers":2}"#).unwrap();
        assert_eq!((old.t_ms, old.workers, old.busy), (7, 2, 0));
    }

    #[test]
    fn progress_modes_parse() {
        assert_eq!("plain".parse(), Ok(ProgressMode::Plain));
        assert_eq!("off".parse(), Ok(ProgressMode::Off));
        assert_eq!("auto".parse(), Ok(ProgressMode::Auto));
        assert!("bar".parse::<ProgressMode>().is_err());
    }

    #[test]
    fn finish_writes_the_final_stats_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let mut r = Recorder::new(MetricsOptions {
            stats_file: Some(path.clone()),
            ..quiet()
        });
        let snap = Snapshot {
            t_ms: 10_000,
            docs: DocCounts {
                docs_total: 4,
                docs_done: 4,
                ..DocCounts::default()
            },
            ..Snapshot::default()
        };
        r.observe(&snap);
        r.finish(&snap).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["finished"], true);
        assert_eq!(v["totals"]["docs_done"], 4);
    }
}
