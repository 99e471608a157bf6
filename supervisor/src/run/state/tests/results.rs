//! Results whose lease was lost, files that changed while read, splits.

use docmill_protocol::{Format, Outcome};

use super::*;
use crate::run::event::FileSeen;
use crate::store::Written;
use docmill_protocol::DocSummary;

#[test]
fn a_result_whose_lease_was_lost_is_not_counted() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf), doc(2, Format::Pdf)], 1);
    w.written = [Written::Lost, Written::Held].into();
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin",
                "claim 2",
            ],
        ),
        (10, page(1, 1, 1), &[]),
        (20, done(1, 1), &[]),
        (
            30,
            Event::Tick,
            &["send w1 job2 /d/2.pdf attempt=1 builtin"],
        ),
        (40, page(1, 2, 1), &[]),
        (50, page(1, 2, 2), &[]),
        (60, done(1, 2), &[]),
        (
            300,
            Event::Tick,
            &["commit [1 done pages=1, 2 done pages=2]", "end"],
        ),
    ]);
    let t = w.totals();
    assert_eq!((t.done, t.pages), (1, 2));
    assert_eq!(
        t.outcomes.get(Outcome::Done.as_str()),
        Some(&2),
        "both attempts ended well"
    );
}

#[test]
fn a_file_that_changed_while_read_is_read_again_then_fails() {
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
        // Handed back untouched, as the file it is now.
        (
            10,
            done_seeing(1, 1, 2000),
            &["restat 1 size=2000", "commit [1 released]"],
        ),
        (
            20,
            Event::Tick,
            &["claim 1", "send w1 job2 /d/1.pdf attempt=1 builtin"],
        ),
        (30, done_seeing(1, 2, 3000), &[]),
        (
            300,
            Event::Tick,
            &["commit [1 extract-failed -> failed uncounted]", "end"],
        ),
    ]);
    assert_eq!((w.totals().done, w.totals().failed), (0, 1));

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
        (
            10,
            Event::Done {
                worker: 1,
                job: 1,
                summary: DocSummary::default(),
                file: FileSeen::Vanished,
            },
            &[],
        ),
        (
            300,
            Event::Tick,
            &["commit [1 extract-failed -> failed uncounted]", "end"],
        ),
    ]);
}

#[test]
fn a_long_document_becomes_chunk_jobs() {
    let mut cfg = config();
    cfg.chunking.enabled = true;
    let mut w = World::new(cfg, vec![doc(1, Format::Pdf)], 1);
    w.play(vec![
        (
            0,
            Event::Tick,
            &[
                "spawn 1024MiB",
                "claim 1",
                "send w1 job1 /d/1.pdf attempt=1 builtin split_over=1000",
            ],
        ),
        (
            10,
            Event::SplitAsked {
                worker: 1,
                job: 1,
                page_count: 2500,
            },
            &["split 1 pages=2500 chunks=3"],
        ),
        (
            20,
            Event::Tick,
            &[
                "claim 1@1",
                "send w1 job2 /d/1.pdf attempt=1 builtin pages=1-1000",
                "claim 1@1001",
            ],
        ),
        (30, done(1, 2), &[]),
        // The next chunk was claimed ahead: it starts without a claim, and
        // the one after it is claimed.
        (
            40,
            Event::Tick,
            &[
                "send w1 job3 /d/1.pdf attempt=1 builtin pages=1001-2000",
                "claim 1@2001",
            ],
        ),
    ]);
    assert_eq!(w.totals().split, 1);
    // A chunk counts for its pages; its document, once merged.
    assert_eq!(w.totals().done, 0);
}

#[test]
fn a_split_document_gets_shrinking_chunks_unless_reopening_costs_more() {
    let mut cfg = config();
    cfg.chunking.enabled = true;
    cfg.chunking.chunk_pages = None;
    let split = |ms: u64, pages: u32| {
        (
            ms,
            Event::SplitAsked {
                worker: 1,
                job: 1,
                page_count: pages,
            },
        )
    };
    // Opened in 250 ms: two workers take a quarter each, then shorter
    // chunks, none under 1,250 pages (ten times the opening's cost).
    let mut w = World::new(cfg.clone(), vec![doc(1, Format::Pdf)], 2);
    w.at(0, Event::Tick);
    let (ms, event) = split(250, 12_000);
    assert_eq!(w.at(ms, event), ["split 1 pages=12000 chunks=6"]);
    assert_eq!(
        w.at(260, Event::Tick),
        [
            "spawn 1024MiB",
            "claim 1@1",
            "send w1 job2 /d/1.pdf attempt=1 builtin pages=1-3000",
            "claim 1@3001",
            "send w2 job3 /d/1.pdf attempt=1 builtin pages=3001-6000",
            "claim 1@6001",
        ]
    );
    // Opening took longer than half the document's work (2 ms a page):
    // one chunk, the whole document.
    let mut w = World::new(cfg, vec![doc(1, Format::Pdf)], 2);
    w.at(0, Event::Tick);
    let (ms, event) = split(400, 400);
    assert_eq!(w.at(ms, event), ["split 1 pages=400 chunks=1"]);
}

#[test]
fn the_last_commit_goes_with_the_end_and_counts_once_answered() {
    let mut w = World::new(config(), vec![doc(1, Format::Pdf)], 1);
    w.hold_commits = true;
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
        (10, page(1, 1, 1), &[]),
        (20, done(1, 1), &[]),
        (50, Event::Tick, &["commit [1 done pages=1]", "end"]),
    ]);
    assert_eq!(w.totals().done, 0, "counted once written");
    assert_eq!(w.answer_commits(70), Vec::<String>::new());
    assert_eq!((w.totals().done, w.totals().pages), (1, 1));
}
