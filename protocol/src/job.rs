//! What the supervisor asks a worker to do.

use serde::{Deserialize, Serialize};

/// Identifies one dispatch of one document (or chunk) to one worker.
pub type JobId = u64;

/// The formats docmill extracts. `Mock` is the test-only fault-injection
/// document, obeyed only when the run allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    Pdf,
    Epub,
    Mock,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Epub => "epub",
            Format::Mock => "mock",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "pdf" => Some(Format::Pdf),
            "epub" => Some(Format::Epub),
            "mock" => Some(Format::Mock),
            _ => None,
        }
    }
}

/// An inclusive, 1-based page range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRange {
    pub first: u32,
    pub last: u32,
}

impl PageRange {
    pub fn contains(&self, page: u32) -> bool {
        (self.first..=self.last).contains(&page)
    }
}

/// Which PDF engine a job must use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngineChoice {
    /// pdf-extract inside the worker, guarded per page.
    Builtin,
    /// `mutool draw -F txt` as a child process of the worker.
    Mupdf,
    /// `pdftotext` as a child process of the worker.
    Poppler,
    /// MuPDF linked into the worker (only in builds with the `mupdf-inproc`
    /// feature; the variant always exists so that every build speaks the
    /// same protocol).
    MupdfInproc,
}

impl EngineChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineChoice::Builtin => "builtin",
            EngineChoice::Mupdf => "mupdf",
            EngineChoice::Poppler => "poppler",
            EngineChoice::MupdfInproc => "mupdf-inproc",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    /// The file's path as raw OS bytes: file names need not be UTF-8.
    pub path: Vec<u8>,
    pub format: Format,
    /// Only these pages, when set (chunk jobs); otherwise the whole document.
    pub range: Option<PageRange>,
    /// Ask first: a document with more pages than this is not extracted;
    /// the worker answers `FromWorker::Split` with its page count, and the
    /// supervisor plans page-range chunk jobs instead. `None` for chunk
    /// jobs and EPUBs.
    pub split_over: Option<u32>,
    /// 1-based attempt number, counted over every run of this document.
    pub attempt: u32,
    pub engine: EngineChoice,
    /// Interpret `.mockdoc` files. Off unless the run says so.
    pub allow_mock: bool,
    /// Cap on the decompressed bytes of one EPUB entry and of a whole book.
    pub epub_entry_cap: u64,
    pub epub_book_cap: u64,
}
