//! Page progress: a job that finishes no page for the page timeout, or
//! whose memory climbs with none, is ended and its PDF goes to the next
//! engine uncounted; progress starts the stall clock again; a job's
//! deadline follows its page count, so a long document making steady
//! progress runs past the old flat minute.

use std::time::Duration;

use docmill_protocol::Format;

use super::*;
use crate::policy::Timeouts;

const MIB: u64 = 1 << 20;

/// Deadlines as the run computes them by default (10 s, plus 250 ms a
/// page), and a 10 s page timeout.
fn stall_config() -> RunConfig {
    let mut cfg = config();
    cfg.timeouts = Timeouts::default();
    cfg
}

fn page_count(worker: WorkerId, job: u64, pages: u32) -> Event {
    Event::PageCount { worker, job, pages }
}

fn rss(worker: WorkerId, mib: u64) -> Event {
    Event::Rss {
        worker,
        rss: mib * MIB,
    }
}

const START: &[&str] = &[
    "spawn 1024MiB",
    "claim 1",
    "send w1 job1 /d/1.pdf attempt=1 builtin",
];

const NEXT_ENGINE: &[&str] = &[
    "spawn 1024MiB",
    "claim 1",
    "send w2 job2 /d/1.pdf attempt=1 mupdf",
];

#[test]
fn no_page_for_the_page_timeout_goes_to_the_next_engine_uncounted() {
    let mut w = World::new(stall_config(), vec![doc(1, Format::Pdf)], 1);
    w.play(vec![
        (0, Event::Tick, START),
        (50, page_count(1, 1, 3), &[]),
        (100, page(1, 1, 1), &[]),
        // Heartbeats say the worker lives; they are not progress.
        (5_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        (10_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        (10_099, Event::Tick, &[]),
        (
            10_100,
            Event::Tick,
            &[
                "kill w1 stalled",
                "commit [1 timed-out -> pending uncounted]",
            ],
        ),
        (10_110, Event::Tick, NEXT_ENGINE),
    ]);
    assert_eq!(
        w.reasons,
        ["builtin: stalled: no page for 10.0s (1 of 3 pages done)"]
    );
    let t = w.totals();
    assert_eq!((t.fallbacks, t.retried, t.worker_deaths), (1, 0, 1));
}

#[test]
fn a_document_that_never_opens_stalls_after_its_bytes_are_read() {
    // 5 MiB: a 3 s page timeout and 2 s a MiB to open it, sooner than its
    // 20 s deadline.
    let mut big = doc(1, Format::Pdf);
    big.size = 5 * MIB;
    big.sched_size = 5 * MIB;
    let mut cfg = stall_config();
    cfg.timeouts.page = Duration::from_secs(3);
    let mut w = World::new(cfg, vec![big], 1);
    w.play(vec![
        (0, Event::Tick, START),
        (12_999, Event::Tick, &[]),
        (
            13_000,
            Event::Tick,
            &[
                "kill w1 stalled",
                "commit [1 timed-out -> pending uncounted]",
            ],
        ),
    ]);
    assert_eq!(
        w.reasons,
        ["builtin: stalled: no page for 13.0s (0 pages done)"]
    );
}

#[test]
fn progress_starts_the_stall_clock_again() {
    let mut w = World::new(stall_config(), vec![doc(1, Format::Pdf)], 1);
    let mut script: Vec<(u64, Event, &[&str])> =
        vec![(0, Event::Tick, START), (10, page_count(1, 1, 1000), &[])];
    // A page every 9.9 s: never 10 s without one.
    for k in 1..=5u32 {
        let at = 10 + u64::from(k) * 9_900;
        script.push((at - 1, Event::Tick, &[]));
        script.push((at, page(1, 1, k), &[]));
        script.push((at + 1, Event::Tick, &[]));
    }
    let last = 10 + 5 * 9_900;
    script.push((last + 9_999, Event::Tick, &[]));
    script.push((
        last + 10_000,
        Event::Tick,
        &[
            "kill w1 stalled",
            "commit [1 timed-out -> pending uncounted]",
        ],
    ));
    w.play(script);
    assert_eq!(
        w.reasons,
        ["builtin: stalled: no page for 10.0s (5 of 1000 pages done)"]
    );
}

#[test]
fn steady_progress_on_a_long_document_runs_past_the_old_flat_deadline() {
    let mut w = World::new(stall_config(), vec![doc(1, Format::Pdf)], 1);
    let mut script: Vec<(u64, Event, &[&str])> = vec![
        (0, Event::Tick, START),
        // 400 pages: 10 s and 250 ms a page, 110 s in all.
        (10, page_count(1, 1, 400), &[]),
    ];
    // A page every 200 ms: 80 s, past the minute every job used to get.
    for k in 1..=400u32 {
        let at = 10 + u64::from(k) * 200;
        script.push((at, page(1, 1, k), &[]));
        script.push((at + 1, Event::Tick, &[]));
    }
    script.push((80_020, done(1, 1), &[]));
    script.push((80_030, Event::Tick, &["commit [1 done pages=400]", "end"]));
    w.play(script);
    assert!(w.reasons.is_empty(), "{:?}", w.reasons);
}

#[test]
fn the_deadline_follows_the_page_count() {
    let mut cfg = stall_config();
    // Only the deadline here.
    cfg.timeouts.page = Duration::from_secs(1000);
    let mut w = World::new(cfg.clone(), vec![doc(1, Format::Pdf)], 1);
    w.play(vec![
        (0, Event::Tick, START),
        // One page of a 1000-byte file: 10.25 s from the start (and 2 ms
        // for its bytes), not a minute.
        (10, page_count(1, 1, 1), &[]),
        (10_251, Event::Tick, &[]),
        (
            10_252,
            Event::Tick,
            &[
                "kill w1 deadline",
                "commit [1 timed-out -> pending uncounted]",
            ],
        ),
    ]);
    assert_eq!(w.reasons, ["builtin: no result within its 10.3s deadline"]);

    // A document that gives more pages than it said gets their time too.
    let mut w = World::new(cfg, vec![doc(1, Format::Pdf)], 1);
    let mut script: Vec<(u64, Event, &[&str])> =
        vec![(0, Event::Tick, START), (10, page_count(1, 1, 1), &[])];
    for k in 1..=40u32 {
        script.push((u64::from(k) * 250, page(1, 1, k), &[]));
    }
    // 40 pages: 20 s.
    script.push((20_001, Event::Tick, &[]));
    script.push((
        20_002,
        Event::Tick,
        &[
            "kill w1 deadline",
            "commit [1 timed-out -> pending uncounted]",
        ],
    ));
    w.play(script);
}

#[test]
fn memory_climbing_without_progress_is_a_stall() {
    let mut w = World::new(stall_config(), vec![doc(1, Format::Pdf)], 1);
    w.play(vec![
        (0, Event::Tick, START),
        // Loading the file grows memory before anything can be said: not
        // counted.
        (250, rss(1, 20), &[]),
        (500, rss(1, 500), &[]),
        (600, page_count(1, 1, 1), &[]),
        (750, rss(1, 480), &[]),
        (1_000, rss(1, 600), &[]),
        (1_250, rss(1, 735), &[]),
        // 256 MiB over the lowest reading since the page count, but within
        // a second of it.
        (1_500, rss(1, 800), &[]),
        (
            1_750,
            rss(1, 900),
            &[
                "kill w1 climbing",
                "commit [1 timed-out -> pending uncounted]",
            ],
        ),
        (1_760, Event::Tick, NEXT_ENGINE),
    ]);
    assert_eq!(
        w.reasons,
        ["builtin: stalled: memory grew from 480.0 MiB to 900.0 MiB with no page for 1.1s"]
    );
    assert_eq!(w.totals().fallbacks, 1);
}

#[test]
fn memory_that_grows_with_progress_is_not_a_stall() {
    let mut w = World::new(stall_config(), vec![doc(1, Format::Pdf)], 1);
    let mut script: Vec<(u64, Event, &[&str])> =
        vec![(0, Event::Tick, START), (10, page_count(1, 1, 10), &[])];
    // 100 MiB more at every reading, and a page between each: every page
    // starts a new floor.
    for k in 1..=8u32 {
        let at = u64::from(k) * 1_000;
        script.push((at, rss(1, 20 + 100 * u64::from(k)), &[]));
        script.push((at + 500, rss(1, 70 + 100 * u64::from(k)), &[]));
        script.push((at + 900, page(1, 1, k), &[]));
    }
    w.play(script);
    assert!(w.reasons.is_empty(), "{:?}", w.reasons);
}

/// The snapshot names the jobs running, longest first, with their time so
/// far and their worker's latest memory reading: what the live display
/// shows of the stragglers.
#[test]
fn the_snapshot_names_the_running_jobs() {
    let mut w = World::new(
        stall_config(),
        vec![doc(1, Format::Pdf), doc(2, Format::Pdf)],
        2,
    );
    w.at(0, Event::Tick);
    w.at(1_500, rss(1, 300));
    w.at(2_000, Event::Tick);
    let snap = w.state.snapshot(0, 0);
    let running: Vec<(&str, u64)> = snap
        .running
        .iter()
        .map(|j| (j.path.as_str(), j.rss_bytes / MIB))
        .collect();
    assert_eq!(running.len(), 2, "{:?}", snap.running);
    assert!(running.contains(&("/d/1.pdf", 300)), "{running:?}");
    assert!(snap.running.iter().all(|j| j.elapsed_s > 1.9));
    assert!(snap
        .running
        .windows(2)
        .all(|p| p[0].elapsed_s >= p[1].elapsed_s));
}
