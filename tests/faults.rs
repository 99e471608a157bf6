//! Crash tolerance, proven with injected faults: every fault class ends in
//! its own outcome with exact attempt counts, good documents are never lost,
//! and killed supervisors, killed workers and signals leave an index that is
//! byte-identical to an uninterrupted run.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;

/// Flags that keep fault tests fast: short deadlines, small limits.
const FAST: &[&str] = &[
    "--allow-mock-docs",
    "--quiet",
    "--timeout",
    "1s",
    "--heartbeat-timeout",
    "2s",
    "--worker-mem",
    "512M",
    "--worker-fds",
    "64",
];

#[expect(
    clippy::ptr_arg,
    reason = "the path is borrowed into a list of trait objects, which needs a sized referent"
)]
fn index_args<'a>(
    lib: &'a std::path::PathBuf,
    extra: &'a [&'a str],
) -> Vec<&'a dyn AsRef<std::ffi::OsStr>> {
    let mut v: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"index", lib];
    for a in FAST.iter().chain(extra) {
        v.push(a);
    }
    v
}

/// (status, attempts) of every document, keyed by file name.
fn fates_of(env: &Env) -> BTreeMap<String, (String, u32)> {
    let conn = env.sql();
    let mut stmt = conn
        .prepare("SELECT display_path, status, attempts FROM documents")
        .unwrap();
    stmt.query_map([], |r| {
        let p: String = r.get(0)?;
        Ok((
            p.rsplit('/').next().unwrap().to_string(),
            (r.get(1)?, r.get::<_, i64>(2)? as u32),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn outcome_of(env: &Env, name: &str) -> String {
    env.sql()
        .query_row(
            "SELECT coalesce(outcome, '') FROM documents WHERE display_path LIKE '%/' || ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn every_fault_class_ends_in_its_outcome() {
    let env = Env::new();
    let lib = env.path("lib");
    let scenarios: &[(&str, &str, &str, &str, u32)] = &[
        // name, script, status, outcome, attempts
        ("hang", "hang\n", "quarantined", "timed-out", 2),
        ("alloc", "alloc_mb 4096\n", "quarantined", "memory-limit", 2),
        ("fdleak", "leak_fds 1000\n", "quarantined", "fd-limit", 2),
        ("panic", "panic\n", "failed", "extract-failed", 1),
        ("abort", "abort\n", "quarantined", "crashed", 2),
        ("segfault", "segfault\n", "quarantined", "crashed", 2),
        ("exit3", "exit 3\n", "quarantined", "crashed", 2),
        (
            "garbage",
            "stdout_garbage 2000000\npages 2\n",
            "done",
            "done",
            0,
        ),
        (
            "flaky",
            "on_attempt 1\nexit 3\non_attempt 2\npages 2\n",
            "done",
            "done",
            1,
        ),
        ("good1", "pages 3\n", "done", "done", 0),
        ("good2", "sleep_ms 20\npages 1\n", "done", "done", 0),
    ];
    for (name, script, ..) in scenarios {
        mockdoc(&lib, name, script);
    }
    std::fs::copy(
        corpus().join("pdf/pypdf-004-pdflatex-4-pages.pdf"),
        lib.join("real.pdf"),
    )
    .unwrap();

    let r = env.run(&index_args(
        &lib,
        &["--max-attempts", "2", "--workers", "2"],
    ));
    r.assert_code(1);
    env.assert_no_leftovers();
    let fates = fates_of(&env);
    for (name, _, status, outcome, attempts) in scenarios {
        let file = format!("{name}.mockdoc");
        assert_eq!(
            fates[&file],
            (status.to_string(), *attempts),
            "{file}: {}\n{}",
            outcome_of(&env, &file),
            r.dump()
        );
        assert_eq!(outcome_of(&env, &file), *outcome, "{file}");
    }
    assert_eq!(fates["real.pdf"], ("done".to_string(), 0));
    // Reasons say what happened, on one line.
    let st = env.status();
    let reason = |n: &str| {
        st["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(n))
            .map(|f| f["reason"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(reason("segfault.mockdoc").contains("SIGSEGV"), "{st}");
    assert!(reason("abort.mockdoc").contains("SIGABRT"), "{st}");
    assert!(reason("exit3.mockdoc").contains("code 3"), "{st}");
    assert!(reason("panic.mockdoc").contains("mock panic"), "{st}");
    assert!(reason("hang.mockdoc").contains("deadline"), "{st}");
    assert!(reason("alloc.mockdoc").contains("limit"), "{st}");

    // The memory-limit retry ran alone: no other attempt overlaps it.
    let conn = env.sql();
    let (start, end): (i64, i64) = conn
        .query_row(
            "SELECT a.started_ms, a.ended_ms FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE d.display_path LIKE '%/alloc.mockdoc' AND a.attempt = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let beside: i64 = conn
        .query_row(
            "SELECT count(*) FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE d.display_path NOT LIKE '%/alloc.mockdoc' AND a.started_ms < ?2 AND a.ended_ms > ?1",
            [start, end],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(beside, 0, "another job ran beside the memory-limit retry");

    // Quarantined documents are not retried by the next run...
    let again = env.run(&index_args(&lib, &["--json", "--max-attempts", "2"]));
    let summary: serde_json::Value = serde_json::from_str(again.stdout().trim()).unwrap();
    assert_eq!(summary["totals"]["quarantined"], 0, "{}", again.dump());
    assert_eq!(summary["totals"]["done"], 0, "{}", again.dump());
    // ...unless asked.
    let retry = env.run(&index_args(
        &lib,
        &["--json", "--max-attempts", "2", "--retry-quarantined"],
    ));
    let summary: serde_json::Value = serde_json::from_str(retry.stdout().trim()).unwrap();
    assert_eq!(summary["totals"]["quarantined"], 6, "{}", retry.dump());
    env.assert_no_leftovers();
}

/// A small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How a chaos document must end.
struct Fate {
    status: &'static str,
    /// Counted attempts, where the script fixes them (a chunked document's
    /// are its chunks' business and checked against the reference run).
    attempts: Option<u32>,
    /// Pages 1..=n exported, where the script fixes them.
    pages: Option<u32>,
}

impl Fate {
    fn new(status: &'static str, attempts: u32) -> Fate {
        Fate {
            status,
            attempts: Some(attempts),
            pages: None,
        }
    }

    fn done(attempts: u32, pages: u64) -> Fate {
        Fate {
            pages: Some(pages as u32),
            ..Fate::new("done", attempts)
        }
    }

    fn chunked(status: &'static str) -> Fate {
        Fate {
            status,
            attempts: None,
            pages: None,
        }
    }
}

/// The chaos library's fault classes, as (weight out of 200, class): one
/// document in five carries a fault, every class the mock documents offer,
/// each alone or on the first attempt only. Hangs are rarer because a
/// quarantined one waits out three deadlines (the second one doubled).
const FAULTS: &[(u64, &str)] = &[
    (3, "panic"),
    (3, "segfault"),
    (3, "abort"),
    (3, "exit"),
    (1, "hang"),
    (2, "alloc"),
    (2, "fdleak"),
    (2, "fail-pages"),
    (2, "pages-then-crash"),
    (3, "garbage"),
    (2, "flaky-segfault"),
    (2, "flaky-exit"),
    (1, "flaky-abort"),
    (1, "flaky-hang"),
    (2, "flaky-alloc"),
    (2, "flaky-fdleak"),
    (2, "flaky-pages-then-crash"),
    (1, "long"),
    (1, "long-partial"),
    (2, "long-crashy"),
];

/// The script and fate of chaos document `i`, drawn from `rng`: the first
/// ones take each class in turn, so that every class is there whatever the
/// seed.
fn chaos_doc(i: usize, rng: &mut Rng) -> (String, Fate) {
    let n = 1 + rng.below(4);
    let mut roll = rng.below(200);
    let class = match FAULTS.get(i) {
        Some((_, c)) => *c,
        None => FAULTS
            .iter()
            .find(|(w, _)| {
                let hit = roll < *w;
                roll = roll.saturating_sub(*w);
                hit
            })
            .map_or("good", |(_, c)| *c),
    };
    let then_ok = |first: &str| format!("on_attempt 1\n{first}on_attempt 2\npages {n}\n");
    match class {
        "panic" => ("panic\n".into(), Fate::new("failed", 1)),
        "segfault" => ("segfault\n".into(), Fate::new("quarantined", 2)),
        "abort" => ("abort\n".into(), Fate::new("quarantined", 2)),
        "exit" => (
            format!("exit {}\n", 1 + rng.below(100)),
            Fate::new("quarantined", 2),
        ),
        "hang" => ("hang\n".into(), Fate::new("quarantined", 2)),
        "alloc" => ("alloc_mb 4096\n".into(), Fate::new("quarantined", 2)),
        "fdleak" => ("leak_fds 1000\n".into(), Fate::new("quarantined", 2)),
        "fail-pages" => (
            format!("pages {n}\nfail_pages 1-1\n"),
            Fate::new("failed", 1),
        ),
        // Pages streamed by an attempt that then crashes are never stored.
        "pages-then-crash" => (
            format!("pages {n}\nsegfault\n"),
            Fate::new("quarantined", 2),
        ),
        "garbage" => (
            format!("stdout_garbage 50000\npages {n}\n"),
            Fate::done(0, n),
        ),
        "flaky-segfault" => (then_ok("segfault\n"), Fate::done(1, n)),
        "flaky-exit" => (then_ok("exit 7\n"), Fate::done(1, n)),
        "flaky-abort" => (then_ok("abort\n"), Fate::done(1, n)),
        "flaky-hang" => (then_ok("hang\n"), Fate::done(1, n)),
        "flaky-alloc" => (then_ok("alloc_mb 4096\n"), Fate::done(1, n)),
        "flaky-fdleak" => (then_ok("leak_fds 1000\n"), Fate::done(1, n)),
        "flaky-pages-then-crash" => (
            format!("on_attempt 1\npages {n}\nsegfault\non_attempt 2\npages {n}\n"),
            Fate::done(1, n),
        ),
        // Long enough to be shared as one chunk per worker.
        "long" => ("pages 300\n".into(), Fate::chunked("done")),
        "long-partial" => (
            "pages 300\nfail_pages 120-120\n".into(),
            Fate::chunked("partial"),
        ),
        "long-crashy" => (
            "pages 300\non_attempt 1\nsegfault\non_attempt 2\n".into(),
            Fate::chunked("done"),
        ),
        _ if rng.below(8) == 0 => (
            format!("kind epub\nsleep_ms {}\npages {n}\n", rng.below(5)),
            Fate::done(0, n),
        ),
        _ => (
            format!("sleep_ms {}\npages {n}\n", rng.below(5)),
            Fate::done(0, n),
        ),
    }
}

/// Documents that reached a final state, for pacing the kills.
fn settled(env: &Env) -> i64 {
    if !env.db.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(&env.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM documents
                 WHERE status IN ('done', 'failed', 'quarantined', 'partial')",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

/// The exported pages as (file name, page) -> text; a page exported twice
/// fails the test.
fn exported_pages(export: &[u8], seed: u64) -> BTreeMap<(String, u64), String> {
    let mut pages = BTreeMap::new();
    for line in String::from_utf8(export.to_vec()).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = v["path"].as_str().unwrap().rsplit('/').next().unwrap();
        let key = (name.to_string(), v["page"].as_u64().unwrap());
        let text = v["text"].as_str().unwrap().to_string();
        assert!(
            pages.insert(key.clone(), text).is_none(),
            "seed {seed}: page {key:?} exported twice"
        );
    }
    pages
}

const CHAOS_DOCS: usize = 1_000;
const CHAOS_KILLS: usize = 20;

/// Flags of every chaos run: short deadlines for the hangs, a heartbeat
/// deadline no load can reach, a fixed worker count so that long documents
/// split the same way in every run.
const CHAOS: &[&str] = &[
    "--max-attempts",
    "2",
    "--workers",
    "3",
    "--timeout",
    "500ms",
    "--heartbeat-timeout",
    "30s",
];

#[test]
fn seeded_chaos_gives_exact_counts() {
    let seed = std::env::var("DOCMILL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos seed: {seed} (replay with DOCMILL_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    let env = Env::new();
    let lib = env.path("lib");
    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    for i in 0..CHAOS_DOCS {
        let (script, fate) = chaos_doc(i, &mut rng);
        let file = mockdoc(&lib, &format!("doc{i:04}"), &script);
        fates.insert(
            file.file_name().unwrap().to_string_lossy().into_owned(),
            fate,
        );
    }
    let args = index_args(&lib, CHAOS);
    let started = Instant::now();

    // The same library, uninterrupted, in a database of its own.
    let reference = Env::new();
    let r = reference.run(&args);
    assert_eq!(r.code(), 1, "seed {seed}\n{}", r.dump());
    reference.assert_no_leftovers();
    let uninterrupted = started.elapsed();

    // SIGKILLs at instants drawn from the seed: once the library has
    // settled up to a drawn count (at once, during discovery or recovery,
    // when an earlier run went past it), and a little later still; each is
    // followed by a resume run, and the last one goes to the end. The
    // counts stop at 4/5 of the library, so that a fast machine still has
    // work left for the last kill.
    let mut marks: Vec<i64> = (0..CHAOS_KILLS)
        .map(|_| rng.below(CHAOS_DOCS as u64 * 4 / 5) as i64)
        .collect();
    marks.sort_unstable();
    let mut killed_at = Vec::new();
    for (kill, mark) in marks.into_iter().enumerate() {
        let extra = Duration::from_millis(rng.below(50));
        let mut child = env.spawn(&args);
        let ended = |c: &mut std::process::Child| c.try_wait().unwrap().is_some();
        let reached = wait_until(Duration::from_secs(60), || {
            settled(&env) >= mark || ended(&mut child)
        });
        assert!(reached, "seed {seed}: kill {kill}: no progress");
        wait_until(extra, || ended(&mut child));
        if ended(&mut child) {
            // A busy machine can let an earlier run get far past its mark
            // before its kill, leaving too little for this one: a run that
            // finished is fine; one that failed is not.
            let out = child.wait_with_output().unwrap();
            assert!(
                matches!(out.status.code(), Some(0 | 1)),
                "seed {seed}: the run before kill {kill} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("chaos: the library was finished before kill {kill}");
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        killed_at.push(settled(&env));
        env.assert_no_leftovers();
    }
    let last = env.run(&args);
    assert_eq!(last.code(), 1, "seed {seed}\n{}", last.dump());
    env.assert_no_leftovers();
    eprintln!(
        "chaos: uninterrupted run {uninterrupted:?}; {CHAOS_KILLS} kills and resumes, in all {:?}; \
         documents settled at each kill: {killed_at:?}",
        started.elapsed()
    );

    // Exact counts per state.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for fate in fates.values() {
        *expected.entry(fate.status.to_string()).or_default() += 1;
    }
    let mut counts: BTreeMap<String, u64> = env.counts().into_iter().collect();
    counts.retain(|_, n| *n > 0);
    assert_eq!(counts, expected, "seed {seed}: counts per state");

    // Each document's state and counted attempts: what its script says, and
    // what the uninterrupted run gave. Interrupted attempts never count.
    let got = fates_of(&env);
    assert_eq!(
        got,
        fates_of(&reference),
        "seed {seed}: a document ended otherwise than uninterrupted"
    );
    for (name, fate) in &fates {
        let (status, attempts) = &got[name];
        assert_eq!(status, fate.status, "seed {seed}: {name}");
        if let Some(want) = fate.attempts {
            assert_eq!(*attempts, want, "seed {seed}: attempts of {name}");
        }
    }

    // No page lost, none stored twice, each with its text.
    let export = env.export();
    let pages = exported_pages(&export, seed);
    for (name, fate) in &fates {
        let stem = name.trim_end_matches(".mockdoc");
        let mine: Vec<(&u64, &String)> = pages
            .range((name.clone(), 0)..=(name.clone(), u64::MAX))
            .map(|((_, p), t)| (p, t))
            .collect();
        for (p, text) in &mine {
            assert_eq!(
                **text,
                format!("mock page {p} of {stem}"),
                "seed {seed}: {name}"
            );
        }
        let numbers: Vec<u64> = mine.iter().map(|(p, _)| **p).collect();
        match (fate.status, fate.pages) {
            (_, Some(n)) => assert_eq!(
                numbers,
                (1..=u64::from(n)).collect::<Vec<_>>(),
                "seed {seed}: pages of {name}"
            ),
            ("done", None) => assert_eq!(numbers.len(), 300, "seed {seed}: {name}"),
            ("partial", None) => assert!(
                !numbers.is_empty() && numbers.len() < 300 && !numbers.contains(&120),
                "seed {seed}: pages of {name}: {numbers:?}"
            ),
            _ => assert!(numbers.is_empty(), "seed {seed}: pages of {name}"),
        }
    }
    assert!(
        export == reference.export(),
        "seed {seed}: the export after {CHAOS_KILLS} kills differs from an uninterrupted run"
    );
}

/// A library whose jobs take long enough to be interrupted mid-run.
fn slow_library(env: &Env) -> std::path::PathBuf {
    let lib = env.path("lib");
    for i in 0..40 {
        mockdoc(
            &lib,
            &format!("m{i:02}"),
            &format!("sleep_ms 40\npages {}\n", 1 + i % 5),
        );
    }
    for name in [
        "pypdf-004-pdflatex-4-pages.pdf",
        "pdfjs-tracemonkey.pdf",
        "pypdf-026-multicolumn.pdf",
    ] {
        std::fs::copy(corpus().join("pdf").join(name), lib.join(name)).unwrap();
    }
    lib
}

/// Runs that are compared byte for byte get deadlines no load can hit, so a
/// slow moment never hands a PDF to a fallback engine.
const PATIENT: &[&str] = &["--timeout", "60s", "--heartbeat-timeout", "30s"];

fn reference_export(lib: &std::path::PathBuf) -> Vec<u8> {
    let env = Env::new();
    env.run(&index_args(lib, PATIENT)).assert_code(0);
    env.export()
}

#[test]
fn supervisor_sigkill_then_resume_is_identical() {
    let env = Env::new();
    let lib = slow_library(&env);
    let reference = reference_export(&lib);
    let mut rng = Rng(0x5eed_1234 ^ std::process::id() as u64);
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        let mut child = env.spawn(&index_args(&lib, PATIENT));
        // Kill at a random point after some work has committed.
        let target = 3 + rng.below(10) as i64;
        let reached = wait_until(Duration::from_secs(60), || {
            env.db.exists()
                && env
                    .sql()
                    .query_row(
                        "SELECT count(*) FROM documents WHERE status = 'done'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .unwrap_or(0)
                    >= target * (round + 1)
                || child.try_wait().unwrap().is_some()
        });
        assert!(reached, "round {round}: the run made no progress");
        if child.try_wait().unwrap().is_some() {
            break; // it finished before the kill: nothing left to interrupt
        }
        let killed = Instant::now();
        child.kill().unwrap();
        child.wait().unwrap();
        let gone = wait_until(Duration::from_secs(5), || workers(&env).is_empty());
        worst = worst.max(killed.elapsed());
        assert!(gone, "workers outlived the supervisor: {:?}", workers(&env));
    }
    eprintln!("slowest exit of all workers after the supervisor's SIGKILL: {worst:?}");
    let r = env.run(&index_args(&lib, &[]));
    r.assert_code(0);
    env.assert_no_leftovers();
    assert!(
        env.export() == reference,
        "export after resume differs from an uninterrupted run"
    );
    // Interrupted attempts never count against a document.
    let counted: i64 = env
        .sql()
        .query_row(
            "SELECT coalesce(sum(attempts), 0) FROM documents",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 0);
}

#[test]
fn random_worker_kills_lose_nothing() {
    let env = Env::new();
    let lib = slow_library(&env);
    let reference = reference_export(&lib);
    let mut child = env.spawn(&index_args(
        &lib,
        &["--max-attempts", "50", "--workers", "3"],
    ));
    let mut rng = Rng(0xdead_beef ^ std::process::id() as u64);
    let mut kills = 0;
    while child.try_wait().unwrap().is_none() {
        let pids = workers(&env);
        if !pids.is_empty() {
            send_signal(pids[rng.below(pids.len() as u64) as usize], libc::SIGKILL);
            kills += 1;
        }
        // Pace the kills: the next one comes 150-300 ms later, unless the
        // run ends first.
        let pause = Duration::from_millis(150 + rng.below(150));
        wait_until(pause, || matches!(child.try_wait(), Ok(Some(_))));
    }
    assert!(kills > 0);
    let r = env.run(&index_args(&lib, PATIENT));
    r.assert_code(0);
    env.assert_no_leftovers();
    assert!(
        env.export() == reference,
        "export after {kills} worker kills differs"
    );
}

#[test]
fn sigint_stops_within_grace_and_resumes() {
    let env = Env::new();
    let lib = slow_library(&env);
    let reference = reference_export(&lib);
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let mut child = env.spawn(&index_args(
            &lib,
            &[
                "--grace",
                "2s",
                "--timeout",
                "60s",
                "--heartbeat-timeout",
                "30s",
            ],
        ));
        let started = wait_until(Duration::from_secs(30), || !workers(&env).is_empty());
        assert!(started);
        send_signal(child.id(), sig);
        let status = wait_child(&mut child, Duration::from_secs(10));
        assert_eq!(status.code(), Some(code));
        env.assert_no_leftovers();
    }
    let r = env.run(&index_args(&lib, PATIENT));
    r.assert_code(0);
    assert!(env.export() == reference);
    env.assert_no_leftovers();
}
