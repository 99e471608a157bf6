//! The MuPDF engine: the page count, title and author from `pdf_meta` (or,
//! where that cannot read the file, `mutool show`), then one
//! `mutool draw -F txt` over the page range, writing one file per page.
//! mutool stops at a page it cannot load; that page is flagged failed and a
//! new run resumes after it. mutool runs as a child of the worker (see
//! `child`).

use std::path::Path;
use std::process::Command;

use docmill_protocol::{DocSummary, PageFlags, PageRange, WorkerFailure};

use super::child::{self, Finished, Meta};
use super::{deterministic, io_failure, pdf_builtin, pdf_meta, PageSink, Stop};

pub const NAME: &str = "mupdf";
pub const PROGRAM: &str = "mutool";
/// Pages mutool may give up on before the document counts as unreadable.
const MAX_LOST_PAGES: u32 = 10;
/// Consecutive pages lost with nothing printed between them, after which
/// the fault is taken to be the document's, not the pages'.
const MAX_LOST_IN_A_ROW: u32 = 3;

pub fn extract(
    path: &Path,
    range: Option<PageRange>,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let file = child::file_arg(path);
    let meta = pdf_meta::read(path).map_or_else(|| metadata(&file), Ok)?;
    sink.page_count(meta.page_count)?;
    let (first, last) = super::clamp_range(range, meta.page_count)?;

    // mutool exits 1 after errors it recovered from page by page; every page
    // it printed stands. When it gives up at a page, that page is lost and
    // a new run picks up after it.
    let wanted = last - first + 1;
    let mut next = first;
    let mut lost = 0u32;
    let mut lost_in_a_row = 0u32;
    let mut first_loss = None;
    // One file per page: mutool passes a font's control characters through,
    // form feeds included, so its single text stream has no reliable page
    // boundary. The folder goes with the job (and a killed worker's with the
    // run's scratch folder, which the supervisor removes).
    let pages_dir = tempfile::Builder::new()
        .prefix("docmill-mutool-")
        .tempdir()
        .map_err(|e| io_failure("cannot make a folder for mutool's pages", &e))?;
    let pattern = pages_dir.path().join("p%d.txt");
    while next <= last {
        let mut cmd = Command::new(PROGRAM);
        cmd.args(["draw", "-q", "-F", "txt", "-o"])
            .arg(&pattern)
            .arg(&file)
            .arg(format!("{next}-{last}"));
        let (finished, sent) =
            child::pages_from_files(PROGRAM, &mut cmd, pages_dir.path(), next, last, sink)?;
        if finished.stderr.contains("cannot authenticate password") {
            return Err(deterministic("password required".to_string()).into());
        }
        next += sent;
        if next > last {
            break;
        }
        lost_in_a_row = if sent == 0 { lost_in_a_row + 1 } else { 1 };
        lost += 1;
        let why = reason(&finished).unwrap_or_else(|| finished.describe_status());
        first_loss.get_or_insert_with(|| format!("page {next}: {why}"));
        if lost_in_a_row >= MAX_LOST_IN_A_ROW || lost > MAX_LOST_PAGES || lost == wanted {
            let what = format!("mutool draw failed on {lost} of {wanted} pages");
            return Err(finished.failure(&what, first_loss).into());
        }
        sink.page(
            next,
            String::new(),
            PageFlags {
                failed: true,
                ..PageFlags::default()
            },
        );
        next += 1;
    }
    Ok(meta.into_summary(NAME))
}

/// One `mutool show -g` for three paths: it prints one line per path, an
/// indirect object as `N G obj VALUE`, a missing one as `null`.
fn metadata(file: &Path) -> Result<Meta, WorkerFailure> {
    let mut cmd = Command::new(PROGRAM);
    cmd.args(["show", "-g"]).arg(file).args([
        "trailer/Root/Pages/Count",
        "trailer/Info/Title",
        "trailer/Info/Author",
    ]);
    let (stdout, finished) = child::capture(PROGRAM, &mut cmd)?;
    // `show` opens an encrypted file without its password and only warns;
    // some of these still draw (an owner password only), so the warning
    // decides only when nothing else can be read.
    let locked = finished.stderr.contains("cannot authenticate password");
    if !finished.status.success() {
        if locked {
            return Err(deterministic("password required".to_string()));
        }
        let why = reason(&finished).map(|r| format!("not a readable PDF: {r}"));
        return Err(finished.failure("mutool show failed", why));
    }
    parse_show(&String::from_utf8_lossy(&stdout)).map_err(|e| {
        if locked {
            deterministic("password required".to_string())
        } else {
            e
        }
    })
}

fn parse_show(out: &str) -> Result<Meta, WorkerFailure> {
    let mut lines = out.lines().map(strip_obj_prefix);
    let count = lines.next().unwrap_or("null");
    let page_count = match count.parse::<u64>() {
        Ok(n) if n > 0 => {
            u32::try_from(n).map_err(|_| deterministic(format!("implausible page count {n}")))?
        }
        _ if count == "null" || count == "0" => {
            return Err(deterministic(
                "not a readable PDF: no page tree (or the PDF has no pages)".to_string(),
            ))
        }
        _ => {
            return Err(deterministic(format!(
                "not a readable PDF: page count is {}",
                crate::panic_note::one_line(count)
            )))
        }
    };
    let title = lines.next().and_then(pdf_string);
    let author = lines.next().and_then(pdf_string);
    Ok(Meta {
        page_count,
        title,
        author,
    })
}

/// `12 0 obj VALUE` -> `VALUE`.
fn strip_obj_prefix(line: &str) -> &str {
    let line = line.trim();
    let mut parts = line.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(g), Some("obj"), rest)
            if n.bytes().all(|b| b.is_ascii_digit()) && g.bytes().all(|b| b.is_ascii_digit()) =>
        {
            rest.unwrap_or("").trim()
        }
        _ => line,
    }
}

/// Decodes a PDF string object as `mutool show` prints it: `(literal)` with
/// backslash escapes, or `<hex>`. Anything else (null, a number, a
/// dictionary) is no string. Empty strings count as absent.
fn pdf_string(token: &str) -> Option<String> {
    let bytes = if let Some(inner) = token.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
        unescape_literal(inner.as_bytes())
    } else if let Some(inner) = token.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
        if inner.starts_with('<') {
            return None;
        }
        unhex(inner)?
    } else {
        return None;
    };
    let s = pdf_builtin::decode_pdf_string(&bytes);
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

fn unescape_literal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        i += 1;
        if b != b'\\' || i >= s.len() {
            out.push(b);
            continue;
        }
        let e = s[i];
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut digits = 1;
                while digits < 3 && i < s.len() && (b'0'..=b'7').contains(&s[i]) {
                    v = v * 8 + u32::from(s[i] - b'0');
                    i += 1;
                    digits += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| (b as char).to_digit(16).map(|d| d as u8))
        .collect::<Option<_>>()?;
    Some(
        digits
            .chunks(2)
            .map(|c| (c[0] << 4) | c.get(1).copied().unwrap_or(0))
            .collect(),
    )
}

/// The most telling line of mutool's stderr: its last `error:` that is not
/// the closing "cannot draw" summary.
fn reason(finished: &Finished) -> Option<String> {
    let errors: Vec<&str> = finished
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .collect();
    errors
        .iter()
        .rev()
        .find(|l| !l.starts_with("cannot draw"))
        .or(errors.last())
        .map(|l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_output_with_direct_and_indirect_values() {
        let m = parse_show("352\n(Free Culture)\n12 0 obj <FEFF004C0065007300730069006700>\n")
            .expect("parses");
        assert_eq!(m.page_count, 352);
        assert_eq!(m.title.as_deref(), Some("Free Culture"));
        assert_eq!(m.author.as_deref(), Some("Lessig"));
    }

    #[test]
    fn missing_metadata_is_none_and_missing_count_fails() {
        let m = parse_show("18 0 obj 4\nnull\n()\n").expect("parses");
        assert_eq!(
            m,
            Meta {
                page_count: 4,
                title: None,
                author: None
            }
        );
        assert!(parse_show("null\nnull\nnull\n").is_err());
        assert!(parse_show("").is_err());
        assert!(parse_show("<</Type/Pages>>\n").is_err());
        assert!(parse_show("99999999999\n").is_err());
    }

    #[test]
    fn literal_escapes() {
        assert_eq!(
            pdf_string(r"(VA \(VIReC\)\r\n caf\351)").as_deref(),
            Some("VA (VIReC)\r\n caf\u{e9}")
        );
        assert_eq!(pdf_string("<4142 43>").as_deref(), Some("ABC"));
        assert_eq!(pdf_string("<zz>"), None);
        assert_eq!(pdf_string("<</A 1>>"), None);
    }
}
