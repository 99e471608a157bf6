//! The query language: a small parser from what a person types to a tree
//! (`Query`), the same for every store, with errors that say where. Each
//! store renders the tree in its own syntax (`render`); nothing typed
//! reaches a database's own query parser.
//!
//! ```text
//! query   := clause+                      all clauses must hold
//! clause  := '-' item | 'NOT' item        the item must not hold
//!          | item ('OR' item)*            one of the items must hold
//!          | 'AND'                        between two clauses: no effect
//! item    := [field ':'] (word | '"' phrase '"') ['*']
//! field   := 'title' | 'author' | 'path'
//! ```

use std::fmt;

/// Which text a term is looked for in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A page's text, or its document's title or author.
    Any,
    Title,
    Author,
    /// The document's path, word by word.
    Path,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        match name.to_ascii_lowercase().as_str() {
            "title" => Some(Field::Title),
            "author" => Some(Field::Author),
            "path" => Some(Field::Path),
            _ => None,
        }
    }
}

/// One word or phrase to look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub field: Field,
    /// What was typed, without quotes or the prefix star.
    pub text: String,
    /// Its last word is a prefix (`gradi*`).
    pub prefix: bool,
}

/// A clause of a query: every clause must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// At least one of these terms (one term: just that term).
    AnyOf(Vec<Term>),
    /// This term must not be there.
    Not(Term),
}

/// A parsed query: at least one clause that is not a `Not`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub clauses: Vec<Clause>,
}

impl Query {
    /// The terms a hit has (not the excluded ones), for marking matches.
    pub fn wanted(&self) -> impl Iterator<Item = &Term> {
        self.clauses.iter().flat_map(|c| match c {
            Clause::AnyOf(terms) => terms.as_slice(),
            Clause::Not(_) => &[],
        })
    }
}

/// A query that cannot be parsed, and where: `column` counts characters
/// from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    pub column: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read the query at column {}: {}",
            self.column, self.message
        )
    }
}

/// A lexical piece of the query and where it starts (a byte offset).
#[derive(Debug)]
enum Token {
    Item { negated: bool, term: Term },
    Or,
    And,
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> QueryError {
        QueryError {
            column: self.src[..at].chars().count() + 1,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// The next token and its start, or None at the end.
    fn next(&mut self) -> Result<Option<(usize, Token)>, QueryError> {
        self.skip_space();
        let start = self.pos;
        if start == self.src.len() {
            return Ok(None);
        }
        let word_end = |from: usize| {
            self.src[from..]
                .find(char::is_whitespace)
                .map_or(self.src.len(), |i| from + i)
        };
        let bare = &self.src[start..word_end(start)];
        if bare == "OR" || bare == "AND" {
            self.pos = start + bare.len();
            return Ok(Some((
                start,
                if bare == "OR" { Token::Or } else { Token::And },
            )));
        }
        let mut at = start;
        let mut negated = false;
        if bare == "NOT" {
            negated = true;
            self.pos = start + 3;
            self.skip_space();
            at = self.pos;
            if at == self.src.len() {
                return Err(self.error(start, "NOT needs a word after it"));
            }
        } else if let Some(rest) = bare.strip_prefix('-') {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                return Err(self.error(start, "`-` needs a word right after it, as in -word"));
            }
            if rest.starts_with('-') {
                return Err(self.error(
                    start,
                    format!("`{bare}` looks like an option: put options before the query"),
                ));
            }
            negated = true;
            at = start + 1;
        }
        // A field name, if the item starts with one.
        let mut field = Field::Any;
        let head_end = word_end(at);
        if let Some(colon) = self.src[at..head_end].find(':') {
            if let Some(f) = Field::parse(&self.src[at..at + colon]) {
                field = f;
                at += colon + 1;
                if at == head_end {
                    let name = &self.src[start..at];
                    return Err(self.error(start, format!("`{name}` needs a word right after it")));
                }
            }
        }
        let term = if self.src[at..].starts_with('"') {
            let open = at;
            let Some(len) = self.src[open + 1..].find('"') else {
                return Err(self.error(open, "this phrase has no closing quote"));
            };
            let text = &self.src[open + 1..open + 1 + len];
            let mut end = open + len + 2;
            let prefix = self.src[end..].starts_with('*');
            if prefix {
                end += 1;
            }
            if end < self.src.len() && !self.src[end..].starts_with(char::is_whitespace) {
                return Err(self.error(end, "a space must follow a phrase's closing quote"));
            }
            if !searchable(text) {
                return Err(self.error(open, "this phrase has no letters or digits to look for"));
            }
            self.pos = end;
            Term {
                field,
                text: text.to_string(),
                prefix,
            }
        } else {
            let end = word_end(at);
            let word = &self.src[at..end];
            if let Some(quote) = word.find('"') {
                return Err(self.error(
                    at + quote,
                    "a quote may only open a phrase at the start of a word",
                ));
            }
            let (text, prefix) = match word.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (word, false),
            };
            if let Some(star) = text.find('*') {
                return Err(self.error(
                    at + star,
                    "`*` marks a prefix: it goes at the end of a word",
                ));
            }
            if !searchable(text) {
                return Err(
                    self.error(at, format!("`{word}` has no letters or digits to look for"))
                );
            }
            self.pos = end;
            Term {
                field,
                text: text.to_string(),
                prefix,
            }
        };
        Ok(Some((start, Token::Item { negated, term })))
    }
}

/// Whether a term has anything an index keeps: a letter or a digit.
fn searchable(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

/// Parses a query; see the module's grammar.
pub fn parse(src: &str) -> Result<Query, QueryError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut tokens = Vec::new();
    while let Some(t) = lexer.next()? {
        tokens.push(t);
    }
    if tokens.is_empty() {
        return Err(QueryError {
            column: 1,
            message: "the query is empty".into(),
        });
    }
    let mut clauses: Vec<Clause> = Vec::new();
    // Whether the last token may be followed by OR: an item not excluded.
    let mut open_alternative = false;
    let mut i = 0;
    while i < tokens.len() {
        let (at, token) = &tokens[i];
        let next_is_item = matches!(tokens.get(i + 1), Some((_, Token::Item { .. })));
        match token {
            Token::Or => {
                if !open_alternative {
                    return Err(lexer.error(*at, "OR needs a word that is not excluded before it"));
                }
                match tokens.get(i + 1) {
                    Some((
                        _,
                        Token::Item {
                            negated: false,
                            term,
                        },
                    )) => {
                        if let Some(Clause::AnyOf(terms)) = clauses.last_mut() {
                            terms.push(term.clone());
                        }
                        i += 2;
                        continue;
                    }
                    Some((_, Token::Item { negated: true, .. })) => {
                        return Err(
                            lexer.error(*at, "OR cannot offer an excluded word as an alternative")
                        )
                    }
                    _ => return Err(lexer.error(*at, "OR needs a word after it")),
                }
            }
            Token::And => {
                if clauses.is_empty() || !next_is_item {
                    return Err(lexer.error(*at, "AND needs a word on either side"));
                }
                open_alternative = false;
            }
            Token::Item { negated, term } => {
                if *negated {
                    clauses.push(Clause::Not(term.clone()));
                    open_alternative = false;
                } else {
                    clauses.push(Clause::AnyOf(vec![term.clone()]));
                    open_alternative = true;
                }
            }
        }
        i += 1;
    }
    if !clauses.iter().any(|c| matches!(c, Clause::AnyOf(_))) {
        return Err(QueryError {
            column: 1,
            message: "a query needs at least one word that is not excluded".into(),
        });
    }
    Ok(Query { clauses })
}

/// The query language, for `docmill search --help`.
pub const HELP: &str = "\
Query language (the same on SQLite and PostgreSQL):
  word word          pages with every word (letter case does not matter, nor accents
                     on SQLite)
  \"a phrase\"         the words next to each other, in this order
  gradi*             words that start with gradi; \"a phr\"* works too
  -word, NOT word    pages without the word (or -\"a phrase\")
  this OR that       either word; OR binds closer than the space between words:
                     `compiler rust OR go` is compiler and (rust or go)
  title:word         in the document's title; author:word and path:word likewise,
                     and title:\"a phrase\"
  A word with no field is looked for in the page's text and in its document's
  title and author, so `Carroll` finds every page of a book by Lewis Carroll.
  Chinese, Japanese and Korean text is matched character by character: `中文`
  finds it inside longer runs such as `中文版`.
  A query that cannot be read is an error that says where (exit 2), never a
  different query. Exit 0 when something matches, 1 when nothing does.";

#[cfg(test)]
mod tests {
    use super::*;

    fn term(text: &str) -> Term {
        Term {
            field: Field::Any,
            text: text.into(),
            prefix: false,
        }
    }

    #[test]
    fn queries_parse_to_clauses() {
        let any = |t: &[Term]| Clause::AnyOf(t.to_vec());
        let cases: Vec<(&str, Vec<Clause>)> = vec![
            ("loop", vec![any(&[term("loop")])]),
            (
                "loop -type",
                vec![any(&[term("loop")]), Clause::Not(term("type"))],
            ),
            (
                "loop NOT type",
                vec![any(&[term("loop")]), Clause::Not(term("type"))],
            ),
            ("a AND b", vec![any(&[term("a")]), any(&[term("b")])]),
            (
                "x a OR b OR c",
                vec![any(&[term("x")]), any(&[term("a"), term("b"), term("c")])],
            ),
            (
                "\"stochastic  gradient\"",
                vec![any(&[term("stochastic  gradient")])],
            ),
            ("loop-type", vec![any(&[term("loop-type")])]),
            ("(descends", vec![any(&[term("(descends")])]),
            ("or and", vec![any(&[term("or")]), any(&[term("and")])]),
            (
                "gradi* \"a phr\"*",
                vec![
                    any(&[Term {
                        prefix: true,
                        ..term("gradi")
                    }]),
                    any(&[Term {
                        prefix: true,
                        ..term("a phr")
                    }]),
                ],
            ),
            (
                "title:alice AUTHOR:\"lewis carroll\" path:corpus -path:x",
                vec![
                    any(&[Term {
                        field: Field::Title,
                        ..term("alice")
                    }]),
                    any(&[Term {
                        field: Field::Author,
                        ..term("lewis carroll")
                    }]),
                    any(&[Term {
                        field: Field::Path,
                        ..term("corpus")
                    }]),
                    Clause::Not(Term {
                        field: Field::Path,
                        ..term("x")
                    }),
                ],
            ),
            ("http://x", vec![any(&[term("http://x")])]),
            (
                "中文 -排版",
                vec![any(&[term("中文")]), Clause::Not(term("排版"))],
            ),
        ];
        for (src, want) in cases {
            assert_eq!(parse(src), Ok(Query { clauses: want }), "{src}");
        }
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("", 1, "empty"),
            ("   ", 1, "empty"),
            ("\"\"", 1, "no letters"),
            ("\"unterminated", 1, "no closing quote"),
            ("ok \"unterminated", 4, "no closing quote"),
            ("-", 1, "needs a word"),
            ("loop - type", 6, "needs a word"),
            ("loop OR", 6, "OR needs a word after"),
            ("OR loop", 1, "before it"),
            ("a OR OR b", 3, "OR needs a word after"),
            ("-a OR b", 4, "before it"),
            ("a OR -b", 3, "excluded word as an alternative"),
            ("-trace --limit 1", 8, "looks like an option"),
            ("-loop", 1, "not excluded"),
            ("a AND", 3, "either side"),
            ("NOT", 1, "NOT needs"),
            ("title:", 1, "needs a word"),
            ("gr*di", 3, "prefix"),
            ("*", 1, "no letters"),
            ("\"a\"b", 4, "space must follow"),
            ("a\"b", 2, "quote"),
            ("中文 \"", 4, "no closing quote"),
            ("!!!", 1, "no letters"),
        ];
        for (src, column, says) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!(e.column, column, "{src}: {e}");
            assert!(e.message.contains(says), "{src}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}
