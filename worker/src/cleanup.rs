//! What the worker does to a PDF engine's page text before sending it on:
//! words hyphenated across line ends are joined again, and a page made
//! mostly of unreadable characters loses them, keeping the words around
//! them. Both are plain functions over one page's text.
//!
//! The hyphen rule: a line that ends in a hyphen right after a letter,
//! followed by a line that starts with a lowercase letter, is a word broken
//! by the typesetter ("represen-" / "tation"), and the two halves are joined
//! ("representation"); the hyphen goes. It stays where the continuation
//! starts with a capital or a digit ("Anglo-" / "Saxon", "COVID-" / "19"),
//! where the broken token already holds a hyphen of its own
//! ("state-of-the-" / "art": a compound, broken at one of its hyphens), where
//! a blank line follows (the paragraph ended), and at the end of a page. A
//! compound broken at its only hyphen with a lowercase continuation
//! ("well-" / "known") cannot be told from a hyphenated word without a
//! dictionary and is joined too ("wellknown"): line-end hyphens in set text
//! are far more often the typesetter's than the author's, and Poppler,
//! which the tests compare with, joins them the same way.

use std::borrow::Cow;

use crate::quality;

/// Hyphens a typesetter breaks a word with: the ASCII hyphen-minus, the
/// soft hyphen and the Unicode hyphen.
const HYPHENS: [char; 3] = ['-', '\u{00AD}', '\u{2010}'];

/// `text` with words hyphenated across line ends joined (the rule is in the
/// file's opening comment); borrowed when nothing was joined.
pub fn join_hyphenated(text: &str) -> Cow<'_, str> {
    if !text.lines().any(|l| breaks_a_word(l).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // The rest of a line whose first word moved up to the line before.
    let mut carried: Option<String> = None;
    let mut lines = text.split('\n').peekable();
    loop {
        let mut line = match carried.take() {
            Some(rest) => rest,
            None => match lines.next() {
                Some(raw) => raw.to_string(),
                None => break,
            },
        };
        while let Some(cut) = breaks_a_word(&line) {
            let Some(next) = lines.peek() else {
                break;
            };
            let next = next.trim_start();
            if !next.chars().next().is_some_and(char::is_lowercase) {
                break;
            }
            let end = next.find(char::is_whitespace).unwrap_or(next.len());
            line.truncate(cut);
            line.push_str(&next[..end]);
            let rest = next[end..].trim_start();
            lines.next();
            if rest.is_empty() {
                // The continuation was the whole next line: the joined line
                // may itself end in a broken word, so look again.
                continue;
            }
            carried = Some(rest.to_string());
            break;
        }
        out.push_str(&line);
        if carried.is_some() || lines.peek().is_some() {
            out.push('\n');
        }
    }
    Cow::Owned(out)
}

/// Where the hyphen of a word broken at the end of `line` starts, when the
/// line ends in one: a hyphen right after a letter, in a token with no
/// other hyphen.
fn breaks_a_word(line: &str) -> Option<usize> {
    let line = line.trim_end();
    let hyphen = line.chars().next_back().filter(|c| HYPHENS.contains(c))?;
    let cut = line.len() - hyphen.len_utf8();
    let token = line[..cut].rsplit(char::is_whitespace).next().unwrap_or("");
    let ends_in_letter = token.chars().next_back().is_some_and(char::is_alphabetic);
    (ends_in_letter && !token.contains(HYPHENS)).then_some(cut)
}

/// `text` without its unreadable characters (see `quality`): each line
/// keeps its readable words, single-spaced, and a line that held nothing
/// but unreadable characters goes.
pub fn without_unreadable(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        if !line.chars().any(quality::is_unreadable) {
            out.push(line.to_string());
            continue;
        }
        let kept: String = line
            .chars()
            .map(|c| if quality::is_unreadable(c) { ' ' } else { c })
            .collect();
        let words: Vec<&str> = kept.split_whitespace().collect();
        if !words.is_empty() {
            out.push(words.join(" "));
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(text: &str) -> String {
        join_hyphenated(text).into_owned()
    }

    #[test]
    fn a_word_broken_at_a_line_end_is_joined() {
        assert_eq!(
            joined("a formal represen-\ntation of the data"),
            "a formal representation\nof the data"
        );
        // The continuation alone on its line: the line goes.
        assert_eq!(joined("differenti-\nation\nnext"), "differentiation\nnext");
        // Trailing and leading spaces around the break do not matter.
        assert_eq!(joined("inter-  \n   national law"), "international\nlaw");
        // Soft and Unicode hyphens break words too.
        assert_eq!(joined("hyphen\u{AD}\nated"), "hyphenated");
        assert_eq!(joined("hyphen\u{2010}\nated"), "hyphenated");
        // Non-Latin letters follow the same rule.
        assert_eq!(joined("Ein Beispiel-\nwort"), "Ein Beispielwort");
        assert_eq!(joined("пере-\nнос"), "перенос");
    }

    #[test]
    fn a_chain_of_breaks_is_joined_through() {
        // A short line can be both a continuation and broken again.
        assert_eq!(
            joined("extra-\nordi-\nnary things"),
            "extraordinary\nthings"
        );
        assert_eq!(
            joined("one bro-\nken line and ano-\nther"),
            "one broken\nline and another"
        );
    }

    #[test]
    fn real_hyphens_stay() {
        for text in [
            // An uppercase or numeric continuation: a compound or a code.
            "the Anglo-\nSaxon chronicle",
            "COVID-\n19 cases",
            "pages 10-\n20",
            // The token already holds a hyphen: broken at a compound's own.
            "state-of-the-\nart methods",
            // A paragraph or the page ends after the hyphen.
            "a list-\n\nnext paragraph",
            "the last word-",
            // Not after a letter: a dash, a minus, a rule.
            "a range 3 -\nfour",
            "value: -\nnone",
            "----\nline",
            // Nothing to join with.
            "-\nfoo",
        ] {
            assert_eq!(joined(text), text, "{text:?}");
        }
    }

    #[test]
    fn a_lowercase_compound_is_joined_by_rule() {
        // Documented: no dictionary, so "well-known" broken at its hyphen
        // reads as one word.
        assert_eq!(joined("a well-\nknown fact"), "a wellknown\nfact");
    }

    #[test]
    fn text_without_breaks_is_borrowed_unchanged() {
        let text = "no breaks here\nnone at all -- really\n\nend";
        assert!(matches!(join_hyphenated(text), Cow::Borrowed(t) if t == text));
    }

    #[test]
    fn unreadable_characters_go_and_words_stay() {
        let score = "\u{E0A4}\u{E0A4} \u{E0A4}\nViolent Dance\u{FFFD} For Orchestra\n\
                     \u{E050}  Flute \u{E050}\u{E050} Oboe\n\u{E062}\u{E062}";
        assert_eq!(
            without_unreadable(score),
            "Violent Dance For Orchestra\nFlute Oboe"
        );
        // Lines without unreadable characters are kept as they are.
        assert_eq!(without_unreadable("a  b\n\nc"), "a  b\n\nc");
    }
}
