//! How a run ends: its exit code, decided in one place from how it
//! stopped and what failed, and the summary it prints and stores.

use docmill_protocol::exit_codes;
use std::collections::HashSet;

use serde::Serialize;

use super::Totals;
use crate::signals::Signals;
use crate::store::DocState;

/// The exit code of an index run: the signal that stopped it, else whether
/// it left documents failed, partly failed or quarantined. Only failures new
/// in this run count, unless `strict`: a library with one bad file then
/// exits 1 once, when the file first fails, and 0 on every unchanged run
/// after, so an alert raised by a cron job or a monitor clears by itself.
/// `--strict` counts every failed document under the roots, old or new.
pub fn exit_code(stopped_by: Option<i32>, failures: &Failures, strict: bool) -> i32 {
    let counted = if strict {
        failures.total()
    } else {
        failures.new
    };
    match stopped_by {
        Some(sig) => Signals::exit_code(sig),
        None if counted > 0 => exit_codes::SOME_FAILED,
        None => exit_codes::OK,
    }
}

/// The documents under the run's roots that are failed, partly failed
/// (`partial`) or quarantined once the run ends, and how many of them are
/// so for the first time: their failure was recorded by this run, and they
/// were not failed, partial or quarantined when it started. A file that
/// failed before and fails again after it changed, or after
/// `--retry-failed`, is an old failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    pub failed: u64,
    pub quarantined: u64,
    pub partial: u64,
    pub new: u64,
}

impl Failures {
    /// `before`: the documents failed, partial or quarantined when the run
    /// started; `after`: those the run saw, with their state at its end.
    pub fn count(before: &HashSet<i64>, after: &[(i64, DocState)]) -> Failures {
        let mut f = Failures::default();
        for (doc, state) in after {
            match state {
                DocState::Failed => f.failed += 1,
                DocState::Quarantined => f.quarantined += 1,
                DocState::Partial => f.partial += 1,
                _ => continue,
            }
            f.new += u64::from(!before.contains(doc));
        }
        f
    }

    pub fn total(&self) -> u64 {
        self.failed + self.quarantined + self.partial
    }
}

/// What a run stores at its end (the `runs` table's `totals`, read back by
/// `docmill runs` and `report`) and prints: every number comes from the
/// run's `Totals` (the work this run did) or its `Failures` (the failed
/// documents under its roots as it leaves them), never from a third count.
#[derive(Serialize)]
pub(super) struct Summary<'a> {
    pub run: i64,
    pub discovered: crate::store::DiscoverCounts,
    pub totals: &'a Totals,
    /// Every failed, partial or quarantined document under the roots (what
    /// `docmill runs` lists as the run's failures).
    pub failed_documents: u64,
    pub failures: Failures,
    /// Whether old failures counted for the exit code (`--strict`).
    pub strict: bool,
    pub seconds: f64,
    pub cpu_seconds: CpuSeconds,
    pub exit_code: i32,
}

/// CPU time (user + system) of the run: the supervisor itself (discovery,
/// scheduling, indexing) and its workers with the engine processes they ran,
/// so a slow run shows where the time went.
#[derive(Serialize)]
pub(super) struct CpuSeconds {
    supervisor: f64,
    workers: f64,
}

impl CpuSeconds {
    /// Every worker has been reaped by the end of the run, and each reaps
    /// its own engine processes, so the children's usage is theirs.
    pub fn now() -> CpuSeconds {
        use nix::sys::resource::{getrusage, UsageWho};
        let secs = |who| {
            getrusage(who).map_or(0.0, |u| {
                let t =
                    |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
                t(u.user_time()) + t(u.system_time())
            })
        };
        CpuSeconds {
            supervisor: secs(UsageWho::RUSAGE_SELF),
            workers: secs(UsageWho::RUSAGE_CHILDREN),
        }
    }
}

impl Summary<'_> {
    /// The end-of-run table on stderr.
    pub fn print(&self) {
        eprint!("{}", self.text());
    }

    /// The end-of-run table: what happened to the documents and how fast,
    /// in a shape that reads well in a morning's scrollback. The rows of
    /// failed, quarantined and partial documents add up to the count on
    /// the last line, which is the count `docmill status` gives for the
    /// roots.
    pub fn text(&self) -> String {
        let t = self.totals;
        let f = &self.failures;
        let mins = (self.seconds / 60.0).max(1e-9);
        let mut rows: Vec<(&str, String)> = vec![
            (
                DocState::Done.as_str(),
                format!("{} ({} rescued by a fallback engine)", t.done, t.rescued),
            ),
            (
                DocState::Split.as_str(),
                format!("{} into page-range chunks", t.split),
            ),
            (DocState::Failed.as_str(), f.failed.to_string()),
            (DocState::Quarantined.as_str(), f.quarantined.to_string()),
            (DocState::Partial.as_str(), f.partial.to_string()),
            ("retried", t.retried.to_string()),
            ("cancelled", t.cancelled.to_string()),
            // An engine that gave up on a PDF the next one then read is a
            // fallback, not a failure of the document.
            ("engine fallbacks", t.fallbacks.to_string()),
            ("pages", t.pages.to_string()),
            ("wall time", format!("{:.1} s", self.seconds)),
            ("pages/min", format!("{:.0}", t.pages as f64 / mins)),
            (
                "peak workers",
                format!(
                    "{} ({} scaling decisions)",
                    t.peak_workers, t.scale_decisions
                ),
            ),
        ];
        // Nothing measured says nothing, rather than "0 B".
        if t.peak_rss > 0 {
            rows.push(("peak memory", crate::units::format_size(t.peak_rss)));
        }
        rows.push((
            "CPU time",
            format!(
                "{:.1} s supervisor, {:.1} s workers",
                self.cpu_seconds.supervisor, self.cpu_seconds.workers
            ),
        ));
        let mut out = format!(
            "docmill: run {} finished (exit {})\n",
            self.run, self.exit_code
        );
        for (k, v) in rows {
            out.push_str(&format!("  {k:<16} {v}\n"));
        }
        if t.ocr_pages + t.ocr_cached + t.ocr_failed > 0 {
            out.push_str(&format!(
                "  OCR: {} pages recognised, {} from cache, {} failed ({:.1} recognised/min)\n",
                t.ocr_pages,
                t.ocr_cached,
                t.ocr_failed,
                t.ocr_pages as f64 / mins
            ));
        }
        if f.total() > 0 {
            let old = if self.strict {
                "; --strict counts them all"
            } else {
                "; only new ones make the exit status 1"
            };
            let (docs, were) = if f.total() == 1 {
                ("document", "was")
            } else {
                ("documents", "were")
            };
            out.push_str(&format!(
                "  {} {docs} failed, partly failed or {were} quarantined, {} of them new in this run{old}: `docmill status` lists why\n",
                f.total(),
                f.new,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(total: u64, new: u64) -> Failures {
        Failures {
            failed: total,
            new,
            ..Failures::default()
        }
    }

    #[test]
    fn exit_codes_table() {
        let (int, term) = (signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM);
        // (stopped by, failures (all, new), --strict, exit code)
        let table = [
            (None, (0, 0), false, exit_codes::OK),
            (None, (3, 3), false, exit_codes::SOME_FAILED),
            (None, (3, 1), false, exit_codes::SOME_FAILED),
            // An unchanged library with an old bad file: quiet unless strict.
            (None, (3, 0), false, exit_codes::OK),
            (None, (3, 0), true, exit_codes::SOME_FAILED),
            (None, (0, 0), true, exit_codes::OK),
            (Some(int), (0, 0), false, exit_codes::INTERRUPTED),
            (Some(term), (3, 3), true, exit_codes::TERMINATED),
        ];
        for (stopped_by, (all, new), strict, code) in table {
            assert_eq!(
                exit_code(stopped_by, &failures(all, new), strict),
                code,
                "{stopped_by:?} {all} {new} {strict}"
            );
        }
    }

    #[test]
    fn failures_new_in_the_run() {
        use DocState::*;
        let before: HashSet<i64> = [1, 2].into();
        // (state at the end, of documents 1..): 1 failed before and still,
        // 2 was quarantined and is done now, 3 failed for the first time,
        // 4 is partial for the first time, 5 is done.
        let after = [
            (1, Failed),
            (2, Done),
            (3, Quarantined),
            (4, Partial),
            (5, Done),
        ];
        let f = Failures::count(&before, &after);
        assert_eq!(
            f,
            Failures {
                failed: 1,
                quarantined: 1,
                partial: 1,
                new: 2
            }
        );
        assert_eq!(f.total(), 3);
        assert_eq!(Failures::count(&before, &[]), Failures::default());
    }

    fn summary(totals: &Totals, failures: Failures, strict: bool) -> Summary<'_> {
        Summary {
            run: 4,
            discovered: crate::store::DiscoverCounts::default(),
            totals,
            failed_documents: failures.total(),
            failures,
            strict,
            seconds: 30.0,
            cpu_seconds: CpuSeconds {
                supervisor: 1.5,
                workers: 40.25,
            },
            exit_code: exit_code(None, &failures, strict),
        }
    }

    #[test]
    fn summary_text() {
        let totals = Totals {
            done: 10,
            rescued: 2,
            fallbacks: 67,
            retried: 1,
            pages: 300,
            peak_workers: 3,
            scale_decisions: 4,
            peak_rss: 3 << 29,
            ..Totals::default()
        };
        let many = Failures {
            failed: 24,
            quarantined: 1,
            partial: 0,
            new: 1,
        };
        let text = summary(&totals, many, false).text();
        assert_eq!(
            text,
            "docmill: run 4 finished (exit 1)
  done             10 (2 rescued by a fallback engine)
  split            0 into page-range chunks
  failed           24
  quarantined      1
  partial          0
  retried          1
  cancelled        0
  engine fallbacks 67
  pages            300
  wall time        30.0 s
  pages/min        600
  peak workers     3 (4 scaling decisions)
  peak memory      1.5 GiB
  CPU time         1.5 s supervisor, 40.2 s workers
  25 documents failed, partly failed or were quarantined, 1 of them new in this run; only new ones make the exit status 1: `docmill status` lists why
"
        );
        // (totals' peak memory, failures (all, new), strict, lines that must
        // be there, lines that must not)
        type Row<'a> = (u64, (u64, u64), bool, &'a [&'a str], &'a [&'a str]);
        let table: [Row; 5] = [
            (
                0,
                (0, 0),
                false,
                &["(exit 0)"],
                &["peak memory", "failed, partly"],
            ),
            (
                0,
                (1, 1),
                false,
                &[
                    "(exit 1)",
                    "  1 document failed, partly failed or was quarantined, 1 of them new",
                ],
                &[],
            ),
            (
                1 << 20,
                (2, 0),
                false,
                &[
                    "(exit 0)",
                    "peak memory      1.0 MiB",
                    "  failed           2\n",
                    "2 documents failed, partly failed or were quarantined, 0 of them new",
                ],
                &[],
            ),
            (
                1 << 20,
                (2, 0),
                true,
                &["(exit 1)", "--strict counts them all"],
                &["only new ones"],
            ),
            (1 << 20, (0, 0), true, &["(exit 0)"], &["failed, partly"]),
        ];
        for (rss, (all, new), strict, present, absent) in table {
            let t = Totals {
                peak_rss: rss,
                ..Totals::default()
            };
            let text = summary(&t, failures(all, new), strict).text();
            for p in present {
                assert!(text.contains(p), "{p:?} missing in\n{text}");
            }
            for a in absent {
                assert!(!text.contains(a), "{a:?} in\n{text}");
            }
        }
    }
}
