//! How a search is shown: the command's exit codes, one JSON object for
//! programs, and for people a list of documents, each with its best pages,
//! their snippets (matches styled by `mark_style`) and links.

use std::io::{self, Write};
use std::path::Path;

use docmill_protocol::exit_codes;

use super::{mark_ranges, search, Results, SearchError, SearchRequest};
use crate::store;

/// `docmill search`: runs the request against the index at `db` and prints
/// the results; 0 when something matched, 1 when nothing did, 2 for a query
/// that cannot be read.
pub fn command(
    db: &Path,
    request: &SearchRequest,
    json: bool,
    colored: bool,
) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    let results = match search(catalog.as_mut(), request) {
        Ok(r) => r,
        Err(SearchError::Query(e)) => {
            eprintln!("docmill: {e}");
            return Ok(exit_codes::USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &results)?;
        writeln!(out)?;
    } else {
        let (on, off) = mark_style(colored);
        write_text(&mut out, &results, (&on, &off))?;
    }
    out.flush()?;
    if results.total_pages == 0 {
        if !json {
            eprintln!("docmill: no matches for {:?}", request.query);
        }
        return Ok(exit_codes::NO_MATCH);
    }
    Ok(exit_codes::OK)
}

/// What goes around a match in text output: the highlight style where
/// colour is on (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`, a terminal), and
/// `»…«` elsewhere, marks that brackets in the text cannot be mistaken for.
pub fn mark_style(colored: bool) -> (String, String) {
    if colored {
        let style = crate::cli::HIT_STYLE;
        (style.render().to_string(), style.render_reset().to_string())
    } else {
        ("»".to_string(), "«".to_string())
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
    let totals = totals(results);
    if shown == 0 {
        if results.total_pages > 0 {
            writeln!(out, "{totals}; none past document {}", results.offset)?;
        }
        return Ok(());
    }
    // A query that matches more pages than are ranked says which it ranked.
    let among = if results.more_pages || results.ranked_pages < results.total_pages {
        format!(" of the first {} pages", results.ranked_pages)
    } else {
        String::new()
    };
    writeln!(
        out,
        "{totals}; documents {}-{} by best page{among}:",
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

/// `12 matching pages in 3 documents`, or where the counts stopped short,
/// `more than 100000 matching pages in at least 98 documents`.
fn totals(results: &Results) -> String {
    let pages = results.total_pages;
    let documents = results.total_documents;
    format!(
        "{}{pages} matching {} in {}{documents} {}",
        if results.more_pages { "more than " } else { "" },
        plural(pages, "page", "pages"),
        if results.more_documents {
            "at least "
        } else {
            ""
        },
        plural(documents, "document", "documents"),
    )
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::DocumentHits;

    fn results(pages: u64, more: bool, documents: u64, ranked: u64) -> Results {
        Results {
            query: "q".into(),
            total_pages: pages,
            more_pages: more,
            total_documents: documents,
            more_documents: ranked < pages || more,
            ranked_pages: ranked,
            offset: 0,
            documents: vec![DocumentHits {
                path: "/lib/a.pdf".into(),
                title: None,
                author: None,
                format: "pdf".into(),
                link: "file:///lib/a.pdf".into(),
                matching_pages: 2,
                score: 1.0,
                hits: Vec::new(),
            }],
        }
    }

    fn first_line(r: &Results) -> String {
        let mut out = Vec::new();
        write_text(&mut out, r, ("", "")).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn totals_say_where_counting_stopped() {
        assert_eq!(
            first_line(&results(12, false, 3, 12)),
            "12 matching pages in 3 documents; documents 1-1 by best page:"
        );
        assert_eq!(
            first_line(&results(25_000, false, 98, 10_000)),
            "25000 matching pages in at least 98 documents; documents 1-1 by best page of the first 10000 pages:"
        );
        assert_eq!(
            first_line(&results(100_000, true, 98, 10_000)),
            "more than 100000 matching pages in at least 98 documents; documents 1-1 by best page of the first 10000 pages:"
        );
    }
}
