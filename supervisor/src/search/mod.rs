//! Searching the index: the query language (`query`), CJK text as grams
//! (`cjk`), each store's syntax for a query (`render`), grouping ranked
//! pages into documents (`group`), marking matches in a
//! page's text (`highlight`), and what a search returns — documents with
//! their best pages, snippets with explicit match offsets, and links that
//! open each hit at its page — for the command line (`present`) and any
//! other front end.

pub mod cjk;
pub mod group;
pub mod highlight;
pub mod present;
pub mod query;
pub mod render;

use std::ops::Range;

use docmill_protocol::Format;
use serde::Serialize;

use crate::store::{DocumentMatch, PageSearch, Store, StoreError};
pub use query::{parse, Clause, Field, Query, QueryError, Term, HELP};

/// How many matching pages a search ranks at most: a query that matches
/// more ranks the first ones in the index's order (the oldest indexed) and
/// says so (`Results::ranked_pages`), so that a word found on every page
/// costs about as much as one found on ten thousand. Measured in
/// BENCHMARKS.md: ranking costs some 3 µs a page on SQLite.
pub const RANKED_PAGES: usize = 10_000;

/// How far matching pages are counted where a store counts without ranking
/// (SQLite without filters: about 0.07 µs a page); beyond it the count says
/// "more than".
pub const COUNTED_PAGES: usize = 100_000;

/// A search as a person asks it.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// In the query language (`query::HELP`).
    pub query: String,
    /// Only documents whose whole path matches this glob: `*` is any run of
    /// characters (`/` included), `?` any one; ASCII letter case is ignored.
    pub path: Option<String>,
    pub format: Option<Format>,
    /// How many documents to return, after skipping `offset` of them.
    pub limit: usize,
    pub offset: usize,
    /// The best pages shown per document.
    pub pages_per_document: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot search the index")]
    Store(#[from] StoreError),
}

/// What a search found: the matching pages counted (as far as
/// `COUNTED_PAGES`), the documents asked for, best first.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub query: String,
    /// Pages that match, in every document (not only those returned); more
    /// than this when `more_pages`.
    pub total_pages: u64,
    pub more_pages: bool,
    /// Documents with a matching page; at least this when `more_documents`.
    pub total_documents: u64,
    pub more_documents: bool,
    /// How many matching pages were ranked (`RANKED_PAGES` at most): the
    /// documents shown are the best of those.
    pub ranked_pages: u64,
    /// How many documents of the ranking were skipped.
    pub offset: usize,
    pub documents: Vec<DocumentHits>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DocumentHits {
    pub path: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub format: String,
    /// Opens the document.
    pub link: String,
    /// How many of its pages match.
    pub matching_pages: u64,
    /// Its best page's score; higher is better, comparable within one store.
    pub score: f64,
    /// Its best pages, best first.
    pub hits: Vec<Hit>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Hit {
    /// The page (PDF) or chapter (EPUB: spine item), from 1.
    pub page: u32,
    pub score: f64,
    /// Opens the document at this page or chapter.
    pub link: String,
    /// Some of the page's text around its matches (whitespace collapsed).
    pub snippet: String,
    /// The matches in `snippet`, as `[start, end)` byte offsets.
    pub marks: Vec<[usize; 2]>,
}

/// Runs a search: parses the query (an error says where), asks the store,
/// and marks each hit's snippet.
pub fn search(store: &mut dyn Store, request: &SearchRequest) -> Result<Results, SearchError> {
    let query = parse(&request.query)?;
    let asked = PageSearch {
        query: &query,
        path_like: request.path.as_deref().map(glob_to_like),
        format: request.format,
        documents: request.limit,
        skip: request.offset,
        pages_per_document: request.pages_per_document.max(1),
        ranked: RANKED_PAGES,
        counted: COUNTED_PAGES,
    };
    let mut found = store.search(&asked)?;
    if found.found.is_empty() && asked.skip > 0 {
        // Paged past the end: the totals still tell what there is.
        let first = store.search(&PageSearch {
            skip: 0,
            documents: 1,
            pages_per_document: 1,
            ..asked.clone()
        })?;
        found.pages = first.pages;
        found.more_pages = first.more_pages;
        found.documents = first.documents;
        found.more_documents = first.more_documents;
        found.ranked = first.ranked;
    }
    Ok(Results {
        query: request.query.clone(),
        total_pages: found.pages,
        more_pages: found.more_pages,
        total_documents: found.documents,
        more_documents: found.more_documents,
        ranked_pages: found.ranked,
        offset: request.offset,
        documents: found
            .found
            .into_iter()
            .map(|d| document_hits(d, &query))
            .collect(),
    })
}

fn document_hits(doc: DocumentMatch, query: &Query) -> DocumentHits {
    let hits = doc
        .best
        .iter()
        .map(|p| {
            let snippet = highlight::snippet(&p.text, query);
            Hit {
                page: p.page,
                score: p.score,
                link: link(&doc.path, &doc.format, Some(p.page)),
                marks: snippet.marks.iter().map(|m| [m.start, m.end]).collect(),
                snippet: snippet.text,
            }
        })
        .collect();
    DocumentHits {
        link: link(&doc.path, &doc.format, None),
        path: doc.display_path,
        title: doc.title.filter(|t| !t.trim().is_empty()),
        author: doc.author.filter(|a| !a.trim().is_empty()),
        format: doc.format,
        matching_pages: doc.pages,
        score: doc.score,
        hits,
    }
}

/// A `file://` URL for a document, at a page when given: `#page=N` for a
/// PDF (the open-parameters fragment that PDF viewers and browsers honour),
/// and for an EPUB the chapter's body as an EPUB canonical fragment
/// identifier, `#epubcfi(/6/{2N}!/4)` (spine item N; readers built on
/// epub.js honour it, others open the book at its start).
pub fn link(path: &[u8], format: &str, page: Option<u32>) -> String {
    let mut url = String::from("file://");
    for &b in path {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    match (page, format) {
        (Some(n), "epub") => url.push_str(&format!("#epubcfi(/6/{}!/4)", 2 * u64::from(n))),
        (Some(n), _) => url.push_str(&format!("#page={n}")),
        (None, _) => {}
    }
    url
}

/// A path glob as a SQL `LIKE` pattern with `\` as its escape.
pub fn glob_to_like(glob: &str) -> String {
    let mut like = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(c);
            }
            c => like.push(c),
        }
    }
    like
}

/// The marks of a hit as ranges, for presenting.
pub fn mark_ranges(hit: &Hit) -> impl Iterator<Item = Range<usize>> + '_ {
    hit.marks.iter().map(|m| m[0]..m[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_open_at_the_page() {
        assert_eq!(
            link(b"/lib/a b/x#1.pdf", "pdf", Some(7)),
            "file:///lib/a%20b/x%231.pdf#page=7"
        );
        assert_eq!(
            link("/lib/本.epub".as_bytes(), "epub", Some(3)),
            "file:///lib/%E6%9C%AC.epub#epubcfi(/6/6!/4)"
        );
        assert_eq!(
            link(b"/lib/caf\xe9.pdf", "pdf", None),
            "file:///lib/caf%E9.pdf"
        );
    }

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(glob_to_like("*/papers/*.pdf"), "%/papers/%.pdf");
        assert_eq!(glob_to_like("a_b%c?\\"), "a\\_b\\%c_\\\\");
    }
}
