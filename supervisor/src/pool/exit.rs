//! What a worker's end means for its job: the outcome class and a one-line
//! reason built from the wait status, why the supervisor killed it (if it
//! did), and the last lines the worker wrote to stderr.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use docmill_protocol::Outcome;

use crate::units::format_size;

/// Why the supervisor killed a worker, when it did.
#[derive(Clone, Debug, PartialEq)]
pub enum KillReason {
    Deadline { secs: f64 },
    Silent { secs: f64 },
    Memory { rss: u64, limit: u64 },
    Cancelled,
}

/// Classifies a worker's end. Pure: wait status, kill reason, stderr lines.
pub fn classify_exit(
    status: Option<ExitStatus>,
    killed: Option<&KillReason>,
    stderr: &[String],
    mem_limit: u64,
) -> (Outcome, String) {
    match killed {
        Some(KillReason::Deadline { secs }) => {
            return (
                Outcome::TimedOut,
                format!("no result within its {secs:.1}s deadline"),
            )
        }
        Some(KillReason::Silent { secs }) => {
            return (Outcome::TimedOut, format!("no heartbeat for {secs:.1}s"))
        }
        Some(KillReason::Memory { rss, limit }) => {
            return (
                Outcome::MemoryLimit,
                format!(
                    "resident memory {} over the {} limit",
                    format_size(*rss),
                    format_size(*limit)
                ),
            )
        }
        Some(KillReason::Cancelled) => return (Outcome::Cancelled, "run interrupted".to_string()),
        None => {}
    }
    let last = stderr
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| truncate(l, 200));
    let oom = stderr.iter().any(|l| {
        l.contains("memory allocation of")
            || l.contains("out of memory")
            || l.contains("Cannot allocate memory")
    });
    if oom {
        return (
            Outcome::MemoryLimit,
            format!(
                "allocation failed under the {} address-space limit",
                format_size(mem_limit)
            ),
        );
    }
    let what = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("worker exited with code {code}"),
            (None, Some(sig)) => format!("worker killed by signal {} ({sig})", signal_name(sig)),
            _ => format!("worker ended: {s}"),
        },
        None => "worker vanished (no exit status)".to_string(),
    };
    let reason = match last {
        Some(line) => format!("{what}; last stderr: {line}"),
        None => what,
    };
    (Outcome::Crashed, reason)
}

/// Whether a line of a worker's stderr reports a failed allocation (Rust's
/// allocation-error message, or a C library's).
pub fn says_out_of_memory(line: &str) -> bool {
    line.contains("memory allocation of")
        || line.contains("out of memory")
        || line.contains("Cannot allocate memory")
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("SIG{sig}"))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(sig: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(sig))
    }
    fn exited(code: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(code << 8))
    }

    #[test]
    fn signals_and_codes() {
        let (o, r) = classify_exit(signalled(11), None, &[], 0);
        assert_eq!(o, Outcome::Crashed);
        assert!(r.contains("SIGSEGV"), "{r}");
        let (o, r) = classify_exit(exited(3), None, &["boom".into()], 0);
        assert_eq!(o, Outcome::Crashed);
        assert!(r.contains("code 3") && r.contains("boom"), "{r}");
    }

    #[test]
    fn allocation_failure_is_memory() {
        let lines = vec!["memory allocation of 1048576 bytes failed".to_string()];
        let (o, _) = classify_exit(signalled(6), None, &lines, 1 << 30);
        assert_eq!(o, Outcome::MemoryLimit);
    }

    #[test]
    fn kills_say_why() {
        let (o, _) = classify_exit(
            signalled(9),
            Some(&KillReason::Deadline { secs: 2.0 }),
            &[],
            0,
        );
        assert_eq!(o, Outcome::TimedOut);
        let (o, _) = classify_exit(
            signalled(9),
            Some(&KillReason::Memory { rss: 10, limit: 5 }),
            &[],
            0,
        );
        assert_eq!(o, Outcome::MemoryLimit);
        let (o, _) = classify_exit(signalled(9), Some(&KillReason::Cancelled), &[], 0);
        assert_eq!(o, Outcome::Cancelled);
    }
}
