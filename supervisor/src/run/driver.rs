//! The run loop: turns the world (worker messages and closed channels,
//! signals, the clock, the store's answers, machine readings) into events
//! for the run state, and carries out the actions it returns (spawn, send,
//! kill, claim, commit, ...). It decides nothing itself; see `state/`.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use docmill_protocol::{FromWorker, ToWorker};
use ipc_channel::ipc::{IpcReceiverSet, IpcSelectionResult};

use super::action::Action;
use super::event::{Event, FileSeen, WorkerId};
use super::state::State;
use super::store_thread::{self, Link, StoreRef};
use super::IndexOptions;
use crate::cli::chain;
use crate::metrics::{MetricsOptions, Recorder};
use crate::pool::{self, classify_exit, SpawnSpec, Worker};
use crate::scale::{Readings, Sampler};
use crate::signals::Signals;
use crate::store::Store;

/// How long the reason for a worker's death waits for the last lines of its
/// stderr (a grandchild holding the pipe open keeps it from ending).
const STDERR_SETTLE: Duration = Duration::from_millis(300);
/// The longest wait for worker messages before time is looked at again.
const TICK: Duration = Duration::from_millis(50);
/// The live display and stats file see the run this often; the machine
/// readings behind them are refreshed every `SAMPLE_EVERY`.
const OBSERVE_EVERY: Duration = Duration::from_millis(250);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often the workers' resident memory is read.
const RSS_EVERY: Duration = Duration::from_millis(250);
/// A killed worker's grace between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_millis(300);
/// How long a worker asked to exit gets, idle, and at the end of the run.
const RETIRE_GRACE: Duration = Duration::from_millis(200);
const FINAL_GRACE: Duration = Duration::from_millis(500);

pub struct Driver<'a, S: Sampler> {
    opts: &'a IndexOptions,
    /// The store, lent to its own thread while the run goes on.
    store: Option<StoreRef<'a>>,
    link: Option<Link>,
    /// The receiver-set id of the store thread's bell.
    bell: Option<u64>,
    run: i64,
    owner: String,
    signals: Signals,
    spec: SpawnSpec,
    set: IpcReceiverSet,
    workers: HashMap<WorkerId, Worker>,
    sampler: S,
    /// The latest machine readings, for the log of a scaling decision.
    readings: Readings,
    recorder: Recorder,
}

impl<'a, S: Sampler> Driver<'a, S> {
    pub fn new(
        opts: &'a IndexOptions,
        store: &'a mut dyn Store,
        run: i64,
        owner: String,
        signals: Signals,
        scratch: std::path::PathBuf,
        sampler: S,
    ) -> anyhow::Result<Driver<'a, S>> {
        let exe = std::env::current_exe().unwrap_or_else(|_| "docmill".into());
        Ok(Driver {
            spec: SpawnSpec {
                exe,
                mem_limit: opts.worker_mem,
                fd_limit: opts.worker_fds,
                tmpdir: Some(scratch),
            },
            opts,
            store: Some(store),
            link: None,
            bell: None,
            run,
            owner,
            signals,
            set: IpcReceiverSet::new()?,
            workers: HashMap::new(),
            sampler,
            readings: Readings::default(),
            recorder: Recorder::new(MetricsOptions {
                stats_file: opts.stats_file.clone(),
                progress: opts.progress,
                quiet: opts.quiet,
                log_interval: opts.log_interval,
            }),
        })
    }

    /// The worker count to start with, from the machine as it is now.
    pub fn initial_workers(&mut self) -> u32 {
        let (cpu, available) = self.sampler.machine();
        let target =
            crate::scale::initial_workers(&self.opts.scale, self.sampler.cores(), cpu, available);
        tracing::info!(
            workers = target,
            cpu,
            available_mib = available >> 20,
            "initial worker count"
        );
        target
    }

    /// Runs `state` until it ends, with the store on its own thread;
    /// returns its counts.
    pub fn run(&mut self, state: State) -> anyhow::Result<super::Totals> {
        let store = self.store.take().expect("a driver runs once");
        let (bell, rung) = ipc_channel::ipc::channel::<()>()?;
        self.bell = Some(self.set.add(rung)?);
        let ctx = store_thread::Context {
            opts: self.opts,
            run: self.run,
            owner: self.owner.clone(),
        };
        let (link, serve) = store_thread::start(store, ctx, bell);
        let mut state = std::thread::scope(|s| {
            let thread = s.spawn(serve);
            self.link = Some(link);
            let state = self.run_loop(state);
            // The thread ends once it has carried out what it was given.
            self.link = None;
            match thread.join() {
                Ok(store) => self.store = Some(store),
                Err(_) => anyhow::bail!("the store's thread panicked"),
            }
            state
        })?;
        let last = self.snapshot(&mut state);
        if let Some(store) = self.store.as_mut() {
            store.record_sample(self.run, &last)?;
        }
        if let Err(e) = self.recorder.finish(&last) {
            tracing::warn!("cannot write the final stats file: {}", chain(&e));
        }
        Ok(state.into_totals())
    }

    /// The loop of `run`: events until the state ends, then the store's
    /// answers still to come, then the workers' exit.
    fn run_loop(&mut self, mut state: State) -> anyhow::Result<State> {
        let mut stopping = false;
        let mut last_rss = Instant::now();
        let mut last_observe = Instant::now();
        let mut last_sample = Instant::now();
        loop {
            if !stopping && self.signals.requested().is_some() {
                stopping = true;
                if !self.opts.quiet {
                    eprintln!(
                        "docmill: stopping: letting {} running jobs finish (up to {:?}); press Ctrl-C again to exit now",
                        state.running(),
                        self.opts.grace
                    );
                }
                self.feed(&mut state, Event::Stop)?;
            }
            self.feed(&mut state, Event::Tick)?;
            if state.ended() {
                break;
            }
            self.wait_messages(&mut state)?;
            for answer in self.link().arrived()? {
                self.feed(&mut state, answer)?;
            }
            if last_rss.elapsed() >= RSS_EVERY {
                last_rss = Instant::now();
                // Every worker, limited or not: the state also watches for
                // memory that climbs while a job makes no progress.
                let pids: Vec<(WorkerId, u32)> =
                    self.workers.iter().map(|(id, w)| (*id, w.pid)).collect();
                for (worker, pid) in pids {
                    let rss = pool::tree_rss(pid);
                    self.feed(&mut state, Event::Rss { worker, rss })?;
                }
            }
            if last_observe.elapsed() >= OBSERVE_EVERY {
                last_observe = Instant::now();
                if last_sample.elapsed() >= SAMPLE_EVERY {
                    last_sample = Instant::now();
                    let r = self.sample();
                    self.feed(&mut state, Event::Readings(r))?;
                }
                let snap = self.snapshot(&mut state);
                if self.recorder.observe(&snap) {
                    self.link().sample(&snap)?;
                }
            }
        }
        // The last commits' answers, and what follows from them.
        while let Some(answer) = self.link().next_answer()? {
            self.feed(&mut state, answer)?;
        }
        // One reading while the last workers are still alive, so a run
        // shorter than the sampling interval has a peak memory too.
        let r = self.sample();
        self.feed(&mut state, Event::Readings(r))?;
        // All asked at once, then reaped: each takes a few milliseconds to
        // go, which the run's end would otherwise wait for one by one.
        let mut leaving: Vec<Worker> = self.workers.drain().map(|(_, w)| w).collect();
        for worker in &mut leaving {
            worker.ask_to_exit();
        }
        for worker in &mut leaving {
            worker.await_exit(FINAL_GRACE);
        }
        Ok(state)
    }

    fn link(&mut self) -> &mut Link {
        self.link
            .as_mut()
            .expect("the store's thread runs with the loop")
    }

    /// Hands `event` to the state and carries out what it returns. An
    /// action that is answered (a claim, a spawn) has its answer handed
    /// back at once; what the answer leads to is carried out after the
    /// actions already waiting, so every action is carried out in the order
    /// the state decided it (a retry's failure is written before the retry
    /// is claimed again: the store's thread keeps that order). A commit is
    /// answered later, when the store has written it.
    ///
    /// One exception: the jobs an answer sends (a claim's) go out at once,
    /// ahead of the store's work still waiting. A message to a worker
    /// changes nothing in the store, and a claimed document's job sent
    /// after the commit of a batch left its worker idle for the whole
    /// commit (70-110 ms per batch over the normal corpus PDFs).
    fn feed(&mut self, state: &mut State, event: Event) -> anyhow::Result<()> {
        let mut todo: VecDeque<Action> = state.handle(event, Instant::now()).into();
        while let Some(action) = todo.pop_front() {
            tracing::trace!("{action}");
            for answer in self.carry(action)? {
                let mut next = state.handle(answer, Instant::now()).into_iter().peekable();
                let mut sends = Vec::new();
                while let Some(send) = next.next_if(|a| matches!(a, Action::Send { .. })) {
                    sends.push(send);
                }
                for send in sends.into_iter().rev() {
                    todo.push_front(send);
                }
                todo.extend(next);
            }
        }
        Ok(())
    }

    /// Carries out one action; returns the events that answer it: a store
    /// action's answer comes with those of the store's earlier work.
    fn carry(&mut self, action: Action) -> anyhow::Result<Vec<Event>> {
        if store_thread::is_store(&action) {
            return self.link().act(action);
        }
        Ok(match action {
            Action::Spawn { mem_limit } => Some(self.spawn(mem_limit)),
            Action::Send { worker, job } => {
                let sent = self
                    .workers
                    .get(&worker)
                    .is_some_and(|w| w.jobs.send(ToWorker::Job(job)).is_ok());
                (!sent).then_some(Event::SendFailed { worker })
            }
            Action::Kill { worker, reason } => {
                if let Some(mut w) = self.workers.remove(&worker) {
                    tracing::debug!(pid = w.pid, "killing a worker: {reason:?}");
                    w.terminate(KILL_GRACE);
                }
                None
            }
            Action::Retire { worker } => {
                if let Some(mut w) = self.workers.remove(&worker) {
                    w.shutdown(RETIRE_GRACE);
                }
                None
            }
            Action::Discard { worker } => {
                if let Some(mut w) = self.workers.remove(&worker) {
                    w.kill_now();
                }
                None
            }
            Action::Sample => Some(Event::Readings(self.sample())),
            Action::Scaled { from, to, reason } => {
                let r = &self.readings;
                tracing::info!(
                    from,
                    to,
                    cpu = r.cpu_total,
                    cpu_own = r.cpu_own,
                    available_mib = r.available_mem >> 20,
                    rss_mib = r.tree_rss >> 20,
                    "scaling: {reason}"
                );
                if !self.opts.quiet {
                    self.recorder
                        .println(&format!("docmill: workers {from} -> {to}: {reason}"));
                }
                None
            }
            Action::End => None,
            Action::Abort { error } => anyhow::bail!(error),
            store_action => unreachable!("{store_action} is the store's"),
        }
        .into_iter()
        .collect())
    }

    fn spawn(&mut self, mem_limit: u64) -> Event {
        let spec = SpawnSpec {
            mem_limit,
            ..self.spec.clone()
        };
        let (mut worker, results) = match pool::spawn(&spec) {
            Ok(started) => started,
            Err(e) => return Event::SpawnFailed { error: chain(&e) },
        };
        let worker_id = match self.set.add(results) {
            Ok(id) => id,
            Err(e) => {
                worker.kill_now();
                let e = pool::SpawnError::Server(e);
                return Event::SpawnFailed { error: chain(&e) };
            }
        };
        tracing::debug!(pid = worker.pid, "worker started");
        let pid = worker.pid;
        self.workers.insert(worker_id, worker);
        Event::WorkerUp {
            worker: worker_id,
            pid,
            mem_limit,
        }
    }

    /// Waits a tick at most for worker messages and closed channels.
    fn wait_messages(&mut self, state: &mut State) -> anyhow::Result<()> {
        let events = match self.set.try_select_timeout(TICK) {
            Ok(events) => events,
            Err(ipc_channel::TrySelectError::Empty) => return Ok(()),
            Err(ipc_channel::TrySelectError::IoError(e)) => {
                // Nothing to select on yet (no workers): wait one tick.
                if self.workers.is_empty() {
                    std::thread::sleep(TICK);
                    return Ok(());
                }
                return Err(anyhow::anyhow!("IPC select failed: {e:?}"));
            }
        };
        let bell = self.bell;
        for selected in events {
            // The store's bell: its answers are read after the messages.
            let event = match selected {
                IpcSelectionResult::MessageReceived(id, _) if Some(id) == bell => {
                    self.link().heard();
                    None
                }
                IpcSelectionResult::ChannelClosed(id) if Some(id) == bell => None,
                IpcSelectionResult::MessageReceived(worker, msg) => match msg.to::<FromWorker>() {
                    Ok(m) => message_event(worker, m, state),
                    Err(e) => {
                        tracing::warn!("unreadable message from a worker: {e:?}");
                        None
                    }
                },
                IpcSelectionResult::ChannelClosed(worker) => self.closed(worker),
            };
            if let Some(event) = event {
                self.feed(state, event)?;
            }
        }
        Ok(())
    }

    /// A worker's channel closed: reap it and read why it ended. Workers the
    /// run ended itself are already gone from `workers`.
    fn closed(&mut self, worker: WorkerId) -> Option<Event> {
        let mut w = self.workers.remove(&worker)?;
        let status = w.reap(FINAL_GRACE);
        let (outcome, reason) =
            classify_exit(status, &w.stderr.final_lines(STDERR_SETTLE), w.mem_limit);
        Some(Event::Exited {
            worker,
            outcome,
            reason,
        })
    }

    fn sample(&mut self) -> Readings {
        let pids: Vec<u32> = self.workers.values().map(|w| w.pid).collect();
        self.readings = self.sampler.sample(&pids, self.opts.worker_fds);
        self.readings.clone()
    }

    fn snapshot(&mut self, state: &mut State) -> crate::metrics::Snapshot {
        let fds_used = pool::open_fds(std::process::id()).unwrap_or(0)
            + self
                .workers
                .values()
                .filter_map(|w| pool::open_fds(w.pid))
                .sum::<u64>();
        let fd_limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
            + self.opts.worker_fds * self.workers.len() as u64;
        state.snapshot(fds_used, fd_limit)
    }
}

/// The event a worker's message stands for. A finished job's file is looked
/// at now, so the state can tell whether the text is of the file as it is.
fn message_event(worker: WorkerId, msg: FromWorker, state: &State) -> Option<Event> {
    Some(match msg {
        FromWorker::Hello { .. } => return None,
        FromWorker::Heartbeat { job } => Event::Heartbeat { worker, job },
        FromWorker::PageCount { job, pages } => Event::PageCount { worker, job, pages },
        FromWorker::Page {
            job,
            page,
            text,
            flags,
            confidence,
            note,
        } => Event::Page {
            worker,
            job,
            page,
            text,
            flags,
            confidence,
            note,
        },
        FromWorker::Done { job, summary } => Event::Done {
            worker,
            job,
            summary,
            file: state.path_of(worker).map_or(FileSeen::Vanished, file_seen),
        },
        FromWorker::Failed { job, failure } => Event::Failed {
            worker,
            job,
            failure,
        },
        FromWorker::Split { job, page_count } => Event::SplitAsked {
            worker,
            job,
            page_count,
        },
    })
}

fn file_seen(path: &Path) -> FileSeen {
    match std::fs::metadata(path) {
        Ok(md) => FileSeen::Present {
            size: md.len(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        },
        Err(_) => FileSeen::Vanished,
    }
}
