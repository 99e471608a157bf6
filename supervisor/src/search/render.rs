//! A parsed query in each store's own syntax: an FTS5 MATCH expression for
//! SQLite, and a PostgreSQL expression that builds a `tsquery` from bound
//! parameters. Terms are always quoted or bound, so nothing typed is ever
//! read as the database's own operators.

use super::cjk;
use super::query::{Clause, Field, Query, Term};

/// The FTS5 columns a field searches; the index's columns are
/// `text, title, author, path`.
fn fts5_columns(field: Field) -> &'static str {
    match field {
        Field::Any => "{text title author}",
        Field::Title => "title",
        Field::Author => "author",
        Field::Path => "path",
    }
}

fn fts5_term(term: &Term) -> String {
    let form = cjk::query_form(&term.text, term.prefix);
    let star = if form.prefix { "*" } else { "" };
    format!(
        "{} : \"{}\"{star}",
        fts5_columns(term.field),
        form.text.replace('"', "\"\"")
    )
}

/// An FTS5 MATCH expression: the wanted clauses joined by AND, the excluded
/// terms removed with one NOT.
pub fn fts5(query: &Query) -> String {
    let mut wanted = Vec::new();
    let mut excluded = Vec::new();
    for clause in &query.clauses {
        match clause {
            Clause::AnyOf(terms) => {
                let alternatives: Vec<String> = terms.iter().map(fts5_term).collect();
                wanted.push(format!("({})", alternatives.join(" OR ")));
            }
            Clause::Not(term) => excluded.push(fts5_term(term)),
        }
    }
    let mut expr = format!("({})", wanted.join(" AND "));
    if !excluded.is_empty() {
        expr = format!("{expr} NOT ({})", excluded.join(" OR "));
    }
    expr
}

/// The `tsquery` weights a field searches: the page's text is D, the
/// document's title A, author B, path C.
fn weights(field: Field) -> &'static str {
    match field {
        Field::Any => "ABD",
        Field::Title => "A",
        Field::Author => "B",
        Field::Path => "C",
    }
}

/// A PostgreSQL expression of type `tsquery`, with `$n` placeholders
/// numbered from `first`, and the texts to bind to them in order.
pub fn tsquery(query: &Query, first: usize) -> (String, Vec<String>) {
    let mut params = Vec::new();
    let mut term = |t: &Term| {
        let form = cjk::query_form(&t.text, t.prefix);
        params.push(form.text);
        format!(
            "docmill_term(${}, '{}', {})",
            first + params.len() - 1,
            weights(t.field),
            form.prefix
        )
    };
    let mut wanted = Vec::new();
    let mut excluded = Vec::new();
    for clause in &query.clauses {
        match clause {
            Clause::AnyOf(terms) => {
                let alternatives: Vec<String> = terms.iter().map(&mut term).collect();
                wanted.push(format!("({})", alternatives.join(" || ")));
            }
            Clause::Not(t) => excluded.push(term(t)),
        }
    }
    let mut expr = format!("({})", wanted.join(" && "));
    if !excluded.is_empty() {
        expr = format!("{expr} && !!({})", excluded.join(" || "));
    }
    (expr, params)
}

#[cfg(test)]
mod tests {
    use super::super::query::parse;
    use super::*;

    #[test]
    fn fts5_expressions() {
        let any = "{text title author}";
        let cases = [
            ("loop", format!("(({any} : \"loop\"))")),
            (
                "loop -type",
                format!("(({any} : \"loop\")) NOT ({any} : \"type\")"),
            ),
            (
                "a b OR c* -\"d e\" -title:f",
                format!(
                    "(({any} : \"a\") AND ({any} : \"b\" OR {any} : \"c\"*)) NOT ({any} : \"d e\" OR title : \"f\")"
                ),
            ),
            ("author:carroll", "((author : \"carroll\"))".to_string()),
            ("中文", format!("(({any} : \" 中文 \"))")),
            ("中", format!("(({any} : \" 中 \"*))")),
            ("it's", format!("(({any} : \"it's\"))")),
        ];
        for (src, want) in cases {
            assert_eq!(fts5(&parse(src).unwrap()), want, "{src}");
        }
    }

    #[test]
    fn tsquery_expressions_bind_every_term() {
        let q = parse("a b OR c* -author:d").unwrap();
        let (expr, params) = tsquery(&q, 3);
        assert_eq!(
            expr,
            "((docmill_term($3, 'ABD', false)) && (docmill_term($4, 'ABD', false) || docmill_term($5, 'ABD', true))) && !!(docmill_term($6, 'B', false))"
        );
        assert_eq!(params, ["a", "b", "c", "d"]);
    }
}
