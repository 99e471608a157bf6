//! Rendering one PDF page to a grey image for recognition: MuPDF in process
//! where the build has it (cargo feature `mupdf-inproc`), else `mutool draw`
//! as a child. Both write a binary PGM, the simplest image Tesseract reads
//! from stdin, scaled down to the job's pixel cap.
//!
//! Measured per page at 300 dpi in grey, mean of five, on a busy two-core
//! machine (scanned `ocrmypdf-c02-22.pdf` p1, born-digital
//! `pdfjs-tracemonkey.pdf` p7 and a newsletter page, and a heavy scan,
//! `ocrmypdf-multipage.pdf` p2): MuPDF in process 14-31 ms (477 ms on the
//! heavy scan), `mutool draw` whole-process 52-61 ms (875), `pdftoppm`
//! 94-109 ms (3948), against 1.5-4.9 s for Tesseract on the same pages. The
//! renderer is not what an OCR page costs; the in-process one is used for
//! being the fastest, with no process or pipe, and `mutool` (already one of
//! the engines) for builds without MuPDF linked in. `pdftoppm` is slower
//! on every page and adds nothing.

use std::path::Path;
use std::time::Duration;

/// A rendered page: a binary PGM and the resolution it was drawn at.
pub struct Image {
    pub pgm: Vec<u8>,
    pub dpi: u32,
}

/// The zoom (pixels per point) for `dpi`, lowered so that a page of
/// `width` x `height` points stays within `max_pixels`.
pub fn zoom_for(width: f32, height: f32, dpi: u32, max_pixels: u64) -> f32 {
    let zoom = dpi as f32 / 72.0;
    let pixels = f64::from(width * zoom) * f64::from(height * zoom);
    if pixels <= max_pixels as f64 || pixels <= 0.0 {
        return zoom;
    }
    zoom * (max_pixels as f64 / pixels).sqrt() as f32
}

/// A PGM header and rows of `width` grey bytes taken from rows of
/// `stride` bytes.
pub fn pgm(width: u32, height: u32, stride: usize, samples: &[u8]) -> Vec<u8> {
    let header = format!("P5\n{width} {height}\n255\n");
    let mut out = Vec::with_capacity(header.len() + (width * height) as usize);
    out.extend_from_slice(header.as_bytes());
    for row in samples.chunks(stride.max(1)).take(height as usize) {
        out.extend_from_slice(&row[..(width as usize).min(row.len())]);
    }
    out
}

/// Renders pages of one document, opened once per job.
pub enum Renderer {
    #[cfg(feature = "mupdf-inproc")]
    InProcess(mupdf::Document),
    Mutool(std::path::PathBuf),
}

impl Renderer {
    /// MuPDF in process where built; else `mutool draw` per page.
    pub fn open(path: &Path) -> Result<Renderer, String> {
        #[cfg(feature = "mupdf-inproc")]
        {
            let mut doc = mupdf::Document::open(path.as_os_str())
                .map_err(|e| format!("cannot open for rendering: {e}"))?;
            if doc.needs_password().unwrap_or(false) && !doc.authenticate("").unwrap_or(false) {
                return Err("password required".to_string());
            }
            Ok(Renderer::InProcess(doc))
        }
        #[cfg(not(feature = "mupdf-inproc"))]
        Ok(Renderer::Mutool(crate::engines::child::file_arg(path)))
    }

    /// The document's page count, when it can be read.
    pub fn page_count(&self, path: &Path) -> Option<u32> {
        match self {
            #[cfg(feature = "mupdf-inproc")]
            Renderer::InProcess(doc) => doc.page_count().ok().and_then(|n| u32::try_from(n).ok()),
            Renderer::Mutool(_) => crate::engines::pdf_meta::read(path).map(|m| m.page_count),
        }
    }

    /// Page `page` (1-based) in grey at `dpi`, within `max_pixels`; the
    /// error is a one-line note.
    pub fn render(
        &self,
        page: u32,
        dpi: u32,
        max_pixels: u64,
        limit: Duration,
    ) -> Result<Image, String> {
        match self {
            #[cfg(feature = "mupdf-inproc")]
            Renderer::InProcess(doc) => render_inproc(doc, page, dpi, max_pixels),
            Renderer::Mutool(file) => render_mutool(file, page, dpi, max_pixels, limit),
        }
    }
}

#[cfg(feature = "mupdf-inproc")]
fn render_inproc(
    doc: &mupdf::Document,
    page: u32,
    dpi: u32,
    max_pixels: u64,
) -> Result<Image, String> {
    use std::panic::{self, AssertUnwindSafe};

    let drawn = panic::catch_unwind(AssertUnwindSafe(|| -> Result<Image, mupdf::Error> {
        let index = i32::try_from(page - 1).map_err(mupdf::Error::IntConversion)?;
        let loaded = doc.load_page(index)?;
        let b = loaded.bounds()?;
        let zoom = zoom_for(b.x1 - b.x0, b.y1 - b.y0, dpi, max_pixels);
        let matrix = mupdf::Matrix::new_scale(zoom, zoom);
        let pix = loaded.to_pixmap(&matrix, &mupdf::Colorspace::device_gray(), false, true)?;
        let stride = usize::try_from(pix.stride()).unwrap_or(0);
        Ok(Image {
            pgm: pgm(pix.width(), pix.height(), stride, pix.samples()),
            dpi: (zoom * 72.0).round().max(1.0) as u32,
        })
    }));
    match drawn {
        Ok(Ok(image)) => Ok(image),
        Ok(Err(e)) => Err(crate::panic_note::one_line(&format!(
            "cannot render the page: {e}"
        ))),
        Err(_) => Err(format!(
            "cannot render the page: engine panicked: {}",
            crate::panic_note::take()
        )),
    }
}

/// `mutool draw` with `-w`/`-h` as the most pixels on each side: without
/// the page's size at hand, a square of the cap's side keeps any page
/// within it.
fn render_mutool(
    file: &Path,
    page: u32,
    dpi: u32,
    max_pixels: u64,
    limit: Duration,
) -> Result<Image, String> {
    use crate::engines::child::{self, Bounded};
    use crate::engines::mupdf::PROGRAM;

    let side = ((max_pixels as f64).sqrt() as u64).max(1).to_string();
    let mut cmd = std::process::Command::new(PROGRAM);
    cmd.args([
        "draw",
        "-q",
        "-r",
        &dpi.to_string(),
        "-w",
        &side,
        "-h",
        &side,
    ])
    .args(["-c", "gray", "-F", "pgm", "-o", "-"])
    .arg(file)
    .arg(page.to_string());
    let cap = usize::try_from(max_pixels)
        .unwrap_or(usize::MAX)
        .saturating_add(64);
    match child::run_bounded(PROGRAM, &mut cmd, Vec::new(), cap, limit) {
        Err(f) => Err(f.reason),
        Ok(Bounded::TimedOut) => Err("cannot render the page: mutool timed out".to_string()),
        Ok(Bounded::Ended { stdout, finished }) if finished.status.success() => {
            Ok(Image { pgm: stdout, dpi })
        }
        Ok(Bounded::Ended { finished, .. }) => Err(crate::panic_note::one_line(&format!(
            "cannot render the page: mutool draw {}",
            finished.describe_status()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_pages_are_scaled_to_the_cap() {
        // A letter page at 300 dpi is 2550 x 3300 pixels.
        assert!((zoom_for(612.0, 792.0, 300, 40_000_000) - 300.0 / 72.0).abs() < 1e-6);
        let z = zoom_for(6000.0, 6000.0, 300, 40_000_000);
        let pixels = f64::from(6000.0 * z) * f64::from(6000.0 * z);
        assert!(pixels <= 40_000_000.0 * 1.001, "{pixels}");
    }

    #[test]
    fn pgm_rows_drop_the_stride_padding() {
        let out = pgm(2, 2, 3, &[1, 2, 0, 3, 4, 0]);
        assert_eq!(out, b"P5\n2 2\n255\n\x01\x02\x03\x04");
    }
}
