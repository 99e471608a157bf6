//! Engines turn one document (or a page range of it) into page texts. One
//! file per engine; `extract` picks the one a job asks for.

mod epub;
mod pdf_builtin;

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use docmill_protocol::{DocSummary, Format, Job, PageFlags, WorkerFailure, WorkerFailureKind};

use crate::mockdoc;

/// Where an engine puts pages, in page order, as soon as each is ready.
pub trait PageSink {
    fn page(&mut self, page: u32, text: String, flags: PageFlags);
}

/// Extracts `job` with the engine it names.
pub fn extract(job: &Job, sink: &mut dyn PageSink) -> Result<DocSummary, WorkerFailure> {
    let path = Path::new(OsStr::from_bytes(&job.path));
    match job.format {
        Format::Pdf => pdf_builtin::extract(path, job.range, sink),
        Format::Epub => epub::extract(path, job, sink),
        Format::Mock if job.allow_mock => mockdoc::run(path, job, sink),
        Format::Mock => Err(deterministic(
            "mock documents are only obeyed with --allow-mock-docs".to_string(),
        )),
    }
}

pub(crate) fn deterministic(reason: String) -> WorkerFailure {
    WorkerFailure {
        kind: WorkerFailureKind::Deterministic,
        reason,
    }
}

/// Names an I/O error the way a person would want to read it, and tells a
/// descriptor shortage apart from a bad file.
pub(crate) fn io_failure(what: &str, e: &io::Error) -> WorkerFailure {
    let kind = if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) {
        WorkerFailureKind::OutOfDescriptors
    } else {
        WorkerFailureKind::Deterministic
    };
    let cause = match e.kind() {
        io::ErrorKind::NotFound => "file not found (removed during the run?)".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    WorkerFailure {
        kind,
        reason: format!("{what}: {cause}"),
    }
}
