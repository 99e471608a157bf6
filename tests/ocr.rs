//! OCR end to end: pages without a text layer are recognised page by page,
//! by OCR jobs shared across the workers, cached by the file's content so a
//! second run or a renamed folder recognises nothing again, and a failing
//! OCR child costs only its page. Mock documents (`needs_ocr`, `ocr_child`)
//! stand in for scans where the outcome must be exact; the corpus's scans
//! check real recognition. Real OCR calls are counted by a `tesseract` on
//! PATH that logs each call and hands it to the real one.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use docmill_protocol::exit_codes;

/// Flags that keep the runs short and let mock documents through.
const MOCK: &[&str] = &["--allow-mock-docs", "--quiet", "--workers", "2"];

fn args<'a>(
    first: &'a [&'a dyn AsRef<std::ffi::OsStr>],
    rest: &'a [&'a str],
) -> Vec<&'a dyn AsRef<std::ffi::OsStr>> {
    let mut v: Vec<&dyn AsRef<std::ffi::OsStr>> = first.to_vec();
    for a in rest {
        v.push(a);
    }
    v
}

/// The summary `index --json` prints.
fn summary(r: &Run) -> serde_json::Value {
    serde_json::from_str(r.stdout().lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("no summary ({e}):\n{}", r.dump()))
}

/// Export as JSON values, keyed by (file name, page).
fn exported(env: &Env) -> Vec<(String, u64, serde_json::Value)> {
    String::from_utf8(env.export())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = v["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (name, v["page"].as_u64().unwrap(), v)
        })
        .collect()
}

fn pages_of(env: &Env, name: &str) -> Vec<serde_json::Value> {
    exported(env)
        .into_iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .collect()
}

/// A folder holding a `tesseract` that appends a line to `calls` for each
/// run and then runs the real one, so that tests count OCR calls.
fn counting_tesseract(env: &Env) -> (PathBuf, PathBuf) {
    let real = which("tesseract").expect("tesseract is installed for the OCR tests");
    let dir = env.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let calls = env.path("tesseract-calls");
    let script = dir.join("tesseract");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, calls)
}

/// Recognition calls (`tesseract stdin stdout …`), not the `--version`
/// and `--list-langs` questions a run asks once to know the engine.
fn calls(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .map_or(0, |t| t.lines().filter(|l| l.starts_with("stdin ")).count())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// PATH with `first` in front.
fn path_with(first: &Path) -> std::ffi::OsString {
    let mut dirs = vec![first.to_path_buf()];
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    std::env::join_paths(dirs).unwrap()
}

/// PATH without any folder holding a `tesseract`.
fn path_without_tesseract() -> std::ffi::OsString {
    let dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .filter(|d| !d.join("tesseract").exists())
        .collect();
    std::env::join_paths(dirs).unwrap()
}

/// Copies corpus PDFs into `dir` (a test's own folder, never the
/// repository).
fn corpus_copies(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        std::fs::copy(corpus().join("pdf").join(n), dir.join(n)).unwrap();
    }
}

fn search_finds(env: &Env, query: &str) -> Vec<(String, u64)> {
    let r = env.run(&[&"search", &query, &"--json"]);
    r.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            let name = d["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            d["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |h| (name.clone(), h["page"].as_u64().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn ocr_flags_are_checked_before_anything_runs() {
    let env = Env::new();
    let lib = env.path("lib");
    std::fs::create_dir_all(&lib).unwrap();
    for (flags, says) in [
        (&["--ocr-lang", "xxx"][..], "--ocr-lang xxx"),
        (&["--ocr-lang", "eng+"][..], "--ocr-lang"),
        (&["--ocr-dpi", "10"][..], "between 70 and 1200"),
        (&["--ocr-page-timeout", "0s"][..], "at least 1s"),
        (&["--ocr", "sometimes"][..], "--ocr"),
    ] {
        let r = env.run(&args(&[&"index", &lib], flags));
        r.assert_code(exit_codes::USAGE);
        assert!(r.stderr().contains(says), "{}", r.dump());
    }
    assert!(!env.db.exists(), "a refused run touches no database");
    // Force without tesseract is refused; auto says once what it skips.
    let mut c = env.cmd(&[&"index", &lib, &"--ocr", &"force"]);
    let out = c.env("PATH", path_without_tesseract()).output().unwrap();
    assert_eq!(out.status.code(), Some(exit_codes::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("install tesseract-ocr"));
    let mut c = env.cmd(&[&"index", &lib]);
    let out = c.env("PATH", path_without_tesseract()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("OCR is off").count(), 1, "{err}");
    env.assert_no_leftovers();
}

#[test]
fn engines_names_the_ocr_engine() {
    let out = std::process::Command::new(BIN)
        .args(["engines", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ocr"]["name"], "tesseract");
    if which("tesseract").is_some() {
        assert_eq!(v["ocr"]["available"], true);
        assert!(v["ocr"]["languages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "eng"));
    }
    let out = std::process::Command::new(BIN)
        .arg("engines")
        .env("PATH", path_without_tesseract())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tesseract") && text.contains("missing"),
        "{text}"
    );
}

#[test]
fn flagged_pages_are_recognised_by_ocr_jobs_on_every_worker() {
    let env = Env::new();
    let lib = env.path("lib");
    mockdoc(&lib, "scan", "pages 6\nneeds_ocr 2-5\n");
    let r = env.run(&args(&[&"index", &lib, &"--json"], MOCK));
    r.assert_code(0);
    let s = summary(&r);
    assert_eq!(s["totals"]["ocr_pages"], 4, "{}", r.dump());
    assert_eq!(s["totals"]["ocr_cached"], 0);
    assert!(r
        .stderr()
        .contains("OCR: 4 pages recognised, 0 from cache, 0 failed"));
    assert_eq!(env.doc("scan.mockdoc").0, "done");
    let pages = pages_of(&env, "scan.mockdoc");
    assert_eq!(pages.len(), 6);
    for p in &pages {
        let n = p["page"].as_u64().unwrap();
        let ocr = (2..=5).contains(&n);
        assert_eq!(p["ocr"], ocr, "{p}");
        if ocr {
            assert_eq!(p["text"], format!("mock ocr page {n} of scan"));
            assert_eq!(p["confidence"], 90.0);
        }
    }
    // One OCR job per worker, each a run of the flagged pages.
    let conn = env.sql();
    let jobs: Vec<String> = conn
        .prepare("SELECT ocr_pages FROM chunks ORDER BY first")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(jobs, ["2,3", "4,5"]);
    let st = env.status();
    assert_eq!(st["ocr_pages"], 4);
    env.assert_no_leftovers();
}

#[test]
fn a_second_run_and_a_renamed_folder_recognise_nothing_again() {
    let env = Env::new();
    let lib = env.path("lib");
    mockdoc(&lib, "scan", "pages 4\nneeds_ocr 1-4\n");
    let first = env.run(&args(&[&"index", &lib, &"--json"], MOCK));
    first.assert_code(0);
    assert_eq!(summary(&first)["totals"]["ocr_pages"], 4);
    let again = env.run(&args(&[&"index", &lib, &"--json"], MOCK));
    again.assert_code(0);
    assert_eq!(
        summary(&again)["totals"]["ocr_pages"],
        0,
        "{}",
        again.dump()
    );
    let moved = env.path("moved");
    std::fs::rename(&lib, &moved).unwrap();
    let r = env.run(&args(&[&"index", &moved, &"--json"], MOCK));
    r.assert_code(0);
    let s = summary(&r);
    assert_eq!(s["totals"]["ocr_pages"], 0, "{}", r.dump());
    assert_eq!(s["totals"]["ocr_cached"], 4);
    let pages = pages_of(&env, "scan.mockdoc");
    assert!(pages.iter().all(|p| p["ocr"] == true), "{pages:?}");
    env.assert_no_leftovers();
}

#[test]
fn a_failing_ocr_child_costs_only_its_page() {
    for (fault, note) in [("hang", "timed out"), ("crash", ""), ("oom", "")] {
        let env = Env::new();
        let lib = env.path("lib");
        mockdoc(
            &lib,
            "scan",
            &format!("pages 3\nneeds_ocr 1-3\nocr_child {fault} 2-2\n"),
        );
        mockdoc(&lib, "fine", "pages 2\n");
        let r = env.run(&args(
            &[
                &"index",
                &lib,
                &"--json",
                &"--ocr-page-timeout",
                &"1s",
                &"--worker-mem",
                &"512M",
            ],
            MOCK,
        ));
        // A partial document makes the exit code say so; the run goes on.
        r.assert_code(exit_codes::SOME_FAILED);
        assert_eq!(env.doc("fine.mockdoc").0, "done", "{fault}");
        assert_eq!(
            env.doc("scan.mockdoc").0,
            "partial",
            "{fault}: {}",
            r.dump()
        );
        let pages = pages_of(&env, "scan.mockdoc");
        assert_eq!(pages[0]["ocr"], true);
        assert_eq!(pages[2]["ocr"], true);
        let bad = &pages[1];
        assert_eq!(bad["text"], "", "{fault}");
        let said = bad["note"].as_str().unwrap_or_default();
        assert!(!said.is_empty() && said.contains(note), "{fault}: {bad}");
        let s = summary(&r);
        assert_eq!(
            (
                s["totals"]["ocr_pages"].as_u64(),
                s["totals"]["ocr_failed"].as_u64()
            ),
            (Some(2), Some(1))
        );
        assert!(env.run(&[&"status"]).stdout().contains("scan.mockdoc"));
        env.assert_no_leftovers();
    }
}

#[test]
fn without_an_ocr_engine_pages_without_text_are_reported_not_silently_done() {
    for how in ["no tesseract", "--ocr off"] {
        let env = Env::new();
        let lib = env.path("lib");
        corpus_copies(&lib, &["ocrmypdf-c02-22.pdf"]);
        let mut cmd = if how == "--ocr off" {
            env.cmd(&[&"index", &lib, &"--ocr", &"off"])
        } else {
            let mut c = env.cmd(&[&"index", &lib]);
            c.env("PATH", path_without_tesseract());
            c
        };
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{how}");
        let st = env.status();
        assert_eq!(st["no_text_pages"], 1, "{how}: {st}");
        let text = env.run(&[&"status"]).stdout();
        assert!(
            text.contains("No text layer, not read by OCR (tesseract-ocr missing, or --ocr off)")
                && text.contains("ocrmypdf-c02-22.pdf"),
            "{how}: {text}"
        );
        let pages = pages_of(&env, "ocrmypdf-c02-22.pdf");
        assert_eq!(pages[0]["ocr"], false);
        assert_eq!(
            pages[0]["note"],
            "no text layer, not read by OCR (tesseract-ocr missing, or --ocr off)"
        );
        env.assert_no_leftovers();
    }
}

#[test]
fn scanned_corpus_pages_become_searchable_and_text_layers_are_kept() {
    let env = Env::new();
    let lib = env.path("lib");
    let scans = [
        "ocrmypdf-c02-22.pdf",
        "ocrmypdf-linn.pdf",
        "ocrmypdf-cardinal.pdf",
        "ocrmypdf-graph-ocred.pdf",
    ];
    let normal: Vec<String> = manifest()
        .into_iter()
        .filter(|e| {
            e.class == "normal" && e.path.ends_with(".pdf") && e.pages.is_some_and(|p| p <= 4)
        })
        .take(5)
        .map(|e| e.path.trim_start_matches("pdf/").to_string())
        .collect();
    let mut names: Vec<&str> = scans.to_vec();
    names.extend(normal.iter().map(String::as_str));
    corpus_copies(&lib, &names);
    let (bin, log) = counting_tesseract(&env);
    let run = |root: &Path| {
        let root = root.to_path_buf();
        let mut c = env.cmd(&[&"index", &root, &"--quiet", &"--json", &"--workers", &"2"]);
        let out = c.env("PATH", path_with(&bin)).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str::<serde_json::Value>(
            String::from_utf8_lossy(&out.stdout).lines().last().unwrap(),
        )
        .unwrap()
    };
    let first = run(&lib);
    let recognised = calls(&log);
    assert!(
        recognised >= 6,
        "c02-22, linn and cardinal's four pages: {recognised} calls"
    );
    assert_eq!(
        first["totals"]["ocr_pages"].as_u64(),
        Some(recognised as u64)
    );

    assert!(search_finds(&env, "\"stooping down\"").contains(&("ocrmypdf-c02-22.pdf".into(), 1)));
    assert!(search_finds(&env, "\"Sequence Recorder\"")
        .iter()
        .any(|(n, _)| n == "ocrmypdf-linn.pdf"));
    let cardinal = pages_of(&env, "ocrmypdf-cardinal.pdf");
    assert_eq!(cardinal.len(), 4);
    for p in &cardinal {
        assert_eq!(p["ocr"], true, "{p}");
        let words = p["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .filter(|w| w.len() > 2)
            .count();
        assert!(words >= 3, "every rotation reads: {p}");
    }
    // An invisible OCR layer is a text layer: kept, not recognised again.
    assert!(pages_of(&env, "ocrmypdf-graph-ocred.pdf")
        .iter()
        .all(|p| p["ocr"] == false));
    for n in &normal {
        assert!(pages_of(&env, n).iter().all(|p| p["ocr"] == false), "{n}");
    }

    // Again, and after the folder is renamed: no OCR call at all.
    let again = run(&lib);
    assert_eq!(calls(&log), recognised);
    assert_eq!(again["totals"]["ocr_pages"], 0);
    let moved = env.path("moved");
    std::fs::rename(&lib, &moved).unwrap();
    let after_move = run(&moved);
    assert_eq!(
        calls(&log),
        recognised,
        "a renamed folder is read from the cache"
    );
    assert_eq!(
        after_move["totals"]["ocr_cached"].as_u64(),
        Some(recognised as u64)
    );
    assert!(search_finds(&env, "\"stooping down\"").contains(&("ocrmypdf-c02-22.pdf".into(), 1)));
    env.assert_no_leftovers();
}
