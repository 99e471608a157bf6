//! The store on a thread of its own. The run loop hands it the state's
//! store actions in the order the state decided them, and the thread
//! carries them out in that order. A commit is not waited for: writing a
//! large batch (thousands of pages into the full-text index) takes a few
//! hundred milliseconds, and a loop waiting on it reads no worker message
//! meanwhile, so a worker whose job ended waits for its next one and the
//! others block on a full socket. Its answer comes back later (the thread
//! rings a bell the run loop selects on), and so does its error, which ends
//! the run as before. Every other answered action (a claim, a split, a
//! poll, an OCR lookup) is waited for, queued behind any commit before it:
//! answers that arrived first are handed to the state first, in the store's
//! order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;

use ipc_channel::ipc::IpcSender;

use super::action::Action;
use super::event::Event;
use super::IndexOptions;
use crate::metrics::Snapshot;
use crate::store::Store;

/// What the thread is asked to do.
enum Request {
    /// Carry out a store action; `seq` numbers it for its answer.
    Act { seq: u64, action: Action },
    /// Record a sample of the run's time series.
    Sample(Box<Snapshot>),
}

/// The outcome of a request, in the order the requests came: an action's
/// (`seq`), or a sample's error (`None`: samples are not counted).
struct Answer {
    seq: Option<u64>,
    result: anyhow::Result<Option<Event>>,
}

/// What carrying out store actions needs besides the store.
pub struct Context<'a> {
    pub opts: &'a IndexOptions,
    pub run: i64,
    pub owner: String,
}

/// The store, lent to the thread and given back when it ends.
pub type StoreRef<'s> = &'s mut dyn Store;

/// The run loop's end of the store thread.
pub struct Link {
    requests: Sender<Request>,
    answers: Receiver<Answer>,
    next: u64,
    /// Requests sent and not yet answered.
    outstanding: u64,
    /// The bell was rung and not yet heard: it rings once until then, so
    /// that the thread never waits on a full bell.
    rung: Arc<AtomicBool>,
}

/// Whether an action is the store's to carry out.
pub fn is_store(action: &Action) -> bool {
    matches!(
        action,
        Action::Claim { .. }
            | Action::Commit { .. }
            | Action::Renew { .. }
            | Action::Split { .. }
            | Action::Unsplit { .. }
            | Action::Restat { .. }
            | Action::Poll
            | Action::PlanOcr { .. }
            | Action::OcrLookup { .. }
    )
}

/// Starts the thread's loop over `store` (run it on a scoped thread);
/// returns the run loop's end and the loop to run. `bell` is rung after an
/// answer that was not waited for and brings an event or an error, unless
/// it is still ringing (see `Link::heard`).
pub fn start<'s>(
    store: &'s mut dyn Store,
    ctx: Context<'s>,
    bell: IpcSender<()>,
) -> (Link, impl FnOnce() -> StoreRef<'s> + Send + 's) {
    let (requests, inbox) = channel::<Request>();
    let (outbox, answers) = channel::<Answer>();
    let rung = Arc::new(AtomicBool::new(false));
    let ring = {
        let rung = Arc::clone(&rung);
        move || {
            if !rung.swap(true, Ordering::SeqCst) {
                let _ = bell.send(());
            }
        }
    };
    let serve = move || {
        for request in inbox {
            match request {
                Request::Act { seq, action } => {
                    let waited = !answers_later(&action);
                    let result = carry(store, &ctx, action);
                    let failed = result.is_err();
                    // The loop is woken for what it must hand on: a
                    // commit's answer, or an error.
                    let wake = !waited && !matches!(result, Ok(None));
                    let answer = Answer {
                        seq: Some(seq),
                        result,
                    };
                    if outbox.send(answer).is_err() {
                        break;
                    }
                    if wake {
                        ring();
                    }
                    if failed {
                        // Nothing after a failed write is carried out: the
                        // run ends on its error.
                        break;
                    }
                }
                Request::Sample(snap) => {
                    if let Err(e) = store.record_sample(ctx.run, &snap) {
                        let _ = outbox.send(Answer {
                            seq: None,
                            result: Err(e.into()),
                        });
                        ring();
                        break;
                    }
                }
            }
        }
        store
    };
    let link = Link {
        requests,
        answers,
        next: 0,
        outstanding: 0,
        rung,
    };
    (link, serve)
}

/// Actions whose answer (or error) the run loop does not wait for.
fn answers_later(action: &Action) -> bool {
    matches!(
        action,
        Action::Commit { .. }
            | Action::Renew { .. }
            | Action::Unsplit { .. }
            | Action::Restat { .. }
    )
}

impl Link {
    /// Hands a store action to the thread. Returns the answers to hand to
    /// the state, in order: those that arrived before it, then its own if
    /// it is one waited for.
    pub fn act(&mut self, action: Action) -> anyhow::Result<Vec<Event>> {
        let waited = !answers_later(&action);
        let seq = self.next;
        self.next += 1;
        self.send(Request::Act { seq, action })?;
        self.outstanding += 1;
        if !waited {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        loop {
            let answer = self.wait()?;
            let mine = answer.seq == Some(seq);
            if let Some(event) = self.take(answer)? {
                events.push(event);
            }
            if mine {
                return Ok(events);
            }
        }
    }

    /// Records a sample of the run's time series, without waiting.
    pub fn sample(&mut self, snap: &Snapshot) -> anyhow::Result<()> {
        // Answered only by an error.
        self.send(Request::Sample(Box::new(snap.clone())))
    }

    /// The bell was heard: the next answer rings it again. Call it before
    /// reading the answers that have arrived, so that none is missed.
    pub fn heard(&self) {
        self.rung.store(false, Ordering::SeqCst);
    }

    /// The answers that have arrived, without waiting.
    pub fn arrived(&mut self) -> anyhow::Result<Vec<Event>> {
        let mut events = Vec::new();
        while let Some(answer) = self.try_answer()? {
            events.extend(self.take(answer)?);
        }
        Ok(events)
    }

    /// Waits for the next answer still to come; `None` when none is.
    pub fn next_answer(&mut self) -> anyhow::Result<Option<Event>> {
        while self.outstanding > 0 {
            let answer = self.wait()?;
            if let Some(event) = self.take(answer)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    fn send(&mut self, request: Request) -> anyhow::Result<()> {
        if self.requests.send(request).is_err() {
            // The thread stopped on an error: that is the one to tell.
            while let Ok(answer) = self.answers.try_recv() {
                answer.result?;
            }
            return Err(gone());
        }
        Ok(())
    }

    /// The next answer, waited for.
    fn wait(&mut self) -> anyhow::Result<Answer> {
        self.answers.recv().map_err(|_| gone())
    }

    /// The next answer if one has arrived.
    fn try_answer(&mut self) -> anyhow::Result<Option<Answer>> {
        match self.answers.try_recv() {
            Ok(answer) => Ok(Some(answer)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(gone()),
        }
    }

    /// An answer's event; its error ends the run.
    fn take(&mut self, answer: Answer) -> anyhow::Result<Option<Event>> {
        if answer.seq.is_some() {
            self.outstanding -= 1;
        }
        answer.result
    }
}

fn gone() -> anyhow::Error {
    anyhow::anyhow!("the store's thread ended without an answer")
}

/// Carries out one store action; returns the event that answers it, if any.
fn carry(store: &mut dyn Store, ctx: &Context, action: Action) -> anyhow::Result<Option<Event>> {
    let lease = ctx.opts.lease;
    let owner = ctx.owner.as_str();
    Ok(match action {
        Action::Claim { doc, chunk } => {
            let claim = match chunk {
                Some(first) => store.claim_chunk(doc, first, owner, lease)?,
                None => store.claim(&[doc], owner, lease)?.first().map(|(_, c)| *c),
            };
            Some(Event::Claimed { claim })
        }
        Action::PlanOcr { doc, hash, ocr } => Some(Event::OcrPlanned {
            doc,
            planned: store.plan_ocr(doc, &hash, &ocr)?,
        }),
        Action::OcrLookup {
            doc,
            hash,
            key,
            pages,
        } => Some(Event::OcrCached {
            doc,
            pages: store.ocr_cached(&hash, &key, &pages)?,
        }),
        Action::Commit { batch, jobs } => Some(Event::Committed {
            batch,
            written: store.commit(&jobs)?,
        }),
        Action::Renew { held } => {
            for doc in store.renew(owner, &held, lease)? {
                tracing::warn!(doc, "lease lost: another supervisor may have taken the job");
            }
            None
        }
        Action::Split {
            doc,
            claim,
            page_count,
            ranges,
        } => Some(Event::SplitWritten {
            planned: store.split(doc, claim, page_count, &ranges)?,
        }),
        Action::Unsplit { doc } => {
            store.unsplit(doc)?;
            None
        }
        Action::Restat {
            doc,
            size,
            mtime_ns,
        } => {
            store.restat(doc, size, mtime_ns)?;
            None
        }
        Action::Poll => {
            let mut more = store.pending()?;
            super::scheduling_hints(ctx.opts, &mut more);
            let held_elsewhere = store.held_elsewhere(owner)?;
            Some(Event::Polled {
                more,
                held_elsewhere,
            })
        }
        other => anyhow::bail!("not a store action: {other}"),
    })
}
