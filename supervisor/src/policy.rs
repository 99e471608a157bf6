//! Pure decisions of the run: what a failed attempt means for its document,
//! how long a job may take, what limit its worker gets. No processes, no
//! clocks: plain inputs, plain answers, tested by tables.

use std::time::Duration;

use docmill_protocol::Outcome;

use crate::store::DocState;

/// Where a document goes after an attempt that did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Pending (retry), failed, or quarantined.
    pub status: DocState,
    /// Whether the attempt counts against the document.
    pub counts: bool,
}

/// `attempts_before` is the number of counted attempts before this one.
pub fn after_failure(outcome: Outcome, attempts_before: u32, max_attempts: u32) -> Verdict {
    match outcome {
        Outcome::Done => Verdict {
            status: DocState::Done,
            counts: false,
        },
        // The run stopped it: not the document's fault.
        Outcome::Cancelled => Verdict {
            status: DocState::Pending,
            counts: false,
        },
        // A bad file fails the same way every time: no retries burned.
        Outcome::ExtractFailed => Verdict {
            status: DocState::Failed,
            counts: true,
        },
        Outcome::Crashed | Outcome::TimedOut | Outcome::MemoryLimit | Outcome::FdLimit => {
            if attempts_before + 1 >= max_attempts {
                Verdict {
                    status: DocState::Quarantined,
                    counts: true,
                }
            } else {
                Verdict {
                    status: DocState::Pending,
                    counts: true,
                }
            }
        }
    }
}

/// Time limits for one job.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A fixed deadline for every job, when the user gave one.
    pub fixed: Option<Duration>,
    pub base: Duration,
    pub per_mib: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            fixed: None,
            base: Duration::from_secs(60),
            per_mib: Duration::from_secs(2),
        }
    }
}

/// The deadline of a job on a file of `size` bytes, doubled for every
/// earlier attempt that timed out or crashed (escalation).
pub fn deadline(t: &Timeouts, size: u64, attempts_before: u32) -> Duration {
    chunk_deadline(t, size, 0, attempts_before)
}

/// The deadline of a chunk job of `pages` pages standing for `size` bytes
/// of its file: a slow engine's cost follows pages more than bytes (and it
/// may parse the whole file for each chunk), so each page adds its share.
pub fn chunk_deadline(t: &Timeouts, size: u64, pages: u32, attempts_before: u32) -> Duration {
    let base = t.fixed.unwrap_or_else(|| {
        t.base + t.per_mib.mul_f64(size as f64 / (1u64 << 20) as f64) + CHUNK_PAGE * pages
    });
    base * 2u32.saturating_pow(attempts_before.min(4))
}

/// The time each page of a chunk job adds to its deadline.
const CHUNK_PAGE: Duration = Duration::from_millis(250);

/// The address-space limit of a worker: the configured one, doubled for
/// every earlier attempt of the job that hit the memory limit, capped.
pub fn escalated_mem_limit(base: u64, memory_failures: u32, cap: u64) -> u64 {
    let scaled = base.saturating_mul(1u64 << memory_failures.min(4));
    if cap > 0 {
        scaled.min(cap.max(base))
    } else {
        scaled
    }
}

/// Default address-space limit per worker: a share of available memory,
/// kept between 1 GiB (room for a big PDF plus the reservations every
/// process carries) and 4 GiB.
pub fn default_worker_mem(available: u64, workers: u32) -> u64 {
    const MIN: u64 = 1 << 30;
    const MAX: u64 = 4 << 30;
    (available / (2 * u64::from(workers.max(1)))).clamp(MIN, MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_table() {
        let table = [
            (Outcome::ExtractFailed, 0, 3, DocState::Failed, true),
            (Outcome::Crashed, 0, 3, DocState::Pending, true),
            (Outcome::Crashed, 1, 3, DocState::Pending, true),
            (Outcome::Crashed, 2, 3, DocState::Quarantined, true),
            (Outcome::TimedOut, 2, 3, DocState::Quarantined, true),
            (Outcome::MemoryLimit, 0, 1, DocState::Quarantined, true),
            (Outcome::FdLimit, 0, 2, DocState::Pending, true),
            (Outcome::Cancelled, 5, 3, DocState::Pending, false),
        ];
        for (outcome, before, max, status, counts) in table {
            let v = after_failure(outcome, before, max);
            assert_eq!(
                (v.status, v.counts),
                (status, counts),
                "{outcome:?} {before}/{max}"
            );
        }
    }

    #[test]
    fn deadlines_grow_with_size_and_attempts() {
        let t = Timeouts::default();
        assert_eq!(deadline(&t, 0, 0), Duration::from_secs(60));
        assert_eq!(deadline(&t, 10 << 20, 0), Duration::from_secs(80));
        assert_eq!(deadline(&t, 0, 1), Duration::from_secs(120));
        let fixed = Timeouts {
            fixed: Some(Duration::from_secs(2)),
            ..t
        };
        assert_eq!(deadline(&fixed, 1 << 30, 0), Duration::from_secs(2));
        // A chunk: its share of the bytes, plus a quarter second a page.
        assert_eq!(
            chunk_deadline(&t, 1 << 20, 1000, 0),
            Duration::from_secs(60 + 2 + 250)
        );
        assert_eq!(
            chunk_deadline(&fixed, 1 << 20, 1000, 3),
            Duration::from_secs(16)
        );
    }

    #[test]
    fn memory_limits() {
        assert_eq!(escalated_mem_limit(1 << 30, 0, 0), 1 << 30);
        assert_eq!(escalated_mem_limit(1 << 30, 1, 0), 2 << 30);
        assert_eq!(escalated_mem_limit(1 << 30, 3, 3 << 30), 3 << 30);
        assert_eq!(default_worker_mem(24 << 30, 2), 4 << 30);
        assert_eq!(default_worker_mem(2 << 30, 12), 1 << 30);
    }
}
