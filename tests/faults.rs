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
fn fates(env: &Env) -> BTreeMap<String, (String, u32)> {
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
    let fates = fates(&env);
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
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut pages = 0u64;
    for i in 0..240 {
        let n = 1 + rng.below(4);
        let (script, fate) = match rng.below(20) {
            0 => ("panic\n".to_string(), "failed"),
            1 => ("segfault\n".to_string(), "quarantined"),
            2 => ("abort\n".to_string(), "quarantined"),
            3 => (format!("exit {}\n", 1 + rng.below(100)), "quarantined"),
            4 => (
                format!("on_attempt 1\nsegfault\non_attempt 2\npages {n}\n"),
                "done",
            ),
            5 => (
                format!("on_attempt 1\nexit 7\non_attempt 2\npages {n}\n"),
                "done",
            ),
            6 if rng.below(4) == 0 => ("hang\n".to_string(), "quarantined"),
            7 => (format!("stdout_garbage 50000\npages {n}\n"), "done"),
            _ => (format!("sleep_ms {}\npages {n}\n", rng.below(5)), "done"),
        };
        if fate == "done" {
            pages += n;
        }
        *expected.entry(fate.to_string()).or_default() += 1;
        mockdoc(&lib, &format!("doc{i:03}"), &script);
    }
    for name in ["pypdf-004-pdflatex-4-pages.pdf", "pdfjs-tracemonkey.pdf"] {
        std::fs::copy(corpus().join("pdf").join(name), lib.join(name)).unwrap();
        *expected.entry("done".to_string()).or_default() += 1;
    }
    pages += 4 + 14;

    let r = env.run(&index_args(
        &lib,
        &[
            "--max-attempts",
            "2",
            "--workers",
            "3",
            "--timeout",
            "500ms",
        ],
    ));
    assert!(r.code() == 0 || r.code() == 1, "seed {seed}\n{}", r.dump());
    env.assert_no_leftovers();
    let counts = env.counts();
    for (fate, n) in &expected {
        assert_eq!(counts.get(fate), Some(n), "seed {seed}: {fate}: {counts:?}");
    }
    assert_eq!(
        env.status()["pages"].as_u64().unwrap(),
        pages,
        "seed {seed}"
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
