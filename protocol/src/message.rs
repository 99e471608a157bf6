//! Messages each way over the IPC channels, and the handshake.

use ipc_channel::ipc::IpcSender;
use serde::{Deserialize, Serialize};

use crate::job::{Job, JobId};

/// Supervisor to worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    Job(Job),
    /// Finish nothing more and exit 0.
    Shutdown,
}

/// Per-page flags, stored with the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFlags {
    /// The engine panicked or failed on this page; its text is empty.
    pub failed: bool,
    /// Most of the page's characters were unreadable (glyphs without a
    /// Unicode mapping); they were removed and the words that remain kept.
    pub low_quality: bool,
}

impl PageFlags {
    pub fn bits(self) -> i64 {
        i64::from(self.failed) | i64::from(self.low_quality) << 1
    }
}

/// What the worker learned about a finished document.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DocSummary {
    /// Pages in the whole document (not only the range asked for).
    pub page_count: u32,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
    /// The engine that produced the text.
    pub engine: String,
}

/// Why a worker could not extract a document, as the worker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerFailureKind {
    /// The document itself is bad (broken, encrypted, empty): retrying the
    /// same engine would fail the same way.
    Deterministic,
    /// The extraction code panicked.
    Panicked,
    /// Allocation failed (address-space limit) and was caught.
    OutOfMemory,
    /// Ran out of descriptors (EMFILE).
    OutOfDescriptors,
    /// The engine finished, but its text is judged unusable (letters split
    /// by spaces, words run together, or replacement characters). Another
    /// engine may do better; the same engine will not.
    Garbage,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerFailure {
    pub kind: WorkerFailureKind,
    /// One line, meant for people.
    pub reason: String,
}

/// Worker to supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// First message after connecting: who I am and where to send jobs.
    Hello {
        protocol: u32,
        pid: u32,
        jobs: IpcSender<ToWorker>,
    },
    /// Sent while a job runs, so a stuck worker is told from a slow one.
    Heartbeat {
        job: JobId,
    },
    /// The document's page count, as soon as the engine knows it and
    /// before its first page: the supervisor gives the job a deadline that
    /// follows its length. Not sent when the job is to be split instead.
    PageCount {
        job: JobId,
        pages: u32,
    },
    /// One page (or EPUB chapter) of text, in order. Each one is progress:
    /// the supervisor ends an attempt that makes none for too long.
    Page {
        job: JobId,
        page: u32,
        text: String,
        flags: PageFlags,
    },
    Done {
        job: JobId,
        summary: DocSummary,
    },
    Failed {
        job: JobId,
        failure: WorkerFailure,
    },
    /// The document has more pages than the job's `split_over`: nothing
    /// was extracted; the supervisor splits it into chunk jobs.
    Split {
        job: JobId,
        page_count: u32,
    },
}
