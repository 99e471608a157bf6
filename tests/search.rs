//! Searching as a person does, with the real binary over corpus documents:
//! CJK substrings, the query language and its errors, grouping by document,
//! filters, match offsets, links and exit codes; the same answers from the
//! PostgreSQL store; and an index of an older schema rebuilt on open.
//!
//! Each test indexes only the few corpus files its assertions need, once,
//! and runs every case on that index.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::pg::PgCluster;
use common::{corpus, Env, Run};
use serde_json::Value;

/// The files the cases need: Chinese (中文 on 40 pages, 排版 on 8),
/// Japanese (賢治 on 3 chapters), the Alice EPUB (author Lewis Carroll),
/// and two PDFs where "loop" is on pages with and without "type".
const FILES: [&str; 5] = [
    "pdf/debian-texlive-lang-chinese-ctex.pdf",
    "epub/idpf-mymedia-lite-japanese.epub",
    "epub/epubjs-alice.epub",
    "pdf/pdfjs-tracemonkey.pdf",
    "pdf/debian-r-doc-pdf-R-intro.pdf",
];

fn index(env: &Env) {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| corpus().join(f)).collect();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"index", &"--quiet"];
    for p in &paths {
        args.push(p);
    }
    env.run(&args).assert_code(0);
}

/// `search --json` with `args`, its exit code checked, and its answer.
fn json(env: &Env, args: &[&str], code: i32) -> Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"search", &"--json", &"--limit", &"50"];
    for a in args {
        all.push(a);
    }
    let r = env.run(&all);
    r.assert_code(code);
    serde_json::from_str(&r.stdout()).unwrap_or_else(|e| panic!("{e}\n{}", r.dump()))
}

fn names(answer: &Value) -> BTreeSet<String> {
    answer["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let path = d["path"].as_str().unwrap();
            path.rsplit('/').next().unwrap().to_string()
        })
        .collect()
}

fn total(answer: &Value) -> u64 {
    answer["total_pages"].as_u64().unwrap()
}

/// Every (page, snippet, marked texts) of an answer.
fn hits(answer: &Value) -> Vec<(String, u64, String, Vec<String>)> {
    let mut out = Vec::new();
    for d in answer["documents"].as_array().unwrap() {
        for h in d["hits"].as_array().unwrap() {
            let snippet = h["snippet"].as_str().unwrap().to_string();
            let marks = h["marks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let (s, e) = (m[0].as_u64().unwrap(), m[1].as_u64().unwrap());
                    snippet[s as usize..e as usize].to_string()
                })
                .collect();
            out.push((
                d["path"].as_str().unwrap().to_string(),
                h["page"].as_u64().unwrap(),
                snippet,
                marks,
            ));
        }
    }
    out
}

fn one_line_error(r: &Run, column: &str) {
    r.assert_code(2);
    let err = r.stderr();
    assert_eq!(err.trim_end().lines().count(), 1, "{}", r.dump());
    assert!(err.contains(&format!("column {column}")), "{}", r.dump());
    assert!(r.stdout().is_empty(), "{}", r.dump());
}

#[test]
fn corpus_searches() {
    let env = Env::new();
    index(&env);

    eprintln!("case: CJK substrings");
    let zh = json(&env, &["中文"], 0);
    assert!(total(&zh) >= 40, "中文 on {} pages", total(&zh));
    assert!(total(&json(&env, &["排版"], 0)) >= 8);
    let kenji = json(&env, &["賢治"], 0);
    assert!(total(&kenji) >= 1);
    assert_eq!(
        names(&kenji),
        BTreeSet::from(["idpf-mymedia-lite-japanese.epub".to_string()])
    );
    // One character: wherever it is in a run, its end included.
    assert!(total(&json(&env, &["中"], 0)) > total(&zh));
    for (_, _, snippet, marks) in hits(&zh) {
        assert!(!marks.is_empty(), "nothing marked in {snippet}");
        assert!(marks.iter().all(|m| m == "中文"), "{marks:?} in {snippet}");
    }

    eprintln!("case: exclusion");
    let looped = json(&env, &["loop"], 0);
    let without = json(&env, &["--", "loop -type"], 0);
    assert!(total(&without) >= 1 && total(&without) < total(&looped));
    let conn = env.sql();
    for (path, page, _, _) in hits(&without) {
        let text: String = conn
            .query_row(
                "SELECT p.text FROM pages p JOIN documents d ON d.id = p.doc_id
                 WHERE d.display_path = ?1 AND p.page = ?2",
                rusqlite::params![path, page as i64],
                |r| r.get(0),
            )
            .unwrap();
        let has_type = text
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| w.eq_ignore_ascii_case("type"));
        assert!(!has_type, "{path} page {page} has \"type\"");
    }

    eprintln!("case: queries that cannot be read");
    one_line_error(&env.run(&[&"search", &"\"\""]), "1");
    one_line_error(&env.run(&[&"search", &"\"unterminated"]), "1");
    one_line_error(&env.run(&[&"search", &"--", &"loop -"]), "6");
    one_line_error(&env.run(&[&"search", &"loop OR"]), "6");
    one_line_error(&env.run(&[&"search", &"--", &"-trace --limit 1"]), "8");

    eprintln!("case: titles and authors");
    let carroll = json(&env, &["Carroll"], 0);
    let alice = &carroll["documents"][0];
    assert!(
        alice["path"]
            .as_str()
            .unwrap()
            .ends_with("/epubjs-alice.epub"),
        "{carroll}"
    );
    assert_eq!(alice["author"], "Lewis Carroll");
    assert!(alice["title"].as_str().unwrap().contains("Wonderland"));
    let rabbit = json(&env, &["author:carroll", "rabbit"], 0);
    assert_eq!(names(&rabbit), BTreeSet::from(["epubjs-alice.epub".into()]));
    assert!(total(&rabbit) < alice["matching_pages"].as_u64().unwrap());
    assert_eq!(names(&json(&env, &["title:wonderland"], 0)), names(&rabbit));

    eprintln!("case: grouping, totals and links");
    for d in looped["documents"].as_array().unwrap() {
        let n = d["matching_pages"].as_u64().unwrap();
        let shown = d["hits"].as_array().unwrap().len() as u64;
        assert!(shown >= 1 && shown <= n.min(3), "{d}");
        for h in d["hits"].as_array().unwrap() {
            let link = h["link"].as_str().unwrap();
            assert!(link.starts_with("file:///"), "{link}");
            assert!(link.ends_with(&format!("#page={}", h["page"])), "{link}");
        }
    }
    let sum: u64 = looped["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["matching_pages"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, total(&looped));
    assert_eq!(
        looped["total_documents"].as_u64().unwrap(),
        looped["documents"].as_array().unwrap().len() as u64
    );
    let chapter = &carroll["documents"][0]["hits"][0];
    assert!(
        chapter["link"].as_str().unwrap().ends_with(&format!(
            "#epubcfi(/6/{}!/4)",
            2 * chapter["page"].as_u64().unwrap()
        )),
        "{chapter}"
    );
    // Paging: the second document of the ranking alone.
    let second = json(&env, &["loop", "--offset", "1", "--limit", "1"], 0);
    assert_eq!(
        second["documents"][0]["path"],
        looped["documents"][1]["path"]
    );
    assert_eq!(total(&second), total(&looped));

    eprintln!("case: match offsets");
    for (_, _, snippet, marks) in hits(&looped) {
        assert!(!marks.is_empty(), "nothing marked in {snippet}");
        for m in marks {
            assert!(m.to_lowercase().starts_with("loop"), "{m:?} in {snippet}");
        }
    }
    let phrase = json(&env, &["trace-based just-in-time type specialization"], 0);
    let first = hits(&phrase)
        .into_iter()
        .find(|(p, page, _, _)| p.ends_with("/pdfjs-tracemonkey.pdf") && *page == 1)
        .expect("the paper's first page");
    assert_eq!(
        first.3,
        ["Trace-based", "Just-in-Time", "Type", "Specialization"]
    );

    eprintln!("case: filters");
    let epubs = json(&env, &["中", "--format", "epub"], 0);
    assert_eq!(
        names(&epubs),
        BTreeSet::from(["idpf-mymedia-lite-japanese.epub".into()])
    );
    let pdfs = json(&env, &["中", "--format", "pdf"], 0);
    assert_eq!(
        names(&pdfs),
        BTreeSet::from(["debian-texlive-lang-chinese-ctex.pdf".into()])
    );
    let by_path = json(&env, &["loop", "--path", "*/PDF/pdfjs-*"], 0);
    assert_eq!(
        names(&by_path),
        BTreeSet::from(["pdfjs-tracemonkey.pdf".into()])
    );
    json(&env, &["loop", "--path", "*/epub/*"], 1);

    eprintln!("case: nothing found, and text output");
    let r = env.run(&[&"search", &"xyzzy-nothing"]);
    r.assert_code(1);
    assert!(
        r.stdout().is_empty() && r.stderr().contains("no matches"),
        "{}",
        r.dump()
    );
    assert_eq!(total(&json(&env, &["xyzzy-nothing"], 1)), 0);
    let r = env.run(&[&"search", &"Carroll", &"rabbit"]);
    r.assert_code(0);
    let text = r.stdout();
    assert!(
        text.contains("Alice's Adventures in Wonderland — Lewis Carroll"),
        "{text}"
    );
    assert!(text.contains("»Rabbit«"), "{text}");
    assert!(text.contains("#epubcfi(/6/"), "{text}");
    let help = env.run(&[&"search", &"--help"]);
    help.assert_code(0);
    assert!(help.stdout().contains("author:word"), "{}", help.dump());
    env.assert_no_leftovers();
}

/// Queries whose answers both stores must agree on, by document and count.
const SAME_ON_BOTH: [&str; 10] = [
    "中文",
    "排版",
    "賢治",
    "Carroll",
    "loop -type",
    "author:carroll rabbit",
    "title:wonderland OR loop",
    "\"just-in-time type\"",
    "trac*",
    "path:alice",
];

#[test]
fn postgres_answers_as_sqlite_does() {
    let Some(cluster) = PgCluster::start(None) else {
        return;
    };
    let lite = Env::new();
    index(&lite);
    let mut pg = Env::new();
    pg.db = PathBuf::from(cluster.create_db("search"));
    index(&pg);
    let answers = |env: &Env| -> Vec<(BTreeSet<String>, u64)> {
        SAME_ON_BOTH
            .iter()
            .map(|q| {
                let a = json(env, &["--", q], 0);
                (names(&a), total(&a))
            })
            .collect()
    };
    let (a, b) = (answers(&lite), answers(&pg));
    for (i, q) in SAME_ON_BOTH.iter().enumerate() {
        assert_eq!(a[i], b[i], "{q}: SQLite, then PostgreSQL");
    }
    // The same marks too, on every page (the stores rank pages alike but
    // not the same): they are made from the text, not by the store.
    let marks = |env: &Env| hits(&json(env, &["中文", "--pages-per-doc", "100"], 0));
    let (a, b) = (marks(&lite), marks(&pg));
    let set = |h: Vec<(String, u64, String, Vec<String>)>| -> BTreeSet<(u64, Vec<String>)> {
        h.into_iter().map(|(_, p, _, m)| (p, m)).collect()
    };
    assert_eq!(set(a), set(b));

    // A shared database of schema 1 (tsv from the text alone) is upgraded
    // by the first docmill that connects.
    let mut client = cluster.client("search");
    client
        .batch_execute(
            "DROP TRIGGER pages_indexed ON pages;
             DROP TRIGGER documents_indexed ON documents;
             ALTER TABLE pages DROP COLUMN tsv;
             ALTER TABLE pages ADD COLUMN tsv tsvector
                 GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;
             CREATE INDEX pages_tsv ON pages USING GIN (tsv);
             UPDATE meta SET value = '1' WHERE key = 'schema';",
        )
        .unwrap();
    assert_eq!(
        total(&json(&pg, &["排版"], 0)),
        total(&json(&lite, &["排版"], 0))
    );
    let schema: String = client
        .query_one("SELECT value FROM meta WHERE key = 'schema'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, "2");
    lite.assert_no_leftovers();
    pg.assert_no_leftovers();
}

#[test]
fn an_index_of_schema_1_is_rebuilt_on_open() {
    let env = Env::new();
    let paper = corpus().join("pdf/pdfjs-tracemonkey.pdf");
    env.run(&[&"index", &"--quiet", &paper]).assert_code(0);
    // Back to schema 1's index: page text only, external content.
    {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.execute_batch(
            "DROP TRIGGER pages_ai; DROP TRIGGER pages_ad; DROP TRIGGER pages_au;
             DROP TRIGGER documents_fts; DROP TABLE pages_fts;
             CREATE VIRTUAL TABLE pages_fts USING fts5(text, content = 'pages',
                 content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2');
             INSERT INTO pages_fts(pages_fts) VALUES ('rebuild');
             CREATE TRIGGER pages_ai AFTER INSERT ON pages BEGIN
                 INSERT INTO pages_fts(rowid, text) VALUES (new.id, new.text);
             END;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let r = json(&env, &["path:tracemonkey", "loop"], 0);
    assert_eq!(names(&r), BTreeSet::from(["pdfjs-tracemonkey.pdf".into()]));
    let conn = env.sql();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    env.assert_no_leftovers();
}
