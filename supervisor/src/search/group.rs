//! Grouping a search's ranked pages into documents, the same for both
//! stores: each document placed by its best page's score (ties by path),
//! with its best pages (ties by page number) and how many of its pages
//! match. The stores rank a bounded set of pages and hand them here, which
//! costs less than sorting them twice in SQL.

use std::cmp::Ordering;
use std::collections::HashMap;

/// One ranked page as a store read it.
#[derive(Clone, Debug, PartialEq)]
pub struct RankedPage {
    /// The document's id in the store.
    pub doc: i64,
    /// The page's key in the store (SQLite: its row id; PostgreSQL: the
    /// page number, which with `doc` is the key).
    pub key: i64,
    pub page: u32,
    /// Higher is better.
    pub score: f64,
    /// The document's path, which breaks ties between documents.
    pub path: Vec<u8>,
}

/// A document and the best of its ranked pages.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub doc: i64,
    pub path: Vec<u8>,
    /// How many of its pages were ranked.
    pub pages: u64,
    /// Its best page's score.
    pub score: f64,
    /// Its best pages, best first.
    pub best: Vec<RankedPage>,
}

/// The documents asked for, and what the ranked pages hold in all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grouped {
    pub pages: u64,
    pub documents: u64,
    pub shown: Vec<Group>,
}

fn better(a: &RankedPage, b: &RankedPage) -> Ordering {
    b.score.total_cmp(&a.score).then(a.page.cmp(&b.page))
}

/// Groups `hits` by document and returns `documents` documents after
/// skipping `skip`, each with at most `per_document` best pages.
pub fn group(hits: Vec<RankedPage>, skip: usize, documents: usize, per_document: usize) -> Grouped {
    let pages = hits.len() as u64;
    let mut by_doc: HashMap<i64, Vec<RankedPage>> = HashMap::new();
    for hit in hits {
        by_doc.entry(hit.doc).or_default().push(hit);
    }
    let mut groups: Vec<Group> = by_doc
        .into_iter()
        .map(|(doc, mut pages)| {
            // Only the best few are kept, so only they need sorting.
            let n = pages.len();
            let keep = per_document.min(n);
            if keep > 0 && keep < n {
                pages.select_nth_unstable_by(keep - 1, better);
            }
            pages.truncate(keep);
            pages.sort_by(better);
            let first = &pages[0];
            Group {
                doc,
                path: first.path.clone(),
                pages: n as u64,
                score: first.score,
                best: pages,
            }
        })
        .collect();
    let documents_found = groups.len() as u64;
    let order = |a: &Group, b: &Group| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.path.cmp(&b.path))
    };
    let end = skip.saturating_add(documents).min(groups.len());
    if end > 0 && end < groups.len() {
        groups.select_nth_unstable_by(end - 1, order);
        groups.truncate(end);
    }
    groups.sort_by(order);
    let shown = groups.into_iter().skip(skip).collect();
    Grouped {
        pages,
        documents: documents_found,
        shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: i64, page: u32, score: f64) -> RankedPage {
        RankedPage {
            doc,
            key: doc * 1000 + i64::from(page),
            page,
            score,
            path: format!("/lib/{doc}.pdf").into_bytes(),
        }
    }

    /// (doc, matching pages, best pages) of each document shown.
    fn shape(g: &Grouped) -> Vec<(i64, u64, Vec<u32>)> {
        g.shown
            .iter()
            .map(|d| (d.doc, d.pages, d.best.iter().map(|p| p.page).collect()))
            .collect()
    }

    #[test]
    fn documents_by_best_page_then_path() {
        let hits = vec![
            hit(1, 1, 1.0),
            hit(1, 2, 3.0),
            hit(2, 5, 2.0),
            hit(3, 1, 3.0),
            hit(3, 2, 3.0),
            hit(3, 3, 0.5),
            hit(4, 9, 0.1),
        ];
        let g = group(hits.clone(), 0, 10, 2);
        assert_eq!((g.pages, g.documents), (7, 4));
        // 1 and 3 tie at 3.0: the path decides; 3's tied pages by number.
        assert_eq!(
            shape(&g),
            [
                (1, 2, vec![2, 1]),
                (3, 3, vec![1, 2]),
                (2, 1, vec![5]),
                (4, 1, vec![9])
            ]
        );
        // Paging keeps the order and the totals.
        let page2 = group(hits.clone(), 1, 2, 1);
        assert_eq!(shape(&page2), [(3, 3, vec![1]), (2, 1, vec![5])]);
        assert_eq!((page2.pages, page2.documents), (7, 4));
        let past = group(hits, 9, 2, 1);
        assert!(past.shown.is_empty());
        assert_eq!((past.pages, past.documents), (7, 4));
        assert_eq!(group(Vec::new(), 0, 10, 3), Grouped::default());
    }

    #[test]
    fn a_window_with_the_best_pages_gives_the_full_ranking() {
        // Pages in index order; the best of every shown document come early.
        let mut hits = Vec::new();
        for doc in 0..50 {
            for page in 1..=20 {
                let score = 100.0 - doc as f64 - f64::from(page) / 100.0;
                hits.push(hit(doc, page, score));
            }
        }
        let full = group(hits.clone(), 0, 5, 3);
        let window = group(hits[..130].to_vec(), 0, 5, 3);
        assert_eq!(
            window
                .shown
                .iter()
                .map(|d| (d.doc, &d.best))
                .collect::<Vec<_>>(),
            full.shown
                .iter()
                .map(|d| (d.doc, &d.best))
                .collect::<Vec<_>>()
        );
        assert_eq!((full.pages, full.documents), (1000, 50));
        assert_eq!((window.pages, window.documents), (130, 7));
    }
}
