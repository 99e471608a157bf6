//! The Poppler engine: the page count, title and author from `pdf_meta` (or,
//! where that cannot read the file, `pdfinfo`), then
//! one `pdftotext -f A -l B -enc UTF-8 FILE -` over the page range, split
//! into pages at the form feed Poppler writes after each page. Both run as
//! children of the worker (see `child`).

use std::path::Path;
use std::process::Command;

use docmill_protocol::{DocSummary, PageRange, WorkerFailure};

use super::child::{self, Finished, Meta};
use super::{deterministic, pdf_meta, PageSink, Stop};

pub const NAME: &str = "poppler";
pub const PROGRAM: &str = "pdftotext";
pub const INFO_PROGRAM: &str = "pdfinfo";

pub fn extract(
    path: &Path,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let file = child::file_arg(path);
    let meta = pdf_meta::read(path).map_or_else(|| metadata(&file), Ok)?;
    sink.page_count(meta.page_count)?;
    let (first, last) = super::clamp_range(range, meta.page_count)?;

    let mut cmd = Command::new(PROGRAM);
    cmd.arg("-f")
        .arg(first.to_string())
        .arg("-l")
        .arg(last.to_string())
        .args(["-enc", "UTF-8"])
        .arg(&file)
        .arg("-");
    let (finished, sent) = child::pages_to_sink(PROGRAM, &mut cmd, first, last, sink)?;
    if finished.stderr.contains("Incorrect password") {
        return Err(deterministic("password required".to_string()).into());
    }
    let wanted = last - first + 1;
    if !finished.status.success() {
        return Err(finished
            .failure("pdftotext failed", reason(&finished))
            .into());
    }
    if sent < wanted {
        let what = format!("pdftotext stopped after {sent} of {wanted} pages");
        return Err(finished.failure(&what, reason(&finished)).into());
    }
    Ok(meta.into_summary(NAME))
}

fn metadata(file: &Path) -> Result<Meta, WorkerFailure> {
    let mut cmd = Command::new(INFO_PROGRAM);
    cmd.args(["-enc", "UTF-8"]).arg(file);
    let (stdout, finished) = child::capture(INFO_PROGRAM, &mut cmd)?;
    if finished.stderr.contains("Incorrect password") {
        return Err(deterministic("password required".to_string()));
    }
    if !finished.status.success() {
        let why = reason(&finished).map(|r| format!("not a readable PDF: {r}"));
        return Err(finished.failure("pdfinfo failed", why));
    }
    parse_info(&String::from_utf8_lossy(&stdout))
}

fn parse_info(out: &str) -> Result<Meta, WorkerFailure> {
    let mut meta = Meta::default();
    let mut pages = None;
    for line in out.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Pages" => pages = Some(value),
            "Title" if !value.is_empty() => meta.title = Some(value.to_string()),
            "Author" if !value.is_empty() => meta.author = Some(value.to_string()),
            _ => {}
        }
    }
    meta.page_count = match pages.map(str::parse::<u32>) {
        Some(Ok(n)) if n > 0 => n,
        Some(Ok(_)) => return Err(deterministic("the PDF has no pages".to_string())),
        Some(Err(_)) | None => {
            return Err(deterministic(
                "not a readable PDF: pdfinfo gave no page count".to_string(),
            ))
        }
    };
    Ok(meta)
}

/// The most telling line of Poppler's stderr: its last syntax or internal
/// error, else its last line that says "Error".
fn reason(finished: &Finished) -> Option<String> {
    let lines: Vec<&str> = finished.stderr.lines().collect();
    lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Syntax Error") || l.starts_with("Internal Error"))
        .or_else(|| lines.iter().rev().find(|l| l.contains("Error")))
        .or(lines.last())
        .map(|l| match l.split_once(": ") {
            Some((head, rest)) if head.ends_with("Error") || head.contains("Error (") => {
                rest.to_string()
            }
            _ => l.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdfinfo_output() {
        let out = "Title:           Free Culture\nAuthor:          Lawrence Lessig\n\
                   Producer:        Acrobat Distiller\nPages:           352\nEncrypted:       no\n";
        let m = parse_info(out).expect("parses");
        assert_eq!(m.page_count, 352);
        assert_eq!(m.title.as_deref(), Some("Free Culture"));
        assert_eq!(m.author.as_deref(), Some("Lawrence Lessig"));
    }

    #[test]
    fn no_or_zero_pages_fail() {
        assert!(parse_info("Title: x\n").is_err());
        assert!(parse_info("Pages:           0\n").is_err());
        let m = parse_info("Title:\nPages: 2\n").expect("parses");
        assert_eq!(m.title, None);
    }
}
