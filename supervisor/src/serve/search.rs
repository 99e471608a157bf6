//! The search page: the form, and for a query the same answer as `docmill
//! search` (the search module's own `search`, nothing redone here): totals,
//! documents best first with their best pages, marked snippets and counts,
//! facets by folder and format, paging, and per hit a link that opens the
//! catalogued file at its page and one to its text in the document view.

use std::collections::BTreeMap;
use std::path::Path;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::error::ServeError;
use super::html::{encode, marked, page};
use super::App;
use crate::search::{self, mark_ranges, Results, SearchError, SearchRequest};
use crate::store::{PageSearch, SqliteStore, Store};

/// Documents per page of results.
const PER_PAGE: usize = 10;
/// Best pages shown per document.
const PAGES_PER_DOC: usize = 3;
/// Documents read for the facets; past this the counts say "at least".
const FACET_CAP: usize = 10_000;
/// Folders listed in the facet.
const FOLDERS_SHOWN: usize = 12;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    q: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    offset: usize,
}

impl Params {
    fn request(&self) -> SearchRequest {
        SearchRequest {
            query: self.q.trim().to_string(),
            path: Some(self.path.trim())
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            format: docmill_protocol::Format::parse(&self.format),
            limit: PER_PAGE,
            offset: self.offset,
            pages_per_document: PAGES_PER_DOC,
        }
    }

    /// This search's URL with some of its values changed.
    fn url(&self, format: Option<&str>, path: Option<&str>, offset: usize) -> String {
        let mut u = format!("/?q={}", encode(&self.q));
        let format = format.unwrap_or(&self.format);
        if !format.is_empty() {
            u.push_str(&format!("&format={}", encode(format)));
        }
        let path = path.unwrap_or(&self.path);
        if !path.is_empty() {
            u.push_str(&format!("&path={}", encode(path)));
        }
        if offset > 0 {
            u.push_str(&format!("&offset={offset}"));
        }
        u
    }
}

/// A found document with what the page needs beside the search's answer.
struct Shown {
    id: Option<i64>,
    doc: search::DocumentHits,
}

struct Facets {
    formats: BTreeMap<String, u64>,
    folders: Vec<(String, u64)>,
    capped: bool,
}

enum Answer {
    Empty { documents: u64, pages: u64 },
    Found(Results, Vec<Shown>, Facets),
    BadQuery(String),
}

pub async fn handler(State(app): State<App>, Query(params): Query<Params>) -> Response {
    let request = params.request();
    let answer = app.catalog.read(move |store| answer(store, &request)).await;
    match answer {
        Ok(Answer::BadQuery(why)) => (
            StatusCode::BAD_REQUEST,
            render(&params, &Answer::BadQuery(why)),
        )
            .into_response(),
        Ok(a) => render(&params, &a).into_response(),
        Err(e) => e.into_response(),
    }
}

fn answer(store: &mut SqliteStore, request: &SearchRequest) -> Result<Answer, ServeError> {
    if request.query.is_empty() {
        let status = store.status()?;
        let documents = ["done", "partial"]
            .iter()
            .filter_map(|s| status.documents.get(*s))
            .sum();
        return Ok(Answer::Empty {
            documents,
            pages: status.pages,
        });
    }
    let results = match search::search(store, request) {
        Ok(r) => r,
        Err(SearchError::Query(e)) => return Ok(Answer::BadQuery(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let shown = results
        .documents
        .iter()
        .map(|d| {
            Ok(Shown {
                id: store.document_id(&path_of_link(&d.link))?,
                doc: d.clone(),
            })
        })
        .collect::<Result<Vec<_>, ServeError>>()?;
    let query = search::parse(&request.query).map_err(SearchError::from)?;
    let matching = store.matching_documents(
        &PageSearch {
            query: &query,
            path_like: request.path.as_deref().map(search::glob_to_like),
            format: request.format,
            documents: 0,
            skip: 0,
            pages_per_document: 1,
            ranked: search::RANKED_PAGES,
            counted: search::COUNTED_PAGES,
        },
        FACET_CAP,
    )?;
    Ok(Answer::Found(results, shown, facets(&matching)))
}

fn facets(matching: &[(String, String)]) -> Facets {
    let mut formats = BTreeMap::new();
    let mut folders: BTreeMap<String, u64> = BTreeMap::new();
    for (path, format) in matching {
        *formats.entry(format.clone()).or_default() += 1;
        let folder = Path::new(path)
            .parent()
            .map_or(String::new(), |p| p.to_string_lossy().into_owned());
        *folders.entry(folder).or_default() += 1;
    }
    let mut folders: Vec<(String, u64)> = folders.into_iter().collect();
    folders.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    folders.truncate(FOLDERS_SHOWN);
    Facets {
        formats,
        folders,
        capped: matching.len() >= FACET_CAP,
    }
}

/// The path bytes a search link (`file://` and the percent-encoded path)
/// stands for.
fn path_of_link(link: &str) -> Vec<u8> {
    let encoded = link.strip_prefix("file://").unwrap_or(link);
    let encoded = encoded.split('#').next().unwrap_or_default().as_bytes();
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let hex = encoded
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (encoded[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The fragment of a search link: where in the file the hit is.
fn fragment(link: &str) -> &str {
    link.find('#').map_or("", |i| &link[i..])
}

fn form(params: &Params) -> Markup {
    html! {
        form.search action="/" method="get" {
            input type="search" name="q" value=(params.q) autofocus
                placeholder="words, \"phrases\", prefix*, -word, title:…";
            " "
            select name="format" {
                option value="" selected[params.format.is_empty()] { "any format" }
                option value="pdf" selected[params.format == "pdf"] { "PDF" }
                option value="epub" selected[params.format == "epub"] { "EPUB" }
            }
            " "
            input type="text" name="path" value=(params.path) placeholder="path glob, e.g. */papers/*";
            " "
            button type="submit" { "Search" }
        }
        details {
            summary { "The query language" }
            pre { (search::HELP) }
        }
    }
}

fn render(params: &Params, answer: &Answer) -> Markup {
    let body = html! {
        (form(params))
        @match answer {
            Answer::Empty { documents, pages } => {
                p.meta { "The index holds " (documents) " documents, " (pages) " pages." }
            }
            Answer::BadQuery(why) => {
                p #error { "The query cannot be read: " (why) }
            }
            Answer::Found(results, shown, facets) => {
                (found(params, results, shown, facets))
            }
        }
    };
    let title = if params.q.trim().is_empty() {
        "Search".to_string()
    } else {
        format!("Search: {}", params.q.trim())
    };
    page(&title, body)
}

fn found(params: &Params, results: &Results, shown: &[Shown], facets: &Facets) -> Markup {
    let first = results.offset + 1;
    let last = results.offset + shown.len();
    let q = encode(&params.q);
    html! {
        aside.facets {
            h3 { "Format" }
            ul {
                @if !params.format.is_empty() {
                    li { a href=(params.url(Some(""), None, 0)) { "any format" } }
                }
                @for (format, n) in &facets.formats {
                    li { a.facet-format href=(params.url(Some(format), None, 0)) { (format) } " (" (n) ")" }
                }
            }
            h3 { "Folder" }
            ul {
                @if !params.path.is_empty() {
                    li { a href=(params.url(None, Some(""), 0)) { "any folder" } }
                }
                @for (folder, n) in &facets.folders {
                    li { a.facet-folder href=(params.url(None, Some(&format!("{folder}/*")), 0)) { (folder) } " (" (n) ")" }
                }
            }
            @if facets.capped { p.meta { "(counted over the first " (FACET_CAP) " documents)" } }
        }
        p #totals {
            @if results.more_pages { "more than " }
            span #total-pages { (results.total_pages) } " matching pages in "
            @if results.more_documents { "at least " }
            span #total-documents { (results.total_documents) } " documents"
            @if !shown.is_empty() {
                "; documents " (first) "–" (last) " by best page"
                @if results.more_pages || results.ranked_pages < results.total_pages {
                    " of the first " (results.ranked_pages) " pages"
                }
                ":"
            }
        }
        @if results.total_pages == 0 { p { "Nothing matches." } }
        @for s in shown {
            @let d = &s.doc;
            @let name = d.title.clone().unwrap_or_else(|| file_name(&d.path));
            @let unit = if d.format == "epub" { "chapter" } else { "page" };
            div.doc {
                h3 {
                    @if let Some(id) = s.id {
                        a.doc-link href=(format!("/doc/{id}?q={q}")) { (name) }
                    } @else {
                        (name)
                    }
                }
                div.meta {
                    @if let Some(a) = &d.author { (a) " · " }
                    (d.format) " · " span.matching { (d.matching_pages) } " matching " (unit) "s"
                }
                div.path { (d.path) }
                @for hit in &d.hits {
                    div.hit {
                        @if let Some(id) = s.id {
                            a.open href=(format!("/file/{id}{}", fragment(&hit.link))) { (unit) " " (hit.page) }
                            " · "
                            a.text href=(format!("/doc/{id}?q={q}&page={}#p{}", hit.page, hit.page)) { "text" }
                        } @else {
                            (unit) " " (hit.page)
                        }
                        ": "
                        span.snippet {
                            @if hit.snippet.is_empty() { "(no text)" }
                            @else { (marked(&hit.snippet, mark_ranges(hit))) }
                        }
                    }
                }
            }
        }
        p.paging {
            @if results.offset > 0 {
                a #prev href=(params.url(None, None, results.offset.saturating_sub(PER_PAGE))) { "← previous" }
                " "
            }
            @if (last as u64) < results.total_documents {
                a #next href=(params.url(None, None, last)) { "next →" }
            }
        }
    }
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_give_back_their_path() {
        let link = search::link(b"/lib/a b/x#1\xe9.pdf", "pdf", Some(3));
        assert_eq!(path_of_link(&link), b"/lib/a b/x#1\xe9.pdf");
        assert_eq!(fragment(&link), "#page=3");
        let link = search::link(b"/lib/b.epub", "epub", Some(2));
        assert_eq!(fragment(&link), "#epubcfi(/6/4!/4)");
    }

    #[test]
    fn facets_count_formats_and_folders() {
        let m = [
            ("/a/x.pdf", "pdf"),
            ("/a/y.epub", "epub"),
            ("/b/z.pdf", "pdf"),
        ]
        .map(|(p, f)| (p.to_string(), f.to_string()));
        let f = facets(&m);
        assert_eq!(f.formats["pdf"], 2);
        assert_eq!(f.folders[0], ("/a".to_string(), 2));
        assert!(!f.capped);
    }
}
