//! What runs next: the queue is put in order once (`order`), then scanned
//! from the front (retries and chunk jobs are pushed there) for the first
//! document that fits the size-tier quotas and the EPUB limit; `Chunking`
//! says which documents are split into page ranges, `plan_ocr` which pages
//! each OCR job recognises. Pure: plain data in,
//! decisions out.

use std::collections::VecDeque;
use std::time::Duration;

use docmill_protocol::{Format, PageRange};
use serde::Serialize;

use crate::store::QueuedDoc;
pub use ocr::plan_ocr;
pub use plan::plan_chunks;
pub use tier::{queue_by_tier, Tier};

mod ocr;
mod plan;
mod tier;

/// How far down the queue to look for a document that fits, so one
/// blocked kind (EPUBs at their limit, say) does not stall the rest.
const LOOKAHEAD: usize = 512;

/// Concurrent jobs per tier class at 12 workers (the plan's fast 8,
/// standard 4, heavy 2, sequential 1); scaled with the worker count.
const QUOTAS_AT_12: [(&[Tier], u32); 4] = [
    (&[Tier::Tiny, Tier::Small], 8),
    (&[Tier::Medium], 4),
    (&[Tier::Large], 2),
    (&[Tier::Huge], 1),
];

/// The class a tier belongs to, as an index into the quota table.
fn class_of(tier: Tier) -> usize {
    QUOTAS_AT_12
        .iter()
        .position(|(tiers, _)| tiers.contains(&tier))
        .unwrap_or(0)
}

/// The quota of each class with `workers` workers: the plan's numbers
/// scaled, at least one; huge documents always run one at a time.
pub fn quotas(workers: u32) -> [u32; 4] {
    let mut q = [0; 4];
    for (i, (_, at12)) in QUOTAS_AT_12.iter().enumerate() {
        q[i] = (at12 * workers).div_ceil(12).max(1);
    }
    q[3] = 1;
    q
}

/// What is running now.
#[derive(Clone, Debug, Default)]
pub struct Running {
    pub epubs: u32,
    pub per_class: [u32; 4],
}

impl Running {
    pub fn add(&mut self, doc: &QueuedDoc) {
        if doc.sched_format == Format::Epub {
            self.epubs += 1;
        }
        self.per_class[class_of(Tier::of(doc.sched_size))] += 1;
    }
}

/// The queue position of the next document to dispatch, if any fits.
///
/// The quotas keep room for the other sizes while they wait; they never
/// leave a worker idle for its own sake. When nothing in reach fits its
/// class's quota, an idle worker takes the first document over it, except
/// a huge one (those run alone, for their memory). With two workers the
/// medium quota is one: a folder of 10-50 MB PDFs ran one at a time, and
/// two copies of the 12,000-page corpus PDF took 27 s, as long as one
/// after the other.
pub fn pick(
    queue: &VecDeque<QueuedDoc>,
    running: &Running,
    workers: u32,
    max_epubs: u32,
) -> Option<usize> {
    let quotas = quotas(workers);
    let epub_ok = |d: &QueuedDoc| d.sched_format != Format::Epub || running.epubs < max_epubs;
    let class = |d: &QueuedDoc| class_of(Tier::of(d.sched_size));
    let within = queue.iter().take(LOOKAHEAD).position(|d| {
        let c = class(d);
        epub_ok(d) && running.per_class[c] < quotas[c]
    });
    within.or_else(|| {
        let huge = class_of(Tier::Huge);
        queue
            .iter()
            .take(LOOKAHEAD)
            .position(|d| epub_ok(d) && class(d) != huge)
    })
}

/// The order the queue starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Path order, as found: with stragglers split near the end it
    /// finished the sample library soonest, and small files never wait for
    /// all the large ones (see README, "Scheduling").
    Fifo,
    /// Largest first: long documents start early instead of finishing
    /// last; small files wait until every large one has started.
    Largest,
    /// Each round of ten dispatches takes six small, three medium and one
    /// large document (the plan's 60/30/10), largest first within a class.
    Mix,
}

/// Puts `docs` in the starting order.
pub fn order(mut docs: Vec<QueuedDoc>, order: Order) -> VecDeque<QueuedDoc> {
    match order {
        Order::Fifo => docs.into(),
        Order::Largest => {
            docs.sort_by_key(|d| std::cmp::Reverse(d.sched_size));
            docs.into()
        }
        Order::Mix => {
            docs.sort_by_key(|d| std::cmp::Reverse(d.sched_size));
            // Small (tiny, small), medium, large (large, huge).
            let mut classes: [VecDeque<QueuedDoc>; 3] = Default::default();
            for d in docs {
                let c = match class_of(Tier::of(d.sched_size)) {
                    0 => 0,
                    1 => 1,
                    _ => 2,
                };
                classes[c].push_back(d);
            }
            const ROUND: [usize; 10] = [0, 1, 0, 2, 0, 1, 0, 0, 1, 0];
            let mut out = VecDeque::new();
            while classes.iter().any(|c| !c.is_empty()) {
                for want in ROUND {
                    // A class that ran out gives its turn to the next.
                    let take = (0..3)
                        .map(|k| (want + k) % 3)
                        .find(|c| !classes[*c].is_empty());
                    if let Some(c) = take {
                        out.extend(classes[c].pop_front());
                    }
                }
            }
            out
        }
    }
}

/// Pages in a document split near the end of a run, at least.
const STRAGGLER_MIN_CHUNK: u32 = 50;

/// A file of at least `massive_bytes` is split once it has more pages than
/// this, unless the user capped chunks (`--chunk-pages`).
const MASSIVE_CHUNK: u32 = 1000;

/// When documents are split into page-range chunk jobs.
#[derive(Clone, Debug, Serialize)]
pub struct Chunking {
    pub enabled: bool,
    /// A PDF with more pages than this is split.
    pub massive_pages: u32,
    /// A PDF at least this large is split.
    pub massive_bytes: u64,
    /// Most pages per chunk, when the user said (`--chunk-pages`); chunks
    /// are otherwise one per worker.
    pub chunk_pages: Option<u32>,
    /// With two or more workers, a PDF with more pages than this is split
    /// into one chunk per worker.
    pub long_pages: u32,
}

impl Chunking {
    /// The `split_over` for a whole-document job run with `workers`
    /// workers: the page count above which the worker hands it back to be
    /// split. A long document is split into one chunk per worker so it
    /// cannot run alone at the end while the others idle (a straggler);
    /// its length is known only once a worker opens it, and bytes predict
    /// extraction time poorly (ten times apart per byte in the corpus), so
    /// the rule is by pages and holds all run long. `near_end`: the queue
    /// holds fewer jobs than there are workers, and shorter documents are
    /// split too.
    pub fn split_over(&self, doc: &QueuedDoc, near_end: bool, workers: u32) -> Option<u32> {
        let epub = doc.format == Format::Epub || doc.sched_format == Format::Epub;
        if !self.enabled || doc.chunk.is_some() || epub {
            return None;
        }
        if doc.job_size() >= self.massive_bytes {
            return Some(self.chunk_pages.unwrap_or(MASSIVE_CHUNK));
        }
        if workers < 2 {
            return Some(self.massive_pages);
        }
        if near_end {
            return Some(2 * STRAGGLER_MIN_CHUNK - 1);
        }
        Some(self.massive_pages.min(self.long_pages))
    }

    /// The chunks of a document found to have `pages` pages (see
    /// [`plan_chunks`]).
    pub fn plan(&self, pages: u32, workers: u32, reopen: Duration) -> Vec<PageRange> {
        plan_chunks(pages, workers, reopen, self.chunk_pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: i64, format: Format, size: u64) -> QueuedDoc {
        let mut d = QueuedDoc::new(id, format!("/d/{id}").into(), size, 0, format, 0);
        d.sched_size = size;
        d
    }

    fn chunking() -> Chunking {
        Chunking {
            enabled: true,
            massive_pages: 10_000,
            massive_bytes: 500 << 20,
            chunk_pages: Some(500),
            long_pages: 200,
        }
    }

    #[test]
    fn split_thresholds() {
        let c = chunking();
        let pdf = doc(1, Format::Pdf, 5 << 20);
        // One worker: only massive documents are split.
        assert_eq!(c.split_over(&pdf, false, 1), Some(10_000));
        assert_eq!(c.split_over(&pdf, true, 1), Some(10_000));
        // Several: long ones all run long, shorter ones near the end.
        assert_eq!(c.split_over(&pdf, false, 2), Some(200));
        assert_eq!(c.split_over(&pdf, true, 2), Some(99));
        let few = Chunking {
            massive_pages: 150,
            ..chunking()
        };
        assert_eq!(few.split_over(&pdf, false, 12), Some(150));
        let big = doc(2, Format::Pdf, 600 << 20);
        assert_eq!(c.split_over(&big, false, 1), Some(500));
        assert_eq!(c.split_over(&big, false, 2), Some(500));
        assert_eq!(c.split_over(&doc(3, Format::Epub, 5), true, 2), None);
        let mut chunk = doc(4, Format::Pdf, 5 << 20);
        chunk.page_total = 1000;
        chunk.set_chunk(docmill_protocol::PageRange {
            first: 1,
            last: 500,
        });
        assert_eq!(chunk.job_size(), 5 << 19);
        assert_eq!(c.split_over(&chunk, true, 2), None);
        let off = Chunking {
            enabled: false,
            ..chunking()
        };
        assert_eq!(off.split_over(&big, true, 2), None);
        assert_eq!(off.split_over(&pdf, false, 2), None);
        // Massive: fixed chunks; a long document or a straggler: one chunk
        // per worker, at least 50 pages each.
        let reopen = Duration::from_millis(10);
        let first = |c: &Chunking, pages, workers| {
            let r = c.plan(pages, workers, reopen)[0];
            r.last - r.first + 1
        };
        assert_eq!(first(&c, 12_000, 2), 500);
        assert_eq!(first(&c, 352, 2), 176);
        assert_eq!(first(&c, 352, 12), 51);
        assert_eq!(first(&c, 120, 12), 60);
        let uncapped = Chunking {
            chunk_pages: None,
            ..chunking()
        };
        // Uncapped, a massive document's chunks shrink from a quarter.
        assert_eq!(first(&uncapped, 12_000, 2), 3_000);
        assert_eq!(uncapped.split_over(&big, false, 1), Some(1000));
    }

    #[test]
    fn queue_orders() {
        let mib = 1 << 20;
        let docs = vec![
            doc(1, Format::Pdf, 1),
            doc(2, Format::Pdf, 20 * mib),
            doc(3, Format::Pdf, 2),
            doc(4, Format::Pdf, 100 * mib),
            doc(5, Format::Pdf, 3),
        ];
        let ids = |q: VecDeque<QueuedDoc>| q.iter().map(|d| d.id).collect::<Vec<_>>();
        assert_eq!(ids(order(docs.clone(), Order::Fifo)), [1, 2, 3, 4, 5]);
        assert_eq!(ids(order(docs.clone(), Order::Largest)), [4, 2, 5, 3, 1]);
        // small, medium, small, large, small.
        assert_eq!(ids(order(docs.clone(), Order::Mix)), [5, 2, 3, 4, 1]);
        // 60/30/10 over a long queue: every window of ten holds six small.
        let mut many = Vec::new();
        for i in 0..60 {
            many.push(doc(i, Format::Pdf, 10));
            if i < 30 {
                many.push(doc(100 + i, Format::Pdf, 20 * mib));
            }
            if i < 10 {
                many.push(doc(200 + i, Format::Pdf, 100 * mib));
            }
        }
        let mixed: Vec<_> = order(many, Order::Mix).into();
        for round in mixed.chunks(10) {
            let small = round.iter().filter(|d| d.sched_size == 10).count();
            let large = round.iter().filter(|d| d.sched_size == 100 * mib).count();
            assert_eq!((small, large), (6, 1));
        }
    }

    #[test]
    fn quotas_scale_with_workers() {
        assert_eq!(quotas(12), [8, 4, 2, 1]);
        for w in 2..=12 {
            let q = quotas(w);
            assert!(q.iter().all(|n| *n >= 1), "{w}: {q:?}");
            assert!(q[0] <= w && q[1] <= w && q[2] <= w, "{w}: {q:?}");
            assert_eq!(q[3], 1, "huge runs alone in its class");
            assert!(q[0] >= q[1] && q[1] >= q[2], "{w}: {q:?}");
        }
        assert_eq!(quotas(2), [2, 1, 1, 1]);
        assert_eq!(quotas(6), [4, 2, 1, 1]);
    }

    #[test]
    fn front_first_when_it_fits() {
        let q: VecDeque<_> = vec![doc(1, Format::Pdf, 10), doc(2, Format::Pdf, 10)].into();
        assert_eq!(pick(&q, &Running::default(), 4, 2), Some(0));
    }

    #[test]
    fn epub_limit_skips_to_the_next_document() {
        let q: VecDeque<_> = vec![doc(1, Format::Epub, 10), doc(2, Format::Pdf, 10)].into();
        let running = Running {
            epubs: 2,
            ..Running::default()
        };
        assert_eq!(pick(&q, &running, 4, 2), Some(1));
        let only_epubs: VecDeque<_> = vec![doc(1, Format::Epub, 10)].into();
        assert_eq!(pick(&only_epubs, &running, 4, 2), None);
        assert_eq!(pick(&only_epubs, &Running::default(), 4, 2), Some(0));
    }

    #[test]
    fn an_idle_worker_takes_a_document_over_its_quota_when_nothing_else_fits() {
        let medium = 20 << 20;
        let q: VecDeque<_> = vec![doc(1, Format::Pdf, medium), doc(2, Format::Pdf, medium)].into();
        let mut running = Running::default();
        running.add(&doc(9, Format::Pdf, medium));
        assert_eq!(quotas(2)[1], 1);
        assert_eq!(pick(&q, &running, 2, 2), Some(0));
        // Something that fits still goes first.
        let mixed: VecDeque<_> = vec![doc(1, Format::Pdf, medium), doc(2, Format::Pdf, 5)].into();
        assert_eq!(pick(&mixed, &running, 2, 2), Some(1));
        // The EPUB limit is not a quota: it holds.
        let epubs: VecDeque<_> = vec![doc(1, Format::Epub, 10)].into();
        let at_limit = Running {
            epubs: 2,
            ..Running::default()
        };
        assert_eq!(pick(&epubs, &at_limit, 4, 2), None);
    }

    #[test]
    fn a_huge_document_never_runs_beside_another() {
        let huge = 300 << 20;
        let q: VecDeque<_> = vec![doc(1, Format::Pdf, huge)].into();
        let mut running = Running::default();
        running.add(&doc(9, Format::Pdf, huge));
        assert_eq!(pick(&q, &running, 12, 2), None);
    }

    #[test]
    fn a_huge_document_waits_for_the_one_running() {
        let huge = 300 << 20;
        let q: VecDeque<_> = vec![doc(1, Format::Pdf, huge), doc(2, Format::Pdf, 5)].into();
        let mut running = Running::default();
        running.add(&doc(9, Format::Pdf, huge));
        assert_eq!(pick(&q, &running, 12, 2), Some(1));
    }

    #[test]
    fn mock_documents_are_scheduled_as_their_kind() {
        let mut d = doc(1, Format::Mock, 10);
        d.sched_format = Format::Epub;
        let mut running = Running::default();
        running.add(&d);
        assert_eq!(running.epubs, 1);
    }
}
