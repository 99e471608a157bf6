//! Engines turn one document (or a page range of it) into page texts. One
//! file per engine; `extract` picks the one a job asks for and, for PDFs,
//! judges the text it produced (see `quality`). `mupdf_inproc` exists only
//! in builds with the `mupdf-inproc` feature.

pub(crate) mod child;
mod epub;
pub mod mupdf;
#[cfg(feature = "mupdf-inproc")]
pub mod mupdf_inproc;
#[cfg(feature = "mupdf-inproc")]
pub mod mupdf_locks;
mod pdf_builtin;
mod pdf_lopdf;
pub(crate) mod pdf_meta;
mod pdf_text;
pub mod poppler;

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use docmill_protocol::{
    DocSummary, EngineChoice, Format, Job, PageFlags, PageRange, WorkerFailure, WorkerFailureKind,
};

use crate::ocr::detect::{Flagger, ImageProbe};
use crate::quality::{self, TextStats, Verdict};
use crate::{cleanup, mockdoc, ocr};

/// The in-process MuPDF engine's version when this build has it (cargo
/// feature `mupdf-inproc`), so that the supervisor offers exactly what its
/// worker can do.
#[cfg(feature = "mupdf-inproc")]
pub const MUPDF_INPROC_VERSION: Option<&str> = Some(mupdf_inproc::VERSION);
#[cfg(not(feature = "mupdf-inproc"))]
pub const MUPDF_INPROC_VERSION: Option<&str> = None;

/// Why `mupdf-inproc` cannot be used in a build without it.
pub const MUPDF_INPROC_MISSING: &str = "this docmill was built without the mupdf-inproc feature \
     (build it with `cargo build --release --features mupdf-inproc`)";

/// Where an engine puts pages, in page order, as soon as each is ready.
pub trait PageSink {
    fn page(&mut self, page: u32, text: String, flags: PageFlags);

    /// An OCR job's page: with the engine's confidence, or, for a page that
    /// failed, a note saying why. Sinks that keep neither take it as a page.
    fn ocr_page(
        &mut self,
        page: u32,
        text: String,
        flags: PageFlags,
        _confidence: Option<f32>,
        _note: Option<String>,
    ) {
        self.page(page, text, flags);
    }

    /// Told the document's page count once it is known, before the first
    /// page. `Stop::Split` ends the job there: the job asked for documents
    /// this long to be split rather than extracted.
    fn page_count(&mut self, _pages: u32) -> Result<(), Stop> {
        Ok(())
    }
}

/// Why an extraction ended before its last page.
#[derive(Clone, Debug)]
pub enum Stop {
    /// The engine could not extract the document.
    Failed(WorkerFailure),
    /// Nothing was extracted: the document has `page_count` pages, more
    /// than the job's `split_over`.
    Split { page_count: u32 },
}

impl From<WorkerFailure> for Stop {
    fn from(f: WorkerFailure) -> Stop {
        Stop::Failed(f)
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed(failure) => f.write_str(&failure.reason),
            Stop::Split { page_count } => write!(f, "{page_count} pages: to be split"),
        }
    }
}

/// Extracts `job` with the engine it names; an OCR job (`ocr_pages` set)
/// recognises its pages instead.
pub fn extract(job: &Job, sink: &mut dyn PageSink) -> Result<DocSummary, Stop> {
    let path = Path::new(OsStr::from_bytes(&job.path));
    match job.format {
        Format::Pdf => match &job.ocr_pages {
            Some(pages) => ocr::run_job(path, job, pages, sink),
            None => extract_pdf_flagged(path, job, sink),
        },
        Format::Epub => Ok(epub::extract(path, job, sink)?),
        Format::Mock if job.allow_mock => mockdoc::run(path, job, sink),
        Format::Mock => Err(deterministic(
            "mock documents are only obeyed with --allow-mock-docs".to_string(),
        )
        .into()),
    }
}

/// A PDF text job: its pages flagged for OCR as the job's OCR mode says
/// (see `ocr::detect`), and the file's content hash in the summary when any
/// page was.
fn extract_pdf_flagged(
    path: &Path,
    job: &Job,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let mut flagger = Flagger {
        inner: sink,
        mode: job.ocr.mode,
        probe: ImageProbe::new(path),
        flagged: 0,
    };
    let mut summary = extract_pdf(path, job.engine, job.range, &mut flagger)?;
    if flagger.flagged > 0 {
        summary.content_hash = Some(ocr::summary_hash(path)?);
    }
    Ok(summary)
}

/// Extracts a PDF (or the page range of it) with `engine`, then fails the job
/// as garbage when the text it produced is judged unusable. A chunk job is
/// judged on its own pages. Each page's text is tidied on its way (see
/// `cleanup`): words hyphenated across line ends joined, and a page mostly
/// of unreadable characters stripped of them and flagged low quality.
///
/// A document judged garbage only for its unreadable characters is kept
/// when the words left on those pages are real text: the unreadable part is
/// glyphs the document's own fonts give no Unicode for (a score's music
/// symbols), which no other engine can read either, so the next engine
/// would only fail the same way and the words would be lost. Garbage of
/// spacing (letters split apart, words run together) is the engine's own
/// misreading, and goes to the next engine as before.
pub fn extract_pdf(
    path: &Path,
    engine: EngineChoice,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let mut judged = Judged {
        inner: sink,
        stats: TextStats::default(),
        kept: TextStats::default(),
        low_quality: 0,
    };
    let summary = match engine {
        EngineChoice::Builtin => pdf_builtin::extract(path, range, &mut judged)?,
        EngineChoice::Lopdf => pdf_lopdf::extract(path, range, &mut judged)?,
        EngineChoice::Mupdf => mupdf::extract(path, range, &mut judged)?,
        EngineChoice::Poppler => poppler::extract(path, range, &mut judged)?,
        #[cfg(feature = "mupdf-inproc")]
        EngineChoice::MupdfInproc => mupdf_inproc::extract(path, range, &mut judged)?,
        // The supervisor does not offer it then; a job that asks anyway is
        // refused rather than served by another engine.
        #[cfg(not(feature = "mupdf-inproc"))]
        EngineChoice::MupdfInproc => {
            return Err(deterministic(MUPDF_INPROC_MISSING.to_string()).into())
        }
    };
    match judged.verdict().reason() {
        Some(reason) => Err(WorkerFailure {
            kind: WorkerFailureKind::Garbage,
            reason,
        }
        .into()),
        None => Ok(summary),
    }
}

/// Tidies pages on their way (see `cleanup`) and counts them for the
/// quality check.
struct Judged<'a> {
    inner: &'a mut dyn PageSink,
    /// The text as the engine wrote it (hyphenated words joined).
    stats: TextStats,
    /// The text as sent on, unreadable characters removed where a page was
    /// mostly made of them.
    kept: TextStats,
    /// Pages sent with their unreadable characters removed.
    low_quality: u32,
}

impl Judged<'_> {
    /// The engine's text's verdict; a `BadChars` one stands only when what
    /// was kept is no better.
    fn verdict(&self) -> Verdict {
        match self.stats.verdict() {
            Verdict::BadChars(_)
                if self.low_quality > 0
                    && self.kept.verdict() == Verdict::Fine
                    && self.kept.real_words >= quality::MIN_REAL_WORDS =>
            {
                Verdict::Fine
            }
            v => v,
        }
    }
}

impl PageSink for Judged<'_> {
    fn page(&mut self, page: u32, text: String, mut flags: PageFlags) {
        let text = match cleanup::join_hyphenated(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(joined) => joined,
        };
        let seen = TextStats::of(&text);
        self.stats.merge(&seen);
        let text = if seen.mostly_unreadable() {
            self.low_quality += 1;
            flags.low_quality = true;
            let kept = cleanup::without_unreadable(&text);
            self.kept.add(&kept);
            kept
        } else {
            self.kept.merge(&seen);
            text
        };
        self.inner.page(page, text, flags);
    }

    fn page_count(&mut self, pages: u32) -> Result<(), Stop> {
        self.inner.page_count(pages)
    }
}

/// The pages `first..=last` a job asks for out of `page_count`: the whole
/// document without a range, a range cut at the document's end, and a
/// failure for a range that starts past it.
pub(crate) fn clamp_range(
    range: Option<PageRange>,
    page_count: u32,
) -> Result<(u32, u32), WorkerFailure> {
    let Some(r) = range else {
        return Ok((1, page_count));
    };
    let first = r.first.max(1);
    if first > page_count || r.last < first {
        return Err(deterministic(format!(
            "page range {}-{} is past the document's {page_count} pages",
            r.first, r.last
        )));
    }
    Ok((first, r.last.min(page_count)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_clamped_to_the_document() {
        let r = |first, last| Some(PageRange { first, last });
        assert_eq!(clamp_range(None, 7).ok(), Some((1, 7)));
        assert_eq!(clamp_range(r(3, 5), 7).ok(), Some((3, 5)));
        assert_eq!(clamp_range(r(5, 500), 7).ok(), Some((5, 7)));
        assert_eq!(clamp_range(r(0, 2), 7).ok(), Some((1, 2)));
        assert!(clamp_range(r(8, 9), 7).is_err());
        assert!(clamp_range(r(5, 4), 7).is_err());
    }
}
