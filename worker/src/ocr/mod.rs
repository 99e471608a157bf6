//! OCR in the worker: which pages of a text job need it (`detect`), and
//! OCR jobs, which render each page asked for (`render`) and recognise it
//! with Tesseract as the worker's own child (`tesseract`). A page whose
//! rendering or recognition fails (a timeout, a crash, memory) is sent
//! failed with a one-line note, and the job goes on to the next page.

pub mod detect;
pub mod render;
pub mod tesseract;

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use docmill_protocol::{DocSummary, Job, PageFlags, WorkerFailure};

use crate::engines::{deterministic, io_failure, PageSink, Stop};

pub use tesseract::Recognised;

/// What an OCR job's summary names as its engine.
pub const ENGINE: &str = "tesseract";

/// The BLAKE3 hex digest of the file's bytes, the OCR cache's key.
pub fn content_hash(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The hash for a summary, or the failure to read the file.
pub fn summary_hash(path: &Path) -> Result<String, WorkerFailure> {
    content_hash(path).map_err(|e| io_failure("cannot read the file", &e))
}

/// An OCR job on a PDF: renders and recognises each page of `pages`.
pub fn run_job(
    path: &Path,
    job: &Job,
    pages: &[u32],
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    File::open(path).map_err(|e| io_failure("cannot read the file", &e))?;
    let renderer = render::Renderer::open(path)
        .map_err(|why| deterministic(crate::panic_note::one_line(&why)))?;
    let page_count = renderer.page_count(path).unwrap_or(0);
    if page_count > 0 {
        sink.page_count(page_count)?;
    }
    let settings = &job.ocr;
    let limit = Duration::from_millis(settings.page_timeout_ms.max(1));
    recognise_pages(pages, page_count, sink, |page| {
        let image = renderer.render(page, settings.dpi, settings.max_pixels, limit)?;
        let mut cmd = tesseract::command(&settings.lang, image.dpi);
        tesseract::run(&mut cmd, image.pgm, limit)
    });
    Ok(DocSummary {
        page_count,
        title: None,
        author: None,
        language: None,
        engine: ENGINE.to_string(),
        content_hash: Some(summary_hash(path)?),
    })
}

/// Sends each page of `pages` as `recognise` reads it: its text and
/// confidence, or, when it fails, an empty failed page with the note. A
/// page past the document's `page_count` (when known) fails likewise.
pub fn recognise_pages(
    pages: &[u32],
    page_count: u32,
    sink: &mut dyn PageSink,
    mut recognise: impl FnMut(u32) -> Result<Recognised, String>,
) {
    for &page in pages {
        let read = if page_count > 0 && page > page_count {
            Err(format!(
                "page {page} is past the document's {page_count} pages"
            ))
        } else {
            recognise(page)
        };
        let ocr = PageFlags {
            ocr: true,
            ..PageFlags::default()
        };
        match read {
            Ok(r) => sink.ocr_page(page, r.text, ocr, r.confidence, None),
            Err(note) => sink.ocr_page(
                page,
                String::new(),
                PageFlags {
                    failed: true,
                    ..ocr
                },
                None,
                Some(note),
            ),
        }
    }
}
