//! The worker's life: connect back, say hello, then one job at a time until
//! told to stop or the supervisor goes away.

use std::panic::{self, AssertUnwindSafe};

use docmill_protocol::{
    FromWorker, Job, PageFlags, ToWorker, WorkerFailure, WorkerFailureKind, PROTOCOL_VERSION,
};
use ipc_channel::ipc::{self, IpcSender};

use crate::engines::{self, PageSink, Stop};
use crate::heartbeat::{self, CurrentJob};
use crate::panic_note;

/// Runs a worker connected to the supervisor's one-shot server `server`.
/// Returns the process exit code.
pub fn run(server: &str) -> i32 {
    panic_note::install();
    // Every MuPDF call of a worker comes from this thread.
    #[cfg(feature = "mupdf-inproc")]
    crate::engines::mupdf_locks::unlock_this_thread();
    let tx: IpcSender<FromWorker> = match IpcSender::connect(server.to_string()) {
        Ok(tx) => tx,
        Err(e) => {
            eprintln!("docmill worker: cannot connect to the supervisor: {e}");
            return 3;
        }
    };
    let (jobs_tx, jobs_rx) = match ipc::channel::<ToWorker>() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("docmill worker: cannot make a channel: {e}");
            return 3;
        }
    };
    let hello = FromWorker::Hello {
        protocol: PROTOCOL_VERSION,
        pid: std::process::id(),
        jobs: jobs_tx,
    };
    if tx.send(hello).is_err() {
        return 3;
    }
    let current = CurrentJob::default();
    heartbeat::start(tx.clone(), current.clone());

    // A closed channel means the supervisor is gone: exit quietly.
    while let Ok(ToWorker::Job(job)) = jobs_rx.recv() {
        current.set(job.id);
        let reply = handle(&job, &tx);
        current.clear();
        if tx.send(reply).is_err() {
            break;
        }
    }
    // Told to stop, or the supervisor is gone: everything the worker had to
    // say is sent (each message synchronously), so it ends at once, without
    // running destructors. Freeing what MuPDF holds (a document kept open
    // for the next chunk of a 12,000-page file, its font and object caches)
    // took tens of milliseconds a worker, and the end of every run waited
    // for it.
    // SAFETY: `_exit` ends the process; nothing runs after it.
    unsafe { libc::_exit(0) }
}

struct IpcPages<'a> {
    job: u64,
    tx: &'a IpcSender<FromWorker>,
    split_over: Option<u32>,
}

impl PageSink for IpcPages<'_> {
    fn page(&mut self, page: u32, text: String, flags: PageFlags) {
        self.ocr_page(page, text, flags, None, None);
    }

    fn ocr_page(
        &mut self,
        page: u32,
        text: String,
        flags: PageFlags,
        confidence: Option<f32>,
        note: Option<String>,
    ) {
        // A send error means the supervisor is gone; the job loop notices on
        // its next receive, so nothing more is needed here.
        let _ = self.tx.send(FromWorker::Page {
            job: self.job,
            page,
            text,
            flags,
            confidence,
            note,
        });
    }

    fn page_count(&mut self, pages: u32) -> Result<(), Stop> {
        match self.split_over {
            Some(limit) if pages > limit => Err(Stop::Split { page_count: pages }),
            _ => {
                // Told before the first page, so the supervisor's deadline
                // follows the document's length from the start.
                let _ = self.tx.send(FromWorker::PageCount {
                    job: self.job,
                    pages,
                });
                Ok(())
            }
        }
    }
}

/// Runs one job; the answer is its end: done, failed, or to be split.
fn handle(job: &Job, tx: &IpcSender<FromWorker>) -> FromWorker {
    let mut sink = IpcPages {
        job: job.id,
        tx,
        split_over: job.split_over,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| engines::extract(job, &mut sink)));
    match result {
        Ok(Ok(summary)) => FromWorker::Done {
            job: job.id,
            summary,
        },
        Ok(Err(Stop::Split { page_count })) => FromWorker::Split {
            job: job.id,
            page_count,
        },
        Ok(Err(Stop::Failed(failure))) => FromWorker::Failed {
            job: job.id,
            failure,
        },
        Err(_) => FromWorker::Failed {
            job: job.id,
            failure: WorkerFailure {
                kind: WorkerFailureKind::Panicked,
                reason: format!("extraction panicked: {}", panic_note::take()),
            },
        },
    }
}
