//! How a search is shown: the command's exit codes, one JSON object for
//! programs, and for people a list of documents, each with its best pages,
//! their snippets (matches styled by `mark_style`) and links.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use docmill_protocol::exit_codes;

use super::{mark_ranges, search, Results, SearchError, SearchRequest};
use crate::store;

/// Nothing matched: 1, as grep says it.
pub const NO_MATCH: i32 = 1;

/// `docmill search`: runs the request against the index at `db` and prints
/// the results; 0 when something matched, 1 when nothing did, 2 for a query
/// that cannot be read.
pub fn command(db: &Path, request: &SearchRequest, json: bool) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    let results = match search(catalog.as_mut(), request) {
        Ok(r) => r,
        Err(SearchError::Query(e)) => {
            eprintln!("docmill: {e}");
            return Ok(exit_codes::USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = stdout.lock();
    if json {
        serde_json::to_writer(&mut out, &results)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &results, mark_style(tty))?;
    }
    out.flush()?;
    if results.total_pages == 0 {
        if !json {
            eprintln!("docmill: no matches for {:?}", request.query);
        }
        return Ok(NO_MATCH);
    }
    Ok(exit_codes::OK)
}

/// What goes around a match in text output: bold red on a terminal,
/// `»…«` elsewhere. The one place to change the style (or hand it to a
/// colour library).
pub fn mark_style(tty: bool) -> (&'static str, &'static str) {
    if tty {
        ("\x1b[1;31m", "\x1b[0m")
    } else {
        ("»", "«")
    }
}

/// The results for people: a line of totals, then each document — its
/// title and author, format and count of matching pages, its path — and
/// its best pages, each with its snippet and link.
pub fn write_text(
    out: &mut dyn Write,
    results: &Results,
    (on, off): (&str, &str),
) -> io::Result<()> {
    let shown = results.documents.len();
    if shown == 0 {
        if results.total_pages > 0 {
            writeln!(
                out,
                "{} matching pages in {} documents; none past document {}",
                results.total_pages, results.total_documents, results.offset
            )?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{} matching {} in {} {}; documents {}-{} by best page:",
        results.total_pages,
        plural(results.total_pages, "page", "pages"),
        results.total_documents,
        plural(results.total_documents, "document", "documents"),
        results.offset + 1,
        results.offset + shown
    )?;
    for doc in &results.documents {
        writeln!(out)?;
        let name = doc.title.clone().unwrap_or_else(|| {
            Path::new(&doc.path)
                .file_name()
                .map_or(doc.path.clone(), |n| n.to_string_lossy().into_owned())
        });
        let by = doc
            .author
            .as_deref()
            .map(|a| format!(" — {a}"))
            .unwrap_or_default();
        let unit = if doc.format == "epub" {
            plural(doc.matching_pages, "chapter", "chapters")
        } else {
            plural(doc.matching_pages, "page", "pages")
        };
        writeln!(
            out,
            "{name}{by}  ({}, {} matching {unit})",
            doc.format, doc.matching_pages
        )?;
        writeln!(out, "{}", doc.path)?;
        for hit in &doc.hits {
            let at = if doc.format == "epub" {
                format!("chapter {}", hit.page)
            } else {
                format!("page {}", hit.page)
            };
            let mut snippet = String::with_capacity(hit.snippet.len() + 16);
            let mut from = 0;
            for m in mark_ranges(hit) {
                snippet.push_str(&hit.snippet[from..m.start]);
                snippet.push_str(on);
                snippet.push_str(&hit.snippet[m.clone()]);
                snippet.push_str(off);
                from = m.end;
            }
            snippet.push_str(&hit.snippet[from..]);
            if snippet.is_empty() {
                // The page has no text; its title or author matched.
                snippet.push_str("(no text)");
            }
            writeln!(out, "  {at}: {snippet}")?;
            writeln!(out, "    {}", hit.link)?;
        }
    }
    Ok(())
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
