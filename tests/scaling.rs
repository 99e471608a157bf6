//! Adaptive scaling against a real machine: a deep queue on an idle machine
//! ramps the worker count up within a few decisions; an outside CPU hog
//! drives it down under the background profile and it recovers when the
//! hog stops; under batch docmill does not throttle itself for its own load;
//! a memory budget holds for the whole process tree. These tests read the
//! machine's CPU, so they run alone (see .config/nextest.toml; under plain
//! `cargo test` a lock keeps them apart).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

static ALONE: Mutex<()> = Mutex::new(());

/// Busy loops, one per core, killed on drop.
struct Hog(Vec<Child>);

impl Hog {
    fn start() -> Hog {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Hog((0..cores)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect())
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls less often than `wait_until`: the poll itself must not look like
/// load to the scaler under test.
fn wait_slowly(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

const SCALE: &[&str] = &[
    "--scale-interval",
    "300ms",
    "--allow-mock-docs",
    "--min-free",
    "64M",
];

/// The worker count and the run's clock from the stats file, once there is
/// one.
fn stats_workers(path: &std::path::Path) -> Option<(f64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((v["elapsed_s"].as_f64()?, v["workers"]["count"].as_u64()?))
}

#[test]
fn a_deep_idle_queue_ramps_up_within_three_decisions() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let lib = env.path("lib");
    // Documents that wait rather than compute: the queue stays deep and the
    // CPU idle, the case where one worker per decision is far too slow.
    for i in 0..1_500 {
        mockdoc(&lib, &format!("w{i:04}"), "sleep_ms 300\npages 1\n");
    }
    let stats = env.path("stats.json");
    // The default scale interval; memory is not what this test is about.
    let child = env.spawn(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--profile",
        &"background",
        &"--min-free",
        &"64M",
        &"--stats",
        &stats,
    ]);
    let start = Instant::now();
    let mut timeline: Vec<String> = Vec::new();
    let mut last = None;
    let ramped = wait_slowly(Duration::from_secs(15), || {
        let Some((at, n)) = stats_workers(&stats) else {
            return false;
        };
        if last != Some(n) {
            last = Some(n);
            timeline.push(format!(
                "{at:>5.1}s (test clock {:>5.1}s): {n}",
                start.elapsed().as_secs_f64()
            ));
        }
        n >= 6
    });
    send_signal(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    eprintln!("worker count timeline: {timeline:#?}\n{log}");
    assert!(
        ramped,
        "fewer than 6 workers 15 s after the start: {timeline:#?}\n{log}"
    );
    assert_eq!(out.status.code(), Some(143), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn background_yields_to_a_hog_and_recovers() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let lib = env.path("lib");
    for i in 0..400 {
        mockdoc(&lib, &format!("s{i:03}"), "sleep_ms 150\npages 1\n");
    }
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"index",
        &lib,
        &"--min-workers",
        &"1",
        &"--max-workers",
        &"3",
        &"--profile",
        &"background",
        // Room for the ambient noise of a shared machine: growth below 70%
        // total CPU, emergency only past 95% (a hog on every core is 100%).
        &"--target-cpu",
        &"90",
        &"--critical-cpu",
        &"95",
    ];
    for a in SCALE {
        args.push(a);
    }
    let child = env.spawn(&args);
    let mut timeline = Vec::new();
    let start = Instant::now();
    let mut note = |phase: &str, n: usize| {
        timeline.push(format!(
            "{:>5.1}s {phase}: {n}",
            start.elapsed().as_secs_f64()
        ))
    };

    let grew = wait_slowly(Duration::from_secs(20), || workers(&env).len() == 3);
    note("idle machine", workers(&env).len());
    let hog = Hog::start();
    let fell = grew && wait_slowly(Duration::from_secs(20), || workers(&env).len() == 1);
    note("under the hog", workers(&env).len());
    drop(hog);
    let recovered = fell && wait_slowly(Duration::from_secs(20), || workers(&env).len() >= 2);
    note("hog stopped", workers(&env).len());

    send_signal(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    eprintln!("worker count timeline: {timeline:?}\n{log}");
    assert!(
        grew,
        "never grew to 3 workers on an idle machine: {timeline:?}\n{log}"
    );
    assert!(
        fell,
        "did not fall to the minimum under a CPU hog: {timeline:?}\n{log}"
    );
    assert!(
        recovered,
        "did not recover after the hog stopped: {timeline:?}\n{log}"
    );
    assert_eq!(out.status.code(), Some(143));
    env.assert_no_leftovers();
}

#[test]
fn batch_does_not_throttle_for_its_own_load() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let lib = env.path("lib");
    for i in 0..60 {
        mockdoc(&lib, &format!("c{i:02}"), "spin_ms 200\npages 1\n");
    }
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"index",
        &lib,
        &"--min-workers",
        &"1",
        &"--max-workers",
        &"2",
        &"--profile",
        &"batch",
    ];
    for a in SCALE {
        args.push(a);
    }
    args.push(&"--json");
    let r = env.run(&args);
    r.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(r.stdout().trim()).unwrap();
    let stderr = r.stderr();
    let decisions: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("workers ") && l.contains(" -> "))
        .collect();
    assert_eq!(
        summary["totals"]["peak_workers"], 2,
        "never used the second core: {decisions:?}"
    );
    assert!(
        !decisions.iter().any(|l| l.contains("workers 2 -> 1")),
        "batch throttled for its own load: {decisions:?}"
    );
    env.assert_no_leftovers();
}

#[test]
fn a_memory_budget_holds_for_the_whole_tree() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new();
    let lib = env.path("lib");
    for i in 0..8 {
        mockdoc(
            &lib,
            &format!("a{i}"),
            "alloc_mb 150\nsleep_ms 300\npages 1\n",
        );
    }
    mockdoc(&lib, "toobig", "alloc_mb 3000\n");
    let budget: u64 = 1 << 30;
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"index",
        &lib,
        &"--memory-budget",
        &"1G",
        &"--max-attempts",
        &"2",
        &"--quiet",
    ];
    for a in SCALE {
        args.push(a);
    }
    let mut child = env.spawn(&args);
    let mut peak = 0u64;
    while child.try_wait().unwrap().is_none() {
        let rss: u64 = env
            .processes()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/statm")).ok())
            .filter_map(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map(|pages| pages * 4096)
            .sum();
        peak = peak.max(rss);
        wait_until(Duration::from_millis(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
    }
    eprintln!(
        "peak RSS of the process tree: {} MiB (budget {} MiB)",
        peak >> 20,
        budget >> 20
    );
    assert!(
        peak > 150 << 20,
        "the allocations never happened (peak {peak})"
    );
    assert!(
        peak <= budget,
        "process tree peaked at {} MiB over the 1 GiB budget",
        peak >> 20
    );
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert_eq!(env.counts().get("done"), Some(&8));
    assert_eq!(env.doc("toobig.mockdoc"), ("quarantined".into(), 2));
    let st = env.status();
    let reason = st["failures"][0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("limit"), "{reason}");
    env.assert_no_leftovers();
}
