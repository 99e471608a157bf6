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
                "claim 3",
            ],
        ),
        // What was claimed ahead goes back at once.
        (100, Event::Stop, &["commit [3 released]"]),
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
                "claim 2",
            ],
        ),
        (10, Event::Stop, &["commit [2 released]"]),
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
                "claim 2",
            ],
        ),
        (
            10,
            failed(1, 1, WorkerFailureKind::OutOfDescriptors),
            &["retire w1", "commit [1 fd-limit -> pending]"],
        ),
        // The new worker takes what was claimed ahead; the retry is
        // claimed ahead in its turn.
        (
            20,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "send w2 job2 /d/2.epub attempt=1 epub",
                "claim 1",
            ],
        ),
        // A bad document does not make its worker suspect.
        (30, failed(2, 2, WorkerFailureKind::Deterministic), &[]),
        (40, Event::Tick, &["send w2 job3 /d/1.epub attempt=2 epub"]),
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

#[test]
fn steady_crashes_reach_the_scaling_policy_as_an_error_rate() {
    let mut cfg = config();
    cfg.scale_interval = Duration::from_secs(1);
    cfg.max_attempts = 5;
    let docs: Vec<_> = (1..=4).map(|id| doc(id, Format::Pdf)).collect();
    let mut w = World::new(cfg, docs, 4);
    w.readings.cores = 4;
    w.readings.available_mem = 16 * GIB;
    let mut seen = w.at(0, Event::Tick);
    // Every worker crashes on its document, twice over: each scaling
    // reading sees every attempt of the interval fail.
    for worker in 1..=4 {
        seen.extend(w.at(100, exited(worker, Outcome::Crashed)));
    }
    seen.extend(w.at(1_500, Event::Tick));
    assert_eq!(
        w.state.snapshot(0, 1024).decision,
        None,
        "one reading is not a trend"
    );
    for worker in 5..=8 {
        seen.extend(w.at(1_600, exited(worker, Outcome::Crashed)));
    }
    seen.extend(w.at(3_000, Event::Tick));
    let decision = w.state.snapshot(0, 1024).decision;
    assert!(
        decision
            .as_deref()
            .is_some_and(|d| d.starts_with("4 -> 3") && d.contains("error rate")),
        "no scaling down on the error rate: {decision:?}\nactions: {seen:#?}"
    );
    assert!(seen.iter().any(|a| a == "scaled 4->3"), "{seen:#?}");
}
