//! Which pages of a text job need OCR. With `--ocr auto` a page is flagged
//! when its text layer gives almost nothing (fewer than [`MIN_CHARS`]
//! letters and digits once unreadable characters are removed, so a page of
//! glyphs without Unicode counts as empty) and the page carries an image;
//! `force` flags every page and `off` none.
//!
//! The threshold was measured on the corpus with `mutool draw -F txt`,
//! counting the characters other than white space on every page: the 22
//! pages of the `scanned` PDFs and the 16 of the `no-text` ones hold 0 of
//! them, except a stray 6 on `pdfjs-scan-bad.pdf` and 4 on the inline-image
//! page of `pypdf-008`; a page with a real text layer, even an invisible OCR
//! layer (`ocrmypdf-graph-ocred.pdf`: 77) or a one-line title page, holds
//! more. Of the 2848 pages of the `normal` PDFs, 60 hold fewer than 10:
//! blank pages, form pages, a cover image, vertical or unmapped writing.
//! Those of them that carry an image are pages a reader sees text on that
//! the index would not have, and are worth recognising; the others (no
//! image) are left as they are.
//!
//! Whether a page carries an image is read from the page's objects: an
//! image XObject in its resources (inherited ones included) or in those of
//! a form XObject it uses, however deep, or an inline image (`BI`) in its
//! content stream. Builds that link MuPDF (the default) ask it: it opens a
//! file by its cross-reference table, resolves only the objects asked for,
//! and repairs damaged files. Builds without it ask lopdf, which loads the
//! whole file (for each chunk of a 12,000-page PDF, more than a second).
//! The document is opened only when a page first gives almost nothing, so
//! a text document costs nothing more, and not at all when the in-process
//! engine has it open already. Of the 2855 pages of the `normal`
//! PDFs, 4 are flagged: a cover that is one picture and two full-page
//! figures, pages whose words only OCR can read, and a page of a damaged
//! file that neither MuPDF nor Poppler reads any text from but whose
//! resources hold a picture. Without an answer (a file neither can open) a
//! page is taken to carry an image: an empty page has no other way to be
//! read.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use docmill_protocol::{OcrMode, PageFlags};
use pdf_extract::{Dictionary, Document, Object, ObjectId};

use crate::engines::{PageSink, Stop};

/// Fewer letters and digits than this on a page is "almost nothing".
pub const MIN_CHARS: usize = 10;
/// Files bigger than this are not loaded whole to look for images; their
/// nearly empty pages are taken to carry one.
const MAX_PROBE_BYTES: u64 = 512 << 20;
/// How deep form XObjects are followed.
const MAX_FORM_DEPTH: u32 = 8;

/// Whether a page's text gives almost nothing.
pub fn gives_almost_nothing(text: &str) -> bool {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .take(MIN_CHARS)
        .count()
        < MIN_CHARS
}

/// A document loaded to answer whether its pages carry images.
enum Loaded {
    /// Builds without MuPDF, or a file MuPDF cannot open.
    Lopdf(Box<Document>, BTreeMap<u32, ObjectId>),
    /// Builds with MuPDF linked in.
    #[cfg(feature = "mupdf-inproc")]
    Mupdf(mupdf::pdf::PdfDocument),
    /// The document the in-process engine has open on the file.
    #[cfg(feature = "mupdf-inproc")]
    Shared(std::rc::Rc<crate::engines::mupdf_inproc::Opened>),
}

/// Answers whether pages carry an image, loading the document on the first
/// question.
pub struct ImageProbe<'a> {
    path: &'a Path,
    /// `None` until asked; then the document, or `None` when it cannot be
    /// read.
    doc: Option<Option<Loaded>>,
}

impl<'a> ImageProbe<'a> {
    pub fn new(path: &'a Path) -> ImageProbe<'a> {
        ImageProbe { path, doc: None }
    }

    pub fn page_has_image(&mut self, page: u32) -> bool {
        let path = self.path;
        let loaded = self.doc.get_or_insert_with(|| load(path));
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match loaded {
            None => true,
            Some(Loaded::Lopdf(doc, pages)) => {
                pages.get(&page).is_none_or(|&id| page_has_image(doc, id))
            }
            #[cfg(feature = "mupdf-inproc")]
            Some(Loaded::Mupdf(doc)) => mupdf_page_has_image(doc, page),
            #[cfg(feature = "mupdf-inproc")]
            Some(Loaded::Shared(opened)) => opened
                .pdf()
                .is_none_or(|doc| mupdf_page_has_image(doc, page)),
        }));
        probe.unwrap_or_else(|_| {
            crate::panic_note::take();
            true
        })
    }
}

fn load(path: &Path) -> Option<Loaded> {
    #[cfg(feature = "mupdf-inproc")]
    {
        if let Some(opened) = crate::engines::mupdf_inproc::current(path) {
            return Some(Loaded::Shared(opened));
        }
        let opened = std::panic::catch_unwind(|| mupdf::pdf::PdfDocument::open(path.as_os_str()));
        match opened {
            Ok(Ok(doc)) => return Some(Loaded::Mupdf(doc)),
            Ok(Err(_)) => {}
            Err(_) => {
                crate::panic_note::take();
            }
        }
    }
    if std::fs::metadata(path).ok()?.len() > MAX_PROBE_BYTES {
        return None;
    }
    let loaded = std::panic::catch_unwind(|| Document::load(path));
    match loaded {
        Ok(Ok(doc)) => {
            let pages = doc.get_pages();
            Some(Loaded::Lopdf(Box::new(doc), pages))
        }
        Ok(Err(_)) => None,
        Err(_) => {
            crate::panic_note::take();
            None
        }
    }
}

/// MuPDF's answer, read from the page's objects as lopdf's is: an image
/// XObject in its resources (inherited ones included) or in a form's it
/// uses, or an inline image in its content. (Not from its structured text:
/// that turns a shading into an image block, and a page drawn as vector
/// art would look scanned.) MuPDF resolves only the objects asked for. A
/// page MuPDF cannot load is taken to carry one, as an unreadable document
/// is.
#[cfg(feature = "mupdf-inproc")]
fn mupdf_page_has_image(doc: &mupdf::pdf::PdfDocument, page: u32) -> bool {
    let Ok(index) = i32::try_from(page.saturating_sub(1)) else {
        return true;
    };
    let Ok(page) = doc.find_page(index) else {
        return true;
    };
    let mut seen = HashSet::new();
    if let Ok(Some(resources)) = page.get_dict_inheritable("Resources") {
        if mupdf_resources_have_image(&resources, 0, &mut seen) {
            return true;
        }
    }
    let mut content = Vec::new();
    match page.get_dict("Contents") {
        Ok(Some(c)) if c.is_array().unwrap_or(false) => {
            for i in 0..c.len().unwrap_or(0) {
                let part = c.get_array(i32::try_from(i).unwrap_or(i32::MAX));
                if let Ok(Some(part)) = part {
                    content.extend(part.read_stream().unwrap_or_default());
                    content.push(b'\n');
                }
            }
        }
        Ok(Some(c)) => content = c.read_stream().unwrap_or_default(),
        _ => {}
    }
    has_inline_image(&content)
}

#[cfg(feature = "mupdf-inproc")]
fn mupdf_resources_have_image(
    resources: &mupdf::pdf::PdfObject,
    depth: u32,
    seen: &mut HashSet<i32>,
) -> bool {
    let Ok(Some(xobjects)) = resources.get_dict("XObject") else {
        return false;
    };
    let Ok(entries) = xobjects.dict_iter() else {
        return false;
    };
    for entry in entries {
        let Ok((_, value)) = entry else { continue };
        let num = value.as_indirect().unwrap_or(0);
        if num > 0 && !seen.insert(num) {
            continue;
        }
        let subtype = value
            .get_dict("Subtype")
            .ok()
            .flatten()
            .and_then(|s| s.as_name().ok());
        match subtype.as_deref() {
            Some(b"Image") => return true,
            Some(b"Form") if depth < MAX_FORM_DEPTH => {
                if let Ok(Some(inner)) = value.get_dict("Resources") {
                    if mupdf_resources_have_image(&inner, depth + 1, seen) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// An image in the page's resources (or a form's, followed down), or an
/// inline image in its content.
pub fn page_has_image(doc: &Document, page: ObjectId) -> bool {
    let mut seen = HashSet::new();
    if let Ok((own, inherited)) = doc.get_page_resources(page) {
        if own.is_some_and(|r| resources_have_image(doc, r, 0, &mut seen)) {
            return true;
        }
        for id in inherited {
            if let Ok(r) = doc.get_dictionary(id) {
                if resources_have_image(doc, r, 0, &mut seen) {
                    return true;
                }
            }
        }
    }
    doc.get_page_content(page)
        .is_ok_and(|content| has_inline_image(&content))
}

fn resources_have_image(
    doc: &Document,
    resources: &Dictionary,
    depth: u32,
    seen: &mut HashSet<ObjectId>,
) -> bool {
    let Ok(xobjects) = resources.get(b"XObject") else {
        return false;
    };
    let Ok((_, Object::Dictionary(xobjects))) = doc.dereference(xobjects) else {
        return false;
    };
    for (_, value) in xobjects.iter() {
        if let Object::Reference(id) = value {
            if !seen.insert(*id) {
                continue;
            }
        }
        let Ok((_, Object::Stream(stream))) = doc.dereference(value) else {
            continue;
        };
        match stream.dict.get(b"Subtype").and_then(Object::as_name) {
            Ok(b"Image") => return true,
            Ok(b"Form") if depth < MAX_FORM_DEPTH => {
                let inner = stream
                    .dict
                    .get(b"Resources")
                    .ok()
                    .and_then(|r| doc.dereference(r).ok());
                if let Some((_, Object::Dictionary(inner))) = inner {
                    if resources_have_image(doc, inner, depth + 1, seen) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// A `BI` operator standing as a word of its own in a content stream.
fn has_inline_image(content: &[u8]) -> bool {
    let delim = |b: u8| b.is_ascii_whitespace() || b"()<>[]{}/%".contains(&b);
    content.windows(2).enumerate().any(|(i, w)| {
        w == b"BI"
            && (i == 0 || delim(content[i - 1]))
            && content.get(i + 2).is_none_or(|&b| delim(b))
    })
}

/// Flags pages on their way to `inner` as the job's OCR mode says, and
/// counts them.
pub struct Flagger<'a, 'p> {
    pub inner: &'a mut dyn PageSink,
    pub mode: OcrMode,
    pub probe: ImageProbe<'p>,
    pub flagged: u32,
}

impl PageSink for Flagger<'_, '_> {
    fn page(&mut self, page: u32, text: String, mut flags: PageFlags) {
        flags.needs_ocr = match self.mode {
            OcrMode::Off => false,
            OcrMode::Force => true,
            // A page the engine failed on is not a scan: rendering it would
            // most likely fail the same way.
            OcrMode::Auto => {
                !flags.failed && gives_almost_nothing(&text) && self.probe.page_has_image(page)
            }
        };
        self.flagged += u32::from(flags.needs_ocr);
        self.inner.page(page, text, flags);
    }

    fn page_count(&mut self, pages: u32) -> Result<(), Stop> {
        self.inner.page_count(pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn almost_nothing_counts_letters_and_digits() {
        assert!(gives_almost_nothing(""));
        assert!(gives_almost_nothing(" \n\u{fffd}\u{fffd} . , 12 ab"));
        assert!(!gives_almost_nothing("Chapter 12: Begin"));
        assert!(!gives_almost_nothing("第一章 東京の夜 十二月"));
    }

    #[test]
    fn inline_images_are_found_as_operators() {
        assert!(has_inline_image(
            b"q 10 0 0 10 0 0 cm\nBI /W 1 /H 1 ID x EI Q"
        ));
        assert!(has_inline_image(b"BI"));
        assert!(!has_inline_image(b"BT (BIG) Tj ET"));
        assert!(!has_inline_image(b"/BIx Do"));
    }
}
