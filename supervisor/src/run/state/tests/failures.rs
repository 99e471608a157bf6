//! What a crash, a memory-limit hit or a timeout means for a document.

use docmill_protocol::EngineChoice;
use docmill_protocol::{Format, Outcome, WorkerFailureKind};

use super::*;

#[test]
fn a_crash_on_attempt_two_is_retried_and_then_succeeds() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf)], 1);
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
        (
            10,
            exited(1, Outcome::Crashed),
            &["commit [1 crashed -> pending]"],
        ),
        (
            20,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w2 job2 /d/1.pdf attempt=2 builtin",
            ],
        ),
        (
            30,
            exited(2, Outcome::Crashed),
            &["commit [1 crashed -> pending]"],
        ),
        (
            40,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w3 job3 /d/1.pdf attempt=3 builtin",
            ],
        ),
        (50, page(3, 3, 1), &[]),
        (60, done(3, 3), &[]),
        // The result waits in the batch; the run has nothing left to do.
        (70, Event::Tick, &["commit [1 done pages=1]", "end"]),
    ]);
    let t = w.totals();
    assert_eq!((t.done, t.retried, t.pages, t.worker_deaths), (1, 2, 1, 2));
    assert_eq!((t.failed, t.quarantined), (0, 0));
}

#[test]
fn the_last_crash_quarantines_and_a_pdf_moves_to_the_next_engine() {
    let mut cfg = config();
    cfg.max_attempts = 1;
    cfg.engines = vec![EngineChoice::Builtin];
    let mut w = World::new(cfg, vec![doc(1, Format::Pdf)], 1);
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
        (10, exited(1, Outcome::Crashed), &[]),
        (
            20,
            Event::Tick,
            &["commit [1 crashed -> quarantined]", "end"],
        ),
    ]);
    assert_eq!(w.totals().quarantined, 1);

    let mut w = World::new(config(), vec![doc(1, Format::Pdf)], 1);
    w.state.cfg.max_attempts = 1;
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
        // Exhausted with one engine: the next one gets it, the attempt
        // counted (a crash may be the machine's doing, not the engine's).
        (
            10,
            exited(1, Outcome::Crashed),
            &["commit [1 crashed -> pending]"],
        ),
        (
            20,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w2 job2 /d/1.pdf attempt=2 mupdf",
            ],
        ),
    ]);
    assert_eq!(w.totals().fallbacks, 1);
}

#[test]
fn a_memory_limit_retry_runs_alone_with_twice_the_limit() {
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
        // The worker may have leaked: it is replaced. Document 3, claimed
        // ahead, goes back behind the retry.
        (
            10,
            failed(1, 1, WorkerFailureKind::OutOfMemory),
            &[
                "retire w1",
                "commit [1 memory-limit -> pending]",
                "commit [3 released]",
            ],
        ),
        // A new worker starts, but the retry waits for the other job to
        // end, and nothing else starts beside it: document 3 waits too.
        (20, Event::Tick, &["spawn 1024MiB"]),
        (30, Event::Tick, &[]),
        (40, done(2, 2), &[]),
        // Now alone: an idle worker makes way for one with twice the limit.
        (
            300,
            Event::Tick,
            &[
                "claim 1",
                "commit [2 done pages=0]",
                "retire w2",
                "spawn 2048MiB",
                "send w4 job3 /d/1.pdf attempt=2 builtin",
            ],
        ),
        (310, Event::Tick, &[]),
        // The larger worker goes with its job.
        (320, done(4, 3), &["retire w4"]),
        (
            330,
            Event::Tick,
            &["claim 3", "send w3 job4 /d/3.pdf attempt=1 builtin"],
        ),
    ]);
}

#[test]
fn a_timeout_moves_to_the_next_engine_without_counting_an_attempt() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf)], 1);
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
        (20_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        (40_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        (60_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        (80_000, Event::Heartbeat { worker: 1, job: 1 }, &[]),
        (99_999, Event::Tick, &[]),
        (
            100_000,
            Event::Tick,
            &[
                "kill w1 deadline",
                "commit [1 timed-out -> pending uncounted]",
            ],
        ),
        (
            100_010,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w2 job2 /d/1.pdf attempt=1 mupdf",
            ],
        ),
    ]);
    let t = w.totals();
    assert_eq!((t.fallbacks, t.retried, t.worker_deaths), (1, 0, 1));
}

#[test]
fn a_retry_is_claimed_only_once_its_failure_is_written() {
    let mut docs: Vec<QueuedDoc> = (1..=4).map(|id| doc(id, Format::Epub)).collect();
    // Scheduled as a medium document: the tier quotas let all three run.
    docs[2].sched_size = 20 << 20;
    let mut cfg = config();
    cfg.max_epubs = 4;
    let mut w = World::new(cfg, docs, 3);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "spawn 1024MiB",
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.epub attempt=1 epub",
                "claim 2",
                "send w2 job2 /d/2.epub attempt=1 epub",
                "claim 3",
                "send w3 job3 /d/3.epub attempt=1 epub",
                // Every worker busy: the next document is claimed ahead.
                "claim 4",
            ],
        ),
        (99_990, done(2, 2), &[]),
        (99_990, done(3, 3), &[]),
        // The spare goes to the first idle worker when the first job
        // overruns its deadline: the retry is claimed after its failure is
        // written, not before.
        (
            100_000,
            Event::Tick,
            &[
                "send w2 job4 /d/4.epub attempt=1 epub",
                "kill w1 deadline",
                "commit [2 done pages=0, 3 done pages=0, 1 timed-out -> pending]",
            ],
        ),
        (
            100_010,
            Event::Tick,
            &["claim 1", "send w3 job5 /d/1.epub attempt=2 epub"],
        ),
    ]);
}
