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
    /// The text layer gave almost nothing and the page carries an image (or
    /// the run forces OCR): the supervisor schedules it for recognition.
    /// Set only by text jobs, and only when the job's OCR mode is not `Off`.
    pub needs_ocr: bool,
    /// The text came from OCR (an OCR job's page, or the OCR cache).
    pub ocr: bool,
}

impl PageFlags {
    pub fn bits(self) -> i64 {
        i64::from(self.failed)
            | i64::from(self.low_quality) << 1
            | i64::from(self.needs_ocr) << 2
            | i64::from(self.ocr) << 3
    }

    pub fn from_bits(bits: i64) -> PageFlags {
        PageFlags {
            failed: bits & 1 != 0,
            low_quality: bits & 2 != 0,
            needs_ocr: bits & 4 != 0,
            ocr: bits & 8 != 0,
        }
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
    /// Hex digest of the file's bytes (BLAKE3), set when any page was
    /// flagged `needs_ocr`: the OCR cache is keyed by it, so a renamed or
    /// touched file is never recognised twice.
    pub content_hash: Option<String>,
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
        /// OCR pages: the engine's mean word confidence, 0-100.
        confidence: Option<f32>,
        /// Why the page failed (e.g. "OCR timed out after 60s"), for `status`.
        note: Option<String>,
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
