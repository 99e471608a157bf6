//! What every page of the web interface shares: the layout with its
//! navigation and style sheet, text with marked matches, and the small
//! formatting helpers. Pages are maud templates, so every value spliced in
//! is HTML-escaped unless it is wrapped in `PreEscaped` (done here only for
//! the style sheet, the page scripts and the report's SVG charts, all of
//! them docmill's own text).

use std::ops::Range;

use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = "
body { font-family: sans-serif; margin: 0; color: #222; }
header { background: #234; color: #fff; padding: .5em 1em; display: flex; gap: 1.5em; align-items: center; }
header a { color: #fff; text-decoration: none; font-weight: bold; }
main { padding: 1em; max-width: 70em; }
form.search input[type=search] { width: 30em; font-size: 1.1em; }
mark { background: #fd6; }
.doc { margin: 1em 0 1.5em; }
.doc h3 { margin: 0; }
.meta, .path { color: #666; font-size: .9em; }
.hit { margin: .3em 0 .3em 1em; }
.facets { float: right; width: 16em; font-size: .9em; margin-left: 1em; }
.facets ul { padding-left: 1em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
.page { border-top: 1px solid #ccc; margin-top: 1em; }
.page pre { white-space: pre-wrap; font-family: inherit; }
.figures td:first-child { font-weight: bold; }
.state { font-size: 1.2em; font-weight: bold; }
svg { max-width: 100%; height: auto; }
";

/// A whole page: `title` in the tab and as the heading.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — docmill" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/" { "docmill" }
                    a href="/" { "Search" }
                    a href="/run" { "Run" }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// `text` with the byte ranges `marks` wrapped in `<mark>`; ranges that do
/// not fall on character boundaries are left unmarked rather than split.
pub fn marked(text: &str, marks: impl IntoIterator<Item = Range<usize>>) -> Markup {
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut from = 0;
    for m in marks {
        if m.start < from
            || m.end > text.len()
            || !text.is_char_boundary(m.start)
            || !text.is_char_boundary(m.end)
        {
            continue;
        }
        parts.push((false, &text[from..m.start]));
        parts.push((true, &text[m.clone()]));
        from = m.end;
    }
    parts.push((false, &text[from..]));
    html! {
        @for (is_mark, part) in parts {
            @if is_mark { mark { (part) } } @else { (part) }
        }
    }
}

/// A query string's value, percent-encoded (`application/x-www-form-urlencoded`).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A moment as local wall-clock time.
pub fn time(ms: i64) -> String {
    crate::commands::local_time(ms)
}

/// A duration for people: `4.2s`, `3m07s`, `2h05m`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_escaped_text() {
        let m = marked("a <b> c", std::iter::once(2..5)).into_string();
        assert_eq!(m, "a <mark>&lt;b&gt;</mark> c");
        // A range off a character boundary is left out, not split.
        let m = marked("中文", [1..3, 3..6]).into_string();
        assert_eq!(m, "中<mark>文</mark>");
    }

    #[test]
    fn values_are_encoded() {
        assert_eq!(encode("a b&c=\"d\"/中"), "a+b%26c%3D%22d%22%2F%E4%B8%AD");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(4.21), "4.2s");
        assert_eq!(duration(187.0), "3m07s");
        assert_eq!(duration(7500.0), "2h05m");
    }
}
