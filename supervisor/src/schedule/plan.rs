//! Chunk plans: how a long document is cut into page-range jobs.

use docmill_protocol::PageRange;

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
    use super::*;

    fn r(first: u32, last: u32) -> PageRange {
        PageRange { first, last }
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
