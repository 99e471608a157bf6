//! The in-process MuPDF engine (cargo feature `mupdf-inproc`): MuPDF linked
//! into the worker through the `mupdf` crate, so a document costs no child
//! processes and no text piped through them. It mirrors the `mupdf` (mutool)
//! engine: the whole document's page count, absolute page numbers, one page
//! sent per page of the range in order, a page that fails sent empty and
//! flagged, "password required" for locked documents, one-line reasons.
//!
//! A MuPDF error comes back as a `Result` (the crate's C wrapper catches it);
//! a Rust panic in the binding is caught per page, as in the built-in engine.
//! What neither can catch (a crash inside MuPDF's C) takes the worker down,
//! and the supervisor retries and falls back as for any crash. MuPDF runs on
//! the calling thread only: the crate keeps one context per thread and
//! MuPDF starts no threads of its own for text extraction.

use std::fs::File;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use docmill_protocol::{DocSummary, PageFlags, PageRange, WorkerFailure, WorkerFailureKind};
use mupdf::text_page::TextBlockType;
use mupdf::{Document, MetadataName, TextPage, TextPageFlags};

use super::{deterministic, io_failure, PageSink, Stop};
use crate::panic_note;

pub const NAME: &str = "mupdf-inproc";
/// What `docmill engines` shows; the MuPDF release is the one the crate
/// vendors (mupdf 0.8 builds MuPDF 1.27).
pub const VERSION: &str = "MuPDF 1.27 (mupdf crate 0.8)";
/// Pages MuPDF may fail on before the document counts as unreadable, as for
/// the mutool engine: past that, another engine under `auto` is likelier to
/// do better than a document full of holes.
const MAX_LOST_PAGES: u32 = 10;

pub fn extract(
    path: &Path,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    // Opening the file ourselves first gives the same reasons as the other
    // engines for a missing file, a permission problem or a descriptor
    // shortage, which MuPDF would only report as a message.
    File::open(path).map_err(|e| io_failure("cannot read the file", &e))?;

    let opened = panic::catch_unwind(|| open(path));
    let (doc, meta) = match opened {
        Ok(result) => result?,
        Err(_) => {
            return Err(deterministic(format!(
                "not a readable PDF: engine panicked: {}",
                panic_note::take()
            ))
            .into())
        }
    };
    sink.page_count(meta.page_count)?;
    let (first, last) = super::clamp_range(range, meta.page_count)?;

    let wanted = last - first + 1;
    let mut lost = 0u32;
    let mut first_loss = None;
    for page in first..=last {
        // The sink stays outside the guard: a panic there is not the page's.
        let text = panic::catch_unwind(AssertUnwindSafe(|| page_text(&doc, page)));
        let why = match text {
            Ok(Ok(text)) => {
                sink.page(page, text, PageFlags::default());
                continue;
            }
            Ok(Err(e)) => {
                let why = describe(&e);
                if is_out_of_memory(&why) {
                    // A retry with a larger limit may read the page; a
                    // failed page would be final.
                    return Err(WorkerFailure {
                        kind: WorkerFailureKind::OutOfMemory,
                        reason: panic_note::one_line(&format!("page {page}: {why}")),
                    }
                    .into());
                }
                why
            }
            Err(_) => format!("engine panicked: {}", panic_note::take()),
        };
        lost += 1;
        first_loss.get_or_insert_with(|| format!("page {page}: {why}"));
        if lost > MAX_LOST_PAGES || lost == wanted {
            return Err(deterministic(panic_note::one_line(&format!(
                "MuPDF failed on {lost} of {wanted} pages: {}",
                first_loss.unwrap_or_default()
            )))
            .into());
        }
        sink.page(
            page,
            String::new(),
            PageFlags {
                failed: true,
                ..PageFlags::default()
            },
        );
    }
    Ok(DocSummary {
        page_count: meta.page_count,
        title: meta.title,
        author: meta.author,
        language: None,
        engine: NAME.to_string(),
        content_hash: None,
    })
}

struct Meta {
    page_count: u32,
    title: Option<String>,
    author: Option<String>,
}

fn open(path: &Path) -> Result<(Document, Meta), WorkerFailure> {
    let unreadable = |e: mupdf::Error| {
        let why = describe(&e);
        if is_out_of_memory(&why) {
            WorkerFailure {
                kind: WorkerFailureKind::OutOfMemory,
                reason: panic_note::one_line(&why),
            }
        } else {
            deterministic(panic_note::one_line(&format!("not a readable PDF: {why}")))
        }
    };
    let mut doc = Document::open(path.as_os_str()).map_err(unreadable)?;
    // MuPDF tries the empty user password itself; a document that opens
    // with its owner password only reads without one, as with mutool.
    if doc.needs_password().map_err(unreadable)? && !doc.authenticate("").map_err(unreadable)? {
        return Err(deterministic("password required".to_string()));
    }
    let count = doc.page_count().map_err(unreadable)?;
    let page_count = match u32::try_from(count) {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(deterministic(
                "not a readable PDF: no page tree (or the PDF has no pages)".to_string(),
            ))
        }
    };
    // Metadata is a nicety: a document whose Info dictionary cannot be read
    // still extracts.
    let info = |name: MetadataName| {
        let s = doc.metadata(name).ok()?;
        let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        (!s.is_empty()).then(|| s.to_string())
    };
    let meta = Meta {
        page_count,
        title: info(MetadataName::Title),
        author: info(MetadataName::Author),
    };
    Ok((doc, meta))
}

/// The text of page `page` (1-based), laid out as `mutool draw -F txt`
/// prints it, without the newlines around it.
fn page_text(doc: &Document, page: u32) -> Result<String, mupdf::Error> {
    let index = i32::try_from(page - 1).map_err(mupdf::Error::IntConversion)?;
    let loaded = doc.load_page(index)?;
    // No flags, as mutool uses: ligatures expanded, whitespace normalised,
    // no images.
    let text_page = loaded.to_text_page(TextPageFlags::empty())?;
    Ok(text_of(&text_page))
}

/// One line of text per MuPDF line, a blank line after each block, as
/// MuPDF's own text printer writes them. It is walked here rather than
/// printed by MuPDF because MuPDF writes an unpaired surrogate from a broken
/// ToUnicode map as bytes that are not UTF-8, which the crate would refuse
/// for the whole page; here such a character becomes U+FFFD, which the
/// quality check counts. (MuPDF's printer also joins lines it dehyphenated;
/// without the dehyphenate flag there are none.)
fn text_of(text_page: &TextPage) -> String {
    let mut out = String::new();
    for block in text_page.blocks() {
        if block.r#type() != TextBlockType::Text {
            continue;
        }
        for line in block.lines() {
            out.extend(
                line.chars()
                    .map(|c| c.char().unwrap_or(char::REPLACEMENT_CHARACTER)),
            );
            out.push('\n');
        }
        out.push('\n');
    }
    out.trim_matches(['\n', '\r']).to_string()
}

/// MuPDF's own message, without the crate's "MuPDF error, code: N" wrapper.
fn describe(e: &mupdf::Error) -> String {
    match e {
        mupdf::Error::MuPdf(m) => panic_note::one_line(&m.message),
        other => panic_note::one_line(&other.to_string()),
    }
}

/// MuPDF reports a failed allocation (under the worker's address-space
/// limit) as "malloc (N bytes) failed", or calloc/realloc likewise.
fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("alloc (") && m.contains("failed") && !m.contains("overflow"))
        || m.contains("out of memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_failures_are_told_apart() {
        assert!(is_out_of_memory("malloc (1048576 bytes) failed"));
        assert!(is_out_of_memory("realloc (42 bytes) failed"));
        assert!(!is_out_of_memory(
            "calloc (4 x 4611686018427387904 bytes) failed (size_t overflow)"
        ));
        assert!(!is_out_of_memory("cannot find startxref"));
    }

    #[test]
    fn a_missing_file_is_named_as_such() {
        struct Nothing;
        impl PageSink for Nothing {
            fn page(&mut self, _: u32, _: String, _: PageFlags) {}
        }
        let err =
            extract(Path::new("/nonexistent/x.pdf"), None, &mut Nothing).expect_err("no such file");
        assert!(err.to_string().contains("file not found"), "{err}");
    }
}
