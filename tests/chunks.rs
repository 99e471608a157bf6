//! Page-range chunk jobs: a massive PDF split across workers (in capped
//! chunks, or one per worker) gives exactly the text of the same file
//! extracted whole, survives a supervisor SIGKILL with only the missing
//! chunks redone, and a chunk that keeps failing
//! costs only its pages (a `partial` document that names them).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::Duration;

use common::{corpus, mockdoc, wait_until, workers, Env};

/// The corpus's 12,000-page PDF, built with its script into `dir`.
fn massive(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join("massive.pdf");
    let status = Command::new(corpus().join("make-massive.sh"))
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run make-massive.sh (needs qpdf)");
    assert!(status.success(), "make-massive.sh failed");
    out
}

/// Status and page count of one document, by file name.
fn doc_pages(env: &Env, name: &str) -> (String, u32) {
    env.sql()
        .query_row(
            "SELECT status, coalesce(page_count, 0) FROM documents WHERE display_path LIKE '%/' || ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("no document {name}: {e}"))
}

/// A word of the first exported page, for a search that must find the
/// document: the longest one, which is likely to be rare.
fn rare_word(export: &[u8]) -> String {
    let first = export.split(|b| *b == b'\n').next().unwrap_or_default();
    let page: serde_json::Value = serde_json::from_slice(first).expect("an export line");
    let text = page["text"].as_str().unwrap_or_default();
    text.split(|c: char| !c.is_ascii_alphabetic())
        .max_by_key(|w| w.len())
        .filter(|w| w.len() >= 5)
        .expect("a word on the first page")
        .to_string()
}

fn count(env: &Env, sql: &str) -> i64 {
    env.sql().query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// Page-range chunks of text, not OCR jobs.
const TEXT_CHUNKS: &str = "SELECT count(*) FROM chunks WHERE ocr_pages IS NULL";

#[test]
fn massive_pdf_chunked_equals_whole_and_resumes_after_sigkill() {
    let whole = Env::new();
    let lib = whole.path("lib");
    massive(&lib);
    let common_args = ["--workers", "2", "--pdf-engine", "mupdf", "-q"];

    // The reference: the same file extracted in one job.
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"index", &lib];
    args.extend(common_args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    args.push(&"--no-chunking");
    whole.run(&args).assert_code(0);
    // Text chunks only: the pages that need OCR become OCR jobs, which
    // are chunk rows too (`ocr_pages` set), chunked or not.
    assert_eq!(count(&whole, TEXT_CHUNKS), 0);
    assert_eq!(count(&whole, "SELECT count(*) FROM pages"), 12_000);
    let reference = whole.export();
    whole.assert_no_leftovers();

    // Chunked across two workers, killed part-way, then resumed. Two
    // workers would take a half each; chunks capped at 1000 pages give
    // the kill chunks to fall between.
    let env = Env::new();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"index", &lib];
    args.extend(common_args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    args.extend([&"--chunk-pages" as &dyn AsRef<std::ffi::OsStr>, &"1000"]);
    let mut child = env.spawn(&args);
    let some_done = wait_until(Duration::from_secs(120), || {
        env.db.exists() && count(&env, &format!("{TEXT_CHUNKS} AND status = 'done'")) >= 3
    });
    assert!(some_done, "no chunk finished");
    let killed_pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || workers(&env).is_empty()),
        "workers outlived the supervisor"
    );
    let chunks = count(&env, TEXT_CHUNKS);
    assert_eq!(chunks, 12, "12,000 pages in chunks of at most 1000");
    let done_before: HashSet<i64> = {
        let db = env.sql();
        let mut stmt = db
            .prepare("SELECT first FROM chunks WHERE status = 'done' AND ocr_pages IS NULL")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert!(done_before.len() < 12, "the run finished before the kill");
    // The done chunks' pages are indexed already, but nothing of the
    // document is searchable, exported or counted before every chunk is done.
    assert!(count(&env, "SELECT count(*) FROM pages") >= 3000);
    assert!(env.export().is_empty(), "pages exported before the merge");
    assert_eq!(env.status()["pages"], 0, "pages counted before the merge");
    let word = rare_word(&reference);
    let search = |env: &Env| {
        let hits = env.run(&[&"search", &"--json", &word]);
        // 0: found, 1: nothing found; anything else is an error.
        assert!(matches!(hits.code(), 0 | 1), "{}", hits.dump());
        hits.code() == 0 && hits.stdout().contains("\"page\"")
    };
    assert!(!search(&env), "a page was searchable before the merge");

    env.run(&args).assert_code(0);
    env.assert_no_leftovers();
    // The killed run's scratch folder (its workers' temporary files) was
    // removed by the resumed one.
    let scratch = format!("docmill-run-{killed_pid}-");
    let left: Vec<_> = [std::path::Path::new("/dev/shm"), &std::env::temp_dir()]
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&scratch))
        .collect();
    assert!(left.is_empty(), "scratch folders left: {left:?}");
    assert!(
        env.export() == reference,
        "the chunked export differs from the whole-document export"
    );
    assert!(search(&env), "{word:?} is not found after the merge");
    assert_eq!(env.status()["pages"], 12_000);
    assert_eq!(count(&env, "SELECT count(*) FROM chunk_pages"), 0);
    // Every chunk was done exactly once: the ones done before the kill
    // were not redone.
    let done_attempts: BTreeMap<i64, (i64, i64)> = {
        let db = env.sql();
        let mut stmt = db
            .prepare(
                "SELECT chunk_first, count(*), min(run_id) FROM attempts
                 WHERE outcome = 'done' AND engine IS NOT 'tesseract' GROUP BY chunk_first",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(done_attempts.len(), 12);
    for (first, (n, run)) in &done_attempts {
        assert_eq!(*n, 1, "chunk at page {first} was done {n} times");
        if done_before.contains(first) {
            assert_eq!(*run, 1, "chunk at page {first} was redone after the resume");
        }
    }
    // Two workers shared the document.
    assert!(
        count(
            &env,
            "SELECT count(DISTINCT worker_pid) FROM attempts WHERE chunk_first IS NOT NULL"
        ) >= 2
    );
    let (status, pages) = doc_pages(&env, "massive.pdf");
    assert_eq!((status.as_str(), pages), ("done", 12_000));

    // Without a cap, two workers take a half each: the same text.
    let halves = Env::new();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"index", &lib];
    args.extend(common_args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
    halves.run(&args).assert_code(0);
    halves.assert_no_leftovers();
    // Counted by their attempts: once the text has merged, the rows of its
    // chunks give way to the OCR jobs of the pages they flagged.
    assert_eq!(
        count(
            &halves,
            "SELECT count(DISTINCT chunk_first) FROM attempts
             WHERE outcome = 'done' AND engine IS NOT 'tesseract'"
        ),
        2
    );
    assert!(
        halves.export() == reference,
        "the export of the halves differs from the whole-document export"
    );
}

#[test]
fn a_failing_chunk_costs_only_its_pages() {
    let env = Env::new();
    let lib = env.path("lib");
    std::fs::create_dir_all(&lib).unwrap();
    mockdoc(&lib, "partial", "pages 12000\nfail_pages 5001-5001\n");
    mockdoc(&lib, "hopeless", "pages 12000\nfail_pages 1-12000\n");
    // Every chunk crashes its worker once, then succeeds.
    mockdoc(
        &lib,
        "crashy",
        "pages 12000\non_attempt 1\nsegfault\non_attempt 2\n",
    );
    let r = env.run(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"2",
        &"--chunk-pages",
        &"2000",
        &"-q",
    ]);
    r.assert_code(1);
    env.assert_no_leftovers();

    let (status, pages) = doc_pages(&env, "partial.mockdoc");
    assert_eq!((status.as_str(), pages), ("partial", 12_000));
    let (status, _) = doc_pages(&env, "hopeless.mockdoc");
    assert_eq!(status, "failed");
    let (status, pages) = doc_pages(&env, "crashy.mockdoc");
    assert_eq!((status.as_str(), pages), ("done", 12_000));
    // Each chunk of the crashy document crashed once and was done once.
    let crashy: Vec<(i64, i64)> = {
        let db = env.sql();
        let mut stmt = db
            .prepare(
                "SELECT a.chunk_first, count(*) FROM attempts a JOIN documents d ON d.id = a.doc_id
                 WHERE d.display_path LIKE '%crashy.mockdoc' GROUP BY a.chunk_first",
            )
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(crashy.len(), 6);
    assert!(crashy.iter().all(|(_, n)| *n == 2), "{crashy:?}");

    // `status` names the failed pages in one line; the other pages are
    // searchable and exported.
    let status = env.status();
    let failures = status["failures"].as_array().unwrap();
    let partial = failures
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("partial.mockdoc"))
        .expect("the partial document is listed");
    assert_eq!(partial["status"], "partial");
    let reason = partial["reason"].as_str().unwrap();
    assert!(reason.contains("pages 4001-6000"), "{reason}");
    assert!(!reason.contains('\n'));
    let hopeless = failures
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("hopeless.mockdoc"))
        .unwrap();
    assert!(hopeless["reason"]
        .as_str()
        .unwrap()
        .starts_with("every chunk failed"));
    let export = String::from_utf8(env.export()).unwrap();
    let partial_pages: Vec<u32> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["path"].as_str().unwrap().ends_with("partial.mockdoc"))
        .map(|v| v["page"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(partial_pages.len(), 10_000);
    assert!(partial_pages.iter().all(|p| !(4001..=6000).contains(p)));
    let hits = env.run(&[&"search", &"--json", &"\"mock page 7777 of partial\""]);
    hits.assert_code(0);
    assert!(hits.stdout().contains("\"page\":7777"), "{}", hits.dump());
}

#[test]
fn a_long_document_at_the_end_is_shared_by_idle_workers() {
    for chunking in [true, false] {
        let env = Env::new();
        let lib = env.path("lib");
        std::fs::create_dir_all(&lib).unwrap();
        mockdoc(&lib, "book", "pages 400\nsleep_ms 200\n");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"index",
            &lib,
            &"--allow-mock-docs",
            &"--workers",
            &"2",
            &"-q",
        ];
        if !chunking {
            args.push(&"--no-chunking");
        }
        env.run(&args).assert_code(0);
        env.assert_no_leftovers();
        let (status, pages) = doc_pages(&env, "book.mockdoc");
        assert_eq!((status.as_str(), pages), ("done", 400));
        let chunks = count(&env, "SELECT count(*) FROM chunks");
        let pids = count(&env, "SELECT count(DISTINCT worker_pid) FROM attempts");
        if chunking {
            // Alone in the queue with two workers: one chunk each.
            assert_eq!((chunks, pids), (2, 2));
        } else {
            assert_eq!((chunks, pids), (0, 1));
        }
        assert_eq!(count(&env, "SELECT count(*) FROM pages"), 400);
    }
}

#[test]
fn a_long_document_is_shared_even_with_a_full_queue() {
    // The book comes first in path order, with more short documents queued
    // behind it than there are workers: not yet "near the end".
    for (workers, long_pages, want_chunks) in [("2", "200", 2), ("2", "400", 0), ("1", "200", 0)] {
        let env = Env::new();
        let lib = env.path("lib");
        std::fs::create_dir_all(&lib).unwrap();
        mockdoc(&lib, "a-book", "pages 300\n");
        for i in 0..6 {
            mockdoc(&lib, &format!("z-short-{i}"), "pages 2\n");
        }
        env.run(&[
            &"index",
            &lib,
            &"--allow-mock-docs",
            &"--workers",
            &workers,
            &"--long-pages",
            &long_pages,
            &"-q",
        ])
        .assert_code(0);
        env.assert_no_leftovers();
        let (status, pages) = doc_pages(&env, "a-book.mockdoc");
        assert_eq!((status.as_str(), pages), ("done", 300));
        let chunks = count(&env, "SELECT count(*) FROM chunks");
        assert_eq!(
            chunks, want_chunks,
            "workers {workers}, --long-pages {long_pages}"
        );
        assert_eq!(count(&env, "SELECT count(*) FROM pages"), 300 + 6 * 2);
    }
}
