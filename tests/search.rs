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
    // by the next index run (reading commands never write).
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
    let r = pg.run(&[&"search", &"排版"]);
    r.assert_code(2);
    assert!(r.stderr().contains("run `docmill index`"), "{}", r.dump());
    index(&pg);
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
fn an_index_of_schema_1_is_rebuilt_by_the_next_index_run() {
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
    // Reading never writes, so a search asks for the run that upgrades.
    let r = env.run(&[&"search", &"loop"]);
    r.assert_code(2);
    assert!(r.stderr().contains("run `docmill index`"), "{}", r.dump());
    env.run(&[&"index", &"--quiet", &paper]).assert_code(0);
    let r = json(&env, &["path:tracemonkey", "loop"], 0);
    assert_eq!(names(&r), BTreeSet::from(["pdfjs-tracemonkey.pdf".into()]));
    let conn = env.sql();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    env.assert_no_leftovers();
}

/// Query latency and index size on generated text, SQLite against
/// PostgreSQL: `scripts/bench-search` runs it (pages from
/// `DOCMILL_BENCH_PAGES`, default 1,000,000; `DOCMILL_BENCH_STORES` is
/// `sqlite`, `postgres` or, by default, both). A benchmark, not a check.
#[test]
#[ignore = "a benchmark, not a check: run scripts/bench-search"]
fn bench_search() {
    let pages: usize = std::env::var("DOCMILL_BENCH_PAGES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let stores = std::env::var("DOCMILL_BENCH_STORES").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    if stores != "postgres" {
        // `DOCMILL_BENCH_KEEP` names a SQLite file to keep, and to query
        // again without filling it when it is there.
        let db = std::env::var_os("DOCMILL_BENCH_KEEP")
            .map_or_else(|| dir.path().join("bench.db"), PathBuf::from);
        report.push(bench::run("sqlite", &db, pages));
    }
    let cluster = match stores.as_str() {
        "sqlite" => None,
        _ => PgCluster::start_with(None, true),
    };
    if let Some(cluster) = cluster {
        let url = PathBuf::from(cluster.create_db("bench"));
        report.push(bench::run("postgres", &url, pages));
        let mut client = cluster.client("bench");
        let row = client
            .query_one(
                "SELECT pg_total_relation_size('pages')::float8,
                        pg_relation_size('pages_tsv')::float8,
                        (SELECT sum(pg_column_size(tsv))::float8 FROM pages)",
                &[],
            )
            .unwrap();
        let (total, gin, tsv): (f64, f64, f64) = (row.get(0), row.get(1), row.get(2));
        let last = report.last_mut().unwrap();
        last["bytes_per_page"] = (total / pages as f64).into();
        last["index_bytes_per_page"] = ((gin + tsv) / pages as f64).into();
    }
    let json = serde_json::to_string_pretty(&report).unwrap();
    println!("{json}");
    if let Some(out) = std::env::var_os("DOCMILL_BENCH_OUT") {
        std::fs::write(out, json).unwrap();
    }
}

mod bench {
    //! Generated text for the search benchmark: a Zipf-distributed
    //! vocabulary of made-up words, one document in twenty in Chinese
    //! characters, a hundred pages per document.

    use std::path::Path;
    use std::time::{Duration, Instant};

    use docmill::search::{self, SearchRequest};
    use docmill::store::{self, Finished, FinishedResult, Found, FoundKind, RetryPolicy};
    use docmill_protocol::{DocSummary, Format, PageFlags};
    use serde_json::{json, Value};

    const PAGES_PER_DOC: usize = 100;
    const WORDS_PER_PAGE: usize = 200;
    const VOCABULARY: usize = 50_000;
    const HANZI: usize = 3_000;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Draws ranks from 0..n with probability proportional to 1/(rank+1).
    struct Zipf(Vec<f64>);
    impl Zipf {
        fn new(n: usize) -> Zipf {
            let mut acc = 0.0;
            Zipf(
                (0..n)
                    .map(|r| {
                        acc += 1.0 / (r as f64 + 1.0);
                        acc
                    })
                    .collect(),
            )
        }
        fn draw(&self, rng: &mut Rng) -> usize {
            let u = rng.unit() * self.0[self.0.len() - 1];
            self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
        }
    }

    const SYLLABLES: [&str; 32] = [
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "gu", "sho", "bel", "tor",
        "an", "ex", "qui", "ron", "zel", "ma", "fi", "ju", "wen", "ost", "ur", "ly", "cra", "pin",
        "sol", "dee", "ha", "mor",
    ];

    /// The made-up word of rank `r`: three or four syllables.
    pub fn word(r: usize) -> String {
        let mut n = r + 32 * 32;
        let mut w = String::new();
        while n > 0 {
            w.push_str(SYLLABLES[n % 32]);
            n /= 32;
        }
        w
    }

    /// The Chinese character of rank `r`.
    pub fn hanzi(r: usize) -> char {
        char::from_u32(0x4E00 + (r as u32 * 7) % 0x5000).unwrap()
    }

    fn page(rng: &mut Rng, words: &Zipf, chars: &Zipf, cjk: bool) -> String {
        let mut text = String::with_capacity(WORDS_PER_PAGE * 8);
        if cjk {
            for i in 0..WORDS_PER_PAGE * 2 {
                text.push(hanzi(chars.draw(rng)));
                if i % 17 == 16 {
                    text.push_str("。\n");
                }
            }
        } else {
            for i in 0..WORDS_PER_PAGE {
                text.push_str(&word(words.draw(rng)));
                text.push(if i % 12 == 11 { '\n' } else { ' ' });
            }
        }
        text
    }

    /// Fills the store at `db` with `pages` generated pages, then times the
    /// query set; returns the figures as JSON.
    pub fn run(name: &str, db: &Path, pages: usize) -> Value {
        let filled = db.exists();
        let mut s = store::open(db).unwrap();
        let words = Zipf::new(VOCABULARY);
        let chars = Zipf::new(HANZI);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let docs = pages.div_ceil(PAGES_PER_DOC);
        let started = Instant::now();
        let run = s.begin_run("bench", "{}").unwrap();
        let found: Vec<Found> = (0..docs)
            .map(|i| Found {
                path: format!(
                    "/bench/{}/doc{i:07}.{}",
                    i % 100,
                    if i % 10 == 0 { "epub" } else { "pdf" }
                )
                .into(),
                size: 1,
                mtime_ns: 1,
                kind: FoundKind::Document(if i % 10 == 0 {
                    Format::Epub
                } else {
                    Format::Pdf
                }),
            })
            .collect();
        for chunk in found.chunks(1000) {
            s.upsert_found(chunk, run, RetryPolicy::default()).unwrap();
        }
        let queued = s.pending().unwrap();
        let mut written = 0;
        let load = store::is_postgres(db).then(|| pg::Load::start(&db.to_string_lossy()));
        // A hundred documents (10,000 pages) a transaction: a run commits
        // fewer at a time, but the index that results is the same.
        for batch in queued.chunks(100) {
            let ids: Vec<i64> = batch.iter().map(|d| d.id).collect();
            let claims = s.claim(&ids, "bench", Duration::from_secs(3600)).unwrap();
            let mut jobs: Vec<Finished> = claims
                .into_iter()
                .map(|(doc, claim)| {
                    let cjk = doc % 20 == 7;
                    let n = PAGES_PER_DOC.min(pages - written);
                    written += n;
                    let texts = (0..n)
                        .map(|p| {
                            (
                                p as u32 + 1,
                                page(&mut rng, &words, &chars, cjk),
                                PageFlags::default(),
                            )
                        })
                        .collect();
                    Finished {
                        doc,
                        chunk: None,
                        claim,
                        run,
                        attempt: 1,
                        worker_pid: 1,
                        started_ms: 0,
                        ended_ms: 1,
                        result: FinishedResult::Done {
                            summary: DocSummary {
                                page_count: n as u32,
                                title: Some(format!(
                                    "{} {} {}",
                                    word(doc as usize % 5000),
                                    word(60),
                                    word(doc as usize % 997)
                                )),
                                author: Some(format!(
                                    "Author{} {}",
                                    doc % 300,
                                    word(doc as usize % 50)
                                )),
                                language: None,
                                engine: "bench".into(),
                                content_hash: None,
                            },
                            pages: texts,
                        },
                    }
                })
                .collect();
            // PostgreSQL: the documents through the store, their pages in
            // bulk once the documents hold the titles their pages' text
            // vectors take.
            let pages: pg::Batch = match &load {
                Some(_) => jobs
                    .iter_mut()
                    .filter_map(|job| match &mut job.result {
                        FinishedResult::Done { pages, .. } => {
                            Some((job.doc, std::mem::take(pages)))
                        }
                        _ => None,
                    })
                    .collect(),
                None => Vec::new(),
            };
            s.commit(&jobs).unwrap();
            if let Some(load) = &load {
                load.send(pages);
            }
            if written % 100_000 < 10_000 {
                eprintln!(
                    "{name}: {written} pages in {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        if let Some(load) = load {
            load.finish(name, started);
        }
        let fill_s = started.elapsed().as_secs_f64();
        let prefix = &word(200)[..3];
        let queries: Vec<(String, Option<Format>)> = vec![
            (word(5), None),
            (word(100), None),
            (word(3000), None),
            (word(30_000), None),
            (format!("{} {}", word(50), word(500)), None),
            (format!("\"{} {}\"", word(20), word(21)), None),
            (format!("{prefix}*"), None),
            (format!("{} OR {}", word(300), word(400)), None),
            (format!("{} -{}", word(1000), word(10)), None),
            (format!("title:{}", word(60)), None),
            ("author:author17".into(), None),
            (format!("{}{}", hanzi(0), hanzi(1)), None),
            (hanzi(40).to_string(), None),
            (word(2000), Some(Format::Epub)),
        ];
        let mut all = Vec::new();
        let mut per_query = Vec::new();
        for (q, format) in &queries {
            let request = SearchRequest {
                query: q.clone(),
                path: None,
                format: *format,
                limit: 10,
                offset: 0,
                pages_per_document: 3,
            };
            let mut times = Vec::new();
            let mut found = None;
            for round in 0..6 {
                let t = Instant::now();
                let r = search::search(s.as_mut(), &request).unwrap();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                found = Some(r);
                // The first round warms the cache and is not counted.
                if round > 0 {
                    times.push(ms);
                }
            }
            times.sort_by(f64::total_cmp);
            let r = found.unwrap();
            per_query.push(json!({
                "query": q,
                "format": format.map(|f| f.as_str()),
                "matching_pages": r.total_pages,
                "more_pages": r.more_pages,
                "documents": r.total_documents,
                "more_documents": r.more_documents,
                "ranked_pages": r.ranked_pages,
                "median_ms": times[times.len() / 2],
                "max_ms": times[times.len() - 1],
            }));
            all.extend(times);
        }
        all.sort_by(f64::total_cmp);
        let pct = |p: f64| all[((all.len() as f64 * p).ceil() as usize).saturating_sub(1)];
        let mut out = json!({
            "store": name,
            "pages": pages,
            "documents": docs,
            // A kept file was filled by an earlier run: its documents are
            // found unchanged, and nothing is written.
            "fill_s": if filled { None } else { Some(fill_s) },
            "p50_ms": pct(0.5),
            "p95_ms": pct(0.95),
            "queries": per_query,
        });
        if !store::is_postgres(db) {
            drop(s);
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            let total = std::fs::metadata(db).unwrap().len() as f64;
            let fts: f64 = conn
                .query_row(
                    "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'pages_fts%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap_or(f64::NAN);
            out["bytes_per_page"] = (total / pages as f64).into();
            out["index_bytes_per_page"] = (fts / pages as f64).into();
        }
        eprintln!("{out}");
        out
    }

    mod pg {
        //! The benchmark's bulk fill of PostgreSQL's pages: through the
        //! store, a page's text vector is computed by a row trigger, one
        //! row at a time (0.7 ms a page here, against 0.13 ms for the same
        //! function over a whole table), and the GIN index grows a page at
        //! a time; a million pages would have taken half an hour, the
        //! measurements with it. Here two connections copy the pages in
        //! and compute the same vectors with the same function, set-based,
        //! with the trigger off for their session only, and the GIN index
        //! is built once at the end from its own definition. The result is
        //! what the store holds, which `finish` checks against the trigger.

        use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
        use std::sync::{Arc, Mutex};
        use std::thread::JoinHandle;
        use std::time::Instant;

        use docmill_protocol::PageFlags;
        use postgres::binary_copy::BinaryCopyInWriter;
        use postgres::types::Type;
        use postgres::{Client, NoTls};

        /// One transaction's documents with their pages.
        pub type Batch = Vec<(i64, Vec<(u32, String, PageFlags)>)>;

        /// Two connections for two cores: the vectors are the work.
        const LOADERS: usize = 2;

        /// What the trigger `pages_indexed` computes (store/pg/schema.rs),
        /// for every staged page at once.
        const INSERT: &str = "INSERT INTO pages (doc_id, page, text, flags, tsv)
            SELECT s.doc_id, s.page, s.text, s.flags,
                   docmill_page_tsv(s.text, d.title, d.author, d.display_path)
            FROM stage s JOIN documents d ON d.id = s.doc_id";

        pub struct Load {
            url: String,
            client: Client,
            /// The GIN index's definition, as the store made it.
            index: String,
            batches: SyncSender<Batch>,
            loaders: Vec<JoinHandle<()>>,
        }

        impl Load {
            /// Drops the text index (built again in `finish`) and starts
            /// the loaders.
            pub fn start(url: &str) -> Load {
                let mut client = Client::connect(url, NoTls).unwrap();
                let index: String = client
                    .query_one(
                        "SELECT indexdef FROM pg_indexes
                         WHERE tablename = 'pages' AND indexname = 'pages_tsv'",
                        &[],
                    )
                    .expect("the store's text index `pages_tsv`")
                    .get(0);
                client.batch_execute("DROP INDEX pages_tsv").unwrap();
                let (batches, rx) = sync_channel::<Batch>(LOADERS);
                let rx = Arc::new(Mutex::new(rx));
                let loaders = (0..LOADERS)
                    .map(|_| {
                        let (url, rx) = (url.to_owned(), Arc::clone(&rx));
                        std::thread::spawn(move || load(&url, &rx))
                    })
                    .collect();
                Load {
                    url: url.to_owned(),
                    client,
                    index,
                    batches,
                    loaders,
                }
            }

            /// Hands over the pages of documents already committed.
            pub fn send(&self, batch: Batch) {
                self.batches.send(batch).unwrap();
            }

            /// Waits for the loaders, checks the vectors against the
            /// trigger's, builds the text index and settles the table as
            /// autovacuum would.
            pub fn finish(self, name: &str, started: Instant) {
                let Load {
                    url,
                    mut client,
                    index,
                    batches,
                    loaders,
                } = self;
                drop(batches);
                for l in loaders {
                    l.join().unwrap();
                }
                eprintln!(
                    "{name}: pages loaded at {:.0} s",
                    started.elapsed().as_secs_f64()
                );
                // The first twenty documents (one in Chinese) written again
                // through the trigger, in a transaction rolled back.
                let mut tx = client.transaction().unwrap();
                tx.batch_execute(
                    "CREATE TEMP TABLE loaded ON COMMIT DROP AS
                         SELECT doc_id, page, tsv FROM pages
                         WHERE doc_id < (SELECT min(id) + 20 FROM documents);
                     UPDATE pages SET text = text
                         WHERE doc_id < (SELECT min(id) + 20 FROM documents);",
                )
                .unwrap();
                let row = tx
                    .query_one(
                        "SELECT count(*), count(*) FILTER (WHERE p.tsv IS DISTINCT FROM l.tsv)
                         FROM pages p JOIN loaded l USING (doc_id, page)",
                        &[],
                    )
                    .unwrap();
                let (checked, differ): (i64, i64) = (row.get(0), row.get(1));
                tx.rollback().unwrap();
                assert!(checked > 0, "no page of {url} was checked");
                assert_eq!(differ, 0, "text vectors unlike the store's trigger's");
                // VACUUM runs on its own, outside the implicit transaction
                // of a batch of statements.
                client
                    .batch_execute(&format!("SET maintenance_work_mem = '1GB'; {index}"))
                    .unwrap();
                client.batch_execute("VACUUM (ANALYZE) pages").unwrap();
                eprintln!(
                    "{name}: text index built at {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }

        /// One loader: each batch copied into a temporary table and moved
        /// into `pages` with its text vectors, in one transaction.
        fn load(url: &str, batches: &Mutex<Receiver<Batch>>) {
            let mut client = Client::connect(url, NoTls).unwrap();
            // Triggers off for this session only (the cluster's user is its
            // superuser): the vectors come from `INSERT`.
            client
                .batch_execute(
                    "SET session_replication_role = replica;
                     CREATE TEMP TABLE stage (doc_id bigint, page bigint, text text, flags bigint)
                         ON COMMIT DELETE ROWS",
                )
                .unwrap();
            loop {
                let Ok(batch) = batches.lock().unwrap().recv() else {
                    return;
                };
                let mut tx = client.transaction().unwrap();
                let sink = tx.copy_in("COPY stage FROM STDIN BINARY").unwrap();
                let mut w = BinaryCopyInWriter::new(
                    sink,
                    &[Type::INT8, Type::INT8, Type::TEXT, Type::INT8],
                );
                for (doc, pages) in &batch {
                    for (page, text, flags) in pages {
                        w.write(&[doc, &i64::from(*page), text, &flags.bits()])
                            .unwrap();
                    }
                }
                w.finish().unwrap();
                tx.execute(INSERT, &[]).unwrap();
                tx.commit().unwrap();
            }
        }
    }
}
