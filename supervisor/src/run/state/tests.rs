//! Tables of events and the exact actions the run state answers with. A
//! small scripted world stands in for the driver: it answers spawns,
//! claims, commits, splits and polls the way the script says, so each row
//! reads as "this happened, so the run did that".

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use docmill_protocol::{
    DocSummary, EngineChoice, Format, Outcome, PageFlags, WorkerFailure, WorkerFailureKind,
};

use super::{RunConfig, State};
use crate::policy::Timeouts;
use crate::run::action::Action;
use crate::run::event::{Event, FileSeen, WorkerId};
use crate::run::totals::Totals;
use crate::scale::{Profile, Readings, ScalePolicy};
use crate::schedule::Chunking;
use crate::store::{Claim, QueuedDoc, Written};

const GIB: u64 = 1 << 30;
const SIZE: u64 = 1000;
const MTIME: i64 = 5;

fn config() -> RunConfig {
    RunConfig {
        run: 1,
        engines: vec![EngineChoice::Builtin, EngineChoice::Mupdf],
        max_attempts: 3,
        timeouts: Timeouts {
            fixed: Some(Duration::from_secs(100)),
            ..Timeouts::default()
        },
        heartbeat_timeout: Duration::from_secs(30),
        lease: Duration::from_secs(600),
        grace: Duration::from_secs(5),
        scale: ScalePolicy {
            profile: Profile::Background,
            min: 1,
            max: 4,
            target_cpu: 70.0,
            critical_cpu: 90.0,
            min_free: GIB,
            budget: None,
            worker_limit: GIB,
            cooldown_ms: 5_000,
            hysteresis: 2,
            error_rate: 0.3,
        },
        scale_interval: Duration::from_secs(3600),
        max_epubs: 2,
        chunking: Chunking {
            enabled: false,
            massive_pages: 1000,
            massive_bytes: 500 << 20,
            chunk_pages: 1000,
            long_pages: 1000,
        },
        mem_limit: GIB,
        allow_mock: false,
        epub_entry_cap: 0,
        epub_book_cap: 0,
        chunks: true,
        shared: false,
    }
}

fn doc(id: i64, format: Format) -> QueuedDoc {
    let path = format!("/d/{id}.{}", format.as_str());
    QueuedDoc::new(id, path.into(), SIZE, MTIME, format, 0)
}

/// The driver's stand-in: answers what the state asks, as scripted.
struct World {
    state: State,
    t0: Instant,
    next_worker: WorkerId,
    /// What the next commits write, job by job (`Held` when empty).
    written: VecDeque<Written>,
    /// Documents someone else holds: their claims fail.
    taken: HashSet<i64>,
    readings: Readings,
}

impl World {
    fn new(cfg: RunConfig, docs: Vec<QueuedDoc>, workers: u32) -> World {
        let t0 = Instant::now();
        World {
            state: State::new(cfg, docs.into(), workers, t0, 1_700_000_000_000),
            t0,
            next_worker: 1,
            written: VecDeque::new(),
            taken: HashSet::new(),
            readings: Readings::default(),
        }
    }

    /// Hands `event` to the state at `ms` into the run, answers what it
    /// asks (depth first, as the driver does), and returns every action.
    fn at(&mut self, ms: u64, event: Event) -> Vec<String> {
        let now = self.t0 + Duration::from_millis(ms);
        let mut todo: VecDeque<Action> = self.state.handle(event, now).into();
        let mut seen = Vec::new();
        while let Some(action) = todo.pop_front() {
            seen.push(action.to_string());
            if let Some(answer) = self.answer(action) {
                let more = self.state.handle(answer, now);
                for (i, a) in more.into_iter().enumerate() {
                    todo.insert(i, a);
                }
            }
        }
        seen
    }

    fn answer(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn { mem_limit } => {
                let worker = self.next_worker;
                self.next_worker += 1;
                Some(Event::WorkerUp {
                    worker,
                    pid: 100 + worker as u32,
                    mem_limit,
                })
            }
            Action::Claim { doc, .. } => Some(Event::Claimed {
                claim: (!self.taken.contains(&doc)).then_some(Claim { token: doc }),
            }),
            Action::Commit { batch, jobs } => Some(Event::Committed {
                batch,
                written: jobs
                    .iter()
                    .map(|_| self.written.pop_front().unwrap_or(Written::Held))
                    .collect(),
            }),
            Action::Split { .. } => Some(Event::SplitWritten { planned: true }),
            Action::Sample => Some(Event::Readings(self.readings.clone())),
            Action::Poll => Some(Event::Polled {
                more: Vec::new(),
                held_elsewhere: 0,
            }),
            _ => None,
        }
    }

    /// Plays `script`: each row an instant (ms into the run), an event, and
    /// the actions expected back.
    fn play(&mut self, script: Vec<(u64, Event, &[&str])>) {
        for (row, (ms, event, want)) in script.into_iter().enumerate() {
            let what = format!("{event:?}");
            let got = self.at(ms, event);
            assert_eq!(got, want, "row {row} at {ms} ms: {what}");
        }
    }

    fn totals(&self) -> &Totals {
        self.state.totals()
    }
}

fn exited(worker: WorkerId, outcome: Outcome) -> Event {
    Event::Exited {
        worker,
        outcome,
        reason: "worker killed by signal SIGSEGV (11)".into(),
    }
}

fn page(worker: WorkerId, job: u64, page: u32) -> Event {
    Event::Page {
        worker,
        job,
        page,
        text: "some text".into(),
        flags: PageFlags::default(),
    }
}

fn done(worker: WorkerId, job: u64) -> Event {
    done_seeing(worker, job, SIZE)
}

fn done_seeing(worker: WorkerId, job: u64, size: u64) -> Event {
    Event::Done {
        worker,
        job,
        summary: DocSummary::default(),
        file: FileSeen::Present {
            size,
            mtime_ns: MTIME,
        },
    }
}

fn failed(worker: WorkerId, job: u64, kind: WorkerFailureKind) -> Event {
    Event::Failed {
        worker,
        job,
        failure: WorkerFailure {
            kind,
            reason: "it failed".into(),
        },
    }
}

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
            ],
        ),
        // The worker may have leaked: it is replaced.
        (
            10,
            failed(1, 1, WorkerFailureKind::OutOfMemory),
            &["retire w1", "commit [1 memory-limit -> pending]"],
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
                "retire w2",
                "spawn 2048MiB",
                "send w4 job3 /d/1.pdf attempt=2 builtin",
                "commit [2 done pages=0]",
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
fn a_result_whose_lease_was_lost_is_not_counted() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf), doc(2, Format::Pdf)], 1);
    w.written = [Written::Lost, Written::Held].into();
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
        (10, page(1, 1, 1), &[]),
        (20, done(1, 1), &[]),
        (
            30,
            Event::Tick,
            &["claim 2", "send w1 job2 /d/2.pdf attempt=1 builtin"],
        ),
        (40, page(1, 2, 1), &[]),
        (50, page(1, 2, 2), &[]),
        (60, done(1, 2), &[]),
        (
            300,
            Event::Tick,
            &["commit [1 done pages=1, 2 done pages=2]", "end"],
        ),
    ]);
    let t = w.totals();
    assert_eq!((t.done, t.pages), (1, 2));
    assert_eq!(t.outcomes.get("done"), Some(&2), "both attempts ended well");
}

#[test]
fn a_file_that_changed_while_read_is_read_again_then_fails() {
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
        // Handed back untouched, as the file it is now.
        (
            10,
            done_seeing(1, 1, 2000),
            &["restat 1 size=2000", "commit [1 released]"],
        ),
        (
            20,
            Event::Tick,
            &["claim 1", "send w1 job2 /d/1.pdf attempt=1 builtin"],
        ),
        (30, done_seeing(1, 2, 3000), &[]),
        (
            300,
            Event::Tick,
            &["commit [1 extract-failed -> failed uncounted]", "end"],
        ),
    ]);
    assert_eq!((w.totals().done, w.totals().failed), (0, 1));

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
            Event::Done {
                worker: 1,
                job: 1,
                summary: DocSummary::default(),
                file: FileSeen::Vanished,
            },
            &[],
        ),
        (
            300,
            Event::Tick,
            &["commit [1 extract-failed -> failed uncounted]", "end"],
        ),
    ]);
}

#[test]
fn a_long_document_becomes_chunk_jobs() {
    let mut cfg = config();
    cfg.chunking.enabled = true;
    let mut w = World::new(cfg, vec![doc(1, Format::Pdf)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin split_over=1000",
            ],
        ),
        (
            10,
            Event::SplitAsked {
                worker: 1,
                job: 1,
                page_count: 2500,
            },
            &["split 1 pages=2500 chunks=3"],
        ),
        (
            20,
            Event::Tick,
            &[
                "claim 1@1",
                "send w1 job2 /d/1.pdf attempt=1 builtin pages=1-1000",
            ],
        ),
        (30, done(1, 2), &[]),
        (
            40,
            Event::Tick,
            &[
                "claim 1@1001",
                "send w1 job3 /d/1.pdf attempt=1 builtin pages=1001-2000",
            ],
        ),
    ]);
    assert_eq!(w.totals().split, 1);
    // A chunk counts for its pages; its document, once merged.
    assert_eq!(w.totals().done, 0);
}

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
