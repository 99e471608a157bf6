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
//!
//! The document a chunk job opened stays open for the worker's next job
//! when that is another chunk of the same file, unchanged (see [`OPEN`]):
//! MuPDF then keeps the page tree, parsed objects and loaded fonts, which a
//! fresh open of the 12,000-page corpus PDF reads again for each chunk
//! (about half a CPU-second a chunk, measured with 1,000-page chunks).

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use docmill_protocol::{DocSummary, PageFlags, PageRange, WorkerFailure, WorkerFailureKind};
use mupdf::pdf::PdfDocument;
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

thread_local! {
    /// The document the current job reads (the OCR image probe asks it
    /// too, rather than opening the file a second time), and after a chunk
    /// job the one it read, for the next chunk of the same file. One at
    /// most; a whole-document job's is closed when the job ends.
    static OPEN: Kept = const { Kept(RefCell::new(None)) };
}

/// The slot behind [`OPEN`].
struct Kept(RefCell<Option<Rc<Opened>>>);

impl Drop for Kept {
    /// A document still kept when its thread ends is let go of, not closed:
    /// MuPDF's context is a thread-local value of its own, which may be
    /// gone by then, and closing without it aborts the process. The
    /// thread's end is the process's in a worker, and a test thread's
    /// document is a few kilobytes.
    fn drop(&mut self) {
        if let Some(kept) = self.0.get_mut().take() {
            std::mem::forget(kept);
        }
    }
}

/// What identifies a file's contents for [`OPEN`]: its path, and the inode,
/// size and modification time the path names (a file replaced or written
/// since is opened afresh).
#[derive(Clone, PartialEq, Eq)]
struct FileKey {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileKey {
    fn of(path: &Path, md: &std::fs::Metadata) -> FileKey {
        FileKey {
            path: path.to_path_buf(),
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
        }
    }
}

/// A document MuPDF opened, and what was read from it then.
pub struct Opened {
    key: FileKey,
    handle: Handle,
    meta: Meta,
}

enum Handle {
    Pdf(PdfDocument),
    /// A file MuPDF opened as something other than a PDF.
    Other(Document),
}

impl Opened {
    fn doc(&self) -> &Document {
        match &self.handle {
            Handle::Pdf(pdf) => pdf,
            Handle::Other(doc) => doc,
        }
    }

    /// The document's PDF objects, when it is a PDF.
    pub fn pdf(&self) -> Option<&PdfDocument> {
        match &self.handle {
            Handle::Pdf(pdf) => Some(pdf),
            Handle::Other(_) => None,
        }
    }
}

/// The document open on `path`, if it is the file as it is now: for the
/// OCR image probe, which then reads the objects MuPDF already parsed.
pub fn current(path: &Path) -> Option<Rc<Opened>> {
    let key = FileKey::of(path, &std::fs::metadata(path).ok()?);
    OPEN.with(|open| open.0.borrow().as_ref().filter(|o| o.key == key).cloned())
}

/// The document on `path`: the one kept open when it is the same file,
/// unchanged, or a fresh open, which becomes the one kept.
fn open_cached(path: &Path, md: &std::fs::Metadata) -> Result<Rc<Opened>, WorkerFailure> {
    let key = FileKey::of(path, md);
    let kept = OPEN.with(|open| {
        let mut open = open.0.borrow_mut();
        match open.as_ref() {
            Some(o) if o.key == key => Some(Rc::clone(o)),
            // Closed before the next one opens: two at once would double
            // the memory a worker needs.
            _ => {
                open.take();
                None
            }
        }
    });
    if let Some(kept) = kept {
        return Ok(kept);
    }
    let opened = panic::catch_unwind(|| open(path));
    let (handle, meta) = match opened {
        Ok(result) => result?,
        Err(_) => {
            return Err(deterministic(format!(
                "not a readable PDF: engine panicked: {}",
                panic_note::take()
            )))
        }
    };
    let opened = Rc::new(Opened { key, handle, meta });
    OPEN.with(|open| *open.0.borrow_mut() = Some(Rc::clone(&opened)));
    Ok(opened)
}

/// Closes the kept document.
fn close_kept() {
    OPEN.with(|open| open.0.borrow_mut().take());
}

pub fn extract(
    path: &Path,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    // Opening the file ourselves first gives the same reasons as the other
    // engines for a missing file, a permission problem or a descriptor
    // shortage, which MuPDF would only report as a message.
    let md = File::open(path)
        .and_then(|file| file.metadata())
        .map_err(|e| io_failure("cannot read the file", &e))?;
    let opened = open_cached(path, &md)?;
    let result = extract_open(&opened, range, sink);
    // Kept for the next chunk: after a chunk that went well, or a whole
    // document handed back to be split. Not after a failure (a retry should
    // not inherit what MuPDF was left with) nor after a whole document.
    let keep = match &result {
        Ok(_) => range.is_some(),
        Err(Stop::Split { .. }) => true,
        Err(Stop::Failed(_)) => false,
    };
    if !keep {
        close_kept();
    }
    result
}

fn extract_open(
    opened: &Opened,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let (doc, meta) = (opened.doc(), &opened.meta);
    sink.page_count(meta.page_count)?;
    let (first, last) = super::clamp_range(range, meta.page_count)?;

    let wanted = last - first + 1;
    let mut lost = 0u32;
    let mut first_loss = None;
    for page in first..=last {
        // The sink stays outside the guard: a panic there is not the page's.
        let text = panic::catch_unwind(AssertUnwindSafe(|| page_text(doc, page)));
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
        title: meta.title.clone(),
        author: meta.author.clone(),
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

fn open(path: &Path) -> Result<(Handle, Meta), WorkerFailure> {
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
    let handle = if doc.is_pdf() {
        Handle::Pdf(PdfDocument::try_from(doc).map_err(unreadable)?)
    } else {
        Handle::Other(doc)
    };
    Ok((handle, meta))
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

    /// A PDF of one page per word, each page showing its word.
    fn write_pdf(path: &Path, words: &[&str]) {
        use lopdf::{dictionary, Document, Object, Stream};
        let mut doc = Document::with_version("1.4");
        let pages_id = doc.new_object_id();
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let kids: Vec<Object> = words
            .iter()
            .map(|word| {
                let content = format!("BT /F1 24 Tf 72 700 Td ({word}) Tj ET");
                let contents = doc.add_object(Stream::new(dictionary! {}, content.into_bytes()));
                doc.add_object(dictionary! {
                    "Type" => "Page",
                    "Parent" => pages_id,
                    "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
                    "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
                    "Contents" => contents,
                })
                .into()
            })
            .collect();
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        // Written beside and renamed over: a new file, as a program saving
        // it would leave.
        let tmp = path.with_extension("tmp");
        doc.save(&tmp).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[derive(Default)]
    struct Texts(Vec<(u32, String)>);
    impl PageSink for Texts {
        fn page(&mut self, page: u32, text: String, _: PageFlags) {
            self.0.push((page, text));
        }
    }

    fn pages(path: &Path, range: Option<(u32, u32)>) -> Vec<(u32, String)> {
        let range = range.map(|(first, last)| PageRange { first, last });
        let mut texts = Texts::default();
        extract(path, range, &mut texts).unwrap();
        texts.0
    }

    /// The next chunk of the same file reads the document already open; a
    /// file changed since is opened again (its new text read), and a whole
    /// document is closed when its job ends.
    #[test]
    fn a_chunked_file_stays_open_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.pdf");
        write_pdf(&path, &["alpha", "bravo", "charlie"]);
        assert_eq!(pages(&path, Some((1, 1))), [(1, "alpha".to_string())]);
        let first = current(&path).expect("kept after a chunk");
        assert_eq!(
            pages(&path, Some((2, 3))),
            [(2, "bravo".to_string()), (3, "charlie".to_string())]
        );
        let second = current(&path).expect("kept after a chunk");
        assert!(
            Rc::ptr_eq(&first, &second),
            "the next chunk reopened the file"
        );
        drop((first, second));

        write_pdf(&path, &["delta", "echo", "foxtrot"]);
        assert!(
            current(&path).is_none(),
            "a changed file is not the one kept"
        );
        assert_eq!(pages(&path, Some((2, 2))), [(2, "echo".to_string())]);

        assert_eq!(pages(&path, None).len(), 3);
        assert!(current(&path).is_none(), "a whole document stays open");
        OPEN.with(|open| assert!(open.0.borrow().is_none()));
    }

    /// A thread that ends with a chunk's document still kept ends cleanly
    /// (closing it after MuPDF's own thread-local context went aborted the
    /// process).
    #[test]
    fn a_thread_ends_cleanly_with_a_document_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("book.pdf");
        write_pdf(&path, &["alpha", "bravo"]);
        let kept = std::thread::spawn(move || {
            pages(&path, Some((1, 1)));
            current(&path).is_some()
        })
        .join()
        .expect("the thread ended cleanly");
        assert!(kept);
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
