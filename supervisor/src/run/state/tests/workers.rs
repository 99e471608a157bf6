//! Workers started, stopped, killed and recycled; leases renewed.

use docmill_protocol::{Format, WorkerFailureKind};

use super::*;
use std::time::Duration;

#[test]
fn a_stop_drains_within_the_grace_and_cancels_the_rest() {
    let docs = vec![
        doc(1, Format::Pdf),
        doc(2, Format::Pdf),
        doc(3, Format::Pdf),
    ];
    let mut w = World::new(config(), docs, 2);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin",
                "claim 2",
                "send w2 job2 /d/2.pdf attempt=1 builtin",
            ],
        ),
        (100, Event::Stop, &[]),
        (200, done(1, 1), &[]),
        // Nothing new starts; what finished is written.
        (450, Event::Tick, &["commit [1 done pages=0]"]),
        (5_099, Event::Tick, &[]),
        // The grace is over: the rest goes back to the queue, uncounted.
        (
            5_100,
            Event::Tick,
            &[
                "kill w2 cancelled",
                "commit [2 cancelled -> pending uncounted]",
                "end",
            ],
        ),
    ]);
    let t = w.totals();
    assert_eq!((t.done, t.cancelled, t.retried), (1, 1, 0));
}

#[test]
fn a_stop_ends_the_run_once_running_jobs_finish() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf), doc(2, Format::Pdf)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin",
            ],
        ),
        (10, Event::Stop, &[]),
        (20, done(1, 1), &[]),
        (30, Event::Tick, &["commit [1 done pages=0]", "end"]),
    ]);
}

#[test]
fn a_silent_worker_is_killed() {
    let mut w = World::new(config(), vec![doc(1, Format::Epub)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.epub attempt=1 epub",
            ],
        ),
        (20_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        // A heartbeat about another job says nothing about this one.
        (40_000, Event::Heartbeat { worker: 1, job: 7 }, &[]),
        (49_999, Event::Tick, &[]),
        (
            50_000,
            Event::Tick,
            &["kill w1 silent", "commit [1 timed-out -> pending]"],
        ),
        (
            50_010,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w2 job2 /d/1.epub attempt=2 epub",
            ],
        ),
    ]);
}

#[test]
fn a_worker_over_its_memory_limit_is_killed() {
    let mut w = World::new(config(), vec![doc(1, Format::Epub)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.epub attempt=1 epub",
            ],
        ),
        (
            10,
            Event::Rss {
                worker: 1,
                rss: GIB,
            },
            &[],
        ),
        (
            20,
            Event::Rss {
                worker: 1,
                rss: GIB + 1,
            },
            &["kill w1 memory", "commit [1 memory-limit -> pending]"],
        ),
        // The retry runs in a worker with twice the limit.
        (
            30,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "retire w2",
                "spawn 2048MiB",
                "send w3 job2 /d/1.epub attempt=2 epub",
            ],
        ),
    ]);
}

#[test]
fn a_worker_that_leaked_is_recycled() {
    let mut w = World::new(
        config(),
        vec![doc(1, Format::Epub), doc(2, Format::Epub)],
        1,
    );
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.epub attempt=1 epub",
            ],
        ),
        (
            10,
            failed(1, 1, WorkerFailureKind::OutOfDescriptors),
            &["retire w1", "commit [1 fd-limit -> pending]"],
        ),
        (
            20,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w2 job2 /d/1.epub attempt=2 epub",
            ],
        ),
        // A bad document does not make its worker suspect.
        (30, failed(2, 2, WorkerFailureKind::Deterministic), &[]),
        (
            40,
            Event::Tick,
            &["claim 2", "send w2 job3 /d/2.epub attempt=1 epub"],
        ),
    ]);
    assert_eq!(w.totals().worker_deaths, 0, "retired, not dead");
}

#[test]
fn a_claim_taken_elsewhere_moves_on_and_a_dead_worker_gives_its_job_back() {
    let mut w = World::new(
        config(),
        vec![doc(1, Format::Epub), doc(2, Format::Epub)],
        1,
    );
    w.taken.insert(1);
    w.play(vec![(
        0,
        Event::Tick,
        &[
            "spawn 1024MiB",
            "claim 1",
            "claim 2",
            "send w1 job1 /d/2.epub attempt=1 epub",
        ],
    )]);
    let mut w = World::new(config(), vec![doc(1, Format::Epub)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.epub attempt=1 epub",
            ],
        ),
        (
            0,
            Event::SendFailed { worker: 1 },
            &["discard w1", "commit [1 released]"],
        ),
        (
            10,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w2 job2 /d/1.epub attempt=1 epub",
            ],
        ),
    ]);
}

#[test]
fn leases_are_renewed_and_workers_give_up_after_failed_starts() {
    let mut cfg = config();
    cfg.lease = Duration::from_secs(30);
    let mut w = World::new(cfg, vec![doc(1, Format::Epub)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.epub attempt=1 epub",
            ],
        ),
        (10_001, Event::Tick, &["renew [1]"]),
        (10_002, Event::Tick, &[]),
    ]);
    let mut w = World::new(config(), vec![doc(1, Format::Epub)], 1);
    let failed = || Event::SpawnFailed { error: "no".into() };
    // Answered by hand: the world below never starts a worker.
    let now = w.t0;
    let _ = w.state.handle(Event::Tick, now);
    for _ in 0..4 {
        assert!(w.state.handle(failed(), now).is_empty());
        let again: Vec<String> = w
            .state
            .handle(Event::Tick, now)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(again, ["spawn 1024MiB"]);
    }
    let last: Vec<String> = w
        .state
        .handle(failed(), now)
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(last, ["abort: cannot start workers: no"]);
}
