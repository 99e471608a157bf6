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
    /// This project's own content-stream reader over lopdf, inside the
    /// worker, guarded per page.
    Lopdf,
}

impl EngineChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineChoice::Builtin => "builtin",
            EngineChoice::Mupdf => "mupdf",
            EngineChoice::Poppler => "poppler",
            EngineChoice::MupdfInproc => "mupdf-inproc",
            EngineChoice::Lopdf => "lopdf",
        }
    }
}

/// How a run treats pages without a usable text layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OcrMode {
    /// Never recognise; pages without text stay empty (and are reported).
    Off,
    /// Recognise only pages whose text layer gives almost nothing and that
    /// carry an image.
    #[default]
    Auto,
    /// Recognise every page, text layer or not.
    Force,
}

impl OcrMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OcrMode::Off => "off",
            OcrMode::Auto => "auto",
            OcrMode::Force => "force",
        }
    }
}

/// The run's OCR settings, sent with every PDF job: text jobs need the mode
/// to decide which pages to flag `needs_ocr`; OCR jobs need all of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OcrSettings {
    pub mode: OcrMode,
    /// Tesseract's language list, `+`-joined (`eng`, `eng+deu`).
    pub lang: String,
    /// Rendering resolution before the pixel cap applies.
    pub dpi: u32,
    /// One page's recognition may take this long; then that page alone
    /// fails (flag `failed`, with a note) and the job goes on.
    pub page_timeout_ms: u64,
    /// Renders larger than this many pixels are scaled down to fit.
    pub max_pixels: u64,
}

impl Default for OcrSettings {
    fn default() -> Self {
        OcrSettings {
            mode: OcrMode::Auto,
            lang: "eng".to_string(),
            dpi: 300,
            page_timeout_ms: 60_000,
            max_pixels: 40_000_000,
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
    /// The run's OCR settings (ignored for EPUBs).
    pub ocr: OcrSettings,
    /// When set, this is an OCR job: recognise exactly these pages (1-based,
    /// ascending, all within `range` when that is set) and send each as a
    /// `Page` with the `ocr` flag; no text-layer extraction is done.
    pub ocr_pages: Option<Vec<u32>>,
}
