//! How a run ends: its exit code, decided in one place from how it
//! stopped and what failed, and the summary it prints and stores.

use docmill_protocol::exit_codes;
use serde::Serialize;

use super::Totals;
use crate::signals::Signals;
use crate::store::DocState;

/// The exit code of an index run: the signal that stopped it, else whether
/// any document it saw ended failed, partly failed or quarantined.
pub fn exit_code(stopped_by: Option<i32>, failed_documents: u64) -> i32 {
    match stopped_by {
        Some(sig) => Signals::exit_code(sig),
        None if failed_documents > 0 => exit_codes::SOME_FAILED,
        None => exit_codes::OK,
    }
}

#[derive(Serialize)]
pub(super) struct Summary<'a> {
    pub run: i64,
    pub discovered: crate::store::DiscoverCounts,
    pub totals: &'a Totals,
    pub failed_documents: u64,
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
    /// The end-of-run table on stderr: what happened to the documents and
    /// how fast, in a shape that reads well in a morning's scrollback.
    pub fn print(&self) {
        let t = self.totals;
        let mins = (self.seconds / 60.0).max(1e-9);
        let rows: [(&str, String); 13] = [
            (
                DocState::Done.as_str(),
                format!("{} ({} rescued by a fallback engine)", t.done, t.rescued),
            ),
            (DocState::Partial.as_str(), t.partial.to_string()),
            (
                DocState::Split.as_str(),
                format!("{} into page-range chunks", t.split),
            ),
            (DocState::Failed.as_str(), t.failed.to_string()),
            (DocState::Quarantined.as_str(), t.quarantined.to_string()),
            ("retried", t.retried.to_string()),
            ("cancelled", t.cancelled.to_string()),
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
            ("peak memory", crate::units::format_size(t.peak_rss)),
            (
                "CPU time",
                format!(
                    "{:.1} s supervisor, {:.1} s workers",
                    self.cpu_seconds.supervisor, self.cpu_seconds.workers
                ),
            ),
        ];
        let mut out = format!(
            "docmill: run {} finished (exit {})\n",
            self.run, self.exit_code
        );
        for (k, v) in rows {
            out.push_str(&format!("  {k:<13} {v}\n"));
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
        if self.failed_documents > 0 {
            out.push_str(&format!(
                "  {} documents failed, partly failed or were quarantined: `docmill status` lists why\n",
                self.failed_documents
            ));
        }
        eprint!("{out}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_table() {
        let (int, term) = (signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM);
        let table = [
            (None, 0, exit_codes::OK),
            (None, 3, exit_codes::SOME_FAILED),
            (Some(int), 0, exit_codes::INTERRUPTED),
            (Some(term), 3, exit_codes::TERMINATED),
        ];
        for (stopped_by, failed, code) in table {
            assert_eq!(
                exit_code(stopped_by, failed),
                code,
                "{stopped_by:?} {failed}"
            );
        }
    }
}
