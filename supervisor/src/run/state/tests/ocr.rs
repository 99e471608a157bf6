//! OCR: a text job's flagged pages are looked up in the OCR cache, the rest
//! become OCR jobs shared by the workers once the text job's commit stored
//! them; OCR jobs get time per page and the OCR stall limit, never the text
//! page timeout; a page an OCR job did not send, and the pages of an OCR job
//! that kept failing, fail alone; with OCR off nothing is looked up.

use docmill_protocol::{DocSummary, Format, PageFlags, WorkerFailureKind};

use super::*;
use crate::run::event::FileSeen;
use crate::store::FinishedResult;

/// Two workers that recognise, with a 60 s OCR page timeout and the
/// default text deadlines (10 s page timeout).
fn ocr_config() -> RunConfig {
    let mut cfg = config();
    cfg.timeouts = Timeouts::default();
    cfg.ocr.recognise = true;
    cfg.ocr.settings.page_timeout_ms = 60_000;
    cfg
}

fn text_page(worker: WorkerId, job: u64, page: u32, needs_ocr: bool) -> Event {
    Event::Page {
        worker,
        job,
        page,
        text: if needs_ocr {
            String::new()
        } else {
            "words".into()
        },
        flags: PageFlags {
            needs_ocr,
            ..PageFlags::default()
        },
        confidence: None,
        note: None,
    }
}

fn ocr_page(worker: WorkerId, job: u64, page: u32, failed: Option<&str>) -> Event {
    Event::Page {
        worker,
        job,
        page,
        text: if failed.is_some() {
            String::new()
        } else {
            format!("ocr {page}")
        },
        flags: PageFlags {
            ocr: true,
            failed: failed.is_some(),
            ..PageFlags::default()
        },
        confidence: failed.is_none().then_some(90.0),
        note: failed.map(str::to_string),
    }
}

fn done_hashed(worker: WorkerId, job: u64, pages: u32) -> Event {
    Event::Done {
        worker,
        job,
        summary: DocSummary {
            page_count: pages,
            content_hash: Some("b3".into()),
            ..DocSummary::default()
        },
        file: FileSeen::Present {
            size: SIZE,
            mtime_ns: MTIME,
        },
    }
}

/// A 5-page document: page 1 has text, pages 2-5 need OCR, and the cache
/// holds page 3. Returns the world after the text job's commit.
fn flagged_document(cfg: RunConfig) -> World {
    let mut w = World::new(cfg, vec![doc(1, Format::Pdf)], 2);
    w.ocr_cache = vec![3];
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin",
            ],
        ),
        (10, text_page(1, 1, 1, false), &[]),
        (11, text_page(1, 1, 2, true), &[]),
        (12, text_page(1, 1, 3, true), &[]),
        (13, text_page(1, 1, 4, true), &[]),
        (14, text_page(1, 1, 5, true), &[]),
        (20, done_hashed(1, 1, 5), &["ocr-lookup 1 pages=2,3,4,5"]),
    ]);
    w
}

#[test]
fn cached_pages_are_written_with_the_text_and_the_rest_shared_by_the_workers() {
    let mut w = flagged_document(ocr_config());
    w.play(vec![
        // The text job's commit plans two OCR jobs (two workers) for the
        // three pages the cache lacks; they are queued once it is stored,
        // and a second worker starts for them at the next tick.
        (
            300,
            Event::Tick,
            &["commit [1 done pages=5 ocr_cached=1 ocr_jobs=2]"],
        ),
        (
            310,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1@2",
                "send w1 job2 /d/1.pdf attempt=1 builtin pages=2-4 ocr=2,4",
                "claim 1@5",
                "send w2 job3 /d/1.pdf attempt=1 builtin pages=5-5 ocr=5",
            ],
        ),
        (1_000, ocr_page(1, 2, 2, None), &[]),
        (2_000, ocr_page(1, 2, 4, None), &[]),
        (2_010, done(1, 2), &[]),
        (
            2_500,
            ocr_page(2, 3, 5, Some("OCR timed out after 60s")),
            &[],
        ),
        (2_510, done(2, 3), &[]),
        (
            2_800,
            Event::Tick,
            &[
                "commit [1@2 recognised pages=2, 1@5 recognised pages=1]",
                "end",
            ],
        ),
    ]);
    let text = &w.committed[0];
    let FinishedResult::Flagged { ocr, pages, .. } = &text.result else {
        panic!("{text:?}")
    };
    assert_eq!(pages.len(), 5);
    assert_eq!(ocr.cached.len(), 1);
    assert_eq!(ocr.jobs, vec![vec![2, 4], vec![5]]);
    let FinishedResult::Recognised { pages, .. } = &w.committed[2].result else {
        panic!("{:?}", w.committed[2])
    };
    assert!(pages[0].flags.failed && pages[0].flags.ocr);
    assert_eq!(pages[0].note.as_deref(), Some("OCR timed out after 60s"));
    let t = w.totals();
    assert_eq!((t.ocr_pages, t.ocr_cached, t.ocr_failed), (2, 1, 1));
    assert_eq!(t.pages, 5, "OCR pages are not counted twice");
    assert_eq!(t.done, 0, "done when the store merges the last OCR job");
}

#[test]
fn an_ocr_job_gets_time_per_page_not_the_text_page_timeout() {
    let mut w = flagged_document(ocr_config());
    w.play(vec![
        (
            300,
            Event::Tick,
            &["commit [1 done pages=5 ocr_cached=1 ocr_jobs=2]"],
        ),
        (
            310,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1@2",
                "send w1 job2 /d/1.pdf attempt=1 builtin pages=2-4 ocr=2,4",
                "claim 1@5",
                "send w2 job3 /d/1.pdf attempt=1 builtin pages=5-5 ocr=5",
            ],
        ),
        // Heartbeats, and a page every 50 s: far over the 10 s text page
        // timeout, under the OCR one.
        (20_000, Event::Heartbeat { worker: 1, job: 2 }, &[]),
        (20_000, Event::Heartbeat { worker: 2, job: 3 }, &[]),
        (25_000, Event::Tick, &[]),
        (50_000, ocr_page(1, 2, 2, None), &[]),
        (50_000, ocr_page(2, 3, 5, None), &[]),
        (50_001, done(2, 3), &[]),
        (58_000, Event::Heartbeat { worker: 1, job: 2 }, &[]),
        (60_000, Event::Tick, &["commit [1@5 recognised pages=1]"]),
        (66_000, Event::Heartbeat { worker: 1, job: 2 }, &[]),
        (74_000, Event::Heartbeat { worker: 1, job: 2 }, &[]),
        // 70 s without a page (60 s OCR page timeout + 10 s): stalled, and
        // tried again as the failure rules say.
        (120_000, Event::Heartbeat { worker: 1, job: 2 }, &[]),
        (
            120_001,
            Event::Tick,
            &[
                "kill w1 stalled",
                "commit [1@2 timed-out -> pending uncounted]",
            ],
        ),
    ]);
}

#[test]
fn a_page_the_ocr_job_did_not_send_fails_alone() {
    let mut w = flagged_document(ocr_config());
    w.play(vec![
        (
            300,
            Event::Tick,
            &["commit [1 done pages=5 ocr_cached=1 ocr_jobs=2]"],
        ),
        (
            310,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1@2",
                "send w1 job2 /d/1.pdf attempt=1 builtin pages=2-4 ocr=2,4",
                "claim 1@5",
                "send w2 job3 /d/1.pdf attempt=1 builtin pages=5-5 ocr=5",
            ],
        ),
        (1_000, ocr_page(1, 2, 2, None), &[]),
        (1_010, done(1, 2), &[]),
    ]);
    w.at(1_500, Event::Tick);
    let FinishedResult::Recognised { pages, .. } = &w.committed[1].result else {
        panic!("{:?}", w.committed[1])
    };
    assert_eq!(pages.len(), 2);
    assert!(!pages[0].flags.failed);
    assert!(pages[1].flags.failed, "page 4 was never sent");
    assert!(pages[1]
        .note
        .as_deref()
        .unwrap()
        .contains("without this page"));
}

#[test]
fn an_ocr_job_whose_worker_crashes_is_retried_then_its_pages_fail() {
    let mut cfg = ocr_config();
    cfg.max_attempts = 1;
    cfg.engines = vec![EngineChoice::Builtin];
    let mut w = flagged_document(cfg);
    w.play(vec![
        (
            300,
            Event::Tick,
            &["commit [1 done pages=5 ocr_cached=1 ocr_jobs=2]"],
        ),
        (
            310,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1@2",
                "send w1 job2 /d/1.pdf attempt=1 builtin pages=2-4 ocr=2,4",
                "claim 1@5",
                "send w2 job3 /d/1.pdf attempt=1 builtin pages=5-5 ocr=5",
            ],
        ),
        (
            400,
            failed(2, 3, WorkerFailureKind::OutOfMemory),
            &["retire w2"],
        ),
    ]);
    w.at(1_000, Event::Tick);
    let last = w.committed.last().unwrap();
    assert!(
        matches!(last.result, FinishedResult::Failed { .. }),
        "{last:?}"
    );
    assert_eq!(w.totals().ocr_failed, 1);
}

#[test]
fn with_ocr_off_flagged_pages_are_written_as_they_are() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin",
            ],
        ),
        (10, text_page(1, 1, 1, true), &[]),
        (20, done_hashed(1, 1, 1), &[]),
        (300, Event::Tick, &["commit [1 done pages=1]", "end"]),
    ]);
    assert_eq!(w.totals().done, 1);
}

#[test]
fn a_store_without_ocr_jobs_still_reads_the_cache() {
    let mut cfg = ocr_config();
    cfg.ocr_jobs = false;
    let mut w = flagged_document(cfg);
    w.play(vec![(
        300,
        Event::Tick,
        &["commit [1 done pages=5 ocr_cached=1 ocr_jobs=0]", "end"],
    )]);
    assert_eq!(w.totals().done, 1);
    assert_eq!(w.totals().ocr_cached, 1);
}

/// A long document's two chunks, done, their text with pages flagged for
/// OCR (page 3's text is in the cache): the commit that merges them is due.
fn two_flagged_chunks() -> World {
    // The cache holds page 3.
    let chunk = |first, last| {
        let mut d = doc(1, Format::Pdf);
        d.page_total = 4;
        d.set_chunk(docmill_protocol::PageRange { first, last });
        d
    };
    let mut w = World::new(ocr_config(), vec![chunk(1, 2), chunk(3, 4)], 2);
    w.ocr_cache = vec![3];
    w.written = [
        Written::Held,
        // The catalog gives the pages the chunks flagged (page 1 was not).
        Written::Merged(crate::store::Merged {
            status: crate::store::DocState::Done,
            pages: 4,
            ocr: Some(crate::store::PendingOcr {
                hash: "b3".into(),
                page_total: 4,
                pages: vec![2, 3, 4],
            }),
        }),
    ]
    .into();
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "spawn 1024MiB",
                "claim 1@1",
                "send w1 job1 /d/1.pdf attempt=1 builtin pages=1-2",
                "claim 1@3",
                "send w2 job2 /d/1.pdf attempt=1 builtin pages=3-4",
            ],
        ),
        (10, text_page(1, 1, 1, false), &[]),
        (11, text_page(1, 1, 2, true), &[]),
        (12, done_hashed(1, 1, 4), &[]),
        (20, text_page(2, 2, 3, true), &[]),
        (21, text_page(2, 2, 4, true), &[]),
        (22, done_hashed(2, 2, 4), &[]),
    ]);
    w
}

#[test]
fn a_long_documents_flagged_pages_are_recognised_once_its_text_merged() {
    let mut w = two_flagged_chunks();
    w.play(vec![
        // The text merges done; then the cache is asked for the flagged
        // pages of both chunks, and the rest become OCR jobs.
        (
            300,
            Event::Tick,
            &[
                "commit [1@1 done pages=2, 1@3 done pages=2]",
                "ocr-lookup 1 pages=2,3,4",
                "plan-ocr 1 cached=1 jobs=2",
            ],
        ),
        (
            310,
            Event::Tick,
            &[
                "claim 1@2",
                "send w1 job3 /d/1.pdf attempt=1 builtin pages=2-2 ocr=2",
                "claim 1@4",
                "send w2 job4 /d/1.pdf attempt=1 builtin pages=4-4 ocr=4",
            ],
        ),
        (400, ocr_page(1, 3, 2, None), &[]),
        (401, done(1, 3), &[]),
        (410, ocr_page(2, 4, 4, None), &[]),
        (411, done(2, 4), &[]),
    ]);
    w.written = [
        Written::Merged(crate::store::Merged {
            status: crate::store::DocState::Done,
            pages: 0,
            ocr: None,
        }),
        Written::Held,
    ]
    .into();
    w.play(vec![(
        700,
        Event::Tick,
        &[
            "commit [1@2 recognised pages=1, 1@4 recognised pages=1]",
            "end",
        ],
    )]);
    let t = w.totals();
    assert_eq!(
        (t.done, t.pages),
        (1, 4),
        "counted once, when its text merged"
    );
    assert_eq!((t.ocr_pages, t.ocr_cached), (2, 1));
}

#[test]
fn a_merge_answered_late_still_queues_its_ocr_jobs() {
    let mut w = two_flagged_chunks();
    w.hold_commits = true;
    w.play(vec![
        (
            300,
            Event::Tick,
            &["commit [1@1 done pages=2, 1@3 done pages=2]"],
        ),
        // Nothing runs, nothing is queued, no page waits: but the commit's
        // answer may bring work, so the run does not end before it.
        (310, Event::Tick, &[]),
    ]);
    assert_eq!(
        w.answer_commits(320),
        ["ocr-lookup 1 pages=2,3,4", "plan-ocr 1 cached=1 jobs=2"]
    );
    w.play(vec![(
        330,
        Event::Tick,
        &[
            "claim 1@2",
            "send w1 job3 /d/1.pdf attempt=1 builtin pages=2-2 ocr=2",
            "claim 1@4",
            "send w2 job4 /d/1.pdf attempt=1 builtin pages=4-4 ocr=4",
        ],
    )]);
}
