//! The run as plain data: one slot per worker, the queue, the jobs in
//! flight, memory-limit escalations, the commit batch and the stop
//! deadline. `State::handle` takes one event with the instant it happened
//! and returns what to do; nothing here touches a process, a clock, a
//! signal or the store. Its parts: `dispatch` (which worker runs what, and
//! when workers start), `watch` (when a worker is killed or retired),
//! `failure` (what an attempt's end means), `results` (text that arrived,
//! splits, the commit batch and what the store made of it), `ocr` (the
//! OCR cache, OCR jobs and their pages), `snapshot` (the run as the
//! display, the stats file and the time series see it).

mod dispatch;
mod failure;
mod ocr;
mod results;
mod snapshot;
#[cfg(test)]
mod tests;
mod watch;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use docmill_protocol::{EngineChoice, JobId, PageFlags, WorkerFailureKind};

use super::action::Action;
use super::event::{Event, WorkerId};
use super::totals::{Committed, Totals};
use crate::policy::Timeouts;
use crate::scale::{Readings, ScalePolicy, ScaleState};
use crate::schedule::Chunking;
use crate::store::{Claim, QueuedDoc};

/// With a shared store, how often a run whose queue is empty looks for
/// work again while other supervisors still hold leases.
const POLL_SHARED: Duration = Duration::from_millis(500);

/// What the run was told, as the state needs it.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub run: i64,
    /// PDF engines in the order they are tried.
    pub engines: Vec<EngineChoice>,
    pub max_attempts: u32,
    pub timeouts: Timeouts,
    pub heartbeat_timeout: Duration,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    pub grace: Duration,
    pub scale: ScalePolicy,
    pub scale_interval: Duration,
    pub max_epubs: u32,
    pub chunking: Chunking,
    /// The address-space limit of an ordinary worker (0: none).
    pub mem_limit: u64,
    pub allow_mock: bool,
    pub epub_entry_cap: u64,
    pub epub_book_cap: u64,
    /// OCR settings for PDF jobs, and whether flagged pages are recognised.
    pub ocr: crate::ocr::RunOcr,
    /// The store takes page-range chunk jobs.
    pub chunks: bool,
    /// The store takes OCR jobs (else flagged pages are read from the OCR
    /// cache only).
    pub ocr_jobs: bool,
    /// Other supervisors may work on the same store.
    pub shared: bool,
}

/// A job a worker is running.
#[derive(Debug)]
struct InFlight {
    doc: QueuedDoc,
    claim: Claim,
    job: JobId,
    attempt: u32,
    started_ms: i64,
    started: Instant,
    deadline: Instant,
    last_beat: Instant,
    /// The last page (or the page count): the stall clock starts here.
    last_progress: Instant,
    /// Pages the job is to give: its range, or its page count once the
    /// worker said it (0 until then), or the pages seen if more came.
    expected: u32,
    /// The worker opened the document (said its page count, or sent a
    /// page).
    opened: bool,
    /// The lowest resident-memory reading since the last progress.
    rss_floor: u64,
    /// The latest resident-memory reading of the worker's process tree
    /// (0 until the first), for the live display.
    rss: u64,
    /// The longest wait between progress, for the log.
    slowest: Duration,
    pages: Vec<(u32, String, PageFlags)>,
    /// OCR pages' confidence and note, by page.
    ocr_extra: BTreeMap<u32, (Option<f32>, Option<String>)>,
    /// A memory-limit retry: it runs with nothing beside it.
    alone: bool,
}

impl InFlight {
    /// The job made progress at `now`: the stall clock and the memory
    /// floor start again.
    fn progress(&mut self, now: Instant) {
        self.slowest = self.slowest.max(now.duration_since(self.last_progress));
        self.last_progress = now;
        self.last_beat = now;
        self.opened = true;
        self.rss_floor = u64::MAX;
    }

    /// Pages done so far.
    fn done(&self) -> u32 {
        self.pages.len() as u32
    }
}

#[derive(Debug)]
struct Slot {
    pid: u32,
    mem_limit: u64,
    job: Option<InFlight>,
    /// Replace this worker once its job ends (it may have leaked, or was
    /// started with a larger limit for one document).
    recycle: bool,
}

pub struct State {
    cfg: RunConfig,
    /// The instant and wall-clock time the run started, so that times
    /// written to the store follow from the instants events bring.
    start: Instant,
    start_ms: i64,
    now: Instant,
    out: Vec<Action>,
    slots: BTreeMap<WorkerId, Slot>,
    queue: VecDeque<QueuedDoc>,
    total_docs: u64,
    /// The worker count the scaler wants now.
    target: u32,
    next_job: JobId,
    spawning: Option<dispatch::Spawning>,
    /// Consecutive failed starts of ordinary workers.
    spawn_failures: u32,
    claiming: Option<dispatch::Claiming>,
    /// A document claimed ahead for the next worker to be idle.
    spare: Option<dispatch::Ready>,
    splitting: Option<results::Splitting>,
    batch: results::Batch,
    /// Commits sent and not yet answered, by batch number.
    committing: HashMap<u64, Vec<Committed>>,
    /// Memory-limit failures per document in this run, for escalation.
    mem_failures: HashMap<i64, u32>,
    /// Documents whose file changed while read, once already.
    changed_once: HashSet<i64>,
    totals: Totals,
    stop_at: Option<Instant>,
    ended: bool,
    last_renew: Instant,
    last_scale: Instant,
    last_poll: Option<Instant>,
    /// A scaling decision waits for fresh readings.
    scale_wanted: bool,
    scale_state: ScaleState,
    readings: Readings,
    /// Attempts ended (done or failed, not cancelled) since the last
    /// scaling decision.
    recent_jobs: u32,
    /// Of those, the ones that ended in a way fewer workers can help: a
    /// crash, a timeout, a memory or descriptor limit. A document that is
    /// simply unreadable says nothing about the machine.
    recent_failures: u32,
    /// A scaling decision not yet shown in a snapshot.
    unreported: Option<String>,
    /// Text jobs whose flagged pages are being looked up in the OCR cache.
    ocr_lookups: HashMap<i64, ocr::Lookup>,
    /// OCR jobs planned by a text job's result, queued once it is stored.
    ocr_waiting: HashMap<i64, Vec<QueuedDoc>>,
    /// Split documents whose text chunks flagged pages for OCR, kept to
    /// plan their OCR jobs from once the text merges (the pages themselves
    /// come from the catalog then).
    chunk_flags: HashMap<i64, QueuedDoc>,
    /// Split documents whose text merged, waiting for the OCR cache.
    after_merge: HashMap<i64, ocr::ChunkFlags>,
    /// Documents counted done when their text merged, now in OCR jobs.
    recounted: HashSet<i64>,
}

impl State {
    /// `target`: the worker count to start with; `now_ms`: the wall-clock
    /// time at `now`, milliseconds since the Unix epoch.
    pub fn new(
        cfg: RunConfig,
        queue: VecDeque<QueuedDoc>,
        target: u32,
        now: Instant,
        now_ms: i64,
    ) -> State {
        State {
            cfg,
            start: now,
            start_ms: now_ms,
            now,
            out: Vec::new(),
            slots: BTreeMap::new(),
            total_docs: queue.len() as u64,
            queue,
            target,
            next_job: 1,
            spawning: None,
            spawn_failures: 0,
            claiming: None,
            spare: None,
            splitting: None,
            batch: results::Batch::default(),
            committing: HashMap::new(),
            mem_failures: HashMap::new(),
            changed_once: HashSet::new(),
            totals: Totals::default(),
            stop_at: None,
            ended: false,
            last_renew: now,
            last_scale: now,
            last_poll: None,
            scale_wanted: false,
            scale_state: ScaleState::default(),
            readings: Readings::default(),
            recent_jobs: 0,
            recent_failures: 0,
            unreported: None,
            ocr_lookups: HashMap::new(),
            ocr_waiting: HashMap::new(),
            chunk_flags: HashMap::new(),
            after_merge: HashMap::new(),
            recounted: HashSet::new(),
        }
    }

    /// Takes one event; returns what to do, in order. Actions that are
    /// answered (claims, spawns, ...) are answered by the next events,
    /// before anything else happens in the world; what an answer leads to
    /// is carried out after the actions returned before it. Commits are the
    /// exception: their answers may come after other events (the store
    /// writes on its own thread), and the run does not end before them.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        self.now = now;
        match event {
            Event::Tick => self.tick(),
            Event::Stop => {
                self.stop_at.get_or_insert(now + self.cfg.grace);
                self.release_spare();
            }
            Event::WorkerUp {
                worker,
                pid,
                mem_limit,
            } => self.worker_up(worker, pid, mem_limit),
            Event::SpawnFailed { error } => self.spawn_failed(error),
            Event::SendFailed { worker } => self.send_failed(worker),
            Event::Heartbeat { worker, job } => {
                if let Some(j) = self.current(worker, job) {
                    j.last_beat = now;
                }
            }
            Event::PageCount { worker, job, pages } => self.page_count(worker, job, pages),
            Event::Page {
                worker,
                job,
                page,
                text,
                flags,
                confidence,
                note,
            } => {
                if confidence.is_some() || note.is_some() {
                    if let Some(j) = self.current(worker, job) {
                        j.ocr_extra.insert(page, (confidence, note));
                    }
                }
                self.page(worker, job, (page, text, flags))
            }
            Event::Done {
                worker,
                job,
                summary,
                file,
            } => {
                if let Some((inflight, pid)) = self.job_ended(worker, job, false) {
                    self.on_done(inflight, summary, file, pid);
                }
            }
            Event::Failed {
                worker,
                job,
                failure,
            } => {
                // A worker that ran out of memory or descriptors may have
                // leaked them: replace it.
                let leaky = matches!(
                    failure.kind,
                    WorkerFailureKind::OutOfMemory | WorkerFailureKind::OutOfDescriptors
                );
                if let Some((inflight, pid)) = self.job_ended(worker, job, leaky) {
                    let (outcome, reason) = failure::worker_failure(&failure);
                    self.on_failed(inflight, outcome, reason, pid);
                }
            }
            Event::SplitAsked {
                worker,
                job,
                page_count,
            } => {
                if let Some((inflight, _)) = self.job_ended(worker, job, false) {
                    self.on_split(inflight, page_count);
                }
            }
            Event::Exited {
                worker,
                outcome,
                reason,
            } => self.exited(worker, outcome, reason),
            Event::Rss { worker, rss } => self.rss(worker, rss),
            Event::Readings(r) => {
                self.totals.record(super::totals::Fact::TreeRss(r.tree_rss));
                self.readings = r;
                if std::mem::take(&mut self.scale_wanted) {
                    self.rescale();
                }
            }
            Event::Claimed { claim } => self.claimed(claim),
            Event::OcrCached { doc, pages } => self.ocr_cached(doc, pages),
            Event::OcrPlanned { doc, planned } => self.ocr_planned(doc, planned),
            Event::Committed { batch, written } => self.committed(batch, written),
            Event::SplitWritten { planned } => self.split_written(planned),
            Event::Polled {
                more,
                held_elsewhere,
            } => {
                if more.is_empty()
                    && self.busy() == 0
                    && held_elsewhere == 0
                    && self.committing.is_empty()
                {
                    self.end();
                } else {
                    self.queue.extend(more);
                    self.work();
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    /// Everything that follows from time passing.
    fn tick(&mut self) {
        if self.ended {
            return;
        }
        if self.stop_at.is_some_and(|at| self.now >= at) {
            self.cancel_all();
            self.end();
            return;
        }
        let stopping = self.stop_at.is_some();
        let busy = self.busy();
        let queued = self.queued();
        if queued == 0 && !stopping && busy < self.target as usize && self.cfg.shared {
            // Other supervisors may have left work (a lease that expired,
            // the chunks of a long document they split) or may still leave
            // some: look again, and end only once no one else holds a lease.
            if self
                .last_poll
                .is_none_or(|t| self.now.duration_since(t) >= POLL_SHARED)
            {
                self.last_poll = Some(self.now);
                if busy == 0 {
                    self.flush();
                }
                // The rest of the tick follows the answer.
                self.out.push(Action::Poll);
                return;
            }
        } else if busy == 0
            && queued == 0
            && !stopping
            && (self.ocr_pending() || !self.committing.is_empty())
        {
            // OCR jobs wait for the commit that stores them: write it now,
            // and they are queued by its answer (a commit's answer may
            // queue them too, or merge a document's chunks).
            self.flush();
        } else if busy == 0 && (queued == 0 || stopping) {
            self.end();
            return;
        }
        self.work();
    }

    /// Starts and feeds workers, watches them, and keeps leases, scaling and
    /// the commit batch on their paces.
    fn work(&mut self) {
        let stopping = self.stop_at.is_some();
        if !stopping {
            self.fill();
        }
        self.watchdog();
        if !stopping && self.now.duration_since(self.last_scale) >= self.cfg.scale_interval {
            self.last_scale = self.now;
            self.scale_wanted = true;
            self.out.push(Action::Sample);
        }
        if self.now.duration_since(self.last_renew) > self.cfg.lease / 3 {
            self.last_renew = self.now;
            self.renew();
        }
        if self.batch.due(self.now) {
            self.flush();
        }
    }

    fn end(&mut self) {
        self.release_spare();
        self.flush();
        self.ended = true;
        self.out.push(Action::End);
    }

    /// The job `job` of `worker`, if that is what it runs.
    fn current(&mut self, worker: WorkerId, job: JobId) -> Option<&mut InFlight> {
        self.slots
            .get_mut(&worker)?
            .job
            .as_mut()
            .filter(|j| j.job == job)
    }

    /// Takes the job `job` off `worker`, which retires if it is to be
    /// replaced (`leaky`, or started for one document).
    fn job_ended(&mut self, worker: WorkerId, job: JobId, leaky: bool) -> Option<(InFlight, u32)> {
        self.current(worker, job)?;
        let slot = self.slots.get_mut(&worker)?;
        let inflight = slot.job.take()?;
        let pid = slot.pid;
        if leaky || slot.recycle {
            self.retire(worker);
        }
        Some((inflight, pid))
    }

    fn busy(&self) -> usize {
        self.slots.values().filter(|s| s.job.is_some()).count()
    }

    fn idle(&self) -> Vec<WorkerId> {
        self.slots
            .iter()
            .filter(|(_, s)| s.job.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Milliseconds since the Unix epoch at the current instant.
    fn now_ms(&self) -> i64 {
        let since = self.now.saturating_duration_since(self.start);
        self.start_ms + since.as_millis().min(i64::MAX as u128) as i64
    }

    /// A job's deadline: its share of the file's bytes and its `pages`
    /// pages (0 while not known), escalated by earlier attempts.
    fn job_deadline(&self, doc: &QueuedDoc, pages: u32) -> Duration {
        if let Some(ocr) = &doc.ocr_pages {
            let timeout = Duration::from_millis(self.cfg.ocr.settings.page_timeout_ms);
            return crate::policy::ocr_deadline(timeout, ocr.len() as u32);
        }
        crate::policy::deadline(&self.cfg.timeouts, doc.job_size(), pages, doc.attempts)
    }

    /// The worker opened its job's document, of `pages` pages: the job's
    /// deadline follows the pages it is to give.
    fn page_count(&mut self, worker: WorkerId, job: JobId, pages: u32) {
        let now = self.now;
        let Some(j) = self.current(worker, job) else {
            return;
        };
        j.progress(now);
        let wanted = match (&j.doc.ocr_pages, j.doc.chunk) {
            (Some(ocr), _) => ocr.len() as u32,
            (None, Some(r)) => pages.min(r.last).saturating_sub(r.first - 1),
            (None, None) => pages,
        };
        self.expect(worker, wanted);
    }

    /// A page arrived: progress.
    fn page(&mut self, worker: WorkerId, job: JobId, page: (u32, String, PageFlags)) {
        let now = self.now;
        let len = page.1.len();
        let Some(j) = self.current(worker, job) else {
            return;
        };
        j.progress(now);
        j.pages.push(page);
        // A document that gives more pages than it said (or that never
        // said) gets the time they take.
        let more = (j.done() > j.expected).then_some(j.done());
        self.batch.bytes += len;
        if let Some(done) = more {
            self.expect(worker, done);
        }
    }

    /// Sets the pages `worker`'s job is to give, and its deadline with them.
    fn expect(&mut self, worker: WorkerId, pages: u32) {
        let Some(slot) = self.slots.get(&worker) else {
            return;
        };
        let Some(j) = &slot.job else { return };
        let deadline = j.started + self.job_deadline(&j.doc, pages);
        if let Some(j) = self.slots.get_mut(&worker).and_then(|s| s.job.as_mut()) {
            j.expected = pages;
            j.deadline = deadline;
        }
    }

    /// Whether the run has ended (`Action::End` was returned).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.busy()
    }

    /// The path of the document `worker` is extracting, to look at when its
    /// text arrives.
    pub fn path_of(&self, worker: WorkerId) -> Option<&std::path::Path> {
        let job = self.slots.get(&worker)?.job.as_ref()?;
        Some(&job.doc.path)
    }

    #[cfg(test)]
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn into_totals(self) -> Totals {
        self.totals
    }
}

/// Text bytes of a job's pages, as the commit batch counts them.
fn bytes_of(pages: &[(u32, String, PageFlags)]) -> usize {
    pages.iter().map(|(_, t, _)| t.len()).sum()
}

/// Who ended an attempt, and when it started: what the store writes beside
/// the attempt's result.
struct Ending<'a> {
    doc: &'a QueuedDoc,
    claim: Claim,
    attempt: u32,
    pid: u32,
    started_ms: i64,
}

impl InFlight {
    fn ending(&self, pid: u32) -> Ending<'_> {
        Ending {
            doc: &self.doc,
            claim: self.claim,
            attempt: self.attempt,
            pid,
            started_ms: self.started_ms,
        }
    }
}
