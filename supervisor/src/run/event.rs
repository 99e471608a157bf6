//! What the run state is told: everything that happens in the world (a
//! worker's message, a closed channel, a tick of the clock, a signal, the
//! answer of the store or of the sampler) becomes one `Event`. The driver
//! makes them; `State::handle` takes them, one at a time, with the instant
//! each happened.

use docmill_protocol::{DocSummary, JobId, Outcome, PageFlags, WorkerFailure};

use crate::scale::Readings;
use crate::store::{Claim, QueuedDoc, Written};

/// The driver's name for one worker process (its IPC channel's id).
pub type WorkerId = u64;

#[derive(Debug)]
pub enum Event {
    /// Time passed. Deadlines, heartbeats, renewals, batched commits and
    /// scaling are looked at on every tick.
    Tick,
    /// The user asked the run to stop (SIGINT, SIGTERM): running jobs get
    /// the grace period, nothing new starts.
    Stop,
    /// A worker asked for by `Action::Spawn` is up and said hello.
    WorkerUp {
        worker: WorkerId,
        pid: u32,
        mem_limit: u64,
    },
    /// A worker asked for by `Action::Spawn` could not be started.
    SpawnFailed {
        error: String,
    },
    /// A job could not be handed to its worker: the worker was gone.
    SendFailed {
        worker: WorkerId,
    },
    Heartbeat {
        worker: WorkerId,
        job: JobId,
    },
    /// The worker opened the job's document: it has this many pages.
    PageCount {
        worker: WorkerId,
        job: JobId,
        pages: u32,
    },
    Page {
        worker: WorkerId,
        job: JobId,
        page: u32,
        text: String,
        flags: PageFlags,
        /// OCR pages: the engine's mean word confidence.
        confidence: Option<f32>,
        /// Why the page failed.
        note: Option<String>,
    },
    /// The worker extracted the whole job; `file` is what the driver found
    /// at the document's path when the answer arrived.
    Done {
        worker: WorkerId,
        job: JobId,
        summary: DocSummary,
        file: FileSeen,
    },
    Failed {
        worker: WorkerId,
        job: JobId,
        failure: WorkerFailure,
    },
    /// The document is longer than the job's `split_over`: nothing was
    /// extracted, it is to be split into page-range chunk jobs.
    SplitAsked {
        worker: WorkerId,
        job: JobId,
        page_count: u32,
    },
    /// A worker's channel closed without the run asking: it exited or died.
    /// The driver reaped it and read its end (wait status, last stderr).
    Exited {
        worker: WorkerId,
        outcome: Outcome,
        reason: String,
    },
    /// The resident memory of a worker's process tree.
    Rss {
        worker: WorkerId,
        rss: u64,
    },
    /// Machine readings (CPU, memory, descriptors), after `Action::Sample`
    /// or on the driver's own pace for the live display.
    Readings(Readings),
    /// The answer to `Action::Claim`: the lease, or none when someone else
    /// took the document or it is no longer pending.
    Claimed {
        claim: Option<Claim>,
    },
    /// The answer to `Action::Commit`, one entry per job, in order.
    Committed {
        batch: u64,
        written: Vec<Written>,
    },
    /// The answer to `Action::Split`: false when the lease was lost.
    SplitWritten {
        planned: bool,
    },
    /// The answer to `Action::Poll`: documents pending in the shared store,
    /// and the leases other supervisors still hold.
    Polled {
        more: Vec<QueuedDoc>,
        held_elsewhere: u64,
    },
    /// The answer to `Action::PlanOcr`: whether the OCR jobs were stored.
    OcrPlanned {
        doc: i64,
        planned: bool,
    },
    /// The answer to `Action::OcrLookup`: the pages the OCR cache held.
    OcrCached {
        doc: i64,
        pages: Vec<crate::store::OcrPage>,
    },
}

/// What the driver found at a document's path when its text arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSeen {
    Present { size: u64, mtime_ns: i64 },
    Vanished,
}
