//! The built-in PDF engine: pdf-extract, guarded. Every page runs under its
//! own panic guard, so one bad page costs that page, not the document; a page
//! error never silently ends the document; and a page range is served by
//! dropping the other pages first, so a range costs in proportion to its
//! pages.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use docmill_protocol::{DocSummary, PageFlags, PageRange, WorkerFailure};
use pdf_extract::{Document, Object, OutputError, PlainTextOutput};

use super::{deterministic, io_failure, PageSink, Stop};
use crate::panic_note;

pub const NAME: &str = "builtin";

pub fn extract(
    path: &Path,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let bytes = fs::read(path).map_err(|e| io_failure("cannot read the file", &e))?;
    let doc = load(&bytes)?;
    let page_count = doc.get_pages().len() as u32;
    if page_count == 0 {
        return Err(deterministic("the PDF has no pages".to_string()).into());
    }
    sink.page_count(page_count)?;
    let (title, author) = info_strings(&doc);

    // A page range is read from the whole document: pdf-extract takes the
    // page number, and trimming the document first (lopdf's delete_pages)
    // made every remaining page about three times slower to extract.
    let (first, last) = super::clamp_range(range, page_count)?;
    let wanted = last - first + 1;

    let mut tally = Tally::default();
    for page in first..=last {
        tally.page(sink, page, extract_page(&doc, page));
    }
    tally.verdict(&doc, wanted)?;
    Ok(DocSummary {
        page_count,
        title,
        author,
        language: None,
        engine: NAME.to_string(),
        content_hash: None,
    })
}

/// The pages of a lopdf-based engine, sent as they come, and what they say
/// of the document: a failed page is sent empty and flagged; the document
/// fails when no page could be read, or when a PDF with fonts gave no text.
#[derive(Default)]
pub(crate) struct Tally {
    chars: usize,
    failed: u32,
    first_error: Option<String>,
}

impl Tally {
    pub(crate) fn page(
        &mut self,
        sink: &mut dyn PageSink,
        page: u32,
        text: Result<String, String>,
    ) {
        match text {
            Ok(text) => {
                self.chars += text.chars().filter(|c| !c.is_whitespace()).count();
                sink.page(page, text, PageFlags::default());
            }
            Err(reason) => {
                self.failed += 1;
                self.first_error
                    .get_or_insert_with(|| format!("page {page}: {reason}"));
                let flags = PageFlags {
                    failed: true,
                    ..PageFlags::default()
                };
                sink.page(page, String::new(), flags);
            }
        }
    }

    /// The document's verdict once its `wanted` pages are through.
    pub(crate) fn verdict(self, doc: &Document, wanted: u32) -> Result<(), Stop> {
        if self.failed == wanted {
            return Err(deterministic(format!(
                "no page could be extracted ({})",
                self.first_error.unwrap_or_default()
            ))
            .into());
        }
        if self.chars == 0 && has_fonts(doc) {
            return Err(deterministic(
                "the engine produced no text although the PDF has fonts".to_string(),
            )
            .into());
        }
        Ok(())
    }
}

pub(crate) fn load(bytes: &[u8]) -> Result<Document, WorkerFailure> {
    let loaded = panic::catch_unwind(|| Document::load_mem(bytes));
    let mut doc = match loaded {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => return Err(load_failure(&e.to_string())),
        Err(_) => {
            return Err(deterministic(format!(
                "not a readable PDF: parser panicked: {}",
                panic_note::take()
            )))
        }
    };
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(deterministic("password required".to_string()));
    }
    Ok(doc)
}

fn load_failure(message: &str) -> WorkerFailure {
    let lower = message.to_ascii_lowercase();
    if lower.contains("decrypt") || lower.contains("password") {
        deterministic("password required".to_string())
    } else {
        deterministic(format!(
            "not a readable PDF: {}",
            panic_note::one_line(message)
        ))
    }
}

fn extract_page(doc: &Document, page: u32) -> Result<String, String> {
    let mut text = String::new();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut out = PlainTextOutput::new(&mut text);
        pdf_extract::output_doc_page(doc, &mut out, page)
    }));
    match result {
        Ok(Ok(())) => Ok(text),
        Ok(Err(OutputError::PdfError(e))) => Err(panic_note::one_line(&e.to_string())),
        Ok(Err(e)) => Err(panic_note::one_line(&e.to_string())),
        Err(_) => Err(format!("engine panicked: {}", panic_note::take())),
    }
}

/// Whether any object is a font: a document with fonts and no text means the
/// engine failed, while one without fonts is simply image-only.
fn has_fonts(doc: &Document) -> bool {
    doc.objects.values().any(|o| {
        let dict = match o {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &s.dict,
            _ => return false,
        };
        matches!(dict.get(b"Type"), Ok(Object::Name(n)) if n == b"Font")
    })
}

pub(crate) fn info_strings(doc: &Document) -> (Option<String>, Option<String>) {
    let info = doc.trailer.get(b"Info").ok().and_then(|o| match o {
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    });
    let Some(info) = info else {
        return (None, None);
    };
    let get = |key: &[u8]| -> Option<String> {
        match info.get(key).ok()? {
            Object::String(bytes, _) => {
                let s = decode_pdf_string(bytes);
                let s = s.trim();
                (!s.is_empty()).then(|| s.to_string())
            }
            _ => None,
        }
    };
    (get(b"Title"), get(b"Author"))
}

/// PDF text strings are UTF-16BE with a byte-order mark, or PDFDocEncoding
/// (close enough to Latin-1 for titles).
pub(crate) fn decode_pdf_string(bytes: &[u8]) -> String {
    if bytes.starts_with(&[0xFE, 0xFF]) {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        String::from_utf8_lossy(&bytes[3..]).into_owned()
    } else {
        bytes.iter().map(|&b| b as char).collect()
    }
}
