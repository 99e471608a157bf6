//! EPUB: one page per spine item (chapter), in reading order, with markup
//! stripped by a streaming XML tokenizer. The zip is first walked with a cap
//! on decompressed bytes per entry and per book, so a zip bomb is refused
//! before the EPUB reader inflates anything; one descriptor is open per book
//! at any time.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use docmill_protocol::{DocSummary, Job, PageFlags, WorkerFailure};
use epub::doc::EpubDoc;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{deterministic, io_failure, PageSink};
use crate::panic_note::one_line;

pub const NAME: &str = "epub";

pub fn extract(
    path: &Path,
    job: &Job,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, WorkerFailure> {
    check_inflated_size(path, job.epub_entry_cap, job.epub_book_cap)?;
    let mut doc = EpubDoc::new(path).map_err(|e| match e {
        epub::doc::DocError::IOError(io) => io_failure("cannot read the file", &io),
        other => deterministic(format!(
            "not a readable EPUB: {}",
            one_line(&other.to_string())
        )),
    })?;
    let spine: Vec<String> = doc.spine.iter().map(|s| s.idref.clone()).collect();
    if spine.is_empty() {
        return Err(deterministic(
            "the EPUB's spine lists no chapters".to_string(),
        ));
    }
    let mut missing = 0;
    for (i, idref) in spine.iter().enumerate() {
        let page = i as u32 + 1;
        if job.range.is_some_and(|r| !r.contains(page)) {
            continue;
        }
        match doc.get_resource(idref) {
            Some((bytes, _mime)) => {
                let markup = String::from_utf8_lossy(&bytes);
                sink.page(page, strip_markup(&markup), PageFlags::default());
            }
            None => {
                missing += 1;
                sink.page(
                    page,
                    String::new(),
                    PageFlags {
                        failed: true,
                        ..PageFlags::default()
                    },
                );
            }
        }
    }
    if missing == spine.len() {
        return Err(deterministic(
            "none of the EPUB's chapters could be read".to_string(),
        ));
    }
    let meta = |key: &str| {
        doc.mdata(key)
            .map(|m| m.value.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Ok(DocSummary {
        page_count: spine.len() as u32,
        title: meta("title"),
        author: meta("creator"),
        language: meta("language"),
        engine: NAME.to_string(),
        content_hash: None,
    })
}

/// Inflates every entry into a sink, counting, and refuses the book when an
/// entry or the whole book expands past its cap. Declared sizes can lie, so
/// the bytes are counted, not read from the header.
fn check_inflated_size(path: &Path, entry_cap: u64, book_cap: u64) -> Result<(), WorkerFailure> {
    let file = File::open(path).map_err(|e| io_failure("cannot read the file", &e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| deterministic(format!("not a readable EPUB: {}", one_line(&e.to_string()))))?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let entry = match zip.by_index(i) {
            Ok(entry) => entry,
            // A damaged or unsupported entry is the EPUB reader's to judge.
            Err(_) => continue,
        };
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        let n = match io::copy(&mut entry.take(entry_cap + 1), &mut io::sink()) {
            Ok(n) => n,
            Err(_) => continue,
        };
        if n > entry_cap {
            return Err(deterministic(format!(
                "EPUB entry {name} expands past the {entry_cap}-byte cap (zip bomb?)"
            )));
        }
        total += n;
        if total > book_cap {
            return Err(deterministic(format!(
                "EPUB expands past the {book_cap}-byte cap for one book (zip bomb?)"
            )));
        }
    }
    Ok(())
}

/// Elements whose content is not reading text.
const SKIPPED: &[&str] = &["head", "script", "style", "svg", "math"];
/// Elements that end a line of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "section",
    "article",
    "pre",
    "dt",
    "dd",
    "table",
    "ul",
    "ol",
    "hr",
    "figcaption",
];

/// Strips XHTML markup to plain text: text nodes in order, a newline after
/// each block element, whitespace folded. Malformed markup falls back to a
/// plain tag stripper for the rest of the chapter.
pub fn strip_markup(markup: &str) -> String {
    let mut reader = Reader::from_str(markup);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    let mut out = String::with_capacity(markup.len() / 2);
    let mut skip_depth = 0usize;
    loop {
        let offset = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                if skip_depth > 0 || SKIPPED.contains(&name.as_ref()) {
                    skip_depth += 1;
                } else if BLOCKS.contains(&name.as_ref()) {
                    out.push('\n');
                }
            }
            Ok(Event::End(e)) => {
                if skip_depth > 0 {
                    skip_depth -= 1;
                } else if BLOCKS.contains(&e.local_name().as_ref()) {
                    out.push('\n');
                }
            }
            Ok(Event::Empty(e)) => {
                if skip_depth == 0 && BLOCKS.contains(&e.local_name().as_ref()) {
                    out.push('\n');
                }
            }
            Ok(Event::Text(t)) if skip_depth == 0 => out.push_str(&t.xml10_content()),
            Ok(Event::CData(t)) if skip_depth == 0 => out.push_str(&t),
            Ok(Event::GeneralRef(r)) if skip_depth == 0 => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else if let Some(s) = named_entity(&r.xml10_content()) {
                    out.push_str(s);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => {
                out.push_str(&strip_tags_naively(markup.get(offset..).unwrap_or("")));
                break;
            }
        }
    }
    fold_whitespace(&out)
}

fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        "mdash" => "—",
        "ndash" => "–",
        "hellip" => "…",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "copy" => "©",
        _ => return None,
    })
}

fn strip_tags_naively(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Folds runs of spaces and tabs into one space and keeps single line
/// breaks, so chapters read as paragraphs.
fn fold_whitespace(s: &str) -> String {
    let mut lines = Vec::new();
    for line in s.lines() {
        let folded = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !folded.is_empty() {
            lines.push(folded);
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::strip_markup;

    #[test]
    fn strips_tags_keeps_text_in_order() {
        let html = r#"<?xml version="1.0"?><html><head><title>T</title><style>p{}</style></head>
            <body><h1>Chapter&#160;One</h1><p>It was a <em>dark</em> &amp; stormy night.</p><p>Next</p></body></html>"#;
        assert_eq!(
            strip_markup(html),
            "Chapter One\nIt was a dark & stormy night.\nNext"
        );
    }

    #[test]
    fn malformed_markup_still_gives_text() {
        let html = "<html><body><p>one</p><p>two <b>three</p></i></body></html>";
        let text = strip_markup(html);
        assert!(text.contains("one"), "{text}");
        assert!(text.contains("two three"), "{text}");
    }
}
