//! `docmill report`: one self-contained HTML file about a run, to read the
//! morning after — its numbers first, then the files that failed and the
//! slowest ones, then inline SVG charts of its samples and attempts, then
//! its options. Nothing is fetched when the page is viewed (no scripts,
//! fonts or stylesheets from elsewhere), so it can be mailed or archived as
//! it is.

mod charts;
mod html;
mod options;

use std::path::{Path, PathBuf};

use plotters::style::RGBColor;
use thiserror::Error;

use super::rate::pages_per_min_series;
use super::Snapshot;
use crate::store::{FailedFile, RunInfo, RunStats, SlowDocument, SqliteError, SqliteStore};
use charts::{BarChart, LineChart, Marker, Series};

/// The number of charts every report has (some may be empty frames).
pub const CHARTS: usize = 6;
/// The slowest documents the report lists.
pub const SLOWEST: u32 = 20;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("the index has no runs yet: run `docmill index` first")]
    NoRuns,
    #[error("there is no run {0}")]
    NoSuchRun(i64),
    #[error(transparent)]
    Catalog(#[from] SqliteError),
    #[error("cannot draw a chart: {0}")]
    Chart(String),
    #[error("cannot write the report {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a report is made of.
pub struct ReportData {
    pub info: RunInfo,
    pub samples: Vec<Snapshot>,
    pub stats: RunStats,
    /// Failed, partial and quarantined documents of the run, by path.
    pub failed: Vec<FailedFile>,
    /// The documents the run spent the most worker time on, slowest first.
    pub slowest: Vec<SlowDocument>,
}

impl ReportData {
    /// The machine the run ran on: the host part of the lease owner
    /// (`host:pid`).
    pub fn host(&self) -> &str {
        self.info
            .owner
            .rsplit_once(':')
            .map_or(self.info.owner.as_str(), |(host, _)| host)
    }

    /// The paths the run was given.
    pub fn roots(&self) -> Vec<String> {
        self.info.options["roots"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The figures of the summary table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub wall_s: f64,
    pub pages: u64,
    pub pages_per_min: Option<f64>,
    pub peak_workers: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
}

/// Reads `run` (the last one when None) and writes the report to `out`.
/// Returns the run reported on.
pub fn write_report(
    catalog: &SqliteStore,
    run: Option<i64>,
    out: &Path,
) -> Result<i64, ReportError> {
    let data = load(catalog, run)?;
    let page = render(&data)?;
    super::write_atomic(out, page.as_bytes()).map_err(|source| ReportError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(data.info.id)
}

pub fn load(catalog: &SqliteStore, run: Option<i64>) -> Result<ReportData, ReportError> {
    let id = match run {
        Some(id) => id,
        None => catalog.last_run()?.ok_or(ReportError::NoRuns)?,
    };
    let info = catalog.run_info(id)?.ok_or(ReportError::NoSuchRun(id))?;
    Ok(ReportData {
        samples: catalog.samples(id)?,
        stats: catalog.run_stats(id)?,
        failed: catalog.failed_files(id)?,
        slowest: catalog.slowest(id, SLOWEST)?,
        info,
    })
}

/// The whole HTML page.
pub fn render(data: &ReportData) -> Result<String, ReportError> {
    let summary = summarize(data);
    let charts = draw_charts(data)?;
    Ok(html::page(data, &summary, &charts))
}

pub fn summarize(data: &ReportData) -> Summary {
    let info = &data.info;
    let totals = info.totals.as_ref();
    let total = |key: &str| totals.and_then(|t| t.get(key)).and_then(|v| v.as_u64());
    // A run that was killed has no end; its last sample is the best guess.
    let end_ms = info
        .ended_ms
        .or_else(|| data.samples.last().map(|s| s.t_ms))
        .unwrap_or(info.started_ms);
    let wall_s = (end_ms - info.started_ms).max(0) as f64 / 1000.0;
    let pages = total("pages").unwrap_or(data.stats.pages);
    let peak_sampled = data.samples.iter().map(|s| u64::from(s.workers)).max();
    Summary {
        wall_s,
        pages,
        pages_per_min: (wall_s > 0.0).then(|| pages as f64 / (wall_s / 60.0)),
        peak_workers: peak_sampled.max(total("peak_workers")),
        peak_memory_bytes: data.samples.iter().map(|s| s.memory_used_bytes).max(),
    }
}

const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const GREEN: RGBColor = RGBColor(44, 160, 44);
const RED: RGBColor = RGBColor(214, 39, 40);
const GIB: f64 = (1u64 << 30) as f64;

/// (title, svg) of every chart, in page order.
pub fn draw_charts(data: &ReportData) -> Result<Vec<(String, String)>, ReportError> {
    let start = data.info.started_ms;
    let x = |s: &Snapshot| (s.t_ms - start).max(0) as f64 / 1000.0;
    let line = |name: &str, color, f: &dyn Fn(&Snapshot) -> Option<f64>| Series {
        name: name.to_string(),
        color,
        points: data
            .samples
            .iter()
            .filter_map(|s| f(s).map(|y| (x(s), y)))
            .collect(),
    };
    let no_samples = "no samples were recorded for this run";
    let mut out = Vec::new();

    let title = "Workers over time (red: scaling decisions)";
    let markers = data
        .samples
        .iter()
        .filter_map(|s| {
            s.decision.as_ref().map(|d| Marker {
                x: x(s),
                y: f64::from(s.workers),
                label: short(d, 40),
            })
        })
        .collect();
    // The axis follows the workers that ran, not the configured maximum
    // (12 by default), which would flatten a run of two workers to the
    // floor; the bounds are in the options.
    let series = vec![
        line("live", BLUE, &|s| Some(f64::from(s.workers))),
        line("busy", GREEN, &|s| Some(f64::from(s.busy))),
    ];
    out.push(line_chart(
        title, "workers", series, markers, no_samples, true,
    )?);

    let title = "CPU";
    let series = vec![
        line("machine", BLUE, &|s| Some(f64::from(s.cpu_percent))),
        line("this run", ORANGE, &|s| Some(f64::from(s.cpu_own_percent))),
    ];
    out.push(line_chart(
        title,
        "% (100 per core)",
        series,
        vec![],
        no_samples,
        false,
    )?);

    let title = "Memory (the run's process tree) and its budget";
    let mut series = vec![line("used", BLUE, &|s| {
        Some(s.memory_used_bytes as f64 / GIB)
    })];
    if data.samples.iter().any(|s| s.memory_budget_bytes.is_some()) {
        series.push(line("budget", RED, &|s| {
            s.memory_budget_bytes.map(|b| b as f64 / GIB)
        }));
    }
    out.push(line_chart(title, "GiB", series, vec![], no_samples, false)?);

    let title = "Pages per minute (30 s moving window)";
    let readings: Vec<(i64, u64)> = data
        .samples
        .iter()
        .map(|s| (s.t_ms, s.docs.pages_done))
        .collect();
    let series = vec![Series {
        name: "pages/min".to_string(),
        color: GREEN,
        points: pages_per_min_series(&readings)
            .into_iter()
            .map(|(t, r)| ((t - start).max(0) as f64 / 1000.0, r))
            .collect(),
    }];
    out.push(line_chart(
        title,
        "pages/min",
        series,
        vec![],
        "fewer than two samples a second apart: no rate to draw",
        false,
    )?);

    let title = "Seconds per document by size tier (done attempts)";
    let tiers = &data.stats.tiers;
    let svg = charts::bar_chart(&BarChart {
        title,
        y_desc: "seconds",
        categories: tiers
            .iter()
            .map(|t| format!("{} ({})", t.tier, t.done))
            .collect(),
        values: vec![
            (
                "average".to_string(),
                BLUE,
                tiers.iter().map(|t| t.avg_s_per_doc).collect(),
            ),
            (
                "95th percentile".to_string(),
                ORANGE,
                tiers.iter().map(|t| t.p95_s_per_doc).collect(),
            ),
        ],
        empty_note: "no document was done in this run",
        integer: false,
    })?;
    out.push((title.to_string(), svg));

    // Per document, by its last attempt: an engine that gave up before
    // the next one read the PDF is not a failure of the document.
    let title = "Failed documents by how they ended";
    let failures: Vec<(&String, &u64)> = data
        .stats
        .documents_by_outcome
        .iter()
        .filter(|(o, _)| !matches!(o.as_str(), "done" | "cancelled"))
        .collect();
    let svg = charts::bar_chart(&BarChart {
        title,
        y_desc: "documents",
        categories: failures.iter().map(|(o, _)| o.to_string()).collect(),
        values: vec![(
            "documents".to_string(),
            RED,
            failures.iter().map(|(_, n)| Some(**n as f64)).collect(),
        )],
        empty_note: "no document failed in this run",
        integer: true,
    })?;
    out.push((title.to_string(), svg));
    debug_assert_eq!(out.len(), CHARTS);
    Ok(out)
}

fn line_chart(
    title: &str,
    y_desc: &str,
    series: Vec<Series>,
    markers: Vec<Marker>,
    empty_note: &str,
    integer: bool,
) -> Result<(String, String), ReportError> {
    let svg = charts::line_chart(&LineChart {
        title,
        y_desc,
        series,
        markers,
        empty_note,
        integer,
    })?;
    Ok((title.to_string(), svg))
}

/// A decision's reason can be long; the chart shows its start.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(samples: Vec<Snapshot>) -> ReportData {
        ReportData {
            info: RunInfo {
                id: 1,
                started_ms: 1_000_000,
                ended_ms: None,
                owner: "h:1".into(),
                options: serde_json::json!({"workers": 2}),
                totals: None,
                exit_code: None,
            },
            samples,
            stats: RunStats::default(),
            failed: vec![],
            slowest: vec![],
        }
    }

    fn snap(t_s: i64, workers: u32, pages: u64) -> Snapshot {
        Snapshot {
            t_ms: 1_000_000 + t_s * 1000,
            workers,
            busy: workers,
            max_workers: 4,
            docs: crate::metrics::DocCounts {
                pages_done: pages,
                ..Default::default()
            },
            memory_used_bytes: 1 << 30,
            memory_budget_bytes: Some(2 << 30),
            ..Snapshot::default()
        }
    }

    #[test]
    fn zero_one_and_many_samples_render() {
        for samples in [
            vec![],
            vec![snap(1, 2, 10)],
            (0..10).map(|i| snap(i * 3, 2, i as u64 * 30)).collect(),
        ] {
            let n = samples.len();
            let page = render(&data(samples)).unwrap();
            assert_eq!(page.matches("<svg").count(), CHARTS, "{n} samples");
            assert!(page.contains("</html>"));
        }
    }

    #[test]
    fn summary_of_an_unfinished_run() {
        let mut d = data(vec![snap(0, 1, 0), snap(60, 3, 600)]);
        d.samples[1].decision = Some("up to 3: queue deep".into());
        let s = summarize(&d);
        assert_eq!(s.wall_s, 60.0);
        assert_eq!(s.peak_workers, Some(3));
        assert_eq!(s.peak_memory_bytes, Some(1 << 30));
        d.info.ended_ms = Some(1_120_000);
        d.info.totals = Some(serde_json::json!({"pages": 900, "peak_workers": 5}));
        let s = summarize(&d);
        assert_eq!((s.wall_s, s.pages, s.peak_workers), (120.0, 900, Some(5)));
        assert_eq!(s.pages_per_min, Some(450.0));
        let page = render(&d).unwrap();
        assert!(page.contains("up to 3: queue deep"));
    }

    #[test]
    fn shortens_long_reasons() {
        assert_eq!(short("abc", 5), "abc");
        assert_eq!(short("abcdef", 5), "abcd…");
    }
}
