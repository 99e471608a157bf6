//! Chinese, Japanese and Korean text for a word index: runs of these
//! scripts have no spaces between words, so the index sees each run as
//! overlapping two-character grams (the approach of Lucene's CJK analyzer),
//! and a query sees its own runs the same way, as phrases of grams.

use std::borrow::Cow;

/// The characters indexed as grams: ideographs, kana, Hangul and Bopomofo,
/// as closed ranges. Every one is a letter or number to the indexes'
/// tokenizers (SQLite's `unicode61`, PostgreSQL's parser), so a gram is
/// always a token; signs and punctuation of these blocks stay separators.
pub const RANGES: &[(u32, u32)] = &[
    (0x1100, 0x11FF),   // Hangul Jamo
    (0x3005, 0x3007),   // 々 〆 〇
    (0x3021, 0x3029),   // Hangzhou numerals
    (0x3031, 0x3035),   // kana repetition marks
    (0x3041, 0x3096),   // Hiragana
    (0x309D, 0x309F),   // Hiragana iteration marks, ゟ
    (0x30A1, 0x30FA),   // Katakana
    (0x30FC, 0x30FF),   // Katakana prolonged sound and iteration marks, ヿ
    (0x3105, 0x312F),   // Bopomofo
    (0x3131, 0x318E),   // Hangul compatibility Jamo
    (0x31F0, 0x31FF),   // Katakana phonetic extensions
    (0x3400, 0x4DBF),   // CJK extension A
    (0x4E00, 0x9FFF),   // CJK unified ideographs
    (0xA960, 0xA97C),   // Hangul Jamo extended A
    (0xAC00, 0xD7A3),   // Hangul syllables
    (0xD7B0, 0xD7FB),   // Hangul Jamo extended B
    (0xF900, 0xFAD9),   // CJK compatibility ideographs
    (0xFF66, 0xFF9F),   // half-width Katakana
    (0xFFA0, 0xFFDC),   // half-width Hangul
    (0x20000, 0x2FA1F), // CJK extensions B to F, compatibility supplement
    (0x30000, 0x323AF), // CJK extensions G and H
];

pub fn is_cjk(c: char) -> bool {
    let c = c as u32;
    // Everything below U+1100 is outside every range: the common case.
    c >= 0x1100 && RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The ranges as a regular-expression bracket class (`[\u1100-\u11ff…]`),
/// for a database that splits text the same way in SQL.
pub fn regex_class() -> String {
    let mut class = String::from("[");
    for &(lo, hi) in RANGES {
        class.push_str(&format!("{}-{}", escape(lo), escape(hi)));
    }
    class.push(']');
    class
}

fn escape(c: u32) -> String {
    if c > 0xFFFF {
        format!("\\U{c:08x}")
    } else {
        format!("\\u{c:04x}")
    }
}

/// A run of text: CJK or not, as a byte range of its source.
fn runs(text: &str) -> impl Iterator<Item = (bool, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let cjk = is_cjk(first);
        let end = rest
            .char_indices()
            .find(|&(_, c)| is_cjk(c) != cjk)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some((cjk, run))
    })
}

/// The grams of one CJK run: each pair of neighbours, then the last
/// character alone, so that a one-character query (a prefix of a gram) also
/// finds a character at the end of a run. A run of one is itself.
fn grams(run: &str, out: &mut String, trailing: bool) {
    let chars: Vec<char> = run.chars().collect();
    if chars.len() == 1 {
        out.push(chars[0]);
        return;
    }
    for (i, pair) in chars.windows(2).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push(pair[0]);
        out.push(pair[1]);
    }
    if trailing {
        out.push(' ');
        out.push(chars[chars.len() - 1]);
    }
}

/// The text an index stores for `text`: unchanged outside CJK runs, and
/// each run replaced by its grams with a space on either side. PostgreSQL's
/// `docmill_fts_text` gives the same bytes.
pub fn index_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_cjk) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (cjk, run) in runs(text) {
        if cjk {
            out.push(' ');
            grams(run, &mut out, true);
            out.push(' ');
        } else {
            out.push_str(run);
        }
    }
    Cow::Owned(out)
}

/// What a query term becomes: the text of a phrase over the index's tokens,
/// and whether its last token is a prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct QueryForm {
    pub text: String,
    pub prefix: bool,
}

/// A query term as the index sees it. Runs inside the term are grams with
/// their trailing character, as in the index, so the term matches where the
/// text breaks its runs where the term does; the last run has no trailing
/// character, since the text's run may go on (`中文` is found in `中文版`).
/// A term ending in a one-character run asks for it as a prefix, which
/// finds it at the start of a gram or alone.
pub fn query_form(term: &str, prefix: bool) -> QueryForm {
    let all: Vec<(bool, &str)> = runs(term).collect();
    // The last run that has something to index decides the ending.
    let last = all
        .iter()
        .rposition(|(cjk, run)| *cjk || run.chars().any(char::is_alphanumeric));
    let mut text = String::with_capacity(term.len() * 2);
    let mut prefix = prefix;
    for (i, (cjk, run)) in all.iter().enumerate() {
        if !cjk {
            text.push_str(run);
            continue;
        }
        let is_last = Some(i) == last;
        text.push(' ');
        grams(run, &mut text, !is_last);
        text.push(' ');
        if is_last && run.chars().count() == 1 {
            prefix = true;
        }
    }
    QueryForm { text, prefix }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_text_is_left_alone() {
        assert!(matches!(index_text("plain text, café"), Cow::Borrowed(_)));
    }

    #[test]
    fn runs_become_overlapping_grams() {
        let cases = [
            ("中文排版", " 中文 文排 排版 版 "),
            ("中", " 中 "),
            ("Unicode中文。排版", "Unicode 中文 文 。 排版 版 "),
            ("賢治の夢", " 賢治 治の の夢 夢 "),
            ("한국어 문서", " 한국 국어 어   문서 서 "),
            ("a・b", "a・b"),
        ];
        for (text, want) in cases {
            assert_eq!(index_text(text), want, "{text}");
        }
    }

    #[test]
    fn queries_end_open() {
        let cases = [
            ("中文", " 中文 ", false),
            ("中文排版", " 中文 文排 排版 ", false),
            ("中", " 中 ", true),
            ("中文 排版", " 中文 文   排版 ", false),
            ("版 foo", " 版  foo", false),
            ("foo 中", "foo  中 ", true),
            ("排版!", " 排版 !", false),
            ("loop", "loop", false),
        ];
        for (term, text, prefix) in cases {
            assert_eq!(
                query_form(term, false),
                QueryForm {
                    text: text.to_string(),
                    prefix
                },
                "{term}"
            );
        }
        assert!(query_form("loop", true).prefix);
    }

    #[test]
    fn the_class_names_every_range() {
        let class = regex_class();
        assert!(class.starts_with("[\\u1100-\\u11ff"));
        assert!(class.contains("\\U00020000-\\U0002fa1f"));
        assert!(is_cjk('中') && is_cjk('か') && is_cjk('한') && is_cjk('ー'));
        assert!(!is_cjk('a') && !is_cjk('。') && !is_cjk('・') && !is_cjk('é'));
    }
}
