//! The live display: a multi-line progress bar on a terminal, else one
//! concise line every `log_interval` (logs and CI keep every line, so a
//! redrawn bar would fill them with noise), else nothing. Either names the
//! stragglers when the run waits on a few documents.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::rate::Rates;
use super::{MetricsOptions, ProgressMode, RunningJob, Snapshot};

/// The bar redraws at most this often (indicatif also rate-limits).
const REDRAW_MS: i64 = 250;
/// A document running this long is named while others still wait.
const SLOW_AFTER_S: f64 = 5.0;
/// Once the queue is empty the run waits on what runs: a document running
/// this long is named (a shorter one is about to end anyway).
const WAITING_AFTER_S: f64 = 1.0;
/// The most stragglers named at once.
const STRAGGLERS: usize = 3;
/// The longest path shown for a straggler.
const PATH_CHARS: usize = 48;

pub(super) enum Display {
    Off,
    Plain {
        every_ms: i64,
        last_ms: Option<i64>,
    },
    Bar {
        bar: ProgressBar,
        last_ms: Option<i64>,
    },
}

impl Display {
    pub(super) fn new(opts: &MetricsOptions) -> Display {
        let terminal = std::io::stderr().is_terminal();
        match opts.progress {
            _ if opts.quiet => Display::Off,
            ProgressMode::Off => Display::Off,
            ProgressMode::Auto if terminal => Display::bar(),
            ProgressMode::Auto | ProgressMode::Plain => Display::Plain {
                every_ms: opts.log_interval.as_millis().min(i64::MAX as u128) as i64,
                last_ms: None,
            },
        }
    }

    fn bar() -> Display {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} docs\n{msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(250));
        Display::Bar { bar, last_ms: None }
    }

    pub(super) fn update(&mut self, s: &Snapshot, rates: &Rates) {
        match self {
            Display::Off => {}
            Display::Plain { every_ms, last_ms } => {
                // The first line waits a whole interval: a short run then
                // prints only its summary.
                let start = *last_ms.get_or_insert(s.t_ms);
                if s.t_ms - start >= *every_ms {
                    *last_ms = Some(s.t_ms);
                    eprintln!("docmill: {}", plain_line(s, rates));
                }
            }
            Display::Bar { bar, last_ms } => {
                if last_ms.is_some_and(|l| s.t_ms - l < REDRAW_MS && s.decision.is_none()) {
                    return;
                }
                *last_ms = Some(s.t_ms);
                bar.set_length(s.docs.docs_total);
                bar.set_position(s.docs.docs_done + s.docs.docs_failed);
                bar.set_message(status_lines(s, rates));
                if let Some(d) = &s.decision {
                    // Decisions scroll above the bar, so they stay readable.
                    bar.println(format!("docmill: {d}"));
                }
            }
        }
    }

    pub(super) fn println(&self, line: &str) {
        match self {
            Display::Off => {}
            Display::Plain { .. } => eprintln!("{line}"),
            Display::Bar { bar, .. } => bar.println(line),
        }
    }

    pub(super) fn finish(&mut self) {
        if let Display::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

/// The lines under the bar.
fn status_lines(s: &Snapshot, r: &Rates) -> String {
    let remaining = s.docs.remaining();
    let slow = stragglers(s)
        .map(|line| format!("\n  slow: {line}"))
        .unwrap_or_default();
    format!(
        "  {} docs/min, {} pages/min{}, ETA {}; {} failed{}\n  workers {} busy, {} idle (bounds {}..{}); queue {}\n  CPU {:.0}% (run {:.0}%), memory {}, descriptors {}/{}{slow}",
        rate(r.docs_per_min),
        rate(r.pages_per_min),
        ocr(s),
        eta(r.eta_s(remaining)),
        s.docs.docs_failed,
        classes(s),
        s.busy,
        s.workers.saturating_sub(s.busy),
        s.min_workers,
        s.max_workers,
        queue(s),
        s.cpu_percent,
        s.cpu_own_percent,
        memory(s),
        s.fds_used,
        s.fd_limit,
    )
}

/// OCR pages and their own rate, shown apart from text pages (one costs
/// hundreds of those), once there are any.
fn ocr(s: &Snapshot) -> String {
    let n = s.docs.ocr_pages_done;
    if n == 0 || s.elapsed_s <= 0.0 {
        return String::new();
    }
    format!(", OCR {n} pages ({:.1}/min)", n as f64 * 60.0 / s.elapsed_s)
}

/// The one line printed every `log_interval` when there is no terminal.
pub(super) fn plain_line(s: &Snapshot, r: &Rates) -> String {
    let remaining = s.docs.remaining();
    let slow = stragglers(s)
        .map(|line| format!("; slow: {line}"))
        .unwrap_or_default();
    format!(
        "{}/{} docs ({} failed), {} pages; {} docs/min, {} pages/min{}, ETA {}; workers {}/{} busy ({}..{}); queue {}; CPU {:.0}%; memory {}; fds {}/{}{slow}",
        s.docs.docs_done,
        s.docs.docs_total,
        s.docs.docs_failed,
        s.docs.pages_done,
        rate(r.docs_per_min),
        rate(r.pages_per_min),
        ocr(s),
        eta(r.eta_s(remaining)),
        s.busy,
        s.workers,
        s.min_workers,
        s.max_workers,
        queue(s),
        s.cpu_percent,
        memory(s),
        s.fds_used,
        s.fd_limit,
    )
}

/// The documents the run waits on, longest-running first, as
/// `papers/big.pdf 25s 3.8 GiB; …`: every document running for over a
/// second once the queue is empty, else those running for over
/// `SLOW_AFTER_S`. None when there are none.
fn stragglers(s: &Snapshot) -> Option<String> {
    let after = if s.queue_depth == 0 {
        WAITING_AFTER_S
    } else {
        SLOW_AFTER_S
    };
    let named: Vec<String> = s
        .running
        .iter()
        .filter(|j| j.elapsed_s >= after)
        .take(STRAGGLERS)
        .map(straggler)
        .collect();
    (!named.is_empty()).then(|| named.join("; "))
}

fn straggler(j: &RunningJob) -> String {
    let mut out = short_path(&j.path);
    if let Some((first, last)) = j.pages {
        out.push_str(&format!(" pages {first}-{last}"));
    }
    out.push(' ');
    out.push_str(&eta(Some(j.elapsed_s)));
    // No reading yet says nothing rather than "0 B".
    if j.rss_bytes > 0 {
        out.push(' ');
        out.push_str(&bytes(j.rss_bytes));
    }
    out
}

/// A path by its last folder and name (`papers/big.pdf`), its end kept
/// when that is still long.
fn short_path(path: &str) -> String {
    let mut parts = path.rsplit('/').filter(|p| !p.is_empty());
    let name = parts.next().unwrap_or(path);
    let short = match parts.next() {
        Some(folder) => format!("{folder}/{name}"),
        None => name.to_string(),
    };
    let chars = short.chars().count();
    if chars <= PATH_CHARS {
        short
    } else {
        let tail: String = short.chars().skip(chars - (PATH_CHARS - 1)).collect();
        format!("…{tail}")
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.0}"))
}

fn eta(s: Option<f64>) -> String {
    let Some(s) = s else {
        return "-".to_string();
    };
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn queue(s: &Snapshot) -> String {
    let tiers: Vec<String> = super::Tier::ALL
        .iter()
        .filter_map(|t| {
            s.queue_by_tier
                .get(t.as_str())
                .filter(|n| **n > 0)
                .map(|n| format!("{t} {n}"))
        })
        .collect();
    if tiers.is_empty() {
        s.queue_depth.to_string()
    } else {
        format!("{} ({})", s.queue_depth, tiers.join(", "))
    }
}

fn classes(s: &Snapshot) -> String {
    let parts: Vec<String> = s
        .failures_by_class
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn memory(s: &Snapshot) -> String {
    match s.memory_budget_bytes {
        Some(b) => format!("{} of {}", bytes(s.memory_used_bytes), bytes(b)),
        None => bytes(s.memory_used_bytes),
    }
}

fn bytes(b: u64) -> String {
    crate::units::format_size(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DocCounts;

    #[test]
    fn plain_line_says_what_matters() {
        let s = Snapshot {
            workers: 4,
            busy: 3,
            min_workers: 1,
            max_workers: 8,
            queue_depth: 7,
            queue_by_tier: [("tiny".to_string(), 5), ("large".to_string(), 2)].into(),
            docs: DocCounts {
                docs_total: 20,
                docs_done: 10,
                docs_failed: 1,
                pages_done: 300,
                ..DocCounts::default()
            },
            memory_used_bytes: 512 << 20,
            memory_budget_bytes: Some(2 << 30),
            fds_used: 30,
            fd_limit: 1024,
            ..Snapshot::default()
        };
        let r = Rates {
            docs_per_min: Some(9.0),
            pages_per_min: Some(270.0),
        };
        let line = plain_line(&s, &r);
        assert_eq!(
            line,
            "10/20 docs (1 failed), 300 pages; 9 docs/min, 270 pages/min, ETA 1m00s; workers 3/4 busy (1..8); queue 7 (tiny 5, large 2); CPU 0%; memory 512.0 MiB of 2.0 GiB; fds 30/1024"
        );
        assert!(status_lines(&s, &r).contains("workers 3 busy, 1 idle (bounds 1..8)"));
    }

    fn job(path: &str, elapsed_s: f64, rss_bytes: u64) -> RunningJob {
        RunningJob {
            path: path.into(),
            pages: None,
            elapsed_s,
            rss_bytes,
            ..RunningJob::default()
        }
    }

    #[test]
    fn stragglers_are_named_when_the_run_waits_on_them() {
        let gib = 1u64 << 30;
        let running = vec![
            job("/home/a/papers/big.pdf", 25.2, 3 * gib + gib / 5 * 4),
            job("/home/a/books/slow.epub", 7.0, 0),
            job("/home/a/x.pdf", 2.0, 100 << 20),
            job("/home/a/y.pdf", 0.3, 100 << 20),
        ];
        // (queue depth, jobs running, what the display says)
        let table: [(u64, &[RunningJob], Option<&str>); 5] = [
            (
                5,
                &running,
                Some("papers/big.pdf 25s 3.8 GiB; books/slow.epub 7s"),
            ),
            (
                0,
                &running,
                Some("papers/big.pdf 25s 3.8 GiB; books/slow.epub 7s; a/x.pdf 2s 100.0 MiB"),
            ),
            (5, &running[2..], None),
            (0, &running[3..], None),
            (0, &[], None),
        ];
        for (queue_depth, jobs, said) in table {
            let s = Snapshot {
                queue_depth,
                running: jobs.to_vec(),
                ..Snapshot::default()
            };
            assert_eq!(stragglers(&s).as_deref(), said, "queue {queue_depth}");
            let r = Rates::default();
            assert_eq!(
                plain_line(&s, &r).contains("; slow: "),
                said.is_some(),
                "{}",
                plain_line(&s, &r)
            );
            assert_eq!(status_lines(&s, &r).contains("\n  slow: "), said.is_some());
        }
        let chunk = RunningJob {
            pages: Some((1, 50)),
            ..job("big.pdf", 61.0, 0)
        };
        assert_eq!(straggler(&chunk), "big.pdf pages 1-50 1m01s");
        let long = short_path(&format!("/a/{}/b.pdf", "x".repeat(80)));
        assert!(long.starts_with('…') && long.ends_with("/b.pdf"), "{long}");
        assert_eq!(long.chars().count(), PATH_CHARS);
    }

    #[test]
    fn eta_forms() {
        assert_eq!(eta(None), "-");
        assert_eq!(eta(Some(59.4)), "59s");
        assert_eq!(eta(Some(3599.0)), "59m59s");
        assert_eq!(eta(Some(7260.0)), "2h01m");
    }
}
