//! What a worker's own end means for its job: the outcome class and a
//! one-line reason built from the wait status and the last lines the worker
//! wrote to stderr.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use docmill_protocol::Outcome;

use crate::units::format_size;

/// Classifies the end of a worker the run did not kill. Pure: wait status,
/// stderr lines, and the address-space limit it ran under. (When the run
/// kills a worker, its reason alone says what the end means: see
/// `run::KillReason::outcome`.)
pub fn classify_exit(
    status: Option<ExitStatus>,
    stderr: &[String],
    mem_limit: u64,
) -> (Outcome, String) {
    let last = stderr
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| truncate(l, 200));
    if stderr.iter().any(|l| says_out_of_memory(l)) {
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
        let (o, r) = classify_exit(signalled(11), &[], 0);
        assert_eq!(o, Outcome::Crashed);
        assert!(r.contains("SIGSEGV"), "{r}");
        let (o, r) = classify_exit(exited(3), &["boom".into()], 0);
        assert_eq!(o, Outcome::Crashed);
        assert!(r.contains("code 3") && r.contains("boom"), "{r}");
    }

    #[test]
    fn allocation_failure_is_memory() {
        let lines = vec!["memory allocation of 1048576 bytes failed".to_string()];
        let (o, _) = classify_exit(signalled(6), &lines, 1 << 30);
        assert_eq!(o, Outcome::MemoryLimit);
    }
}
