//! `docmill report` end to end: a real index run over a few corpus files,
//! the report written by the real binary, and the page opened in headless
//! Chromium to check that every chart and table is there, drawn and filled,
//! as a browser sees it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{chromium, corpus, mockdoc, wait_child, Env};
use docmill::store::SqliteStore;

/// Charts in every report (`docmill::metrics::report::CHARTS`).
const CHARTS: usize = docmill::metrics::report::CHARTS;

/// Good PDFs, one EPUB, and a password-protected PDF (extract-failed) so
/// the failure chart has a bar.
const FILES: [&str; 6] = [
    "pdf/pypdf-001-minimal-document.pdf",
    "pdf/pypdf-002-libreoffice-writer.pdf",
    "pdf/pypdf-004-pdflatex-4-pages.pdf",
    "pdf/pypdf-006-pdflatex-outline.pdf",
    "epub/epubcheck-epub2-minimal.epub",
    "pdf/pypdf-005-libreoffice-writer-password.pdf",
];

/// Runs headless Chromium on `page` with `args` added, stdout to a file.
fn browse(env: &Env, page: &Path, args: &[String], stdout: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args(common::HEADLESS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        // Its own home, so nothing is written to the user's.
        .env("HOME", profile.path())
        .env("DOCMILL_TEST_TAG", &env.tag)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(stdout).unwrap())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("start chromium");
    let status = wait_child(&mut child, Duration::from_secs(120));
    assert!(status.success(), "chromium {args:?} failed: {status}");
}

#[test]
fn report_renders_in_a_browser() {
    chromium(); // fail first, and clearly, when there is no browser
    let env = Env::new();
    let corpus = corpus();
    let paths: Vec<PathBuf> = FILES.iter().map(|f| corpus.join(f)).collect();
    // Slow mock documents stretch the run over several seconds, so the
    // driver records a real time series (a sample every 3 s) and the
    // scaler has time to decide.
    let slow = env.path("slow");
    for i in 0..8 {
        mockdoc(&slow, &format!("slow{i}"), "sleep_ms 1000\npages 2\n");
    }
    // A broken PDF, made here: a header and nothing a reader can use.
    let broken = slow.join("broken.pdf");
    std::fs::write(
        &broken,
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nnot a pdf body\n%%EOF\n",
    )
    .unwrap();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"index",
        &"--quiet",
        &"--allow-mock-docs",
        &"--min-workers",
        &"1",
        &"--max-workers",
        &"2",
        &"--scale-interval",
        &"500ms",
        &"--min-free",
        &"64M",
        &slow,
    ];
    args.extend(paths.iter().map(|p| p as &dyn AsRef<std::ffi::OsStr>));
    // The protected PDF fails, so the run ends with "some failed".
    env.run(&args).assert_code(1);

    let run = {
        let catalog = SqliteStore::open_existing(&env.db).unwrap();
        catalog
            .last_run()
            .unwrap()
            .expect("the index run is recorded")
    };
    let samples = SqliteStore::open_existing(&env.db)
        .unwrap()
        .samples(run)
        .unwrap();
    assert!(
        samples.len() >= 2,
        "the run recorded {} samples",
        samples.len()
    );

    let html = env.path("report.html");
    let r = env.run(&[&"report", &"--out", &html]);
    r.assert_code(0);
    let text = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing is loaded from elsewhere at view time.
    for needle in ["<script", "<link", "src=", "@import", "url("] {
        assert!(
            !text.contains(needle),
            "the report loads something: {needle}"
        );
    }
    assert!(text.contains("documents done"), "no summary table");
    assert!(
        text.contains("extract-failed"),
        "the protected PDF is not among the failures"
    );

    // What a browser makes of it.
    let dom_file = env.path("dom.html");
    browse(&env, &html, &["--dump-dom".to_string()], &dom_file);
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    let svgs: Vec<&str> = dom
        .split("<svg")
        .skip(1)
        .map(|s| s.split("</svg>").next().unwrap())
        .collect();
    assert_eq!(svgs.len(), CHARTS, "charts in the page as Chromium sees it");
    for (i, svg) in svgs.iter().enumerate() {
        let drawn = svg.matches("<rect").count()
            + svg.matches("<path").count()
            + svg.matches("<polyline").count();
        assert!(drawn >= 3, "chart {i} has nothing drawn: {svg}");
        assert!(svg.contains("<text"), "chart {i} has no text");
    }
    // The four time charts have data lines (2 px wide, the axes are 1 px);
    // the two bar charts have bars beyond their background and frame.
    let data_line = |svg: &str| {
        svg.split("<polyline").skip(1).any(|tag| {
            tag.split('>')
                .next()
                .unwrap()
                .contains("stroke-width=\"2\"")
        })
    };
    let lines = svgs.iter().filter(|s| data_line(s)).count();
    assert_eq!(lines, 4, "line charts with a line");
    for (i, svg) in svgs[4..].iter().enumerate() {
        // An empty bar chart is a background, a frame and a note.
        assert!(
            !svg.contains("no document was done") && !svg.contains("no document failed"),
            "bar chart {} is empty",
            i + 4
        );
        assert!(
            svg.matches("<rect").count() >= 2,
            "bar chart {} has no bars",
            i + 4
        );
    }
    // The header names the machine and the library, not an owner id.
    let host = nix_hostname();
    assert!(
        dom.contains(&format!("docmill run {run} on {host}")),
        "no header naming {host}"
    );
    assert!(dom.contains(&format!("<code>{}</code>", slow.display())));
    // The failed files, one row each with a reason: the generated broken
    // PDF and the protected one, and nothing else.
    let failed = table_rows(&dom, "failed-files");
    // Rows go by full path, and the two files sit in different folders
    // (the corpus and the test's own), so their order depends on where the
    // corpus lives: compare the names as a set.
    let mut names: Vec<&str> = failed.iter().map(|r| r[0].as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["broken.pdf", "pypdf-005-libreoffice-writer-password.pdf"],
        "{failed:?}"
    );
    for row in &failed {
        assert_eq!(row.len(), 4, "{row:?}");
        assert!(
            ["failed", "quarantined"].contains(&row[1].as_str()),
            "{row:?}"
        );
        assert!(row[3].len() > 3 && !row[3].contains('\n'), "{row:?}");
    }
    let protected = failed
        .iter()
        .find(|r| r[0] == "pypdf-005-libreoffice-writer-password.pdf")
        .unwrap();
    assert!(protected[3].contains("password"), "{failed:?}");
    let broken_row = failed.iter().find(|r| r[0] == "broken.pdf").unwrap();
    assert!(broken_row[3].contains("not a readable PDF"), "{failed:?}");
    // The slowest documents: every document of the run (fewer than 20),
    // slowest first, with engine, pages and time; the slow mock documents
    // (a second each) are there with their two pages.
    let slowest = table_rows(&dom, "slowest-documents");
    assert_eq!(slowest.len(), FILES.len() + 8 + 1, "{slowest:?}");
    let seconds: Vec<f64> = slowest
        .iter()
        .map(|r| r[3].trim_end_matches(" s").parse().unwrap())
        .collect();
    assert!(seconds.windows(2).all(|w| w[0] >= w[1]), "{slowest:?}");
    for i in 0..8 {
        let row = slowest
            .iter()
            .find(|r| r[0] == format!("slow{i}.mockdoc"))
            .unwrap_or_else(|| panic!("slow{i} missing: {slowest:?}"));
        assert_eq!(row[2], "2", "{row:?}");
        assert!(row[3].trim_end_matches(" s").parse::<f64>().unwrap() >= 1.0);
        assert_ne!(row[1], "-", "{row:?}");
    }
    // Options read as a person writes them.
    assert!(
        !dom.contains("\"secs\"") && !dom.contains("nanos"),
        "raw durations"
    );
    assert!(dom.contains("<th>grace</th><td class=\"text\">10s</td>"));
    // A scaling decision recorded by the run is marked on the workers chart.
    if samples.iter().any(|s| s.decision.is_some()) {
        assert!(svgs[0].contains("<circle"), "no decision marked");
    }

    let png = env.path("report.png");
    browse(
        &env,
        &html,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1000,2400".to_string(),
            "--hide-scrollbars".to_string(),
        ],
        &env.path("screenshot.out"),
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "the screenshot is {size} bytes: blank?");
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    // To look at them: DOCMILL_KEEP_REPORT=folder.
    if let Some(dir) = std::env::var_os("DOCMILL_KEEP_REPORT") {
        let dir = PathBuf::from(dir);
        std::fs::copy(&html, dir.join("report.html")).unwrap();
        std::fs::copy(&png, dir.join("report.png")).unwrap();
    }
    env.assert_no_leftovers();
}

/// The text of each body row's cells of the table with `id`, as the
/// browser wrote the page out.
fn table_rows(dom: &str, id: &str) -> Vec<Vec<String>> {
    let start = dom
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id}"));
    let table = &dom[start..];
    let table = &table[..table.find("</table>").unwrap()];
    let body = table.split("</thead>").nth(1).unwrap_or(table);
    body.split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let inner = &td[td.find('>').unwrap() + 1..];
                    let inner = &inner[..inner.find("</td>").unwrap()];
                    inner
                        .replace("&amp;", "&")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                })
                .collect()
        })
        .collect()
}

fn nix_hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

#[test]
fn report_needs_a_run() {
    let env = Env::new();
    let out = env.path("r.html");
    // No database at all.
    env.run(&[&"report", &"--out", &out]).assert_code(2);
    // A database without runs, and a run that is not there.
    drop(SqliteStore::open(&env.db).unwrap());
    let r = env.run(&[&"report", &"--out", &out]);
    r.assert_code(2);
    assert!(r.stderr().contains("no runs"), "{}", r.dump());
    let r = env.run(&[&"report", &"--run", &"42", &"--out", &out]);
    r.assert_code(2);
    assert!(r.stderr().contains("no run 42"), "{}", r.dump());
    assert!(!out.exists());
}

/// While a run goes on: the stats file is there, whole, in the documented
/// shape; `status` reads the live state beside the writer; the run ends
/// with the summary table and a final stats file.
#[test]
fn live_status_and_stats_file() {
    let env = Env::new();
    let lib = env.path("lib");
    // Eleven documents finish; the twelfth holds the run open until the
    // test has seen it live, however slowly a loaded machine gets there.
    let release = env.path("release");
    for i in 0..11 {
        mockdoc(&lib, &format!("m{i:02}"), "sleep_ms 100\npages 3\n");
    }
    mockdoc(
        &lib,
        "m11",
        &format!("wait_for {}\npages 3\n", release.display()),
    );
    let stats = env.path("stats.json");
    let mut child = env.spawn(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"2",
        &"--progress",
        &"plain",
        &"--log-interval",
        &"1s",
        &"--stats",
        &stats,
        &"--timeout",
        &"600s",
        &"--page-timeout",
        &"600s",
    ]);
    let read_stats = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&stats).ok()?).ok()
    };
    // Every read of the file parses: it is replaced whole, never written in place.
    let seen = common::wait_until(std::time::Duration::from_secs(30), || {
        // Rates are null until there is a window to measure them over.
        read_stats().is_some_and(|v| v["performance"]["docs_per_min"].is_number())
    });
    assert!(seen, "no stats file during the run");
    let v = read_stats().unwrap();
    for key in ["workers", "performance", "resources"] {
        assert!(v[key].is_object(), "{key} missing: {v}");
    }
    for (group, key) in [
        ("workers", "active"),
        ("workers", "idle"),
        ("workers", "efficiency"),
        ("performance", "docs_per_min"),
        ("performance", "pages_per_min"),
        ("resources", "cpu_percent"),
        ("resources", "memory_gb"),
        ("resources", "fd_usage"),
    ] {
        assert!(v[group][key].is_number(), "{group}.{key} missing: {v}");
    }
    // `status` beside the running index sees work in progress.
    let live = common::wait_until(std::time::Duration::from_secs(30), || {
        let st = env.status();
        st["documents"]["running"].as_u64().unwrap_or(0) > 0
            && st["documents"]["done"].as_u64().unwrap_or(0) > 0
    });
    assert!(live, "status never showed the live run");
    std::fs::write(&release, b"").unwrap();
    let out = {
        let status = wait_child(&mut child, std::time::Duration::from_secs(60));
        assert_eq!(status.code(), Some(0));
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        err
    };
    assert!(out.contains("peak memory"), "no summary table:\n{out}");
    assert!(out.contains("pages/min"), "{out}");
    let last = read_stats().unwrap();
    assert_eq!(last["finished"], true, "{last}");
    assert_eq!(last["totals"]["docs_done"], 12, "{last}");
    env.assert_no_leftovers();
}

/// A document that hangs is named in the stats file's list of running
/// jobs, its elapsed time rising and its worker's memory read, until its
/// deadline kills it; the final stats file lists nothing running.
#[test]
fn a_hanging_document_is_named_while_it_runs() {
    let env = Env::new();
    let lib = env.path("lib");
    mockdoc(&lib, "stuck", "hang\n");
    let stats = env.path("stats.json");
    let mut child = env.spawn(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"1",
        &"--quiet",
        &"--timeout",
        &"8s",
        &"--max-attempts",
        &"1",
        &"--stats",
        &stats,
    ]);
    let read_stats = || -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(&stats).ok()?).ok()
    };
    let stuck = || -> Option<(f64, u64)> {
        let v = read_stats()?;
        let job = v["running"]
            .as_array()?
            .iter()
            .find(|j| {
                j["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("stuck.mockdoc"))
            })?
            .clone();
        Some((job["elapsed_s"].as_f64()?, job["rss_bytes"].as_u64()?))
    };
    let mut first = None;
    let named = common::wait_until(Duration::from_secs(30), || {
        first = stuck();
        first.is_some()
    });
    assert!(named, "the hanging document never showed as running");
    let (elapsed, _) = first.unwrap();
    let mut later = None;
    let rising = common::wait_until(Duration::from_secs(30), || {
        later = stuck().filter(|(e, rss)| *e > elapsed && *rss > 0);
        later.is_some()
    });
    assert!(
        rising,
        "its elapsed time did not rise past {elapsed} s with a memory reading: {:?}",
        read_stats()
    );
    let status = wait_child(&mut child, Duration::from_secs(60));
    // Killed at its deadline, for the first time: a new failure.
    assert_eq!(status.code(), Some(1));
    assert_eq!(env.attempts("stuck.mockdoc"), vec!["timed-out"]);
    let last = read_stats().unwrap();
    assert_eq!(last["finished"], true, "{last}");
    assert_eq!(last["running"], serde_json::json!([]), "{last}");
    env.assert_no_leftovers();
}
