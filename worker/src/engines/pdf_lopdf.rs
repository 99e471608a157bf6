//! The lopdf engine: page text read from the content streams by this
//! crate's own reader (`pdf_text`) over lopdf's object model, the parser
//! pdf-extract is built on. Pure Rust like the built-in engine, and it reads
//! what pdf-extract gives up on (fonts it panics over, encodings it cannot
//! map, words it runs together, files whose cross-reference table lies), so a build without MuPDF still reads most
//! PDFs with no tool installed. Every page runs under its own panic guard.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use docmill_protocol::{DocSummary, PageRange};

use super::pdf_builtin::{info_strings, load, Tally};
use super::pdf_text::{page_text, rebuild_xref, FontCache};
use super::{deterministic, io_failure, PageSink, Stop};
use crate::panic_note;

pub const NAME: &str = "lopdf";

pub fn extract(
    path: &Path,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let bytes = fs::read(path).map_err(|e| io_failure("cannot read the file", &e))?;
    let doc = match load(&bytes) {
        Ok(doc) => doc,
        // A file whose cross-reference table lies is read again with one
        // rebuilt from its objects; a locked file stays locked.
        Err(e) if e.reason == "password required" => return Err(e.into()),
        Err(e) => match rebuild_xref(&bytes) {
            Some(fixed) => load(&fixed).map_err(|_| e)?,
            None => return Err(e.into()),
        },
    };
    let pages = doc.get_pages();
    let page_count = pages.len() as u32;
    if page_count == 0 {
        return Err(deterministic("the PDF has no pages".to_string()).into());
    }
    sink.page_count(page_count)?;
    let (title, author) = info_strings(&doc);
    let (first, last) = super::clamp_range(range, page_count)?;
    let wanted = last - first + 1;

    let mut fonts = FontCache::default();
    let mut tally = Tally::default();
    for page in first..=last {
        let result = match pages.get(&page) {
            Some(id) => {
                match panic::catch_unwind(AssertUnwindSafe(|| page_text(&doc, *id, &mut fonts))) {
                    Ok(Ok(text)) => Ok(text),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => {
                        // A panic may leave a font half read: start afresh.
                        fonts = FontCache::default();
                        Err(format!("engine panicked: {}", panic_note::take()))
                    }
                }
            }
            None => Err("no such page".to_string()),
        };
        tally.page(sink, page, result);
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
