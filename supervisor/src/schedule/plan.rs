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
