//! Every PDF engine over the corpus's normal PDFs, in process (the worker's
//! engine code, with the real mutool and pdftotext): page counts match the
//! manifest, text agrees with Poppler's, and a page range gives exactly the
//! same pages as the whole document. Word-overlap figures are printed as a
//! distribution; only a median floor is asserted, since engines legitimately
//! differ on column order and ligatures. Builds with the `mupdf-inproc`
//! feature run the same checks on in-process MuPDF, plus locked and damaged
//! documents, which it must survive inside the test process.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use docmill_protocol::{EngineChoice, Format, Job, PageFlags, PageRange};
use docmill_worker::engines::{self, PageSink};

fn corpus() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCMILL_CORPUS") {
        return PathBuf::from(dir);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "corpus missing at {}",
        dir.display()
    );
    dir
}

/// (path, pages) of every normal PDF in the manifest.
fn normal_pdfs() -> Vec<(PathBuf, u32)> {
    manifest_pdfs(|class| class == "normal")
        .into_iter()
        .map(|(path, pages, _)| (path, pages.parse().unwrap()))
        .collect()
}

/// (path, pages as written, class) of every PDF in the manifest whose class
/// (the first word of its kind) `keep` accepts.
fn manifest_pdfs(keep: impl Fn(&str) -> bool) -> Vec<(PathBuf, String, String)> {
    let root = corpus();
    std::fs::read_to_string(root.join("MANIFEST.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let class = c[4].split(';').next().unwrap_or("");
            (c[0].ends_with(".pdf") && keep(class))
                .then(|| (root.join(c[0]), c[3].to_string(), class.to_string()))
        })
        .collect()
}

#[derive(Default)]
struct Pages(Vec<(u32, String, PageFlags)>);

impl PageSink for Pages {
    fn page(&mut self, page: u32, text: String, flags: PageFlags) {
        self.0.push((page, text, flags));
    }
}

fn run(
    path: &Path,
    engine: EngineChoice,
    range: Option<PageRange>,
) -> Result<(u32, Pages), String> {
    let job = Job {
        id: 1,
        path: path.as_os_str().as_bytes().to_vec(),
        format: Format::Pdf,
        range,
        split_over: None,
        attempt: 1,
        engine,
        allow_mock: false,
        epub_entry_cap: 1 << 28,
        epub_book_cap: 1 << 30,
    };
    let mut pages = Pages::default();
    match engines::extract(&job, &mut pages) {
        Ok(summary) => Ok((summary.page_count, pages)),
        Err(stop) => Err(stop.to_string()),
    }
}

fn words(pages: &Pages) -> HashSet<String> {
    pages
        .0
        .iter()
        .flat_map(|(_, t, _)| t.split_whitespace())
        .map(|w| w.to_lowercase())
        .collect()
}

/// Share of the reference's distinct words that the candidate also has.
fn overlap(candidate: &HashSet<String>, reference: &HashSet<String>) -> f64 {
    if reference.is_empty() {
        return 1.0;
    }
    reference.intersection(candidate).count() as f64 / reference.len() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// How one engine did over the normal PDFs against a reference engine.
struct Agreement {
    /// Word overlap with the reference, per document with enough words.
    overlaps: Vec<f64>,
    /// `name: reason` of each document the engine failed on.
    failed: Vec<String>,
}

impl Agreement {
    fn median(&self) -> f64 {
        median(self.overlaps.clone())
    }

    fn summary(&self, engine: EngineChoice, reference: EngineChoice) -> String {
        let below: usize = self.overlaps.iter().filter(|o| **o < 0.9).count();
        format!(
            "{engine:?}: median overlap with {reference:?} {:.3} over {} documents, {below} below 0.9, {} failed",
            self.median(),
            self.overlaps.len(),
            self.failed.len()
        )
    }
}

/// Runs `engine` over `docs`, checking page counts and page order against
/// the manifest, and compares its words with `reference`'s where the
/// reference reads the document.
fn agreement(engine: EngineChoice, reference: EngineChoice, docs: &[(PathBuf, u32)]) -> Agreement {
    let mut overlaps = Vec::new();
    let mut failed = Vec::new();
    for (path, pages) in docs {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Ok((_, expected)) = run(path, reference, None) else {
            continue;
        };
        match run(path, engine, None) {
            Ok((count, got)) => {
                // Whatever an engine extracts, it extracts every page.
                assert_eq!(count, *pages, "{name}: {engine:?} page count");
                assert_eq!(got.0.len() as u32, *pages, "{name}: {engine:?} pages sent");
                let numbers: Vec<u32> = got.0.iter().map(|p| p.0).collect();
                assert_eq!(
                    numbers,
                    (1..=*pages).collect::<Vec<_>>(),
                    "{name}: page order"
                );
                let expected = words(&expected);
                if expected.len() >= 20 {
                    overlaps.push(overlap(&words(&got), &expected));
                }
            }
            Err(reason) => failed.push(format!("{name}: {reason}")),
        }
    }
    Agreement { overlaps, failed }
}

#[test]
fn engines_agree_with_the_manifest_and_with_poppler() {
    let docs = normal_pdfs();
    assert!(docs.len() >= 70, "{} normal PDFs", docs.len());
    let mut report = Vec::new();
    for engine in [EngineChoice::Mupdf, EngineChoice::Builtin] {
        let a = agreement(engine, EngineChoice::Poppler, &docs);
        report.push(a.summary(engine, EngineChoice::Poppler));
        let m = a.median();
        if engine == EngineChoice::Mupdf {
            assert!(m >= 0.95, "mupdf median overlap {m}");
            assert!(a.failed.len() <= 3, "mupdf failed on {:?}", a.failed);
        } else {
            assert!(m >= 0.9, "builtin median overlap {m}");
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// Pages 100-149 of a 352-page book, extracted as a range, equal the same
/// pages of the whole book.
fn range_equals_whole(engine: EngineChoice) {
    let path = corpus().join("pdf/pdfjs-freeculture.pdf");
    let (count, whole) = run(&path, engine, None).unwrap();
    assert_eq!(count, 352);
    let (count, part) = run(
        &path,
        engine,
        Some(PageRange {
            first: 100,
            last: 149,
        }),
    )
    .unwrap();
    assert_eq!(
        count, 352,
        "{engine:?}: a range still reports the whole document's pages"
    );
    assert_eq!(part.0.len(), 50, "{engine:?}");
    let numbers: Vec<u32> = part.0.iter().map(|p| p.0).collect();
    assert_eq!(numbers, (100..=149).collect::<Vec<_>>(), "{engine:?}");
    for (p, text, _) in &part.0 {
        let (_, full, _) = &whole.0[*p as usize - 1];
        assert_eq!(
            text, full,
            "{engine:?}: page {p} differs between range and whole"
        );
    }
}

#[test]
fn a_range_gives_exactly_those_pages() {
    for engine in [
        EngineChoice::Mupdf,
        EngineChoice::Poppler,
        EngineChoice::Builtin,
    ] {
        range_equals_whole(engine);
    }
}

#[cfg(feature = "mupdf-inproc")]
#[test]
fn mupdf_inproc_agrees_with_the_manifest_with_poppler_and_with_mutool() {
    let docs = normal_pdfs();
    assert!(docs.len() >= 70, "{} normal PDFs", docs.len());
    let inproc = EngineChoice::MupdfInproc;
    let poppler = agreement(inproc, EngineChoice::Poppler, &docs);
    // mutool is the same reader, an older release in another process: only
    // reported, since the two releases may differ on layout.
    let mutool = agreement(inproc, EngineChoice::Mupdf, &docs);
    eprintln!(
        "{}\n{}",
        poppler.summary(inproc, EngineChoice::Poppler),
        mutool.summary(inproc, EngineChoice::Mupdf)
    );
    let m = poppler.median();
    assert!(m >= 0.95, "mupdf-inproc median overlap {m}");
    assert!(
        poppler.failed.len() <= 3,
        "mupdf-inproc failed on {:?}",
        poppler.failed
    );
}

#[cfg(feature = "mupdf-inproc")]
#[test]
fn mupdf_inproc_range_gives_exactly_those_pages() {
    range_equals_whole(EngineChoice::MupdfInproc);
}

/// Locked documents say so; every other document of the corpus that is not
/// normal (damaged, quirky, scanned, without text, owner-locked) either
/// extracts or fails with a one-line reason, without taking the test
/// process (which stands in for the worker) down.
#[cfg(feature = "mupdf-inproc")]
#[test]
fn mupdf_inproc_survives_locked_and_damaged_documents() {
    let docs = manifest_pdfs(|class| class != "normal");
    assert!(docs.len() >= 50, "{} other PDFs", docs.len());
    let mut report = Vec::new();
    for (path, _, class) in &docs {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = run(path, EngineChoice::MupdfInproc, None);
        if class == "encrypted-userpw" {
            assert_eq!(
                result.as_ref().err().map(String::as_str),
                Some("password required"),
                "{name}"
            );
        }
        match result {
            Ok((count, pages)) => {
                assert_eq!(pages.0.len() as u32, count, "{name}: pages sent");
                report.push(format!("{class} {name}: {count} pages"));
            }
            Err(reason) => {
                assert!(!reason.contains('\n'), "{name}: {reason}");
                assert!(!reason.is_empty(), "{name}");
                report.push(format!("{class} {name}: {reason}"));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn pdf_extract_panics_cost_pages_not_the_worker() {
    // These make pdf-extract panic: each is a clean per-document failure.
    for name in [
        "pdfjs-noembed-eucjp.pdf",
        "pdfjs-noembed-sjis.pdf",
        "pdfjs-issue12823-chinese.pdf",
    ] {
        let err = run(
            &corpus().join("pdf").join(name),
            EngineChoice::Builtin,
            None,
        )
        .err()
        .unwrap_or_else(|| panic!("{name} unexpectedly extracted"));
        assert!(err.contains("panicked"), "{name}: {err}");
        assert!(!err.contains('\n'), "{name}: {err}");
    }
    // Garbage is refused, not stored.
    let err = run(
        &corpus().join("pdf/pypdf-011-google-doc-document.pdf"),
        EngineChoice::Builtin,
        None,
    )
    .err()
    .expect("garbage is a failure");
    assert!(err.contains("garbage"), "{err}");
}
