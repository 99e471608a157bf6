//! Stall detection with the real binary: a page an engine loops on costs
//! seconds, not the whole deadline, and its PDF goes to the next engine
//! uncounted; a job that stops making page progress, or whose memory climbs
//! with none, is ended as stalled; steady progress is never mistaken for a
//! stall.

mod common;

use common::*;

/// The old flat deadline every job had, one-page documents included.
const OLD_DEADLINE_MS: i64 = 60_000;

/// (outcome, reason, engine, duration in ms) of every attempt of a
/// document, in order.
fn attempt_rows(env: &Env, name: &str) -> Vec<(String, String, String, i64)> {
    let conn = env.sql();
    let mut stmt = conn
        .prepare(
            "SELECT a.outcome, coalesce(a.reason, ''), coalesce(a.engine, ''),
                    a.ended_ms - a.started_ms
             FROM attempts a JOIN documents d ON d.id = a.doc_id
             WHERE d.display_path LIKE '%/' || ?1 ORDER BY a.id",
        )
        .unwrap();
    stmt.query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn a_type3_font_that_draws_itself_costs_seconds_not_the_deadline() {
    assert!(
        installed("mutool") && installed("pdftotext"),
        "this test needs mutool and pdftotext (scripts/test installs them)"
    );
    let env = Env::new();
    let lib = env.path("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let name = "pdfjs-Type3-content-stream-cycle.pdf";
    std::fs::copy(corpus().join("pdf").join(name), lib.join(name)).unwrap();
    // mutool alone: it loops on the page and grows; the attempt is ended
    // as stalled long before the deadline.
    let r = env.run(&[
        &"index",
        &lib,
        &"--pdf-engine",
        &"mupdf",
        &"--max-attempts",
        &"1",
        &"-q",
    ]);
    r.assert_code(1);
    env.assert_no_leftovers();
    let rows = attempt_rows(&env, name);
    let (outcome, reason, _, ms) = &rows[0];
    assert_eq!(outcome, "timed-out", "{rows:?}");
    assert!(reason.contains("stalled: "), "{rows:?}");
    assert!(*ms < OLD_DEADLINE_MS / 4, "{rows:?}");

    // auto: whichever engine comes first, the file ends done without an
    // attempt counted against it (in-process MuPDF reads it at once; where
    // mutool comes first, its stall sends the file on to Poppler).
    let env = Env::new();
    std::fs::create_dir_all(env.path("lib")).unwrap();
    std::fs::copy(corpus().join("pdf").join(name), env.path("lib").join(name)).unwrap();
    let r = env.run(&[&"index", &env.path("lib"), &"--pdf-engine", &"auto", &"-q"]);
    r.assert_code(0);
    env.assert_no_leftovers();
    assert_eq!(env.doc(name), ("done".to_string(), 0), "{}", r.dump());
    for (outcome, reason, _, ms) in attempt_rows(&env, name) {
        assert!(ms < OLD_DEADLINE_MS / 4, "{outcome} {reason}");
        assert!(
            outcome == "done" || reason.contains(": stalled: "),
            "{outcome} {reason}"
        );
    }
}

#[test]
fn no_progress_and_climbing_memory_end_a_job_as_stalled_and_steady_progress_does_not() {
    let env = Env::new();
    let lib = env.path("lib");
    // Two pages, then nothing.
    mockdoc(&lib, "stuck", "pages 2\nhang\n");
    // Memory grows by 32 MiB every tenth of a second, with no page.
    mockdoc(&lib, "climber", "climb_mb 32\n");
    // A page every 100 ms: 3 s in all, with a four-second page timeout
    // (long enough that the memory stall below wins even on a loaded
    // machine, where memory is read late).
    mockdoc(&lib, "steady", "page_ms 100\npages 30\n");
    let r = env.run(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"2",
        &"--max-attempts",
        &"1",
        &"--page-timeout",
        &"4s",
        &"--worker-mem",
        &"4GiB",
        &"-q",
    ]);
    r.assert_code(1);
    env.assert_no_leftovers();

    assert_eq!(env.doc("steady.mockdoc"), ("done".to_string(), 0));
    assert_eq!(env.attempts("steady.mockdoc"), ["done"]);

    assert_eq!(env.doc("stuck.mockdoc"), ("quarantined".to_string(), 1));
    let rows = attempt_rows(&env, "stuck.mockdoc");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "timed-out");
    let reason = &rows[0].1;
    assert!(reason.starts_with("stalled: no page for 4."), "{rows:?}");
    assert!(reason.ends_with("(2 of 2 pages done)"), "{rows:?}");

    // The memory stall comes a second after the last progress, before the
    // page timeout and long before the memory limit.
    let rows = attempt_rows(&env, "climber.mockdoc");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (outcome, reason, ..) = &rows[0];
    assert_eq!(outcome, "timed-out", "{rows:?}");
    assert!(
        reason.starts_with("stalled: memory grew from"),
        "{rows:?}\n{}",
        r.dump()
    );
}
