//! A cheap check of extracted text, to catch the two shapes of garbage a PDF
//! engine produces when it misreads spacing — letters split by spaces
//! ("T h i s  i s") or words run together ("Thisisatext") — and text made of
//! replacement, control or private-use characters. Counting is streamed: feed
//! pages as they pass, then ask for a verdict on the whole. pdf-extract's
//! split words come out as fragments ("Exa mp le do cumen t"), not only as
//! single letters, so the first rule counts tokens of one or two letters.
//!
//! Only letters of scripts that separate words with spaces (Latin, Greek,
//! Cyrillic) count for the two spacing rules: Chinese, Japanese, Thai and
//! similar are written without spaces, and Arabic extraction often drops
//! them, so those scripts are neither flagged nor able to dilute the ratios.
//! The thresholds were set on the test corpus: see the engine report.

/// Judge spacing only with at least this many spaced-script letters.
pub const MIN_LETTERS: u64 = 300;
/// Judge fragments only with at least this many tokens holding such
/// letters (run-together text has few tokens).
pub const MIN_TOKENS: u64 = 60;
/// A token of at most this many letters, and nothing else, is a fragment.
pub const FRAGMENT_LETTERS: u32 = 2;
/// Garbage when this share of tokens is fragments. Prose and formulas stay
/// near 0.2-0.33 ("a", "of", "x"); words split at random ("Exa mp le do
/// cumen t") give 0.5 and more.
pub const FRAGMENT_SHARE: f64 = 0.45;
/// A token with this many spaced-script letters is a run-together "word".
pub const LONG_WORD_LETTERS: u32 = 25;
/// Garbage when this share of letters sits in run-together words.
pub const LONG_WORD_SHARE: f64 = 0.30;
/// Judge unreadable characters only with at least this many characters.
pub const MIN_CHARS: u64 = 100;
/// Garbage when this share of non-space characters is unreadable.
pub const BAD_CHAR_SHARE: f64 = 0.50;
/// A word, for `real_words`: a token with at least this many letters.
pub const REAL_WORD_LETTERS: u32 = 3;
/// Text judged garbage for its unreadable characters is still kept, with
/// them removed, when at least this many real words remain (a score's
/// title and instrument names, a form's labels).
pub const MIN_REAL_WORDS: u64 = 3;

/// Running counts over the text seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextStats {
    /// Non-whitespace characters.
    pub chars: u64,
    /// Replacement, control and private-use characters.
    pub bad_chars: u64,
    /// Tokens (whitespace-separated) with at least one spaced-script letter.
    pub tokens: u64,
    /// Tokens of one or two spaced-script letters and nothing else.
    pub fragments: u64,
    /// Spaced-script letters.
    pub letters: u64,
    /// Spaced-script letters in tokens of `LONG_WORD_LETTERS` or more.
    pub long_word_letters: u64,
    /// Tokens with `REAL_WORD_LETTERS` letters or more, of any script.
    pub real_words: u64,
}

/// Why a text is judged garbage.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Fine,
    Fragments(f64),
    LongWords(f64),
    BadChars(f64),
}

impl Verdict {
    /// The one-line reason for a garbage verdict, `None` when fine.
    pub fn reason(&self) -> Option<String> {
        let pct = |x: f64| (x * 100.0).round();
        match self {
            Verdict::Fine => None,
            Verdict::Fragments(x) => Some(format!(
                "text looks like garbage ({}% of words are 1-2 letter fragments)",
                pct(*x)
            )),
            Verdict::LongWords(x) => Some(format!(
                "text looks like garbage ({}% of letters in words of {LONG_WORD_LETTERS}+ letters)",
                pct(*x)
            )),
            Verdict::BadChars(x) => Some(format!(
                "text looks like garbage ({}% unreadable characters)",
                pct(*x)
            )),
        }
    }
}

impl TextStats {
    pub fn of(text: &str) -> TextStats {
        let mut s = TextStats::default();
        s.add(text);
        s
    }

    /// Counts one more page (or any piece that ends between tokens).
    pub fn add(&mut self, text: &str) {
        for token in text.split_whitespace() {
            let mut letters = 0u32;
            let mut others = 0u32;
            let mut any_letters = 0u32;
            for c in token.chars() {
                self.chars += 1;
                if is_unreadable(c) {
                    self.bad_chars += 1;
                }
                if c.is_alphabetic() {
                    any_letters += 1;
                }
                if is_spaced_letter(c) {
                    letters += 1;
                } else {
                    others += 1;
                }
            }
            if any_letters >= REAL_WORD_LETTERS {
                self.real_words += 1;
            }
            if letters == 0 {
                continue;
            }
            self.tokens += 1;
            self.letters += u64::from(letters);
            if letters <= FRAGMENT_LETTERS && others == 0 {
                self.fragments += 1;
            }
            if letters >= LONG_WORD_LETTERS {
                self.long_word_letters += u64::from(letters);
            }
        }
    }

    /// Adds counts made elsewhere, as if their text had been fed here.
    pub fn merge(&mut self, other: &TextStats) {
        self.chars += other.chars;
        self.bad_chars += other.bad_chars;
        self.tokens += other.tokens;
        self.fragments += other.fragments;
        self.letters += other.letters;
        self.long_word_letters += other.long_word_letters;
        self.real_words += other.real_words;
    }

    /// Whether this text alone is judged garbage for its unreadable
    /// characters: the page-sized form of the `BadChars` verdict.
    pub fn mostly_unreadable(&self) -> bool {
        self.chars >= MIN_CHARS && self.bad_char_share() >= BAD_CHAR_SHARE
    }

    pub fn fragment_share(&self) -> f64 {
        ratio(self.fragments, self.tokens)
    }

    pub fn long_word_share(&self) -> f64 {
        ratio(self.long_word_letters, self.letters)
    }

    pub fn bad_char_share(&self) -> f64 {
        ratio(self.bad_chars, self.chars)
    }

    /// The verdict on everything counted so far. Too little text is fine:
    /// a short page says too little to judge.
    pub fn verdict(&self) -> Verdict {
        if self.mostly_unreadable() {
            return Verdict::BadChars(self.bad_char_share());
        }
        if self.letters < MIN_LETTERS {
            return Verdict::Fine;
        }
        if self.tokens >= MIN_TOKENS && self.fragment_share() >= FRAGMENT_SHARE {
            return Verdict::Fragments(self.fragment_share());
        }
        if self.long_word_share() >= LONG_WORD_SHARE {
            return Verdict::LongWords(self.long_word_share());
        }
        Verdict::Fine
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A letter of a script written with spaces between words: Latin, Greek,
/// Cyrillic (with their extensions).
fn is_spaced_letter(c: char) -> bool {
    if !c.is_alphabetic() {
        return false;
    }
    matches!(
        u32::from(c),
        0x0041..=0x024F      // Basic Latin to Latin Extended-B
        | 0x0370..=0x052F    // Greek, Cyrillic, Cyrillic Supplement
        | 0x1E00..=0x1FFF    // Latin Extended Additional, Greek Extended
        | 0xFB00..=0xFB06    // Latin ligatures (ﬁ, ﬂ)
    )
}

/// Characters that carry no readable text: U+FFFD, controls other than
/// whitespace, and private-use code points (unmapped glyphs, or a music or
/// symbol font's own code points).
pub fn is_unreadable(c: char) -> bool {
    c == '\u{FFFD}'
        || (c.is_control() && !c.is_whitespace())
        || matches!(u32::from(c), 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prose(n: usize) -> String {
        "The quick brown fox jumps over a lazy dog while I watch the river flow. ".repeat(n)
    }

    #[test]
    fn normal_prose_is_fine() {
        assert_eq!(TextStats::of(&prose(50)).verdict(), Verdict::Fine);
    }

    #[test]
    fn letters_split_by_spaces_are_garbage() {
        let spaced: String = prose(20).chars().map(|c| format!("{c} ")).collect();
        let v = TextStats::of(&spaced).verdict();
        assert!(matches!(v, Verdict::Fragments(x) if x > 0.9), "{v:?}");
        let reason = v.reason().expect("garbage");
        assert!(reason.starts_with("text looks like garbage ("), "{reason}");
        assert!(
            reason.contains("% of words are 1-2 letter fragments"),
            "{reason}"
        );
    }

    #[test]
    fn words_run_together_are_garbage() {
        let joined = prose(30).replace(' ', "");
        let lines: String = joined
            .as_bytes()
            .chunks(80)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        let v = TextStats::of(&lines).verdict();
        assert!(matches!(v, Verdict::LongWords(x) if x > 0.9), "{v:?}");
    }

    #[test]
    fn replacement_and_private_use_characters_are_garbage() {
        let text = format!("{}{}", "\u{FFFD}\u{E001} ".repeat(200), prose(2));
        assert!(matches!(
            TextStats::of(&text).verdict(),
            Verdict::BadChars(_)
        ));
    }

    #[test]
    fn cjk_and_thai_without_spaces_are_fine() {
        let chinese = "这是一个没有空格的中文句子我们用它来测试长词规则是否会误判。".repeat(40);
        let japanese = "これはスペースのない日本語の文章です。".repeat(40);
        let thai = "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ".repeat(40);
        for text in [chinese, japanese, thai] {
            assert_eq!(TextStats::of(&text).verdict(), Verdict::Fine);
        }
    }

    #[test]
    fn arabic_without_spaces_is_fine_and_does_not_dilute() {
        let arabic = "مرحبابكمفيهذاالنصالعربيالطويلجدا".repeat(40);
        assert_eq!(TextStats::of(&arabic).verdict(), Verdict::Fine);
        // Mixed with Latin garbage, the Latin part is still judged on its own.
        let spaced: String = prose(20).chars().map(|c| format!("{c} ")).collect();
        let mixed = format!("{arabic}\n{spaced}");
        assert!(matches!(
            TextStats::of(&mixed).verdict(),
            Verdict::Fragments(_)
        ));
    }

    #[test]
    fn math_and_lists_stay_below_the_single_letter_rule() {
        let text = "Let the point x lie in the open set U, and suppose that the map f is \
                    continuous at x; then f(x) = y for a unique y in the closure of V. "
            .repeat(30);
        assert_eq!(TextStats::of(&text).verdict(), Verdict::Fine);
    }

    #[test]
    fn tables_of_single_letters_with_punctuation_are_fine() {
        // pdfjs-calrgb.pdf: "A, B, C = 0.75, 0.00, 0.00" on every line.
        let text = "A, B, C = 0.75, 0.00, 0.00\nWhitePoint Gamma\n".repeat(40);
        assert_eq!(TextStats::of(&text).verdict(), Verdict::Fine);
    }

    #[test]
    fn words_split_at_random_are_garbage() {
        // pypdf-011-google-doc-document.pdf through pdf-extract.
        let text = "Exa mp le do cumen t B ea utiful is b etter tha n ugly. \
                    Exp licit is b etter tha n imp licit. Rea da b ility co un ts. "
            .repeat(10);
        assert!(matches!(
            TextStats::of(&text).verdict(),
            Verdict::Fragments(_)
        ));
    }

    #[test]
    fn a_few_urls_and_compounds_are_fine() {
        let text = format!(
            "{} https://example.invalid/a/very/long/path/with/many/segments Donaudampfschifffahrtsgesellschaftskapitän",
            prose(10)
        );
        assert_eq!(TextStats::of(&text).verdict(), Verdict::Fine);
    }

    #[test]
    fn too_little_text_is_not_judged() {
        assert_eq!(TextStats::of("a b c d e f").verdict(), Verdict::Fine);
        assert_eq!(TextStats::of("").verdict(), Verdict::Fine);
    }

    #[test]
    fn counts_stream_page_by_page() {
        let mut s = TextStats::default();
        s.add("one two x y");
        s.add("z three");
        assert_eq!(s, TextStats::of("one two x y z three"));
        let mut merged = TextStats::of("one two x y");
        merged.merge(&TextStats::of("z three"));
        assert_eq!(merged, s);
    }

    #[test]
    fn real_words_have_three_letters_in_any_script() {
        let s = TextStats::of(
            "Violent Dance For Orchestra: a b ab 12345 ©© 日本語 \u{E001}\u{E002}\u{E003}",
        );
        assert_eq!(s.real_words, 5);
    }

    #[test]
    fn a_page_is_mostly_unreadable_on_the_document_rule() {
        let glyphs = "\u{E0A4}\u{E050} ".repeat(60);
        assert!(TextStats::of(&glyphs).mostly_unreadable());
        assert!(TextStats::of(&format!("{glyphs} Violent Dance")).mostly_unreadable());
        assert!(!TextStats::of(&format!("{glyphs}{}", prose(5))).mostly_unreadable());
        // Too short to judge, as for a whole document.
        assert!(!TextStats::of("\u{FFFD}").mostly_unreadable());
    }
}
