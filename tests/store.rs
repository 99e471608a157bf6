//! The storage trait's promises, checked against both stores with the same
//! cases: idempotent discovery, claims under a lease, expired leases taken
//! back as interrupted, renewal and commits fenced by the token, failures,
//! search and export. The PostgreSQL store runs on a private cluster.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::wait_until;
use docmill::search::{self, SearchRequest};
use docmill::store::{
    self, Claim, DocState, Finished, FinishedResult, Found, FoundKind, Merged, OcrFollowUp,
    OcrPage, PageMatches, PageSearch, RetryPolicy, Store, Written,
};
use docmill_protocol::{DocSummary, Format, Outcome, PageFlags, PageRange};

const LONG: Duration = Duration::from_secs(600);
/// A lease that expires almost at once, for takeover cases.
const SHORT: Duration = Duration::from_millis(1);

/// A folder of files to discover, and where the store under test lives.
struct Case {
    files: tempfile::TempDir,
    db: PathBuf,
}

impl Case {
    fn open(&self) -> Box<dyn Store> {
        store::open(&self.db).unwrap()
    }

    fn file(&self, name: &str, body: &str) -> Found {
        let path = self.files.path().join(name);
        std::fs::write(&path, body).unwrap();
        found(&path, body.len() as u64, 1)
    }
}

fn found(path: &Path, size: u64, mtime_ns: i64) -> Found {
    Found {
        path: path.to_path_buf(),
        size,
        mtime_ns,
        kind: FoundKind::Document(Format::Pdf),
    }
}

fn done(doc: i64, claim: Claim, run: i64, pages: &[&str]) -> Finished {
    Finished {
        doc,
        chunk: None,
        claim,
        run,
        attempt: 1,
        worker_pid: 1,
        started_ms: 0,
        ended_ms: 1,
        result: FinishedResult::Done {
            summary: DocSummary {
                page_count: pages.len() as u32,
                title: None,
                author: None,
                language: None,
                engine: "test".into(),
                content_hash: None,
            },
            pages: pages
                .iter()
                .enumerate()
                .map(|(i, t)| (i as u32 + 1, t.to_string(), PageFlags::default()))
                .collect(),
        },
    }
}

fn failed(doc: i64, claim: Claim, run: i64, status: DocState) -> Finished {
    Finished {
        doc,
        chunk: None,
        claim,
        run,
        attempt: 1,
        worker_pid: 1,
        started_ms: 0,
        ended_ms: 1,
        result: FinishedResult::Failed {
            outcome: Outcome::Crashed,
            reason: "killed by SIGSEGV".into(),
            status,
            counts: true,
        },
    }
}

fn export(s: &mut dyn Store) -> String {
    let mut out = Vec::new();
    s.export(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// One found page: where, its score, and the words marked in its snippet.
#[derive(Debug)]
struct BestPage {
    path: String,
    page: u32,
    score: f64,
    marked: Vec<String>,
}

/// The best page of each of the first `limit` documents matching `query`.
fn find(s: &mut dyn Store, query: &str, limit: usize) -> Vec<BestPage> {
    let request = SearchRequest {
        query: query.into(),
        path: None,
        format: None,
        limit,
        offset: 0,
        pages_per_document: 1,
    };
    let results = search::search(s, &request).unwrap();
    results
        .documents
        .into_iter()
        .map(|d| {
            let hit = &d.hits[0];
            BestPage {
                path: d.path.clone(),
                page: hit.page,
                score: hit.score,
                marked: hit
                    .marks
                    .iter()
                    .map(|m| hit.snippet[m[0]..m[1]].to_string())
                    .collect(),
            }
        })
        .collect()
}

fn ids(s: &mut dyn Store) -> Vec<i64> {
    s.pending().unwrap().iter().map(|d| d.id).collect()
}

/// Waits until a lease of `SHORT` has surely expired, by the store's clock.
fn until_offered(s: &mut dyn Store, id: i64) {
    assert!(
        wait_until(Duration::from_secs(5), || ids(s).contains(&id)),
        "an expired lease was not offered again"
    );
}

fn discovery_is_idempotent(c: &Case) {
    let mut a = c.open();
    let mut b = c.open();
    let files = vec![c.file("a.pdf", "aa"), c.file("b.pdf", "bbb")];
    let run_a = a.begin_run("a", "{}").unwrap();
    let run_b = b.begin_run("b", "{}").unwrap();
    let first = a
        .upsert_found(&files, run_a, RetryPolicy::default())
        .unwrap();
    assert_eq!(first.new, 2);
    // A second supervisor on the same roots inserts nothing new.
    let second = b
        .upsert_found(&files, run_b, RetryPolicy::default())
        .unwrap();
    assert_eq!(second.new, 0);
    assert_eq!(a.pending().unwrap().len(), 2);
    assert_eq!(a.status().unwrap().documents["pending"], 2);

    // Extract a.pdf, then the file changes before the result is written:
    // the older extraction must never land over the newer file.
    let id = a.pending().unwrap()[0].id;
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    let changed = vec![found(&files[0].path, 99, 2)];
    let counts = b
        .upsert_found(&changed, run_b, RetryPolicy::default())
        .unwrap();
    assert_eq!(counts.changed, 1);
    assert_eq!(
        a.commit(&[done(id, claim, run_a, &["old text"])]).unwrap(),
        vec![Written::Lost]
    );
    assert_eq!(a.status().unwrap().pages, 0);
    assert!(
        ids(a.as_mut()).contains(&id),
        "the changed file is queued again"
    );
}

fn claims_are_exclusive(c: &Case) {
    let mut a = c.open();
    let mut b = c.open();
    let files: Vec<Found> = (0..20)
        .map(|i| c.file(&format!("{i:02}.pdf"), "x"))
        .collect();
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let all = ids(a.as_mut());
    // Two claimers racing over the same documents, from two threads.
    let db = c.db.clone();
    let theirs = {
        let all = all.clone();
        std::thread::spawn(move || {
            let mut b2 = store::open(&db).unwrap();
            all.iter()
                .flat_map(|id| b2.claim(&[*id], "b", LONG).unwrap())
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        })
    };
    let mine: Vec<i64> = all
        .iter()
        .rev()
        .flat_map(|id| a.claim(&[*id], "a", LONG).unwrap())
        .map(|(id, _)| id)
        .collect();
    let theirs = theirs.join().unwrap();
    let mut union: Vec<i64> = mine.iter().chain(&theirs).copied().collect();
    union.sort();
    assert_eq!(union, all, "every document claimed exactly once");
    // A live lease is nobody else's.
    assert!(b.claim(&all, "b", LONG).unwrap().is_empty());
    assert!(b.pending().unwrap().is_empty());
    assert_eq!(b.held_elsewhere("b").unwrap(), mine.len() as u64);
    assert_eq!(a.status().unwrap().interrupted, 0);
}

fn expired_lease_is_taken_back_and_fenced(c: &Case) {
    let mut a = c.open();
    let mut b = c.open();
    let files = vec![c.file("doc.pdf", "x")];
    let run_a = a.begin_run("a", "{}").unwrap();
    let run_b = b.begin_run("b", "{}").unwrap();
    a.upsert_found(&files, run_a, RetryPolicy::default())
        .unwrap();
    let id = ids(a.as_mut())[0];
    let old = a.claim(&[id], "a", SHORT).unwrap()[0].1;
    // a stalls past its lease; b's claim takes the job back.
    until_offered(b.as_mut(), id);
    assert_eq!(b.held_elsewhere("b").unwrap(), 0);
    let new = b.claim(&[id], "b", LONG).unwrap()[0].1;
    assert_ne!(old, new, "a fresh token");
    assert_eq!(b.status().unwrap().interrupted, 1);
    // a wakes up: its renewal and its commit are refused, nothing written.
    assert_eq!(a.renew("a", &[(id, old)], LONG).unwrap(), vec![id]);
    assert_eq!(
        a.commit(&[done(id, old, run_a, &["stale"])]).unwrap(),
        vec![Written::Lost]
    );
    assert_eq!(a.status().unwrap().pages, 0);
    assert_eq!(a.status().unwrap().documents["running"], 1);
    // b's renewal holds, and its commit lands whole.
    assert!(b.renew("b", &[(id, new)], LONG).unwrap().is_empty());
    assert_eq!(
        b.commit(&[done(id, new, run_b, &["one two", "three"])])
            .unwrap(),
        vec![Written::Held]
    );
    let st = b.status().unwrap();
    assert_eq!(st.documents["done"], 1);
    assert_eq!(st.pages, 2);
    assert_eq!(st.interrupted, 1, "the lost attempt is counted once");
    // Not against the document: no attempt of a's was recorded.
    assert!(st.failures.is_empty());
}

fn renewal_keeps_a_lease(c: &Case) {
    let mut a = c.open();
    let mut b = c.open();
    let files = vec![c.file("doc.pdf", "x")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let id = ids(a.as_mut())[0];
    let claim = a.claim(&[id], "a", Duration::from_millis(300)).unwrap()[0].1;
    let until = Instant::now() + Duration::from_millis(900);
    // Renewed well within its lease, the job is never offered to others.
    while Instant::now() < until {
        assert!(a
            .renew("a", &[(id, claim)], Duration::from_millis(300))
            .unwrap()
            .is_empty());
        assert!(b.pending().unwrap().is_empty());
        assert!(b.claim(&[id], "b", LONG).unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.status().unwrap().interrupted, 0);
}

fn failures_and_releases(c: &Case) {
    let mut a = c.open();
    let files = vec![c.file("bad.pdf", "x"), c.file("back.pdf", "y")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let docs = a.pending().unwrap();
    let (back, bad) = (docs[0].id, docs[1].id);
    let claims = a.claim(&[bad, back], "a", LONG).unwrap();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0].0, bad, "claims come back in the order asked");
    let released = Finished {
        result: FinishedResult::Released,
        ..failed(back, claims[1].1, run, DocState::Pending)
    };
    assert_eq!(
        a.commit(&[
            failed(bad, claims[0].1, run, DocState::Quarantined),
            released
        ])
        .unwrap(),
        vec![Written::Held, Written::Held]
    );
    let st = a.status().unwrap();
    assert_eq!(st.documents["quarantined"], 1);
    assert_eq!(st.documents["pending"], 1);
    assert_eq!(st.failures.len(), 1);
    assert_eq!(st.failures[0].attempts, 1);
    assert_eq!(st.failures[0].reason, "killed by SIGSEGV");
    assert_eq!(st.failures[0].outcome.as_deref(), Some("crashed"));
    assert_eq!(a.failed_in_run(run).unwrap(), 1);
    // What a run's exit status is counted from, on both stores.
    assert_eq!(
        a.failures(Some(run)).unwrap(),
        vec![(bad, DocState::Quarantined)]
    );
    assert_eq!(
        a.failures(None).unwrap(),
        vec![(bad, DocState::Quarantined)]
    );
    assert!(a.failures(Some(run + 1)).unwrap().is_empty());
    // The released one is offered again, with no attempt counted.
    let again = a.pending().unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 0);
    // Unchanged and quarantined: skipped unless asked.
    let counts = a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    assert_eq!(counts.unchanged, 1);
    let retry = RetryPolicy {
        failed: false,
        quarantined: true,
    };
    let counts = a.upsert_found(&files, run, retry).unwrap();
    assert_eq!(counts.requeued, 2);
    assert_eq!(a.pending().unwrap().len(), 2);
}

fn search_and_export(c: &Case) {
    let mut a = c.open();
    let files = vec![c.file("b.pdf", "x"), c.file("a.pdf", "y")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let docs = a.pending().unwrap();
    let claims = a
        .claim(&docs.iter().map(|d| d.id).collect::<Vec<_>>(), "a", LONG)
        .unwrap();
    a.commit(&[
        done(
            claims[0].0,
            claims[0].1,
            run,
            &["the stochastic gradient descends", "nothing here"],
        ),
        done(claims[1].0, claims[1].1, run, &["a gradient \"quoted\""]),
    ])
    .unwrap();
    let hits = find(a.as_mut(), "stochastic gradient", 10);
    assert_eq!(hits.len(), 1);
    assert!(hits[0].path.ends_with("/a.pdf"), "{hits:?}");
    assert_eq!(hits[0].page, 1);
    assert!(hits[0].score > 0.0);
    assert_eq!(hits[0].marked, ["stochastic", "gradient"], "{hits:?}");
    assert_eq!(find(a.as_mut(), "gradient", 10).len(), 2);
    assert_eq!(find(a.as_mut(), "gradient", 1).len(), 1);
    assert!(find(a.as_mut(), "absent", 10).is_empty());
    // Punctuation that is an operator somewhere is still a query.
    assert_eq!(find(a.as_mut(), "(descends", 10).len(), 1);
    // Exclusion excludes, on either store.
    assert_eq!(find(a.as_mut(), "gradient -quoted", 10).len(), 1);
    let text = export(a.as_mut());
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["path"].as_str().unwrap().ends_with("/a.pdf"));
    assert_eq!(lines[1]["page"], 2);
    assert_eq!(lines[1]["text"], "nothing here");
    assert!(lines[2]["path"].as_str().unwrap().ends_with("/b.pdf"));
    // Deleted files leave the index.
    std::fs::remove_file(&files[0].path).unwrap();
    let run2 = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files[1..], run2, RetryPolicy::default())
        .unwrap();
    assert_eq!(
        a.remove_missing(&[c.files.path().to_path_buf()], run2)
            .unwrap(),
        1
    );
    assert_eq!(export(a.as_mut()).lines().count(), 2);
}

/// Ranks the first `ranked` matching pages of `query` and counts them up
/// to `counted`: the first `documents` documents with two best pages each.
fn bounded(
    s: &mut dyn Store,
    query: &str,
    documents: usize,
    ranked: usize,
    counted: usize,
) -> PageMatches {
    let query = search::parse(query).unwrap();
    s.search(&PageSearch {
        query: &query,
        path_like: None,
        format: None,
        documents,
        skip: 0,
        pages_per_document: 2,
        ranked,
        counted,
    })
    .unwrap()
}

/// A document as (path, matching pages, best pages with their scores).
type Ranked = (String, u64, Vec<(u32, f64)>);

fn ranking(m: &PageMatches) -> Vec<Ranked> {
    m.found
        .iter()
        .map(|d| {
            let best = d.best.iter().map(|p| (p.page, p.score)).collect();
            (d.display_path.clone(), d.pages, best)
        })
        .collect()
}

fn bounded_search(c: &Case) {
    let mut a = c.open();
    // The best pages come first in the index, so a window over the first
    // pages holds the best documents.
    let docs: [(&str, &[&str]); 4] = [
        (
            "a.pdf",
            &["gradient gradient gradient", "gradient x", "nothing"],
        ),
        ("b.pdf", &["gradient gradient y", "gradient z z"]),
        ("c.pdf", &["gradient w w w w w w", "gradient v v v v v v v"]),
        (
            "d.pdf",
            &["gradient u u u u u u u u", "gradient t t t t t t t t t"],
        ),
    ];
    let run = a.begin_run("a", "{}").unwrap();
    for (name, pages) in docs {
        a.upsert_found(&[c.file(name, name)], run, RetryPolicy::default())
            .unwrap();
        let id = a.pending().unwrap()[0].id;
        let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
        a.commit(&[done(id, claim, run, pages)]).unwrap();
    }
    let full = bounded(a.as_mut(), "gradient", 10, 1000, 1000);
    assert_eq!((full.pages, full.documents, full.ranked), (8, 4, 8));
    assert!(!full.more_pages && !full.more_documents);
    let names: Vec<String> = ranking(&full).into_iter().map(|d| d.0).collect();
    assert!(
        names[0].ends_with("/a.pdf") && names[1].ends_with("/b.pdf"),
        "{names:?}"
    );
    // A window that holds every match is the full ranking.
    let exact = bounded(a.as_mut(), "gradient", 10, 8, 8);
    assert_eq!(ranking(&exact), ranking(&full));
    assert_eq!((exact.pages, exact.documents, exact.ranked), (8, 4, 8));
    assert!(!exact.more_pages && !exact.more_documents);
    // Five of the eight pages ranked: the same best documents, best pages
    // and scores, each document's pages counted in full, and the totals
    // marked as stopping short.
    let top = bounded(a.as_mut(), "gradient", 2, 5, 5);
    assert_eq!(ranking(&top), ranking(&full)[..2]);
    assert_eq!((top.pages, top.ranked), (5, 5));
    assert!(top.more_pages && top.more_documents);
    assert!(top.documents >= 2 && top.documents <= 4);
    // Windows that end inside a document (c.pdf's first page is the fifth
    // match) and with it.
    for ranked in [5, 6] {
        let window = bounded(a.as_mut(), "gradient", 10, ranked, ranked);
        assert_eq!(window.found.len(), 3, "a window of {ranked}");
        for d in ranking(&window) {
            let whole = ranking(&full).into_iter().find(|f| f.0 == d.0).unwrap();
            assert_eq!(d.1, whole.1, "{} counted in full", d.0);
        }
    }
    // Counting may go past the window, where a store counts cheaply; then
    // the count is exact, or marked as stopping short.
    let counted = bounded(a.as_mut(), "gradient", 2, 5, 1000);
    assert_eq!(ranking(&counted), ranking(&full)[..2]);
    assert_eq!(counted.ranked, 5);
    assert!(
        (counted.pages, counted.more_pages) == (8, false)
            || (counted.pages, counted.more_pages) == (5, true),
        "{} pages, more: {}",
        counted.pages,
        counted.more_pages
    );
    // Through the search call: below the limits, nothing is marked.
    let results = search::search(
        a.as_mut(),
        &SearchRequest {
            query: "gradient".into(),
            path: None,
            format: None,
            limit: 10,
            offset: 0,
            pages_per_document: 1,
        },
    )
    .unwrap();
    assert_eq!((results.total_pages, results.ranked_pages), (8, 8));
    assert!(!results.more_pages && !results.more_documents);
}

fn reextraction_replaces_pages(c: &Case) {
    let mut a = c.open();
    let files = vec![c.file("doc.pdf", "x")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let id = ids(a.as_mut())[0];
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    a.commit(&[done(id, claim, run, &["one", "two", "three"])])
        .unwrap();
    // The file changes: its old pages stay searchable until the new text
    // commits, then exactly the new pages are there.
    let counts = a
        .upsert_found(&[found(&files[0].path, 5, 9)], run, RetryPolicy::default())
        .unwrap();
    assert_eq!(counts.changed, 1);
    assert_eq!(find(a.as_mut(), "three", 10).len(), 1);
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    a.commit(&[done(id, claim, run, &["uno", "dos"])]).unwrap();
    let texts: Vec<String> = export(a.as_mut())
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].to_string())
        .collect();
    assert_eq!(texts, ["\"uno\"", "\"dos\""]);
    assert!(find(a.as_mut(), "three", 10).is_empty());
    assert_eq!(a.status().unwrap().pages, 2);
}

/// A chunk job's result: pages `range` of a `total`-page document.
fn chunk_done(doc: i64, claim: Claim, run: i64, range: PageRange, total: u32) -> Finished {
    let pages: Vec<String> = (range.first..=range.last)
        .map(|p| format!("page {p}"))
        .collect();
    let refs: Vec<&str> = pages.iter().map(String::as_str).collect();
    let mut f = done(doc, claim, run, &refs);
    if let FinishedResult::Done { summary, pages } = &mut f.result {
        summary.page_count = total;
        for (i, p) in pages.iter_mut().enumerate() {
            p.0 = range.first + i as u32;
        }
    }
    f.chunk = Some(range);
    f
}

fn chunks_merge_wherever_the_last_one_ends(c: &Case) {
    let mut a = c.open();
    let mut b = c.open();
    let files = vec![c.file("long.pdf", "x")];
    let run_a = a.begin_run("a", "{}").unwrap();
    let run_b = b.begin_run("b", "{}").unwrap();
    a.upsert_found(&files, run_a, RetryPolicy::default())
        .unwrap();
    let id = ids(a.as_mut())[0];
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    let ranges = [
        PageRange { first: 1, last: 3 },
        PageRange { first: 4, last: 6 },
        PageRange { first: 7, last: 8 },
    ];
    assert!(a.split(id, claim, 8, &ranges).unwrap());
    let queued: Vec<Option<PageRange>> = b.pending().unwrap().iter().map(|d| d.chunk).collect();
    assert_eq!(
        queued,
        ranges.map(Some).to_vec(),
        "chunks are offered to all"
    );
    // Chunks go to both machines; one of a's stalls past its lease and is
    // taken back by b.
    let c1 = a.claim_chunk(id, 1, "a", LONG).unwrap().unwrap();
    let c4 = b.claim_chunk(id, 4, "b", LONG).unwrap().unwrap();
    assert!(b.claim_chunk(id, 1, "b", LONG).unwrap().is_none());
    let stale = a.claim_chunk(id, 7, "a", SHORT).unwrap().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || b
            .pending()
            .unwrap()
            .iter()
            .any(|d| d.chunk == Some(ranges[2]))),
        "an expired chunk lease was not offered again"
    );
    let c7 = b.claim_chunk(id, 7, "b", LONG).unwrap().unwrap();
    assert_eq!(a.renew("a", &[(id, stale)], LONG).unwrap(), vec![id]);
    assert!(a.renew("a", &[(id, c1)], LONG).unwrap().is_empty());
    assert_eq!(
        a.commit(&[
            chunk_done(id, c1, run_a, ranges[0], 8),
            chunk_done(id, stale, run_a, ranges[2], 8)
        ])
        .unwrap(),
        vec![Written::Held, Written::Lost]
    );
    assert_eq!(
        b.commit(&[chunk_done(id, c7, run_b, ranges[2], 8)])
            .unwrap(),
        vec![Written::Held]
    );
    assert_eq!(
        b.status().unwrap().pages,
        0,
        "no page is searchable before the merge"
    );
    assert_eq!(
        b.commit(&[chunk_done(id, c4, run_b, ranges[1], 8)])
            .unwrap(),
        vec![Written::Merged(Merged {
            status: DocState::Done,
            pages: 8,
            ocr: None,
        })]
    );
    let st = a.status().unwrap();
    assert_eq!(st.documents["done"], 1);
    assert_eq!(st.pages, 8);
    assert_eq!(st.interrupted, 1);
    let pages: Vec<u64> = export(a.as_mut())
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["page"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(pages, (1..=8).collect::<Vec<u64>>());
}

/// A whole document's text job whose pages 2 and 3 had no text layer:
/// page 3 came from the OCR cache, and `jobs` are planned for the rest.
fn flagged(doc: i64, claim: Claim, run: i64, jobs: Vec<Vec<u32>>) -> Finished {
    let mut f = done(doc, claim, run, &["printed words", "", ""]);
    let FinishedResult::Done {
        mut summary,
        mut pages,
    } = f.result
    else {
        unreachable!()
    };
    summary.content_hash = Some("b3hash".into());
    for p in &mut pages[1..] {
        p.2.needs_ocr = true;
    }
    f.result = FinishedResult::Flagged {
        summary,
        pages,
        ocr: OcrFollowUp {
            key: "k".into(),
            cached: vec![ocr_page(3, "cached scanned words", None)],
            jobs,
        },
    };
    f
}

fn ocr_page(page: u32, text: &str, failed: Option<&str>) -> OcrPage {
    OcrPage {
        page,
        text: text.into(),
        flags: PageFlags {
            needs_ocr: true,
            ocr: true,
            failed: failed.is_some(),
            ..PageFlags::default()
        },
        confidence: failed.is_none().then_some(87.5),
        note: failed.map(str::to_string),
    }
}

fn export_lines(s: &mut dyn Store) -> Vec<serde_json::Value> {
    export(s)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn flagged_pages_keep_their_text_and_say_what_they_lack(c: &Case) {
    let mut a = c.open();
    let files = vec![c.file("scan.pdf", "x")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let id = ids(a.as_mut())[0];
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    assert_eq!(
        a.commit(&[flagged(id, claim, run, Vec::new())]).unwrap(),
        vec![Written::Held]
    );
    // The cached page is searchable like any page.
    assert_eq!(find(a.as_mut(), "scanned", 10).len(), 1);
    let lines = export_lines(a.as_mut());
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["ocr"], false);
    assert!(lines[0].get("confidence").is_none());
    assert_eq!(lines[1]["ocr"], false);
    assert_eq!(lines[1]["note"], store::NO_TEXT_LAYER);
    assert_eq!(lines[2]["ocr"], true);
    assert_eq!(lines[2]["confidence"], 87.5);
    assert_eq!(lines[2]["text"], "cached scanned words");
    let st = a.status().unwrap();
    assert_eq!(st.documents["done"], 1);
    assert_eq!((st.ocr_pages, st.no_text_pages), (1, 1));
    assert!(st.no_text_layer[0].path.ends_with("/scan.pdf"));
    // Nothing recognised by an OCR job yet: the cache is empty.
    assert!(a.ocr_cached("b3hash", "k", &[2, 3]).unwrap().is_empty());
}

fn ocr_jobs_replace_pages_fill_the_cache_and_resume(c: &Case) {
    let mut a = c.open();
    if !a.ocr_jobs() {
        return;
    }
    let files = [c.file("scan.pdf", "x"), c.file("copy.pdf", "x")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files[..1], run, RetryPolicy::default())
        .unwrap();
    let id = ids(a.as_mut())[0];
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    a.commit(&[flagged(id, claim, run, vec![vec![2], vec![3]])])
        .unwrap();
    // Split into OCR jobs: not done, each job offered with its pages.
    let st = a.status().unwrap();
    assert_eq!((st.documents["split"], st.documents["done"]), (1, 0));
    let queued: Vec<(Option<PageRange>, Option<Vec<u32>>)> = a
        .pending()
        .unwrap()
        .into_iter()
        .map(|d| (d.chunk, d.ocr_pages))
        .collect();
    assert_eq!(
        queued,
        vec![
            (Some(PageRange { first: 2, last: 2 }), Some(vec![2])),
            (Some(PageRange { first: 3, last: 3 }), Some(vec![3])),
        ]
    );
    // A run killed while an OCR job ran: only that job is offered again.
    let c2 = a.claim_chunk(id, 2, "a", LONG).unwrap().unwrap();
    let ocr_job = |claim: Claim, first: u32, pages: Vec<OcrPage>| Finished {
        doc: id,
        chunk: Some(PageRange { first, last: first }),
        claim,
        run,
        attempt: 1,
        worker_pid: 1,
        started_ms: 0,
        ended_ms: 1,
        result: FinishedResult::Recognised {
            key: "k".into(),
            pages,
        },
    };
    assert_eq!(
        a.commit(&[ocr_job(c2, 2, vec![ocr_page(2, "recognised words", None)])])
            .unwrap(),
        vec![Written::Held]
    );
    // The run holding the last job dies: once its lease expires, only that
    // job is offered again.
    let stale = a.claim_chunk(id, 3, "a", SHORT).unwrap().unwrap();
    drop(a);
    let mut a = c.open();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let offered: Vec<Option<Vec<u32>>> = a
                .pending()
                .unwrap()
                .into_iter()
                .map(|d| d.ocr_pages)
                .collect();
            offered == vec![Some(vec![3])]
        }),
        "the OCR job of a dead run was not offered again"
    );
    let c3 = a.claim_chunk(id, 3, "a", LONG).unwrap().unwrap();
    assert_eq!(
        a.commit(&[ocr_job(stale, 3, vec![ocr_page(3, "x", None)])])
            .unwrap(),
        vec![Written::Lost]
    );
    // The last job ends with its page failed: the document is partial.
    let failed_page = ocr_page(3, "", Some("OCR timed out after 60s"));
    assert_eq!(
        a.commit(&[ocr_job(c3, 3, vec![failed_page])]).unwrap(),
        vec![Written::Merged(Merged {
            status: DocState::Partial,
            pages: 0,
            ocr: None,
        })]
    );
    let lines = export_lines(a.as_mut());
    assert_eq!(lines[1]["text"], "recognised words");
    assert_eq!(lines[1]["ocr"], true);
    assert_eq!(lines[2]["note"], "OCR timed out after 60s");
    assert_eq!(find(a.as_mut(), "recognised", 10).len(), 1);
    let st = a.status().unwrap();
    assert_eq!(st.documents["partial"], 1);
    let why = &st.failures[0].reason;
    assert!(
        why.contains("page 3: OCR timed out after 60s"),
        "status names the page: {why}"
    );
    assert_eq!(
        (st.ocr_pages, st.ocr_failed_pages, st.no_text_pages),
        (1, 1, 0)
    );
    // Recognised pages are cached by content; a failed one is not.
    let cached = a.ocr_cached("b3hash", "k", &[2, 3]).unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(
        (cached[0].page, cached[0].text.as_str()),
        (2, "recognised words")
    );
    assert!(a.ocr_cached("b3hash", "other", &[2]).unwrap().is_empty());
    // A copy of the file under another name finds it too.
    a.upsert_found(&files[1..], run, RetryPolicy::default())
        .unwrap();
    assert_eq!(a.ocr_cached("b3hash", "k", &[2]).unwrap().len(), 1);
}

fn a_merged_long_document_becomes_ocr_jobs(c: &Case) {
    let mut a = c.open();
    let files = [c.file("book.pdf", "x")];
    let run = a.begin_run("a", "{}").unwrap();
    a.upsert_found(&files, run, RetryPolicy::default()).unwrap();
    let id = ids(a.as_mut())[0];
    let claim = a.claim(&[id], "a", LONG).unwrap()[0].1;
    let ranges = [
        PageRange { first: 1, last: 2 },
        PageRange { first: 3, last: 4 },
    ];
    assert!(a.split(id, claim, 4, &ranges).unwrap());
    // The chunks flag pages 2, 3 and 4; the merge gives them back from the
    // catalog, whichever run wrote each chunk.
    let mut written = Vec::new();
    for r in ranges {
        let c = a.claim_chunk(id, r.first, "a", LONG).unwrap().unwrap();
        let mut f = chunk_done(id, c, run, r, 4);
        if let FinishedResult::Done { summary, pages } = &mut f.result {
            summary.content_hash = Some("bookhash".into());
            for (page, _, flags) in pages.iter_mut() {
                flags.needs_ocr = *page >= 2;
            }
        }
        written.extend(a.commit(&[f]).unwrap());
    }
    assert_eq!(
        written,
        vec![
            Written::Held,
            Written::Merged(Merged {
                status: DocState::Done,
                pages: 4,
                ocr: Some(docmill::store::PendingOcr {
                    hash: "bookhash".into(),
                    page_total: 4,
                    pages: vec![2, 3, 4],
                }),
            })
        ]
    );
    assert_eq!(a.status().unwrap().documents["done"], 1);
    let plan = OcrFollowUp {
        key: "k".into(),
        cached: vec![ocr_page(2, "cached words", None)],
        jobs: vec![vec![3], vec![4]],
    };
    assert!(a.plan_ocr(id, "bookhash", &plan).unwrap());
    let offered: Vec<Option<Vec<u32>>> = a
        .pending()
        .unwrap()
        .into_iter()
        .map(|d| d.ocr_pages)
        .collect();
    assert_eq!(offered, vec![Some(vec![3]), Some(vec![4])]);
    assert_eq!(a.status().unwrap().documents["split"], 1);
    // The text pages stay searchable while the OCR jobs run.
    assert_eq!(find(a.as_mut(), "page", 10).len(), 1);
    assert_eq!(find(a.as_mut(), "cached", 10).len(), 1);
    for p in [3, 4] {
        let c = a.claim_chunk(id, p, "a", LONG).unwrap().unwrap();
        a.commit(&[Finished {
            doc: id,
            chunk: Some(PageRange { first: p, last: p }),
            claim: c,
            run,
            attempt: 1,
            worker_pid: 1,
            started_ms: 0,
            ended_ms: 1,
            result: FinishedResult::Recognised {
                key: "k".into(),
                pages: vec![ocr_page(p, &format!("recognised {p}"), None)],
            },
        }])
        .unwrap();
    }
    let st = a.status().unwrap();
    assert_eq!((st.documents["done"], st.documents["split"]), (1, 0));
    let ocr: Vec<bool> = export_lines(a.as_mut())
        .iter()
        .map(|l| l["ocr"] == true)
        .collect();
    assert_eq!(ocr, [false, true, true, true]);
    assert_eq!(a.ocr_cached("bookhash", "k", &[3, 4]).unwrap().len(), 2);
    // A document no longer done is left alone.
    assert!(!a.plan_ocr(id + 1000, "h", &plan).unwrap());
}

type CaseFn = fn(&Case);
const CASES: [(&str, CaseFn); 12] = [
    (
        "a_merged_long_document_becomes_ocr_jobs",
        a_merged_long_document_becomes_ocr_jobs,
    ),
    (
        "flagged_pages_keep_their_text_and_say_what_they_lack",
        flagged_pages_keep_their_text_and_say_what_they_lack,
    ),
    (
        "ocr_jobs_replace_pages_fill_the_cache_and_resume",
        ocr_jobs_replace_pages_fill_the_cache_and_resume,
    ),
    (
        "chunks_merge_wherever_the_last_one_ends",
        chunks_merge_wherever_the_last_one_ends,
    ),
    ("reextraction_replaces_pages", reextraction_replaces_pages),
    ("discovery_is_idempotent", discovery_is_idempotent),
    ("claims_are_exclusive", claims_are_exclusive),
    (
        "expired_lease_is_taken_back_and_fenced",
        expired_lease_is_taken_back_and_fenced,
    ),
    ("renewal_keeps_a_lease", renewal_keeps_a_lease),
    ("failures_and_releases", failures_and_releases),
    ("search_and_export", search_and_export),
    ("bounded_search", bounded_search),
];

fn suite(fresh: &mut dyn FnMut(&str) -> PathBuf) {
    for (name, case) in CASES {
        eprintln!("case {name}");
        let c = Case {
            files: tempfile::tempdir().unwrap(),
            db: fresh(name),
        };
        case(&c);
    }
}

#[test]
fn conformance_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    suite(&mut |name| dir.path().join(format!("{name}.db")));
}

/// Runs starting at the same moment on a new SQLite file (or a `forget`
/// beside a starting run): every one opens it, migrated once, and writes
/// its discovery, none failing on another's schema change or lock.
#[test]
fn many_open_a_new_sqlite_index_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("a.pdf");
    std::fs::write(&path, "aa").unwrap();
    let found = vec![found(&path, 2, 1)];
    for round in 0..25 {
        let db = dir.path().join(format!("{round}.db"));
        let start = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            let opened: Vec<_> = (0..4)
                .map(|i| {
                    let (db, start, found) = (&db, &start, &found);
                    s.spawn(move || -> Result<(), String> {
                        start.wait();
                        let mut s = store::open(db)
                            .map_err(|e| format!("open: {}", docmill::cli::chain(&e)))?;
                        let run = s
                            .begin_run(&format!("r{i}"), "{}")
                            .map_err(|e| format!("begin: {e}"))?;
                        s.recover_interrupted()
                            .map_err(|e| format!("recover: {e}"))?;
                        s.upsert_found(found, run, RetryPolicy::default())
                            .map_err(|e| format!("discover: {e}"))?;
                        Ok(())
                    })
                })
                .collect();
            for (i, t) in opened.into_iter().enumerate() {
                let result = t.join().unwrap();
                assert_eq!(result, Ok(()), "round {round}, opener {i}");
            }
        });
        assert_eq!(store::open(&db).unwrap().pending().unwrap().len(), 1);
    }
}

#[test]
fn conformance_postgres() {
    let Some(cluster) = PgCluster::start(None) else {
        return;
    };
    suite(&mut |name| PathBuf::from(cluster.create_db(name)));
}

/// Claim+commit throughput: two claimers, jobs of 10 pages, claims one at a
/// time and commits in batches as the run loop does. A benchmark, not a
/// check: `cargo test --test store -- --ignored --nocapture bench`.
#[test]
#[ignore = "a benchmark, not a check: run with --ignored --nocapture"]
fn bench_claim_commit() {
    const JOBS: usize = 4000;
    fn run(db: &Path, files: &Path) -> f64 {
        let mut s = store::open(db).unwrap();
        let run = s.begin_run("bench", "{}").unwrap();
        let found: Vec<Found> = (0..JOBS)
            .map(|i| found(&files.join(format!("{i:05}.pdf")), 1, 1))
            .collect();
        for chunk in found.chunks(512) {
            s.upsert_found(chunk, run, RetryPolicy::default()).unwrap();
        }
        let all = ids(s.as_mut());
        let text = "lorem ipsum dolor sit amet ".repeat(80);
        let pages: Vec<&str> = vec![text.as_str(); 10];
        let start = Instant::now();
        std::thread::scope(|scope| {
            for (k, owner) in ["one", "two"].into_iter().enumerate() {
                let all = &all;
                let pages = &pages;
                scope.spawn(move || {
                    let mut s = store::open(db).unwrap();
                    let mut batch = Vec::new();
                    let order: Vec<i64> = if k == 0 {
                        all.clone()
                    } else {
                        all.iter().rev().copied().collect()
                    };
                    for id in order {
                        if let Some((id, claim)) =
                            s.claim(&[id], owner, LONG).unwrap().into_iter().next()
                        {
                            batch.push(done(id, claim, run, pages));
                        }
                        if batch.len() == 64 {
                            s.commit(&batch).unwrap();
                            batch.clear();
                        }
                    }
                    s.commit(&batch).unwrap();
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(s.status().unwrap().documents["done"], JOBS as u64);
        JOBS as f64 / secs
    }
    let files = tempfile::tempdir().unwrap();
    let sqlite = run(&files.path().join("bench.db"), files.path());
    eprintln!("sqlite: {sqlite:.0} jobs/s (10 pages each, 2 claimers)");
    if let Some(cluster) = PgCluster::start_with(None, true) {
        let url = PathBuf::from(cluster.create_db("bench"));
        let pg = run(&url, files.path());
        eprintln!("postgres: {pg:.0} jobs/s (10 pages each, 2 claimers)");
    }
}
