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
    /// What every job gets: starting a worker's engine, opening the file.
    pub base: Duration,
    pub per_mib: Duration,
    /// What each page of the job adds, once its page count is known.
    pub per_page: Duration,
    /// The longest a job may go without finishing a page (`--page-timeout`).
    pub page: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            fixed: None,
            base: Duration::from_secs(10),
            per_mib: Duration::from_secs(2),
            per_page: PER_PAGE,
            page: PAGE_TIMEOUT,
        }
    }
}

/// The default `--page-timeout`. The longest wait for a page of the sample
/// corpus's PDFs, as the supervisor sees it (opening the file and starting
/// the tool included), was 0.32 s with the built-in engine, 0.30 s with
/// `pdftotext` and 0.14 s with `mutool` (release build, one worker, on a
/// two-core machine with a load of 7; README, "Deadlines"): ten seconds is
/// thirty times the slowest.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What each page adds to a job's deadline. The slowest document of more
/// than one page took 20 ms a page (the built-in engine on a 345-page
/// manual): a quarter second is twelve times that, and the base covers the
/// one-page documents (0.32 s at most).
const PER_PAGE: Duration = Duration::from_millis(250);

/// The deadline of a job on `size` bytes of its file that is to give
/// `pages` pages (0 while its page count is not known yet), doubled for
/// every earlier attempt that timed out or crashed (escalation). A long
/// document gets time in proportion to its length; a one-page document
/// does not wait as long as a thousand-page one.
pub fn deadline(t: &Timeouts, size: u64, pages: u32, attempts_before: u32) -> Duration {
    let base = t.fixed.unwrap_or_else(|| {
        t.base + t.per_mib.mul_f64(size as f64 / (1u64 << 20) as f64) + t.per_page * pages
    });
    base * escalation(attempts_before)
}

/// How long a job may go without progress (a page, or its page count):
/// the page timeout, and before the document is open also the time its
/// bytes take to read (an engine may load the whole file before it can say
/// anything); doubled for every earlier attempt, as deadlines are.
pub fn stall_limit(t: &Timeouts, size: u64, opened: bool, attempts_before: u32) -> Duration {
    let opening = if opened {
        Duration::ZERO
    } else {
        t.per_mib.mul_f64(size as f64 / (1u64 << 20) as f64)
    };
    (t.page + opening) * escalation(attempts_before)
}

/// What an OCR job gets beyond its pages' timeouts: starting the worker's
/// renderer, opening the file, and the recognition child's start per page
/// are already inside each page's timeout; this covers the rest.
pub const OCR_GRACE: Duration = Duration::from_secs(10);

/// The deadline of an OCR job of `pages` pages: each page may take the OCR
/// page timeout (the worker gives up on a page then, and goes on), plus a
/// grace. Not escalated per attempt: a page that runs out of time fails
/// alone inside the job, so a retry needs no more time than the first try.
pub fn ocr_deadline(page_timeout: Duration, pages: u32) -> Duration {
    page_timeout * pages.max(1) + OCR_GRACE
}

/// How long an OCR job may go without a page: the OCR page timeout (the
/// worker ends a page that takes longer) and a grace, never the text page
/// timeout, which is far shorter than an honest OCR page.
pub fn ocr_stall_limit(page_timeout: Duration) -> Duration {
    page_timeout + OCR_GRACE
}

/// How far a job's memory may grow over its lowest reading since its last
/// progress before the job counts as stalled: far more than an engine needs
/// for one page of the corpus (`mutool` peaks under 100 MiB on a 12,000-page
/// file), far less than the memory limit, and reached in about two seconds
/// by the `mutool` loop on a Type3 font that draws itself.
pub const CLIMB: u64 = 256 << 20;

/// Memory growth counts only once the job has made no progress for this
/// long, so an engine's burst at the start of a page is not mistaken for a
/// loop.
pub const CLIMB_AFTER: Duration = Duration::from_secs(1);

/// Whether a job's memory keeps climbing without progress: its tree's
/// resident memory `rss` is `CLIMB` and the `size` of its file (an engine
/// may read the whole file in, even after it said the page count), doubled
/// per earlier attempt, over `floor`, the lowest reading since its last
/// progress, and nothing came for `CLIMB_AFTER`. Only for an open
/// document: loading a file is growth with nothing to show yet.
pub fn climbing(
    floor: u64,
    rss: u64,
    since_progress: Duration,
    size: u64,
    attempts_before: u32,
) -> bool {
    let climb = CLIMB
        .saturating_add(size)
        .saturating_mul(u64::from(escalation(attempts_before)));
    since_progress >= CLIMB_AFTER && rss.saturating_sub(floor) >= climb
}

/// Each earlier attempt doubles a job's limits, up to sixteen times.
fn escalation(attempts_before: u32) -> u32 {
    2u32.saturating_pow(attempts_before.min(4))
}

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
    fn ocr_jobs_get_time_per_page_and_never_the_text_stall_limit() {
        let minute = Duration::from_secs(60);
        // (page timeout, pages, deadline)
        for (t, pages, want) in [
            (minute, 1, 70),
            (minute, 64, 64 * 60 + 10),
            (minute, 0, 70),
            (Duration::from_secs(5), 10, 60),
        ] {
            assert_eq!(ocr_deadline(t, pages), Duration::from_secs(want), "{pages}");
        }
        assert_eq!(ocr_stall_limit(minute), Duration::from_secs(70));
        assert!(ocr_stall_limit(minute) > Timeouts::default().page);
    }

    #[test]
    fn deadlines_grow_with_size_pages_and_attempts() {
        let t = Timeouts::default();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // (size, pages, attempts before) -> deadline
        let table = [
            (0, 0, 0, s(10)),
            (0, 1, 0, ms(10_250)),
            (10 << 20, 0, 0, s(30)),
            (0, 1000, 0, s(260)),
            (1 << 20, 1000, 0, s(262)),
            (0, 1, 1, ms(20_500)),
            (0, 0, 9, s(160)),
        ];
        for (size, pages, before, want) in table {
            assert_eq!(
                deadline(&t, size, pages, before),
                want,
                "{size} {pages} {before}"
            );
        }
        let fixed = Timeouts {
            fixed: Some(s(2)),
            ..t
        };
        assert_eq!(deadline(&fixed, 1 << 30, 5000, 0), s(2));
        assert_eq!(deadline(&fixed, 1 << 20, 1000, 3), s(16));
    }

    #[test]
    fn stall_limits_and_memory_climbing() {
        let t = Timeouts::default();
        let s = Duration::from_secs;
        assert_eq!(stall_limit(&t, 0, true, 0), PAGE_TIMEOUT);
        assert_eq!(stall_limit(&t, 10 << 20, true, 0), PAGE_TIMEOUT);
        assert_eq!(stall_limit(&t, 10 << 20, false, 0), PAGE_TIMEOUT + s(20));
        assert_eq!(stall_limit(&t, 0, true, 2), PAGE_TIMEOUT * 4);
        const MIB: u64 = 1 << 20;
        // (floor, rss, since progress, file size, attempts before) -> climbing
        let table = [
            (20 * MIB, 276 * MIB, s(2), 0, 0, true),
            (20 * MIB, 275 * MIB, s(2), 0, 0, false),
            (20 * MIB, 900 * MIB, Duration::from_millis(999), 0, 0, false),
            (20 * MIB, 400 * MIB, s(5), 0, 1, false),
            (20 * MIB, 532 * MIB, s(5), 0, 1, true),
            (500 * MIB, 20 * MIB, s(5), 0, 0, false),
            // A large file may be read in whole after its page count.
            (20 * MIB, 500 * MIB, s(5), 300 * MIB, 0, false),
            (20 * MIB, 576 * MIB, s(5), 300 * MIB, 0, true),
        ];
        for (floor, rss, since, size, before, want) in table {
            assert_eq!(
                climbing(floor, rss, since, size, before),
                want,
                "{floor} {rss} {since:?} {size} {before}"
            );
        }
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
