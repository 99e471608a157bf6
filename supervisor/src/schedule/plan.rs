//! Chunk plans: how many page-range jobs a long document becomes, and
//! which pages each one takes.

use std::time::Duration;

use docmill_protocol::PageRange;

use super::STRAGGLER_MIN_CHUNK;

/// The cost of a page assumed when planning: about that of the fastest
/// engine (`mutool` and in-process MuPDF run 360-440 pages a second on the
/// corpus, one worker), so that splitting is judged against the cheapest
/// extraction it could speed up.
const PAGE_COST: Duration = Duration::from_millis(2);

/// Pages per chunk of a `pages`-page document split for `workers` workers,
/// when opening the file once costs `reopen` (each chunk opens it again)
/// and the user capped chunks at `cap` pages (`--chunk-pages`).
///
/// One chunk per worker: with every worker free, more chunks only add
/// openings of the file (the 12,000-page corpus PDF on two workers took
/// 12.1 s as twelve chunks of 1000 pages against 9.7 s as two halves).
/// Never under 50 pages a chunk, and never fewer than two chunks, unless
/// opening the file again costs more than splitting saves: then the
/// document runs as one chunk, whole. `cap` only ever makes chunks
/// smaller.
pub fn chunk_pages(pages: u32, workers: u32, reopen: Duration, cap: Option<u32>) -> u32 {
    let pieces = workers
        .max(1)
        .min(pages / STRAGGLER_MIN_CHUNK)
        .max(2)
        .min(pages.max(1));
    let work = PAGE_COST * pages;
    // The document's work shared by `pieces` workers at once, each of
    // which opens the file again first.
    let saved = work.saturating_sub(work / pieces);
    let size = if reopen >= saved {
        pages
    } else {
        pages.div_ceil(pieces)
    };
    cap.map_or(size, |c| size.min(c)).max(1)
}

/// Pages in a chunk at the end of a shrinking plan, at least: about a
/// quarter of a second of extraction, and of the commit that follows it.
const TAIL_PAGES: u32 = 250;

/// The chunks of a `pages`-page document split for `workers` workers, when
/// opening the file once costs `reopen`, and the user's cap on a chunk's
/// pages (`--chunk-pages`), if any.
///
/// Without a cap the chunks shrink in rounds of one chunk per worker: each
/// round shares half the pages left, down to [`TAIL_PAGES`] a chunk (or
/// more, so that each chunk's work stays at least ten times the cost of
/// opening the file for it). The first chunks keep every worker busy; the
/// last are short, so the workers end together, and the commit of the last
/// chunk (its pages into the full-text index, with nothing left to overlap
/// it) is short. One chunk per worker instead left the 12,000-page corpus
/// PDF's second half running alone for 0.9 s after the first (pages differ
/// in cost), then a 1 s commit of 6,000 pages. A worker keeps the file open
/// from one chunk to the next, so more chunks do not read its fonts and
/// page tree again (the in-process engine; see the worker's
/// `mupdf_inproc`). A document under four tail chunks a worker is cut into
/// one chunk per worker, as [`chunk_pages`] says; with a cap, every chunk
/// but the last has the same length.
pub fn plan_chunks(pages: u32, workers: u32, reopen: Duration, cap: Option<u32>) -> Vec<PageRange> {
    let size = chunk_pages(pages, workers, reopen, cap);
    let pieces = pages.div_ceil(size.max(1)).max(1);
    let worth = u32::try_from(reopen.as_micros() * 10 / PAGE_COST.as_micros()).unwrap_or(u32::MAX);
    let tail = TAIL_PAGES.max(STRAGGLER_MIN_CHUNK).max(worth);
    if cap.is_some() || size == pages || size < 4 * tail {
        return plan_ranges(pages, size);
    }
    let mut out = Vec::new();
    let mut first = 1;
    let mut push = |first: &mut u32, take: u32| {
        out.push(PageRange {
            first: *first,
            last: *first + take - 1,
        });
        *first += take;
    };
    loop {
        let left = pages - first + 1;
        let round = left.div_ceil(2 * pieces);
        if round < tail {
            // The last round: what is left in chunks of about `tail`.
            let k = ((left + tail / 2) / tail).max(1);
            for i in 0..k {
                push(&mut first, left / k + u32::from(i < left % k));
            }
            return out;
        }
        for _ in 0..pieces {
            push(&mut first, round);
        }
    }
}

/// The chunks of a `page_count`-page document, `chunk_pages` pages each
/// (the last one takes the rest, or joins the one before when it would be
/// shorter than a quarter chunk).
pub fn plan_ranges(page_count: u32, chunk_pages: u32) -> Vec<PageRange> {
    let size = chunk_pages.max(1);
    let mut out: Vec<PageRange> = Vec::new();
    let mut first = 1;
    while first <= page_count {
        let last = (first + size - 1).min(page_count);
        out.push(PageRange { first, last });
        first = last + 1;
    }
    if out.len() >= 2 {
        let tail = out[out.len() - 1];
        if tail.last - tail.first + 1 < size.div_ceil(4) {
            out.pop();
            if let Some(prev) = out.last_mut() {
                prev.last = tail.last;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn r(first: u32, last: u32) -> PageRange {
        PageRange { first, last }
    }

    #[test]
    fn one_chunk_per_worker_capped_and_never_worse_than_whole() {
        let ms = Duration::from_millis;
        // (pages, workers, reopen, cap) -> pages per chunk
        let table = [
            // The 12,000-page PDF: halves on two workers, not twelve
            // chunks of 1000; the cap, when given, still holds.
            (12_000, 2, ms(250), None, 6_000),
            (12_000, 2, ms(250), Some(1_000), 1_000),
            (12_000, 2, ms(250), Some(8_000), 6_000),
            (12_000, 12, ms(250), None, 1_000),
            // One worker: a massive document is still halved, so that a
            // crash loses half of it at most.
            (12_000, 1, ms(250), None, 6_000),
            // A long document: one chunk per worker, 50 pages at least.
            (352, 2, ms(10), None, 176),
            (352, 12, ms(10), None, 51),
            (120, 12, ms(10), None, 60),
            (99, 2, ms(1), None, 50),
            // Opening the file again costs more than the other workers
            // would save: one chunk, the whole document.
            (352, 2, ms(352), None, 352),
            (352, 2, ms(351), None, 176),
            (352, 2, ms(400), Some(100), 100),
            (1, 2, ms(0), None, 1),
        ];
        for (pages, workers, reopen, cap, want) in table {
            assert_eq!(
                chunk_pages(pages, workers, reopen, cap),
                want,
                "{pages} pages, {workers} workers, reopen {reopen:?}, cap {cap:?}"
            );
        }
        assert_eq!(plan_ranges(12_000, 6_000).len(), 2);
    }

    #[test]
    fn chunks_shrink_towards_the_end() {
        let ms = Duration::from_millis;
        let sizes = |pages, workers, reopen, cap| {
            plan_chunks(pages, workers, reopen, cap)
                .iter()
                .map(|r| r.last - r.first + 1)
                .collect::<Vec<_>>()
        };
        // The 12,000-page PDF on two workers, MuPDF opening it in 4 ms:
        // a quarter each first, halved each round down to 250 pages.
        assert_eq!(
            sizes(12_000, 2, ms(4), None),
            [3000, 3000, 1500, 1500, 750, 750, 375, 375, 250, 250, 250]
        );
        // Twelve workers: twelve chunks of 500 pages, then of 250.
        let twelve = sizes(12_000, 12, ms(4), None);
        assert_eq!(twelve.len(), 36);
        assert!(twelve[..12].iter().all(|&s| s == 500), "{twelve:?}");
        assert!(twelve[12..].iter().all(|&s| s == 250), "{twelve:?}");
        // Opening costs 250 ms: no chunk is under 1,250 pages (ten times
        // the opening's cost in work at 2 ms a page).
        assert_eq!(
            sizes(12_000, 2, ms(250), None),
            [3000, 3000, 1500, 1500, 1500, 1500]
        );
        // Too short to shrink: one chunk per worker, as before.
        assert_eq!(sizes(352, 2, ms(4), None), [176, 176]);
        assert_eq!(sizes(1999, 2, ms(4), None), [500, 500, 250, 250, 250, 249]);
        assert_eq!(sizes(1900, 2, ms(4), None), [1900 / 2, 1900 / 2]);
        // Too costly to open again: whole.
        assert_eq!(sizes(352, 2, ms(400), None), [352]);
        // The user's cap: equal chunks.
        assert_eq!(sizes(12_000, 2, ms(4), Some(5000)), [5000, 5000, 2000]);
        for (pages, workers, reopen) in [
            (12_000, 2, 4),
            (12_001, 3, 0),
            (1000, 2, 1),
            (5000, 12, 100),
        ] {
            let plan = plan_chunks(pages, workers, ms(reopen), None);
            assert_eq!(plan[0].first, 1);
            assert_eq!(plan.last().unwrap().last, pages);
            for w in plan.windows(2) {
                assert_eq!(w[0].last + 1, w[1].first);
            }
        }
    }

    #[test]
    fn ranges_cover_every_page_once() {
        assert_eq!(plan_ranges(1000, 500), vec![r(1, 500), r(501, 1000)]);
        assert_eq!(plan_ranges(1001, 500), vec![r(1, 500), r(501, 1001)]);
        assert_eq!(
            plan_ranges(1200, 500),
            vec![r(1, 500), r(501, 1000), r(1001, 1200)]
        );
        assert_eq!(plan_ranges(10, 500), vec![r(1, 10)]);
        assert!(plan_ranges(0, 500).is_empty());
        for (pages, size) in [(12000, 500), (12001, 333), (7, 2), (352, 176)] {
            let plan = plan_ranges(pages, size);
            assert_eq!(plan[0].first, 1);
            assert_eq!(plan.last().unwrap().last, pages);
            for w in plan.windows(2) {
                assert_eq!(w[0].last + 1, w[1].first);
            }
        }
    }
}
