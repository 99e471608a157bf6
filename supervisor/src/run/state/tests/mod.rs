//! Tables of events and the exact actions the run state answers with. A
//! small scripted world stands in for the driver: it answers spawns,
//! claims, commits, splits and polls the way the script says, so each row
//! reads as "this happened, so the run did that". `failures`: what an
//! attempt's end means; `results`: what becomes of text that arrived;
//! `stalls`: page progress, deadlines that follow the page count, and
//! memory that climbs with no progress; `workers`: when workers start,
//! stop and are killed; `ocr`: the OCR cache, OCR jobs planned across the
//! workers, their deadlines, stalls and failures.

mod failures;
mod ocr;
mod results;
mod stalls;
mod workers;

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
use crate::store::{Claim, FinishedResult, QueuedDoc, Written};

const GIB: u64 = 1 << 30;
const SIZE: u64 = 1000;
const MTIME: i64 = 5;

fn config() -> RunConfig {
    RunConfig {
        run: 1,
        engines: vec![EngineChoice::Builtin, EngineChoice::Mupdf],
        max_attempts: 3,
        // Stalls have their own tables (`stalls`); elsewhere only the
        // deadline and the heartbeat end a job.
        timeouts: Timeouts {
            fixed: Some(Duration::from_secs(100)),
            page: Duration::from_secs(1000),
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
            chunk_pages: Some(1000),
            long_pages: 1000,
        },
        mem_limit: GIB,
        allow_mock: false,
        epub_entry_cap: 0,
        ocr: crate::ocr::RunOcr::off(),
        epub_book_cap: 0,
        chunks: true,
        ocr_jobs: true,
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
    /// The reason written for each failed attempt, in commit order.
    reasons: Vec<String>,
    /// Pages the OCR cache holds (of any file).
    ocr_cache: Vec<u32>,
    /// Every job written, in commit order, for tests that look inside.
    committed: Vec<crate::store::Finished>,
    /// Commits are answered later, by `answer_commits` (as the store's
    /// thread does), not at once.
    hold_commits: bool,
    held: Vec<Event>,
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
            reasons: Vec::new(),
            ocr_cache: Vec::new(),
            committed: Vec::new(),
            hold_commits: false,
            held: Vec::new(),
        }
    }

    /// Hands the state the answers of the commits held so far, at `ms`.
    fn answer_commits(&mut self, ms: u64) -> Vec<String> {
        let mut seen = Vec::new();
        for answer in std::mem::take(&mut self.held) {
            seen.extend(self.at(ms, answer));
        }
        seen
    }

    /// Hands `event` to the state at `ms` into the run, answers what it
    /// asks (in the order decided, as the driver does), and returns every action.
    fn at(&mut self, ms: u64, event: Event) -> Vec<String> {
        let now = self.t0 + Duration::from_millis(ms);
        let mut todo: VecDeque<Action> = self.state.handle(event, now).into();
        let mut seen = Vec::new();
        while let Some(action) = todo.pop_front() {
            seen.push(action.to_string());
            if let Some(answer) = self.answer(action) {
                todo.extend(self.state.handle(answer, now));
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
            Action::Commit { batch, jobs } => {
                for job in &jobs {
                    if let FinishedResult::Failed { reason, .. } = &job.result {
                        self.reasons.push(reason.clone());
                    }
                }
                let written = jobs
                    .iter()
                    .map(|_| self.written.pop_front().unwrap_or(Written::Held))
                    .collect();
                self.committed.extend(jobs);
                let answer = Event::Committed { batch, written };
                if self.hold_commits {
                    self.held.push(answer);
                    return None;
                }
                Some(answer)
            }
            Action::Split { .. } => Some(Event::SplitWritten { planned: true }),
            Action::PlanOcr { doc, .. } => Some(Event::OcrPlanned { doc, planned: true }),
            Action::OcrLookup { doc, pages, .. } => Some(Event::OcrCached {
                doc,
                pages: pages
                    .iter()
                    .filter(|p| self.ocr_cache.contains(p))
                    .map(|&p| crate::store::OcrPage {
                        page: p,
                        text: format!("cached {p}"),
                        flags: PageFlags {
                            needs_ocr: true,
                            ocr: true,
                            ..PageFlags::default()
                        },
                        confidence: Some(80.0),
                        note: None,
                    })
                    .collect(),
            }),
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
        confidence: None,
        note: None,
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
