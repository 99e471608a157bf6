//! Every PDF engine over the corpus's normal PDFs, in process (the worker's
//! engine code, with the real mutool and pdftotext): page counts match the
//! manifest, text agrees with Poppler's, and a page range gives exactly the
//! same pages as the whole document. Word-overlap figures are printed as a
//! distribution; only a median floor is asserted, since engines legitimately
//! differ on column order and ligatures. The pure-Rust engines alone (a
//! build without MuPDF, no tools installed) must read 70 of them. Builds
//! with the `mupdf-inproc` feature run the same checks on in-process MuPDF,
//! plus locked and damaged documents, which it must survive inside the test
//! process.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use docmill_protocol::{EngineChoice, Format, Job, PageFlags, PageRange};
use docmill_worker::engines::{self, PageSink};
use docmill_worker::quality;

#[path = "common/pdf.rs"]
mod pdf;
#[path = "common/score.rs"]
mod score;

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
        ocr: docmill_protocol::OcrSettings {
            mode: docmill_protocol::OcrMode::Off,
            ..Default::default()
        },
        ocr_pages: None,
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
    for engine in [
        EngineChoice::Mupdf,
        EngineChoice::Builtin,
        EngineChoice::Lopdf,
    ] {
        let a = agreement(engine, EngineChoice::Poppler, &docs);
        report.push(a.summary(engine, EngineChoice::Poppler));
        let m = a.median();
        if engine == EngineChoice::Mupdf {
            assert!(m >= 0.95, "mupdf median overlap {m}");
            assert!(a.failed.len() <= 3, "mupdf failed on {:?}", a.failed);
        } else if engine == EngineChoice::Lopdf {
            assert!(m >= 0.95, "lopdf median overlap {m}");
        } else {
            assert!(m >= 0.9, "builtin median overlap {m}");
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// The engines a build without MuPDF has when no PDF tool is installed, in
/// the order its `auto` tries them (the supervisor's `engines::auto_order`):
/// both pure Rust, in the worker's own process.
const PURE_RUST_AUTO: [EngineChoice; 2] = [EngineChoice::Lopdf, EngineChoice::Builtin];

/// A build with nothing but Rust (`--no-default-features`, no mutool or
/// pdftotext on PATH) still reads at least 70 of the 77 normal PDFs with
/// the manifest's page count: each document goes through the pure-Rust
/// engines in `auto`'s order until one extracts it, as a run would. Each
/// engine's own count and pages per second (this build's, so only a rough
/// comparison) are printed.
#[test]
fn pure_rust_engines_read_seventy_normal_pdfs() {
    let docs = normal_pdfs();
    assert!(docs.len() >= 77, "{} normal PDFs", docs.len());
    let mut read = 0;
    let mut unread = Vec::new();
    let mut per_engine = vec![(0usize, 0u32, std::time::Duration::ZERO); PURE_RUST_AUTO.len()];
    for (path, pages) in &docs {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut reasons = Vec::new();
        let mut done = false;
        for (i, engine) in PURE_RUST_AUTO.iter().enumerate() {
            let started = std::time::Instant::now();
            let result = run(path, *engine, None);
            let took = started.elapsed();
            match result {
                Ok((count, got)) if count == *pages => {
                    assert_eq!(got.0.len() as u32, count, "{name}: {engine:?} pages sent");
                    per_engine[i].0 += 1;
                    per_engine[i].1 += count;
                    per_engine[i].2 += took;
                    if !done {
                        read += 1;
                        done = true;
                    }
                }
                Ok((count, _)) => reasons.push(format!("{engine:?}: {count} pages")),
                Err(reason) => reasons.push(format!("{engine:?}: {reason}")),
            }
        }
        if !done {
            unread.push(format!("{name} ({})", reasons.join("; ")));
        }
    }
    for (engine, (docs_read, pages, took)) in PURE_RUST_AUTO.iter().zip(&per_engine) {
        eprintln!(
            "{engine:?}: {docs_read} normal PDFs with the right page count, {:.0} pages/s",
            f64::from(*pages) / took.as_secs_f64()
        );
    }
    eprintln!(
        "in auto order: {read} of {}; unread: {unread:#?}",
        docs.len()
    );
    assert!(read >= 70, "{read} read; unread: {unread:#?}");
}

/// The lopdf engine on small hand-made PDFs: words placed by `TJ` kerning
/// and by separate moves come out with spaces between them, lines with
/// breaks, WinAnsi bytes as their characters, and a form XObject's text is
/// read with the page's.
#[test]
fn lopdf_engine_lays_out_words_and_lines() {
    let content = "BT /F1 12 Tf 72 700 Td [(Hello)-300(world)] TJ         0 -14 Td (caf\\351) Tj 40 0 Td (noir) Tj ET /X1 Do";
    let form = "BT /F1 12 Tf 72 600 Td (Footnote) Tj ET";
    let widths: Vec<String> = (32..=255).map(|_| "500".to_string()).collect();
    let objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 5 0 R >> /XObject << /X1 6 0 R >> >> \
         /Contents 4 0 R >>"
            .to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        ),
        format!(
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica \
             /Encoding /WinAnsiEncoding /FirstChar 32 /Widths [{}] >>",
            widths.join(" ")
        ),
        format!(
            "<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] \
             /Resources << /Font << /F1 5 0 R >> >> /Length {} >>\nstream\n{form}\nendstream",
            form.len() + 1
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("words.pdf");
    std::fs::write(&path, pdf::assemble(&objects, "")).unwrap();
    let (count, pages) = run(&path, EngineChoice::Lopdf, None).unwrap();
    assert_eq!(count, 1);
    assert_eq!(pages.0[0].1, "Hello world\ncafé noir\nFootnote");
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
        EngineChoice::Lopdf,
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
    // The default build with no PDF tool on PATH has this engine alone:
    // at least 75 of the 77 normal PDFs, each with the manifest's page
    // count (`agreement` checks the count of every one it reads).
    assert!(
        docs.len() - poppler.failed.len() >= 75,
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

/// Every PDF engine, the in-process MuPDF one first when built in.
fn every_engine() -> Vec<EngineChoice> {
    vec![
        #[cfg(feature = "mupdf-inproc")]
        EngineChoice::MupdfInproc,
        EngineChoice::Mupdf,
        EngineChoice::Poppler,
        EngineChoice::Builtin,
        EngineChoice::Lopdf,
    ]
}

/// A page mostly of glyphs without readable Unicode (a score's music
/// symbols) keeps its words: every engine's text is garbage by the
/// unreadable-character rule, yet the document extracts, its page flagged
/// low quality, with the unreadable characters gone and the title and
/// instrument names there. Without the words, it fails as garbage, as any
/// text without a readable word does.
#[test]
fn unreadable_glyphs_go_and_the_words_stay() {
    let dir = tempfile::tempdir().unwrap();
    let with_words = dir.path().join("score.pdf");
    let glyphs_only = dir.path().join("glyphs.pdf");
    std::fs::write(&with_words, score::score_pdf(true)).unwrap();
    std::fs::write(&glyphs_only, score::score_pdf(false)).unwrap();
    for engine in every_engine() {
        let (count, pages) = run(&with_words, engine, None)
            .unwrap_or_else(|e| panic!("{engine:?}: the score failed: {e}"));
        assert_eq!(count, 1, "{engine:?}");
        let (_, text, flags) = &pages.0[0];
        assert!(flags.low_quality, "{engine:?}: not flagged: {text:?}");
        assert!(!flags.failed, "{engine:?}");
        assert!(
            !text.chars().any(quality::is_unreadable),
            "{engine:?}: {text:?}"
        );
        let got = words(&pages);
        for word in score::TITLE.split(' ').chain(score::INSTRUMENTS) {
            assert!(
                got.contains(&word.to_lowercase()),
                "{engine:?}: {word} missing from {text:?}"
            );
        }
        let err = run(&glyphs_only, engine, None)
            .err()
            .unwrap_or_else(|| panic!("{engine:?}: glyphs alone extracted"));
        assert!(err.contains("unreadable characters"), "{engine:?}: {err}");
    }
}

/// The first page of the TraceMonkey paper breaks "al-/ternative" and
/// "discov-/ered" across line ends in MuPDF's text; they are found whole,
/// while a hyphen inside a line ("dynamically-typed") stays.
#[test]
fn words_broken_at_line_ends_are_found_whole() {
    let path = corpus().join("pdf/pdfjs-tracemonkey.pdf");
    let first = Some(PageRange { first: 1, last: 1 });
    for engine in every_engine() {
        if engine == EngineChoice::Builtin {
            // pdf-extract lays lines out its own way; it is not the default.
            continue;
        }
        let (_, pages) = run(&path, engine, first).unwrap();
        let got = words(&pages);
        for whole in ["alternative", "discovered", "dynamically-typed"] {
            assert!(got.contains(whole), "{engine:?}: no {whole:?}");
        }
        for half in ["al-", "ternative", "discov-", "ered"] {
            assert!(!got.contains(half), "{engine:?}: {half:?} left apart");
        }
    }
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

/// The figures behind `auto`'s order (BENCHMARKS.md, "Which engines `auto`
/// keeps"): every corpus PDF through every engine, one line per document,
/// then, for each engine, the documents it extracts where every engine
/// before it failed (`auto` moves on only when an engine fails, so those are
/// the ones it rescues), and its median word overlap with Poppler over the
/// normal PDFs. Slow (every engine over every PDF), so run by hand:
/// `cargo nextest run -p docmill-worker --test engines --run-ignored only
/// --no-capture -E 'test(engine_matrix)'`.
#[test]
#[ignore = "a measurement, printed; run by hand"]
fn engine_matrix() {
    let every = [
        #[cfg(feature = "mupdf-inproc")]
        EngineChoice::MupdfInproc,
        EngineChoice::Mupdf,
        EngineChoice::Poppler,
        EngineChoice::Builtin,
        EngineChoice::Lopdf,
    ];
    // `DOCMILL_MATRIX_ENGINES=builtin,lopdf` measures only those, in that
    // order (Poppler still reads every document, as the reference).
    let order: Vec<EngineChoice> = match std::env::var("DOCMILL_MATRIX_ENGINES") {
        Ok(names) => names
            .split(',')
            .map(|n| {
                *every
                    .iter()
                    .find(|e| e.as_str() == n.trim())
                    .unwrap_or_else(|| panic!("unknown engine {n:?}"))
            })
            .collect(),
        Err(_) => every.to_vec(),
    };
    // `DOCMILL_MATRIX_CLASS=normal` measures only that class of PDFs.
    let class_wanted = std::env::var("DOCMILL_MATRIX_CLASS").ok();
    let docs = manifest_pdfs(|c| class_wanted.as_deref().is_none_or(|w| w == c));
    // Per document and engine: the words extracted, or `None` on failure.
    let mut results: Vec<Vec<Option<usize>>> = Vec::new();
    let mut overlaps: Vec<Vec<f64>> = vec![Vec::new(); order.len()];
    for (path, pages, class) in &docs {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let reference = run(path, EngineChoice::Poppler, None)
            .ok()
            .map(|(_, p)| words(&p));
        let mut line = format!("{class:<17} {name:<50}");
        let mut row = Vec::new();
        for (i, engine) in order.iter().enumerate() {
            // mutool 1.21 loops on this file until killed; the worker's
            // deadline ends it in a real run.
            if *engine == EngineChoice::Mupdf && name == "pdfjs-Type3-content-stream-cycle.pdf" {
                line.push_str(" | loops");
                row.push(None);
                continue;
            }
            match run(path, *engine, None) {
                Ok((count, got)) => {
                    let w = words(&got);
                    let low = got.0.iter().filter(|p| p.2.low_quality).count();
                    let right_count = pages.parse::<u32>().map_or(true, |p| p == count);
                    line.push_str(&format!(
                        " | {count}p{} {}w{}",
                        if right_count { "" } else { "!" },
                        w.len(),
                        if low > 0 {
                            format!(" {low}lq")
                        } else {
                            String::new()
                        }
                    ));
                    row.push(Some(w.len()));
                    if let Some(r) = reference.as_ref().filter(|r| r.len() >= 20) {
                        if class == "normal" {
                            overlaps[i].push(overlap(&w, r));
                        }
                    }
                }
                Err(reason) => {
                    let short: String = reason.chars().take(40).collect();
                    line.push_str(&format!(" | ERR {short}"));
                    row.push(None);
                }
            }
        }
        eprintln!("{line}");
        results.push(row);
    }
    for (i, engine) in order.iter().enumerate() {
        let rescued: Vec<String> = docs
            .iter()
            .zip(&results)
            // Everything the first engine extracts would be listed: only
            // the later ones' rescues are worth naming.
            .filter(|(_, r)| i > 0 && r[i].is_some() && r[..i].iter().all(Option::is_none))
            .map(|((p, _, _), r)| {
                let name = p.file_name().unwrap().to_string_lossy();
                format!("{name} ({} words)", r[i].unwrap_or(0))
            })
            .collect();
        let normal = docs
            .iter()
            .zip(&results)
            .filter(|((_, _, c), _)| c == "normal");
        let extracted = normal.clone().filter(|(_, r)| r[i].is_some()).count();
        let with_words = normal.filter(|(_, r)| r[i].is_some_and(|w| w > 0)).count();
        eprintln!(
            "{engine:?}: extracts {extracted} normal PDFs ({with_words} with words); median \
             overlap with Poppler {:.3}; rescues {}: {rescued:?}",
            if overlaps[i].is_empty() {
                0.0
            } else {
                median(overlaps[i].clone())
            },
            rescued.len()
        );
    }
}
