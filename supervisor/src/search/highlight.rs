//! Where a page's original text matches a query, and the snippet shown for
//! a hit: a window of the text around the matches, with the matches given
//! as byte offsets into the snippet. Both stores' hits are marked here, the
//! same way, from the text as extracted (never the index's grams).

use std::ops::Range;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::cjk::is_cjk;
use super::query::{Field, Query};

/// A unit of text as the index sees it: a word (outside CJK runs) or one
/// CJK character.
#[derive(Debug)]
struct Unit {
    /// The word folded as the index folds it (lower case, no accents), or
    /// the CJK character.
    key: String,
    span: Range<usize>,
    cjk: bool,
    /// For a CJK character: the last of its run.
    run_end: bool,
}

/// Lower case without diacritics, as SQLite's `unicode61 remove_diacritics 2`.
fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn units(text: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let mut word: Option<usize> = None;
    let mut last_cjk_end: Option<usize> = None;
    let close_word = |out: &mut Vec<Unit>, start: usize, end: usize| {
        out.push(Unit {
            key: fold(&text[start..end]),
            span: start..end,
            cjk: false,
            run_end: false,
        });
    };
    for (i, c) in text.char_indices() {
        let cjk = is_cjk(c);
        if !cjk {
            // A CJK run ends at any other character.
            if let (Some(end), Some(u)) = (last_cjk_end.take(), out.last_mut()) {
                if u.cjk && u.span.end == end {
                    u.run_end = true;
                }
            }
        }
        if cjk {
            if let Some(start) = word.take() {
                close_word(&mut out, start, i);
            }
            out.push(Unit {
                key: c.to_string(),
                span: i..i + c.len_utf8(),
                cjk: true,
                run_end: false,
            });
            last_cjk_end = Some(i + c.len_utf8());
        } else if c.is_alphanumeric() {
            word.get_or_insert(i);
        } else if let Some(start) = word.take() {
            close_word(&mut out, start, i);
        }
    }
    if let Some(start) = word {
        close_word(&mut out, start, text.len());
    }
    if let Some(u) = out.last_mut() {
        if u.cjk {
            u.run_end = true;
        }
    }
    out
}

/// Whether `pattern` (a term's units) matches `text` at `at`, as the index
/// would: words equal (the last a prefix when asked), CJK characters equal
/// and, where the term breaks a run inside itself, the text breaking its
/// run there too.
fn matches_at(text: &[Unit], at: usize, pattern: &[Unit], prefix: bool) -> bool {
    if at + pattern.len() > text.len() {
        return false;
    }
    let last = pattern.len() - 1;
    pattern.iter().enumerate().all(|(j, q)| {
        let t = &text[at + j];
        if q.cjk != t.cjk {
            return false;
        }
        if !q.cjk {
            return if j == last && prefix {
                t.key.starts_with(&q.key)
            } else {
                t.key == q.key
            };
        }
        t.key == q.key && (j == last || q.run_end == t.run_end)
    })
}

/// The byte ranges of `text` that match the wanted terms of `query` which
/// look in page text, in order and merged where they touch.
pub fn matches(text: &str, query: &Query) -> Vec<Range<usize>> {
    let page = units(text);
    let mut found: Vec<Range<usize>> = Vec::new();
    for term in query.wanted().filter(|t| t.field == Field::Any) {
        let pattern = units(&term.text);
        if pattern.is_empty() {
            continue;
        }
        for at in 0..page.len() {
            if matches_at(&page, at, &pattern, term.prefix) {
                found.push(page[at].span.start..page[at + pattern.len() - 1].span.end);
            }
        }
    }
    found.sort_by_key(|r| (r.start, r.end));
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in found {
        match merged.last_mut() {
            Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// A hit's snippet: some text around its matches, whitespace collapsed,
/// with `…` where the page goes on; `marks` are byte ranges of `text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    pub marks: Vec<Range<usize>>,
}

/// About how many characters a snippet shows.
const WIDTH: usize = 200;
/// How many characters of context come before the first match.
const BEFORE: usize = 60;

/// The snippet of `text` for `query`: the window of about `WIDTH`
/// characters that holds the most matches, starting a little before the
/// first of them; the page's start when nothing in its text matched (the
/// hit was for its title or author).
pub fn snippet(text: &str, query: &Query) -> Snippet {
    let found = matches(text, query);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let char_at = |byte: usize| chars.partition_point(|&(i, _)| i < byte);
    let byte_of = |ch: usize| chars.get(ch).map_or(text.len(), |&(i, _)| i);
    // The window starting before each match; the one covering most wins.
    let mut best = (0usize, 0usize);
    for (k, m) in found.iter().enumerate() {
        let start = char_at(m.start).saturating_sub(BEFORE);
        let end = byte_of(start + WIDTH);
        let covered = found[k..].iter().take_while(|n| n.end <= end).count();
        if covered > best.1 {
            best = (start, covered);
        }
    }
    let mut start = best.0;
    // Start at a word's beginning when one is near.
    if start > 0 {
        if let Some(space) = chars[start..(start + 15).min(chars.len())]
            .iter()
            .position(|(_, c)| c.is_whitespace())
        {
            let from = byte_of(start);
            let first_mark = found
                .iter()
                .find(|m| m.start >= from)
                .map_or(usize::MAX, |m| char_at(m.start));
            if start + space < first_mark {
                start += space + 1;
            }
        }
    }
    let mut end = (start + WIDTH).min(chars.len());
    if end < chars.len() {
        // End at a word's end when one is near, but never inside a match.
        if let Some(back) = chars[end.saturating_sub(15).max(start)..end]
            .iter()
            .rposition(|(_, c)| c.is_whitespace())
        {
            let cut = end.saturating_sub(15).max(start) + back;
            let cut_byte = byte_of(cut);
            if !found.iter().any(|m| m.start < cut_byte && cut_byte < m.end) {
                end = cut;
            }
        }
    }
    let (from, to) = (byte_of(start), byte_of(end));
    let mut out = Snippet {
        text: String::with_capacity(to - from + 8),
        marks: Vec::new(),
    };
    if from > 0 {
        out.text.push('…');
    }
    // Copy the window, collapsing whitespace, and carry the marks over.
    let mut open: Option<usize> = None;
    let mut pending_space = false;
    let mut marks = found
        .iter()
        .filter(|m| m.start >= from && m.end <= to)
        .peekable();
    for &(i, c) in &chars[start..end] {
        if let Some(m) = marks.peek() {
            if open.is_some() && i >= m.end {
                out.marks.push(open.take().unwrap_or(0)..out.text.len());
                marks.next();
            }
        }
        if c.is_whitespace() {
            pending_space = !out.text.is_empty() && !out.text.ends_with('…');
            continue;
        }
        if pending_space {
            out.text.push(' ');
            pending_space = false;
        }
        if let Some(m) = marks.peek() {
            if open.is_none() && i == m.start {
                open = Some(out.text.len());
            }
        }
        out.text.push(c);
    }
    if let Some(s) = open {
        out.marks.push(s..out.text.len());
    }
    if to < text.len() {
        out.text.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::query::parse;
    use super::*;

    fn marked<'a>(text: &'a str, q: &str) -> Vec<&'a str> {
        let query = parse(q).unwrap();
        matches(text, &query)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn matches_follow_the_index() {
        let cases: Vec<(&str, &str, Vec<&str>)> = vec![
            ("The Loop, the loops.", "loop", vec!["Loop"]),
            ("The Loop, the loops.", "loop*", vec!["Loop", "loops"]),
            ("a loop-type thing", "\"loop type\"", vec!["loop-type"]),
            ("Café crème", "cafe", vec!["Café"]),
            ("loop type", "loop -type", vec!["loop"]),
            ("中文排版", "排版", vec!["排版"]),
            ("中文排版", "文排", vec!["文排"]),
            ("中文、排版", "文排", vec![]),
            ("文中 foo", "\"中 foo\"", vec!["中 foo"]),
            ("中文 foo", "\"中 foo\"", vec![]),
            ("Unicode中文字", "\"unicode 中文\"", vec!["Unicode中文"]),
            ("中文版と中", "中", vec!["中", "中"]),
            ("賢治の夢の世界", "賢治", vec!["賢治"]),
            ("title only", "title:only", vec![]),
        ];
        for (text, q, want) in cases {
            assert_eq!(marked(text, q), want, "{q} in {text}");
        }
    }

    #[test]
    fn snippets_mark_what_matched() {
        let text = format!(
            "{}\n\nThe   stochastic gradient\tdescends.{}",
            "lead ".repeat(40),
            " tail".repeat(60)
        );
        let q = parse("stochastic gradient").unwrap();
        let s = snippet(&text, &q);
        assert!(s.text.starts_with('…') && s.text.ends_with('…'), "{s:?}");
        let words: Vec<&str> = s.marks.iter().map(|m| &s.text[m.clone()]).collect();
        assert_eq!(words, ["stochastic", "gradient"]);
        assert!(s.text.contains("The stochastic gradient descends."));
        assert!(s.text.chars().count() <= WIDTH + 2);

        // Nothing in the text: the page's start, unmarked.
        let s = snippet("short page", &parse("author:x").unwrap());
        assert_eq!(
            s,
            Snippet {
                text: "short page".into(),
                marks: vec![]
            }
        );

        let s = snippet("これは中文排版の本です", &parse("排版").unwrap());
        assert_eq!(&s.text[s.marks[0].clone()], "排版");
    }
}
