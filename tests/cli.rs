//! The command line's conventions, each checked by running the real binary:
//! values refused before anything is touched, human sizes and durations,
//! completions and the man page, colour, quiet and verbose, closed pipes,
//! help and version, excluded files, and where the index lives.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{corpus, mockdoc, Env, Run, BIN};

/// docmill with a clean environment: no `DOCMILL_DB`, no colour settings,
/// a private data folder, and the test's tag for finding leftovers.
fn docmill(env: &Env, cwd: &Path, args: &[&dyn AsRef<OsStr>]) -> Command {
    let mut c = Command::new(BIN);
    for a in args {
        c.arg(a.as_ref());
    }
    c.current_dir(cwd)
        .env("DOCMILL_TEST_TAG", &env.tag)
        .env("XDG_DATA_HOME", env.path("data"))
        .env("HOME", env.path("home"))
        .env_remove("DOCMILL_DB")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Run {
    let args = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let out = c.output().expect("run docmill");
    Run { args, out }
}

/// A library of mock documents whose pages say "mock page N of NAME".
fn mock_library(env: &Env, names: &[&str]) -> PathBuf {
    let lib = env.path("lib");
    for n in names {
        mockdoc(&lib, n, "pages 2\n");
    }
    lib
}

fn index_mock(env: &Env, lib: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&dyn AsRef<OsStr>> =
        vec![&"index", &lib, &"--db", &env.db, &"--allow-mock-docs"];
    for e in extra {
        args.push(e);
    }
    run(docmill(env, env.dir.path(), &args))
}

#[test]
fn nonsensical_values_are_refused_before_anything_is_touched() {
    let env = Env::new();
    let lib = mock_library(&env, &["a"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--timeout", "0"],
            "'--timeout <DURATION>': must be at least 100ms",
        ),
        (&["--worker-mem", "1K"], "must be at least 64.0 MiB"),
        (&["--worker-fds", "0"], "must be between 16 and"),
        (&["--target-cpu", "500"], "between 1 and 100"),
        (&["--critical-cpu", "0"], "between 1 and 100"),
        (
            &["--target-cpu", "95"],
            "the critical level must be at least the target",
        ),
        (&["--memory-budget", "1K"], "need at least 256.0 MiB"),
        (
            &["--memory-budget", "1GiB", "--worker-mem", "1GiB"],
            "need at least 2.1 GiB",
        ),
        (
            &["--min-workers", "8", "--max-workers", "2"],
            "--min-workers 8 is more than --max-workers 2",
        ),
        (&["--workers", "0"], "0 is not in 1..=64"),
        (
            &["--workers", "2", "--max-workers", "3"],
            "cannot be used with",
        ),
        (&["--max-attempts", "0"], "0 is not in 1..=100"),
        (&["--heartbeat-timeout", "100ms"], "must be at least 500ms"),
        (&["--scale-interval", "0s"], "must be at least 100ms"),
        (&["--log-interval", "0s"], "must be at least 100ms"),
        (&["--massive-bytes", "0"], "must be more than 0"),
        (&["--epub-entry-cap", "0"], "must be more than 0"),
        (&["--epub-book-cap", "0"], "must be more than 0"),
        (&["--chunk-pages", "0"], "0 is not in 1.."),
        (&["--timeout", "5"], "time unit needed"),
        (&["--min-free", "lots"], "is not a size"),
        (&["--exclude", "[z-a]"], "'--exclude <GLOB>'"),
        (&["--profile", "fast"], "'--profile <PROFILE>'"),
    ];
    for (flags, message) in cases {
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"index", &lib, &"--db", &env.db];
        for f in *flags {
            args.push(f);
        }
        let r = run(docmill(&env, env.dir.path(), &args));
        r.assert_code(2);
        let stderr = r.stderr();
        assert!(
            stderr.contains(message),
            "{flags:?}: wanted {message:?}\n{}",
            r.dump()
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "not one line\n{}",
            r.dump()
        );
        assert!(stderr.starts_with("docmill: "), "{}", r.dump());
        assert!(!env.db.exists(), "{flags:?} created the database");
    }
    // Nor is the default index's folder made for a refused run.
    let r = run(docmill(
        &env,
        env.dir.path(),
        &[&"index", &lib, &"--timeout", &"0s"],
    ));
    r.assert_code(2);
    assert!(!env.path("data").exists(), "the data folder was created");
    let r = run(docmill(
        &env,
        env.dir.path(),
        &[&"search", &"x", &"--limit", &"0"],
    ));
    r.assert_code(2);
    assert!(r.stderr().contains("0 is not in 1..=10000"), "{}", r.dump());
    env.assert_no_leftovers();
}

/// The floors in the refusals are enough: a worker at the smallest memory
/// and descriptor limits docmill accepts extracts a small corpus PDF with
/// every engine installed here.
#[test]
fn the_smallest_accepted_worker_limits_work() {
    let env = Env::new();
    let pdf = corpus().join("pdf/pypdf-004-pdflatex-4-pages.pdf");
    let listing = run(docmill(&env, env.dir.path(), &[&"engines", &"--json"]));
    listing.assert_code(0);
    let listing: serde_json::Value = serde_json::from_slice(&listing.out.stdout).unwrap();
    let engines: Vec<String> = listing["engines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["available"] == true)
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert!(engines.contains(&"builtin".to_string()));
    for engine in &engines {
        let db = env.path(&format!("{engine}.db"));
        let r = run(docmill(
            &env,
            env.dir.path(),
            &[
                &"index",
                &pdf,
                &"--db",
                &db,
                &"--workers",
                &"1",
                &"--pdf-engine",
                engine,
                &"--worker-mem",
                &"64MiB",
                &"--worker-fds",
                &"16",
                &"--max-attempts",
                &"1",
                &"--timeout",
                &"30s",
                &"-q",
            ],
        ));
        r.assert_code(0);
    }
    env.assert_no_leftovers();
}

#[test]
fn sizes_and_durations_take_human_forms() {
    let env = Env::new();
    let lib = mock_library(&env, &["a"]);
    index_mock(
        &env,
        &lib,
        &[
            "--timeout",
            "1h30m",
            "--heartbeat-timeout",
            "1m 30s",
            "--min-free",
            "2GB",
            "--memory-budget",
            "2GiB",
            "--worker-mem",
            "512MiB",
            "-q",
        ],
    )
    .assert_code(0);
    let options: String = env
        .sql()
        .query_row("SELECT options FROM runs", [], |r| r.get(0))
        .unwrap();
    let o: serde_json::Value = serde_json::from_str(&options).unwrap();
    assert_eq!(o["scale"]["min_free"], 2_000_000_000u64, "{o}");
    assert_eq!(o["scale"]["budget"], 2u64 << 30, "{o}");
    assert_eq!(o["worker_mem"], 512u64 << 20, "{o}");
    assert_eq!(o["heartbeat_timeout"]["secs"], 90, "{o}");
    env.assert_no_leftovers();
}

#[test]
fn completions_and_man_pages_come_from_the_definitions() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run(docmill(&env, env.dir.path(), &[&"completions", &shell]));
        r.assert_code(0);
        let script = r.stdout();
        for word in [
            "index",
            "search",
            "export",
            "worker-mem",
            "exclude",
            "color",
        ] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let r = run(docmill(&env, env.dir.path(), &[&"man"]));
    r.assert_code(0);
    let page = r.stdout();
    assert!(
        page.starts_with(".ie") || page.contains(".TH docmill"),
        "{page}"
    );
    for word in [
        "index",
        "search",
        "status",
        "export",
        "report",
        "completions",
    ] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
    let r = run(docmill(&env, env.dir.path(), &[&"man", &"index"]));
    r.assert_code(0);
    let page = r.stdout();
    assert!(page.contains(".TH docmill-index"), "{page}");
    assert!(page.contains(r"\-\-worker\-mem"), "{page}");
    assert!(page.contains(r"\-\-exclude"), "{page}");
    let r = run(docmill(&env, env.dir.path(), &[&"man", &"nonsense"]));
    r.assert_code(2);
}

#[test]
fn colour_follows_the_flag_and_the_environment() {
    let env = Env::new();
    let lib = mock_library(&env, &["alpha"]);
    index_mock(&env, &lib, &["-q"]).assert_code(0);
    let search = |extra: &[&str], vars: &[(&str, &str)]| {
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"search", &"mock", &"--db", &env.db];
        for e in extra {
            args.push(e);
        }
        let mut c = docmill(&env, env.dir.path(), &args);
        for (k, v) in vars {
            c.env(k, v);
        }
        let r = run(c);
        r.assert_code(0);
        assert!(r.stdout().contains("alpha.mockdoc"), "{}", r.dump());
        r.stdout()
    };
    let escape = "\x1b[";
    assert!(search(&["--color", "always"], &[]).contains(escape));
    assert!(search(&[], &[("CLICOLOR_FORCE", "1")]).contains(escape));
    // An explicit flag wins over the environment.
    assert!(search(&["--color", "always"], &[("NO_COLOR", "1")]).contains(escape));
    for plain in [
        search(&[], &[]),
        search(&["--color", "never"], &[]),
        search(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]),
        search(&[], &[("NO_COLOR", "1")]),
    ] {
        assert!(!plain.contains(escape), "{plain:?}");
        // Without colour the hits are still marked.
        assert!(plain.contains("»mock«"), "{plain:?}");
    }
    env.assert_no_leftovers();
}

#[test]
fn quiet_prints_only_the_summary_and_verbose_more() {
    let env = Env::new();
    let lib = mock_library(&env, &["a", "b"]);
    let r = index_mock(
        &env,
        &lib,
        &["-q", "--progress", "plain", "--log-interval", "100ms"],
    );
    r.assert_code(0);
    let stderr = r.stderr();
    assert!(
        stderr.starts_with("docmill: run 1 finished (exit 0)\n"),
        "{}",
        r.dump()
    );
    assert!(stderr.contains("  done "), "{}", r.dump());
    assert!(!stderr.contains(" new, "), "{}", r.dump());
    assert!(r.stdout().is_empty(), "{}", r.dump());

    std::fs::write(lib.join("a.mockdoc"), "pages 3\n").unwrap();
    let r = index_mock(&env, &lib, &["-q", "-v"]);
    r.assert_code(0);
    assert!(
        r.stderr().contains("INFO"),
        "-v shows no info lines\n{}",
        r.dump()
    );
    let r = index_mock(&env, &lib, &["-q"]);
    assert!(!r.stderr().contains("INFO"), "{}", r.dump());
    env.assert_no_leftovers();
}

/// A reader that went away (`docmill export | head -1`) ends the command
/// quietly and successfully. The pipe's reading end is closed before
/// docmill starts, so every write meets a closed pipe.
#[test]
fn a_closed_pipe_ends_quietly() {
    let env = Env::new();
    let names: Vec<String> = (0..40).map(|i| format!("doc{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let lib = mock_library(&env, &refs);
    index_mock(&env, &lib, &["-q"]).assert_code(0);
    let db = env.db.to_string_lossy().into_owned();
    let commands: &[&[&str]] = &[
        &["export", "--db", &db],
        &["search", "mock", "--limit", "100", "--db", &db],
        &["status", "--db", &db],
        &["status", "--json", "--db", &db],
        &["engines"],
        &["completions", "bash"],
        &["man"],
        &["index", "--help"],
    ];
    for args in commands {
        let (reader, writer) = closed_pipe();
        drop(reader);
        let refs: Vec<&dyn AsRef<OsStr>> = args.iter().map(|a| a as &dyn AsRef<OsStr>).collect();
        let mut c = docmill(&env, env.dir.path(), &refs);
        c.stdout(writer);
        let r = run(c);
        r.assert_code(0);
        assert!(r.stderr().is_empty(), "{args:?} complained\n{}", r.dump());
    }
    env.assert_no_leftovers();
}

/// A pipe as two files, made with pipe(2).
fn closed_pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array, which the
    // files below then own.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn help_groups_flags_and_its_examples_work_on_the_sample_library() {
    let env = Env::new();
    let help = run(docmill(&env, env.dir.path(), &[&"index", &"--help"]));
    help.assert_code(0);
    let text = help.stdout();
    for heading in [
        "Scaling:",
        "Limits:",
        "Engines:",
        "Scheduling:",
        "Discovery:",
        "Output:",
    ] {
        assert!(text.contains(heading), "no {heading}\n{text}");
    }
    assert!(
        !text.contains("allow-mock-docs"),
        "a test-only flag is shown"
    );
    assert!(text.contains("Examples:"), "{text}");

    // The same spelling for the same idea; the old one still works.
    let report = run(docmill(&env, env.dir.path(), &[&"report", &"--help"])).stdout();
    assert!(report.contains("-o, --output <FILE>"), "{report}");
    let r = run(docmill(
        &env,
        env.dir.path(),
        &[&"report", &"--db", &env.db, &"--out", &env.path("r.html")],
    ));
    assert!(!r.stderr().contains("unexpected argument"), "{}", r.dump());
    // engines reads no index, so it has no --db.
    let engines = run(docmill(&env, env.dir.path(), &[&"engines", &"--help"])).stdout();
    assert!(!engines.contains("--db"), "{engines}");
    run(docmill(
        &env,
        env.dir.path(),
        &[&"engines", &"--db", &env.db],
    ))
    .assert_code(2);
    run(docmill(
        &env,
        env.dir.path(),
        &[&"--db", &env.db, &"engines"],
    ))
    .assert_code(2);

    let version = run(docmill(&env, env.dir.path(), &[&"--version"]));
    version.assert_code(0);
    let v = version.stdout();
    assert!(
        v.starts_with(&format!("docmill {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("mupdf-inproc") && v.contains("features:"), "{v}");

    // The search examples of the top-level help find something in the
    // sample library: index the documents they are about, then run each.
    let top = run(docmill(&env, env.dir.path(), &[&"--help"])).stdout();
    let examples: Vec<Vec<String>> = top
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("docmill search "))
        .map(|rest| shell_words(rest.split("   ").next().unwrap()))
        .collect();
    assert!(examples.len() >= 2, "{top}");
    let c = corpus();
    run(docmill(
        &env,
        env.dir.path(),
        &[
            &"index",
            &c.join("pdf/pdfjs-tracemonkey.pdf"),
            &c.join("epub/idpf-moby-dick.epub"),
            &"--db",
            &env.db,
            &"-q",
        ],
    ))
    .assert_code(0);
    for words in examples {
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"search", &"--db", &env.db];
        for w in &words {
            args.push(w);
        }
        let r = run(docmill(&env, env.dir.path(), &args));
        r.assert_code(0);
        assert!(
            !r.stdout().is_empty(),
            "the help's example finds nothing\n{}",
            r.dump()
        );
    }
    env.assert_no_leftovers();
}

/// Words as a shell splits them, for the simple quoting the examples use.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for ch in s.trim().chars() {
        match (quote, ch) {
            (None, '\'' | '"') => quote = Some(ch),
            (Some(q), _) if ch == q => quote = None,
            (None, ' ') if !cur.is_empty() => words.push(std::mem::take(&mut cur)),
            (None, ' ') => {}
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[test]
fn excluded_and_ignored_files_are_not_catalogued() {
    let env = Env::new();
    let lib = mock_library(&env, &["keep", "skip-me", "old-one"]);
    mockdoc(&lib.join("drafts"), "draft", "pages 1\n");
    mockdoc(&lib.join("notes"), "kept-note", "pages 1\n");
    mockdoc(&lib.join("notes"), "scratch", "pages 1\n");
    std::fs::write(lib.join(".docmillignore"), "drafts/\n").unwrap();
    std::fs::write(lib.join("notes/.ignore"), "scratch.*\n").unwrap();
    index_mock(
        &env,
        &lib,
        &["--exclude", "skip-*", "--exclude", "old-*", "-q"],
    )
    .assert_code(0);
    let mut paths: Vec<String> = env
        .sql()
        .prepare("SELECT display_path FROM documents ORDER BY display_path")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| p.unwrap().rsplit('/').next().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["keep.mockdoc", "kept-note.mockdoc"]);
    let export = String::from_utf8(
        run(docmill(
            &env,
            env.dir.path(),
            &[&"export", &"--db", &env.db],
        ))
        .out
        .stdout,
    )
    .unwrap();
    assert!(
        !export.contains("draft") && !export.contains("scratch"),
        "{export}"
    );
    env.assert_no_leftovers();
}

/// With no --db, the index is the user's, in the data folder: made by the
/// first `index` and found by `search` from any folder. --db and
/// DOCMILL_DB name another.
#[test]
fn the_default_index_is_found_from_any_folder() {
    let env = Env::new();
    let lib = mock_library(&env, &["alpha"]);
    let here = env.path("here");
    let elsewhere = env.path("elsewhere");
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let r = run(docmill(
        &env,
        &here,
        &[&"index", &lib, &"--allow-mock-docs", &"-q"],
    ));
    r.assert_code(0);
    assert!(
        env.path("data/docmill/docmill.db").is_file(),
        "{}",
        r.dump()
    );
    assert!(!here.join("docmill.db").exists());
    let r = run(docmill(&env, &elsewhere, &[&"search", &"mock"]));
    r.assert_code(0);
    assert!(r.stdout().contains("alpha.mockdoc"), "{}", r.dump());

    // DOCMILL_DB, then --db before the subcommand, then --db after it.
    let other = env.path("other.db");
    let mut c = docmill(&env, &elsewhere, &[&"status"]);
    c.env("DOCMILL_DB", &other);
    let r = run(c);
    r.assert_code(2);
    assert!(r.stderr().contains("other.db"), "{}", r.dump());
    let default = env.path("data/docmill/docmill.db");
    let mut c = docmill(&env, &elsewhere, &[&"--db", &default, &"status"]);
    c.env("DOCMILL_DB", &other);
    run(c).assert_code(0);
    let mut c = docmill(
        &env,
        &elsewhere,
        &[&"--db", &other, &"status", &"--db", &default],
    );
    c.env("DOCMILL_DB", &other);
    run(c).assert_code(0);

    // An index left in the current folder (where they were made before)
    // is named when the default is missing, not silently passed over.
    let fresh = Env::new();
    let old = fresh.path("old");
    std::fs::create_dir_all(&old).unwrap();
    let r = run(docmill(
        &fresh,
        fresh.dir.path(),
        &[
            &"index",
            &lib,
            &"--allow-mock-docs",
            &"-q",
            &"--db",
            &old.join("docmill.db"),
        ],
    ));
    r.assert_code(0);
    let r = run(docmill(&fresh, &old, &[&"search", &"mock"]));
    r.assert_code(2);
    assert!(r.stderr().contains("pass --db docmill.db"), "{}", r.dump());
    env.assert_no_leftovers();
    fresh.assert_no_leftovers();
}

/// The exit status a cron job or a monitor sees: 1 when a document fails
/// for the first time, 0 on the unchanged runs after it (so an alert
/// clears), and 1 on every run with `--strict` while a failed document is
/// there. The summary's failure counts agree with each other and with
/// `docmill status`.
#[test]
fn only_new_failures_fail_the_run_unless_strict() {
    let env = Env::new();
    let lib = env.path("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(
        corpus().join("pdf/pypdf-004-pdflatex-4-pages.pdf"),
        lib.join("good.pdf"),
    )
    .unwrap();
    // A PDF header and nothing a PDF reader can use.
    std::fs::write(
        lib.join("broken.pdf"),
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nnot a pdf body\n%%EOF\n",
    )
    .unwrap();
    let index = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<OsStr>> =
            vec![&"index", &lib, &"--db", &env.db, &"--quiet", &"--json"];
        for e in extra {
            args.push(e);
        }
        run(docmill(&env, env.dir.path(), &args))
    };
    let summary = |r: &Run| -> serde_json::Value {
        serde_json::from_str(r.stdout().trim())
            .unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{}", r.dump()))
    };

    let first = index(&[]);
    first.assert_code(1);
    let s = summary(&first);
    assert_eq!(s["failures"]["new"], 1, "{s}");
    assert_eq!(s["failed_documents"], 1, "{s}");
    // The summary's rows, its last line and `status` tell the same count.
    let st = env.status();
    let failed_in_status: u64 = ["failed", "quarantined", "partial"]
        .iter()
        .map(|k| st["documents"][*k].as_u64().unwrap_or(0))
        .sum();
    let f = &s["failures"];
    let rows = f["failed"].as_u64().unwrap()
        + f["quarantined"].as_u64().unwrap()
        + f["partial"].as_u64().unwrap();
    assert_eq!(rows, failed_in_status, "{s}\n{st}");
    assert_eq!(s["failed_documents"].as_u64(), Some(failed_in_status));
    let text = first.stderr();
    assert!(
        text.contains("  1 document failed, partly failed or was quarantined, 1 of them new"),
        "{}",
        first.dump()
    );
    assert!(
        text.contains(&format!("  failed           {}\n", f["failed"])),
        "{}",
        first.dump()
    );

    // Nothing changed: the old failure does not fail the run again.
    let second = index(&[]);
    second.assert_code(0);
    assert_eq!(summary(&second)["failures"]["new"], 0);
    assert_eq!(summary(&second)["failed_documents"], 1);
    // Unless asked to.
    let strict = index(&["--strict"]);
    strict.assert_code(1);
    assert!(strict.stderr().contains("--strict counts them all"));
    // `runs` shows the exit status each run had.
    let r = run(docmill(
        &env,
        env.dir.path(),
        &[&"runs", &"--db", &env.db, &"--json"],
    ));
    r.assert_code(0);
    let codes: Vec<i64> = r
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["exit_code"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(codes, vec![1, 0, 1], "{}", r.dump());
    env.assert_no_leftovers();
}
