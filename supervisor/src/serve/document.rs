//! The document view (`/doc/<id>`): the catalog's record of one document
//! (path, title, author, format, pages, state, engine, attempts and
//! failures with their reasons) and its pages' text, a window of pages at a
//! time, each anchored (`#p5`), with a query's matches marked when the view
//! was reached from a search (`?q=`).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::error::ServeError;
use super::html::{duration, encode, marked, page, time};
use super::App;
use crate::search::{self, highlight};
use crate::store::{AttemptInfo, DocumentInfo};
use crate::units::format_size;

/// Pages shown at once; a long document is read a window at a time.
const WINDOW: u32 = 100;

#[derive(Debug, Default, Deserialize)]
pub struct Params {
    #[serde(default)]
    q: String,
    /// A page to show (its window is shown); the first window by default.
    page: Option<u32>,
}

struct View {
    doc: DocumentInfo,
    attempts: Vec<AttemptInfo>,
    pages: Vec<(u32, String, i64)>,
    first: u32,
}

pub async fn handler(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    // Anything but a plain number is no document.
    let Ok(id) = id.parse::<i64>() else {
        return ServeError::NotFound.into_response();
    };
    let first = params.page.unwrap_or(1).max(1).saturating_sub(1) / WINDOW * WINDOW + 1;
    let view = app
        .catalog
        .read(move |store| {
            let doc = store.document(id)?.ok_or(ServeError::NotFound)?;
            Ok(View {
                attempts: store.attempts_of(id)?,
                pages: store.pages_of(id, first, first + WINDOW - 1)?,
                first,
                doc,
            })
        })
        .await;
    match view {
        Ok(v) => render(&v, &params).into_response(),
        Err(e) => e.into_response(),
    }
}

fn render(v: &View, params: &Params) -> Markup {
    let d = &v.doc;
    let query = Some(params.q.trim())
        .filter(|q| !q.is_empty())
        .and_then(|q| search::parse(q).ok());
    let unit = if d.format == "epub" {
        "chapter"
    } else {
        "page"
    };
    let name = d
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| {
            std::path::Path::new(&d.display_path)
                .file_name()
                .map_or(d.display_path.clone(), |n| n.to_string_lossy().into_owned())
        });
    let total = d.page_count.map(u64::from).unwrap_or(d.pages_stored);
    let last_shown = v.pages.last().map_or(v.first, |p| p.0);
    let q = encode(&params.q);
    let body = html! {
        @if !params.q.trim().is_empty() {
            p { a href=(format!("/?q={q}")) { "← back to the search" } }
        }
        table.figures #metadata {
            tr { td { "path" } td #path { (d.display_path) } }
            tr { td { "title" } td #title { (d.title.as_deref().unwrap_or("-")) } }
            tr { td { "author" } td #author { (d.author.as_deref().unwrap_or("-")) } }
            tr { td { "format" } td { (d.format) } }
            tr { td { "size" } td { (format_size(d.size)) } }
            tr { td { (unit) "s" } td { (d.page_count.map_or("-".to_string(), |n| n.to_string())) " (" (d.pages_stored) " stored)" } }
            tr { td { "state" } td #status { (d.status) } }
            tr { td { "engine" } td { (d.engine.as_deref().unwrap_or("-")) } }
            tr { td { "attempts counted against it" } td { (d.attempts) @if d.interrupted > 0 { " (and " (d.interrupted) " interrupted, not counted)" } } }
            @if let Some(reason) = &d.reason {
                tr { td { "last failure" } td #reason { (d.outcome.as_deref().unwrap_or("")) ": " (reason) } }
            }
            tr { td { "file" } td { a href=(format!("/file/{}", d.id)) { "open the file" } } }
        }
        @if !v.attempts.is_empty() {
            h2 { "Attempts" }
            table #attempts {
                tr { th { "run" } th { "attempt" } th { "started" } th { "took" } th { "outcome" } th { "engine" } th { "reason" } }
                @for a in &v.attempts {
                    tr {
                        td { (a.run) }
                        td { (a.attempt) @if let Some(c) = a.chunk_first { " (chunk from " (unit) " " (c) ")" } }
                        td { (time(a.started_ms)) }
                        td { (duration((a.ended_ms - a.started_ms) as f64 / 1000.0)) }
                        td { (a.outcome) }
                        td { (a.engine.as_deref().unwrap_or("-")) }
                        td { (a.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        h2 { "Text" }
        @if v.pages.is_empty() {
            p { "No text is stored for these " (unit) "s." }
        } @else {
            p.meta { (unit) "s " (v.first) "–" (last_shown) " of " (total) }
        }
        (window_links(d.id, &q, v.first, total))
        @for (n, text, _) in &v.pages {
            div.page id=(format!("p{n}")) {
                h3 { a href=(format!("#p{n}")) { (unit) " " (n) } " · " a href=(format!("/file/{}{}", d.id, at(&d.format, *n))) { "open" } }
                pre {
                    @if let Some(q) = &query {
                        (marked(text, highlight::matches(text, q)))
                    } @else {
                        (text)
                    }
                }
            }
        }
        (window_links(d.id, &q, v.first, total))
    };
    page(&name, body)
}

/// Where in the file a page or chapter is, as the search's links say it.
fn at(format: &str, page: u32) -> String {
    let link = search::link(b"", format, Some(page));
    link.find('#')
        .map_or(String::new(), |i| link[i..].to_string())
}

fn window_links(id: i64, q: &str, first: u32, total: u64) -> Markup {
    html! {
        p.paging {
            @if first > 1 {
                a href=(format!("/doc/{id}?q={q}&page={}", first - WINDOW)) { "← earlier pages" } " "
            }
            @if u64::from(first + WINDOW) <= total {
                a href=(format!("/doc/{id}?q={q}&page={}", first + WINDOW)) { "later pages →" }
            }
        }
    }
}
