//! The foundation, end to end: the real binary over the real corpus, with
//! real worker processes and a real SQLite index.

mod common;

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::score;
use common::*;

/// Index the whole corpus with 1 and with 3 workers; check every document's
/// fate against the manifest, search, re-run skipping, and that the export
/// does not depend on the worker count.
#[test]
fn corpus_end_to_end() {
    let corpus = corpus();
    let one = Env::new();
    let three = Env::new();
    // One quirky file hangs mutool until the deadline: keep it short, yet
    // long enough that no slow moment under load hands a PDF to a fallback
    // engine (which would change its text).
    let r1 = one.run(&[
        &"index",
        &corpus,
        &"--workers",
        &"1",
        &"--quiet",
        &"--timeout",
        &"20s",
    ]);
    let r3 = three.run(&[
        &"index",
        &corpus,
        &"--workers",
        &"3",
        &"--quiet",
        &"--timeout",
        &"20s",
    ]);
    // The corpus holds broken and encrypted files: "some failed" is right.
    r1.assert_code(1);
    r3.assert_code(1);
    one.assert_no_leftovers();
    three.assert_no_leftovers();

    let conn = three.sql();
    let docs: HashMap<String, (String, Option<u32>, Option<String>)> = {
        let mut stmt = conn
            .prepare("SELECT display_path, status, page_count, reason FROM documents")
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get::<_, Option<u32>>(2)?, r.get(3)?),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let mut checked = 0;
    let mut scanned = 0;
    for entry in manifest() {
        let key = corpus.join(&entry.path).to_string_lossy().into_owned();
        let (status, pages, reason) = docs
            .get(&key)
            .unwrap_or_else(|| panic!("{} was not catalogued", entry.path));
        match entry.class.as_str() {
            "normal" => {
                assert_eq!(status, "done", "{}: {reason:?}", entry.path);
                if entry.path.ends_with(".pdf") {
                    assert_eq!(*pages, entry.pages, "{}: page count", entry.path);
                }
                checked += 1;
            }
            // Partial recovery is allowed; silence is not.
            "broken" if status != "done" => {
                // Failed, or partial: some pages read, the rest (a page
                // OCR could not read, a chunk that kept failing) named.
                assert!(
                    status == "failed" || status == "partial",
                    "{}: {status}",
                    entry.path
                );
                assert!(
                    reason
                        .as_deref()
                        .is_some_and(|r| !r.is_empty() && !r.contains('\n')),
                    "{}: a failure needs a one-line reason, got {reason:?}",
                    entry.path
                );
            }
            "encrypted-userpw" => {
                assert_eq!(status, "failed", "{}", entry.path);
                assert!(
                    reason.as_deref().is_some_and(|r| r.contains("password")),
                    "{}: {reason:?}",
                    entry.path
                );
            }
            // Scans have no text layer: OCR (installed by scripts/test)
            // gives every one searchable words.
            "scanned" => {
                let words: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM pages p JOIN documents d ON d.id = p.doc_id
                         WHERE d.display_path = ?1 AND length(trim(p.text)) > 0",
                        [&key],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert!(words > 0, "{}: no page has text ({status})", entry.path);
                scanned += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 90, "only {checked} normal documents checked");
    assert!(scanned >= 13, "only {scanned} scanned documents checked");

    // A phrase known to be on page 1 of the TraceMonkey paper.
    let r = three.run(&[
        &"search",
        &"trace-based just-in-time type specialization",
        &"--json",
    ]);
    r.assert_code(0);
    let answer: serde_json::Value =
        serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.dump()));
    // A damaged copy of the paper has the same first page, so look for the
    // paper's own best hit.
    let paper = answer["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["path"]
                .as_str()
                .unwrap()
                .ends_with("/pdfjs-tracemonkey.pdf")
        })
        .unwrap_or_else(|| panic!("the paper is not among the hits\n{}", r.dump()));
    let best = &paper["hits"][0];
    assert_eq!(best["page"], 1, "{}", r.dump());
    let snippet = best["snippet"].as_str().unwrap();
    let first = &best["marks"][0];
    let (start, end) = (first[0].as_u64().unwrap(), first[1].as_u64().unwrap());
    assert_eq!(
        &snippet[start as usize..end as usize],
        "Trace-based",
        "{}",
        r.dump()
    );
    assert!(best["score"].as_f64().unwrap() > 0.0);

    // A second run finds nothing to do.
    let again = three.run(&[&"index", &corpus, &"--workers", &"3", &"--json", &"--quiet"]);
    let summary: serde_json::Value = serde_json::from_str(again.stdout().trim()).unwrap();
    assert_eq!(summary["discovered"]["new"], 0, "{}", again.dump());
    assert_eq!(summary["discovered"]["changed"], 0);
    assert_eq!(summary["totals"]["done"], 0, "{}", again.dump());
    three.assert_no_leftovers();

    // The export does not depend on the worker count.
    let (e1, e3) = (one.export(), three.export());
    assert!(
        e1.len() > 100_000,
        "export is suspiciously small: {} bytes",
        e1.len()
    );
    assert!(
        e1 == e3,
        "export differs between --workers 1 and --workers 3"
    );
    let pages = e3.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    assert_eq!(three.status()["pages"].as_u64().unwrap() as usize, pages);
}

/// A worker SIGKILLed in the middle of a job: the run completes, the
/// document is retried once in a fresh worker, nothing is left running.
#[test]
fn worker_killed_mid_job_is_retried() {
    let env = Env::new();
    let lib = env.path("lib");
    mockdoc(
        &lib,
        "slow",
        "on_attempt 1\nsleep_ms 60000\non_attempt 2\npages 3\n",
    );
    for i in 0..4 {
        mockdoc(&lib, &format!("quick{i}"), "pages 2\n");
    }
    let mut child = env.spawn(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        // One worker: while the slow document runs, its worker is the only
        // one, so the kill cannot hit a worker its retry was just given to.
        &"--workers",
        &"1",
        &"--quiet",
    ]);
    // Wait until the slow document is being worked on, then kill its worker.
    let running = wait_until(Duration::from_secs(30), || {
        env.db.exists()
            && env
                .sql()
                .query_row(
                    "SELECT count(*) FROM documents WHERE status = 'running' AND display_path LIKE '%slow.mockdoc'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap_or(0)
                == 1
    });
    assert!(running, "the slow document never started");
    let pids = workers(&env);
    assert_eq!(pids.len(), 1);
    for pid in &pids {
        send_signal(*pid, libc::SIGKILL);
    }
    let status = wait_child(&mut child, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "run should finish cleanly after the retry"
    );
    assert_eq!(env.doc("slow.mockdoc"), ("done".to_string(), 1));
    assert_eq!(env.attempts("slow.mockdoc"), vec!["crashed", "done"]);
    assert_eq!(env.counts().get("done"), Some(&5));
    env.assert_no_leftovers();
}

/// Bad input: each gets a one-line reason and nothing else is lost.
#[test]
fn bad_input_gets_reasons_and_loses_nothing() {
    let env = Env::new();
    let corpus = corpus();
    let lib = env.path("lib");
    let sub = lib.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let good = corpus.join("pdf/pypdf-004-pdflatex-4-pages.pdf");
    std::fs::copy(&good, lib.join("good.pdf")).unwrap();
    // A name that is not UTF-8.
    let odd = lib.join(std::ffi::OsStr::from_bytes(b"caf\xe9.pdf"));
    std::fs::copy(&good, &odd).unwrap();
    std::fs::write(lib.join("empty.pdf"), b"").unwrap();
    std::fs::write(lib.join("notes.txt"), b"just text").unwrap();
    std::fs::write(sub.join("fake.pdf"), b"this is not a pdf at all").unwrap();
    // A link out of the root and a loop.
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(&good, elsewhere.join("linked.pdf")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, lib.join("outside")).unwrap();
    std::os::unix::fs::symlink(&lib, sub.join("loop")).unwrap();
    // A zip bomb: one chapter that inflates past the cap.
    write_epub(&lib.join("bomb.epub"), &"A".repeat(8 << 20));
    write_epub(
        &lib.join("fine.epub"),
        "<p>a small book about lighthouses</p>",
    );

    // The same folder twice, and nested in itself.
    let r = env.run(&[
        &"index",
        &lib,
        &lib,
        &sub,
        &"--quiet",
        &"--epub-entry-cap",
        &"1M",
    ]);
    r.assert_code(1);
    env.assert_no_leftovers();
    let st = env.status();
    let reasons: HashMap<String, String> = st["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = f["path"].as_str().unwrap();
            (
                p.rsplit('/').next().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for r in reasons.values() {
        assert!(
            !r.is_empty() && !r.contains('\n'),
            "reason not one line: {r:?}"
        );
    }
    assert!(reasons["empty.pdf"].contains("empty"), "{reasons:?}");
    assert!(
        reasons["fake.pdf"].contains("not a readable PDF"),
        "{reasons:?}"
    );
    assert!(reasons["outside"].contains("symbolic link"), "{reasons:?}");
    assert!(reasons["loop"].contains("symbolic link"), "{reasons:?}");
    assert!(reasons["bomb.epub"].contains("cap"), "{reasons:?}");
    assert_eq!(env.doc("good.pdf"), ("done".into(), 0));
    assert_eq!(env.doc("fine.epub"), ("done".into(), 0));
    assert_eq!(env.doc("notes.txt").0, "unsupported");
    // Each file once, though the folder was given three ways.
    let n: i64 = env
        .sql()
        .query_row(
            "SELECT count(*) FROM documents WHERE display_path LIKE '%good.pdf'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    // The non-UTF-8 name is indexed and exported under its lossy name.
    let export = String::from_utf8(env.export()).unwrap();
    assert!(
        export.contains("caf\u{fffd}.pdf"),
        "non-UTF-8 name missing from export"
    );
    let r = env.run(&[&"search", &"lighthouses", &"--json"]);
    assert!(r.stdout().contains("fine.epub"), "{}", r.dump());

    // Following links: the loop is reported, not followed forever, and the
    // linked folder is walked.
    let r = env.run(&[
        &"index",
        &lib,
        &"--quiet",
        &"--follow-symlinks",
        &"--epub-entry-cap",
        &"1M",
    ]);
    // The bad files failed in the first run: nothing fails anew here.
    r.assert_code(0);
    assert_eq!(env.doc("linked.pdf"), ("done".into(), 0));
    let st = env.status();
    assert!(
        st["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["reason"].as_str().unwrap().contains("loop")),
        "{st}"
    );
    env.assert_no_leftovers();
}

/// Deleted files leave the index on the next run over the same root; a
/// changed file is re-extracted; the database must be in an existing folder.
#[test]
fn rerun_tracks_deletions_and_changes() {
    let env = Env::new();
    let lib = env.path("lib");
    let a = mockdoc(&lib, "alpha", "pages 2\n");
    mockdoc(&lib, "beta", "pages 3\n");
    env.run(&[&"index", &lib, &"--allow-mock-docs", &"--quiet"])
        .assert_code(0);
    assert_eq!(env.status()["pages"], 5);

    std::fs::remove_file(lib.join("beta.mockdoc")).unwrap();
    std::fs::write(&a, "pages 4\n# changed\n").unwrap();
    let r = env.run(&[&"index", &lib, &"--allow-mock-docs", &"--json", &"--quiet"]);
    r.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    assert_eq!(summary["discovered"]["removed"], 1, "{}", r.dump());
    assert_eq!(summary["discovered"]["changed"], 1, "{}", r.dump());
    assert_eq!(env.status()["pages"], 4);
    let export = String::from_utf8(env.export()).unwrap();
    assert!(!export.contains("beta"), "a deleted file's pages remain");
    assert!(export.contains("mock page 4 of alpha"));

    let out = std::process::Command::new(BIN)
        .arg("--db")
        .arg(env.path("missing/dir/x.db"))
        .arg("index")
        .arg(&lib)
        .env("DOCMILL_TEST_TAG", &env.tag)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    let r = env.run(&[&"index", &env.path("no-such-folder")]);
    r.assert_code(2);
    env.assert_no_leftovers();
}

/// Writes a minimal EPUB 3 with one chapter.
fn write_epub(path: &std::path::Path, body: &str) {
    use std::io::Write;
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("mimetype", stored).unwrap();
    z.write_all(b"application/epub+zip").unwrap();
    z.start_file("META-INF/container.xml", deflated).unwrap();
    z.write_all(br#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#).unwrap();
    z.start_file("OEBPS/content.opf", deflated).unwrap();
    z.write_all(br#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier><dc:title>Test</dc:title><dc:language>en</dc:language></metadata><manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine></package>"#).unwrap();
    z.start_file("OEBPS/c1.xhtml", deflated).unwrap();
    write!(z, "<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>c</title></head><body>{body}</body></html>").unwrap();
    z.finish().unwrap();
}

/// No more than --max-epubs EPUB jobs ever run at once, while other work
/// flows past them; checked from the attempts' recorded start and end times
/// and from the run's time series.
#[test]
fn epub_limit_holds() {
    let env = Env::new();
    let lib = env.path("lib");
    for i in 0..8 {
        mockdoc(&lib, &format!("e{i}"), "kind epub\nsleep_ms 400\npages 2\n");
    }
    for i in 0..8 {
        mockdoc(&lib, &format!("p{i}"), "sleep_ms 100\npages 1\n");
    }
    let r = env.run(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"4",
        &"--max-epubs",
        &"2",
        &"--quiet",
    ]);
    r.assert_code(0);
    env.assert_no_leftovers();
    let conn = env.sql();
    let mut stmt = conn
        .prepare(
            "SELECT a.started_ms, a.ended_ms FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE d.display_path LIKE '%/e_.mockdoc'",
        )
        .unwrap();
    let spans: Vec<(i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(spans.len(), 8);
    // The most EPUB jobs running at any start instant.
    let most = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap();
    assert_eq!(most, 2, "EPUB concurrency {most}, limit 2");
    let series: i64 = conn
        .query_row(
            "SELECT coalesce(max(json_extract(json, '$.epubs_running')), 0) FROM samples",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(series <= 2, "the time series saw {series} EPUBs at once");
}

/// A page mostly of unreadable glyphs (a score's music symbols) is indexed
/// with its words: the document is done, its title searchable, the page
/// marked low quality in the export (and only there: other pages export
/// without the key) and counted by `status`.
#[test]
fn a_score_keeps_its_words_on_a_low_quality_page() {
    let env = Env::new();
    let lib = env.path("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(lib.join("score.pdf"), score::score_pdf(true)).unwrap();
    std::fs::copy(
        corpus().join("pdf/pypdf-001-minimal-document.pdf"),
        lib.join("plain.pdf"),
    )
    .unwrap();
    env.run(&[&"index", &lib, &"--quiet"]).assert_code(0);
    env.assert_no_leftovers();
    assert_eq!(env.doc("score.pdf").0, "done");

    let hits = env.run(&[&"search", &"\"violent dance\""]);
    hits.assert_code(0);
    assert!(hits.stdout().contains("score.pdf"), "{}", hits.dump());

    let export = String::from_utf8(env.export()).unwrap();
    let lines: Vec<&str> = export.lines().collect();
    let score = lines.iter().find(|l| l.contains("score.pdf")).unwrap();
    assert!(score.ends_with(",\"low_quality\":true}"), "{score}");
    assert!(score.contains(score::TITLE), "{score}");
    assert!(!score.contains("\\ue0"), "{score}");
    let plain = lines.iter().find(|l| l.contains("plain.pdf")).unwrap();
    assert!(!plain.contains("low_quality"), "{plain}");

    let status = env.status();
    assert_eq!(status["low_quality_pages"], 1, "{status}");
    assert_eq!(status["documents"]["done"], 2, "{status}");
    let text = env.run(&[&"status"]);
    assert!(
        text.stdout().contains("low-quality pages: 1;"),
        "{}",
        text.dump()
    );
}
