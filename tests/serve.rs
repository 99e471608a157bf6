//! `docmill serve` end to end, with the real binary over corpus documents
//! and generated PDFs: the pages over HTTP (grouped hits, the files
//! themselves with their media types, 404 for anything not catalogued, the
//! listening rule, escaping of hostile titles, text and file names, a
//! database left untouched), and a real headless Chromium that types a
//! query, follows a hit to its document, and watches the run page advance
//! by itself while an index run writes to the database.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, SystemTime};

use common::cdp::Browser;
use common::{corpus, mockdoc, wait_child, Env};

const TRACE: &str = "pdf/pdfjs-tracemonkey.pdf";
const ALICE: &str = "epub/epubjs-alice.epub";
/// What the hostile document holds, in its text, title and file name.
const XSS: &str = "<script>alert(1)</script>";
const XSS_NAME: &str = "evil<script>alert(1)<.pdf";

/// A one-page PDF with `text` on it (Helvetica) and `title` in its Info
/// dictionary.
fn text_pdf(text: &str, title: &str) -> Vec<u8> {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)")
    };
    let content = format!("BT /F1 14 Tf 72 720 Td ({}) Tj ET\n", esc(text));
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
        format!("<< /Title ({}) >>", esc(title)),
    ];
    common::pdf::assemble(&objects, "/Info 6 0 R ")
}

/// Indexes `files` (absolute) into the test's database.
fn index(env: &Env, files: &[PathBuf]) {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"index", &"--quiet"];
    for f in files {
        args.push(f);
    }
    env.run(&args).assert_code(0);
}

/// A running `docmill serve`, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    port: u16,
}

impl Server {
    fn start(env: &Env) -> Server {
        let mut child = env.spawn(&[&"serve", &"--listen", &"127.0.0.1:0"]);
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let Some(url) = first.trim().strip_prefix("docmill serve: ") else {
            let _ = child.kill();
            let mut err = String::new();
            let _ = child.stderr.as_mut().unwrap().read_to_string(&mut err);
            panic!("no URL on the first line: {first:?}\n{err}");
        };
        let base = url.trim_end_matches('/').to_string();
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Server { child, base, port }
    }

    fn get(&self, target: &str) -> Response {
        get(self.port, target)
    }

    fn get_as(&self, target: &str, host: &str) -> Response {
        get_as(self.port, target, host)
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `target` exactly as written (nothing normalised) from the server
/// on the loopback `port`.
fn get(port: u16, target: &str) -> Response {
    get_as(port, target, &format!("127.0.0.1:{port}"))
}

fn get_as(port: u16, target: &str, host: &str) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    Response::parse(&raw)
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole response");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = unchunk(&body);
        }
        Response {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// The document ids a page links to with `/file/<id>` (in order, repeated).
fn file_ids(html: &str) -> Vec<i64> {
    html.split("href=\"/file/")
        .skip(1)
        .filter_map(|s| {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

fn id_of(env: &Env, name: &str) -> i64 {
    env.sql()
        .query_row(
            "SELECT id FROM documents WHERE display_path LIKE '%/' || ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

fn fingerprint(db: &Path) -> (Vec<u8>, SystemTime) {
    (
        std::fs::read(db).unwrap(),
        std::fs::metadata(db).unwrap().modified().unwrap(),
    )
}

#[test]
fn pages_over_http() {
    let env = Env::new();
    let lib = env.path("lib");
    std::fs::create_dir_all(&lib).unwrap();
    let evil = lib.join(XSS_NAME);
    std::fs::write(&evil, text_pdf(&format!("hostile {XSS} page"), XSS)).unwrap();
    let trace = corpus().join(TRACE);
    let alice = corpus().join(ALICE);
    index(&env, &[trace.clone(), alice.clone(), evil.clone()]);
    let before = fingerprint(&env.db);

    let server = Server::start(&env);

    eprintln!("case: search, grouped");
    let r = server.get("/?q=trace");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let csp = r
        .header("content-security-policy")
        .expect("a policy on pages");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = r.text();
    assert!(html.contains("pdfjs-tracemonkey.pdf"), "{html}");
    let trace_id = id_of(&env, "pdfjs-tracemonkey.pdf");
    // One document, its best pages each linking to the file at the page.
    assert_eq!(html.matches("class=\"doc\"").count(), 1, "{html}");
    assert!(
        html.contains(&format!("href=\"/file/{trace_id}#page=")),
        "{html}"
    );
    assert!(html.matches("class=\"hit\"").count() >= 2, "{html}");
    assert!(html.contains("<mark>"), "{html}");
    let total: u64 = html
        .split("id=\"total-pages\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .and_then(|s| s.parse().ok())
        .expect("a total of matching pages");
    assert!(total >= 3, "{total} pages");
    // Facets by format and by folder.
    assert!(html.contains("class=\"facet-format\""), "{html}");
    assert!(html.contains("class=\"facet-folder\""), "{html}");

    eprintln!("case: filters and paging links");
    let r = server.get("/?q=alice&format=epub");
    assert_eq!(r.status, 200);
    let alice_id = id_of(&env, "epubjs-alice.epub");
    assert!(file_ids(&r.text()).contains(&alice_id), "{}", r.text());
    assert!(!file_ids(&r.text()).contains(&trace_id));
    let r = server.get("/?q=%22unclosed");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("cannot be read"), "{}", r.text());

    eprintln!("case: the files themselves");
    let r = server.get(&format!("/file/{trace_id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(r.body, std::fs::read(&trace).unwrap());
    let r = server.get(&format!("/file/{alice_id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/epub+zip"));
    assert_eq!(r.body, std::fs::read(&alice).unwrap());

    eprintln!("case: nothing outside the catalog");
    for target in [
        "/file/999999",
        "/file/abc",
        "/file/-1",
        "/file/../../etc/passwd",
        "/file/..%2F..%2Fetc%2Fpasswd",
        "/file/%2e%2e/%2e%2e/etc/passwd",
        "/file//etc/passwd",
        "/doc/999999",
        "/doc/../../etc/passwd",
        "/etc/passwd",
        "/nothing",
    ] {
        let r = server.get(target);
        assert_eq!(r.status, 404, "{target}: {}", r.text());
        assert!(!r.text().contains("root:"), "{target}");
    }
    // A page asked for under another site's name is refused (DNS rebinding).
    let r = server.get_as("/", "evil.example");
    assert_eq!(r.status, 421);

    eprintln!("case: the document view");
    let r = server.get(&format!("/doc/{trace_id}?q=trace&page=2"));
    assert_eq!(r.status, 200);
    let html = r.text();
    for needle in [
        "id=\"p1\"",
        "id=\"p2\"",
        "<mark>",
        "done",
        "pdfjs-tracemonkey.pdf",
    ] {
        assert!(html.contains(needle), "{needle} missing: {html}");
    }

    eprintln!("case: hostile text, title and file name are text");
    let evil_id = id_of(&env, XSS_NAME);
    for target in [
        "/?q=hostile".to_string(),
        format!("/doc/{evil_id}?q=hostile"),
    ] {
        let r = server.get(&target);
        assert_eq!(r.status, 200, "{target}");
        let html = r.text();
        assert!(!html.contains("<script"), "{target}: {html}");
        assert!(html.contains("&lt;script&gt;alert(1)"), "{target}: {html}");
        assert!(
            html.contains("evil&lt;script&gt;alert(1)&lt;.pdf"),
            "{target}: {html}"
        );
    }

    server.stop();
    env.assert_no_leftovers();
    let after = fingerprint(&env.db);
    assert!(before.0 == after.0, "serve changed the database's bytes");
    assert_eq!(before.1, after.1, "serve changed the database's mtime");
}

#[test]
fn listening_rule_and_no_index() {
    let env = Env::new();
    // No index yet: said, exit 2, nothing listens.
    let r = env.run(&[&"serve", &"--listen", &"127.0.0.1:0"]);
    r.assert_code(2);
    index(&env, &[corpus().join(TRACE)]);
    let r = env.run(&[&"serve", &"--listen", &"0.0.0.0:0"]);
    r.assert_code(2);
    assert!(r.stderr().contains("--allow-remote"), "{}", r.dump());
    assert!(r.stdout().is_empty(), "{}", r.dump());
    env.assert_no_leftovers();
}

/// `index --serve`: the run's own process serves the same pages.
#[test]
fn index_serves_its_own_run() {
    let env = Env::new();
    let lib = env.path("slow");
    for i in 0..6 {
        mockdoc(&lib, &format!("slow{i}"), "sleep_ms 500\npages 2\n");
    }
    let mut run = env.spawn(&[
        &"index",
        &"--serve=127.0.0.1:0",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"2",
        &"--quiet",
    ]);
    let mut err = BufReader::new(run.stderr.take().unwrap());
    let mut url = None;
    for _ in 0..20 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(u) = line.trim().strip_prefix("docmill serve: ") {
            url = Some(u.trim_end_matches('/').to_string());
            break;
        }
    }
    let url = url.expect("index --serve names its page");
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let r = get(port, "/run");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("is going on"), "{}", r.text());
    assert_eq!(get(port, "/?q=mock").status, 200);
    let status = wait_child(&mut run, Duration::from_secs(120));
    assert_eq!(status.code(), Some(0));
    env.assert_no_leftovers();
}

/// A person's way through: type a query and press Enter (the browser
/// submits the form), see the grouped hits, follow one to its document;
/// then open the run page and watch it advance, with no reload, while an
/// index run works on the same database in another process.
#[test]
fn browser_searches_follows_and_watches_a_run() {
    common::chromium(); // fail first, and clearly, when there is no browser
    let env = Env::new();
    index(&env, &[corpus().join(TRACE)]);
    let server = Server::start(&env);
    let mut b = Browser::start(&env.tag);
    let long = Duration::from_secs(60);

    b.navigate(&format!("{}/", server.base));
    b.wait_for(
        "document.activeElement && document.activeElement.name === 'q'",
        long,
    );
    b.type_and_enter("trace");
    b.wait_for(
        "location.search.indexOf('q=trace') >= 0 && document.querySelectorAll('.doc').length === 1",
        long,
    );
    let hits = b.eval("document.querySelectorAll('.doc .hit').length");
    assert!(hits.as_u64().unwrap() >= 2, "{hits}");
    b.eval("document.querySelector('a.doc-link').click(); true");
    b.wait_for(
        "location.pathname.indexOf('/doc/') === 0 && document.querySelector('#metadata') !== null \
         && document.querySelectorAll('mark').length > 0",
        long,
    );

    // A run that takes a while: slow mock documents, two workers.
    let lib = env.path("slow");
    for i in 0..20 {
        mockdoc(&lib, &format!("slow{i:02}"), "sleep_ms 800\npages 3\n");
    }
    b.navigate(&format!("{}/run", server.base));
    b.wait_for("document.querySelector('#state') !== null", long);
    // A mark that a reload would wipe.
    b.eval("window.stayed = true");
    let mut run = env.spawn(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--workers",
        &"2",
        &"--quiet",
    ]);
    b.wait_for(
        "document.querySelector('[data-going=\"true\"]') !== null \
         && Number(document.querySelector('#docs-done').textContent) > 0 \
         && document.querySelectorAll('#running tr').length > 1",
        long,
    );
    let first = b.eval("Number(document.querySelector('#docs-done').textContent)");
    let first = first.as_u64().unwrap();
    b.wait_for(
        &format!("Number(document.querySelector('#docs-done').textContent) > {first}"),
        long,
    );
    assert_eq!(
        b.eval("window.stayed === true"),
        serde_json::json!(true),
        "the page reloaded"
    );
    assert!(
        b.eval("Number(document.body.getAttribute('data-updates'))")
            .as_u64()
            .unwrap()
            >= 2
    );
    // The server answers searches while the run writes.
    assert_eq!(server.get("/?q=trace").status, 200);

    let status = wait_child(&mut run, Duration::from_secs(120));
    assert_eq!(status.code(), Some(0));
    b.wait_for(
        "document.querySelector('#state').textContent.indexOf('finished') >= 0 \
         && document.querySelector('#docs-done').textContent === '20'",
        long,
    );
    assert_eq!(b.eval("window.stayed === true"), serde_json::json!(true));
    // The charts are the report's, in the page.
    let charts = b.eval("document.querySelectorAll('#charts svg').length");
    assert_eq!(
        charts.as_u64().unwrap() as usize,
        docmill::metrics::report::CHARTS
    );

    drop(b);
    server.stop();
    env.assert_no_leftovers();
}
