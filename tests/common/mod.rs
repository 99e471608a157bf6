//! Helpers for the process-level tests: run the real `docmill` binary, find
//! the corpus, write mock documents, wait on conditions with deadlines, and
//! check that no process of a run is left behind.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod cdp;
pub mod pdf;
pub mod pg;
pub mod score;

pub const BIN: &str = env!("CARGO_BIN_EXE_docmill");

/// The shared corpus: `$DOCMILL_CORPUS`, else `../shared/corpus` beside the
/// repository.
pub fn corpus() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCMILL_CORPUS") {
        return PathBuf::from(dir);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = here.join("../../shared/corpus");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "the test corpus is missing: expected {} (or set DOCMILL_CORPUS)",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

#[derive(Clone, Debug)]
pub struct ManifestEntry {
    pub path: String,
    pub pages: Option<u32>,
    pub class: String,
}

pub fn manifest() -> Vec<ManifestEntry> {
    let text = std::fs::read_to_string(corpus().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            ManifestEntry {
                path: cols[0].to_string(),
                pages: cols[3].parse().ok(),
                class: cols[4].split(';').next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// A test's private database and a marker that every process of its runs
/// inherits, so leftovers can be found.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub tag: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.db");
        let tag = format!(
            "{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        Env { dir, db, tag }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self, args: &[&dyn AsRef<OsStr>]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--db").arg(&self.db);
        for a in args {
            c.arg(a.as_ref());
        }
        c.env("DOCMILL_TEST_TAG", &self.tag)
            .env_remove("DOCMILL_DB")
            .stdin(Stdio::null());
        c
    }

    /// Runs docmill to the end and returns its output.
    pub fn run(&self, args: &[&dyn AsRef<OsStr>]) -> Run {
        let mut c = self.cmd(args);
        let out = c.output().expect("run docmill");
        Run {
            args: args
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect(),
            out,
        }
    }

    /// Starts docmill in the background.
    pub fn spawn(&self, args: &[&dyn AsRef<OsStr>]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docmill")
    }

    /// Every live process started by this test's runs (workers included).
    pub fn processes(&self) -> Vec<u32> {
        tagged_processes(&self.tag)
    }

    /// Waits until no process of this test's runs is left; fails the test
    /// with the survivors' command lines if some are.
    pub fn assert_no_leftovers(&self) {
        let gone = wait_until(Duration::from_secs(5), || self.processes().is_empty());
        if !gone {
            let left: Vec<String> = self
                .processes()
                .iter()
                .map(|p| format!("{p}: {}", cmdline(*p)))
                .collect();
            panic!("processes of the run were left behind: {left:?}");
        }
    }

    pub fn status(&self) -> serde_json::Value {
        let r = self.run(&[&"status", &"--json"]);
        r.assert_code(0);
        serde_json::from_slice(&r.out.stdout).unwrap()
    }

    pub fn export(&self) -> Vec<u8> {
        let r = self.run(&[&"export"]);
        r.assert_code(0);
        r.out.stdout
    }

    /// Opens the database read-only for assertions the CLI does not show.
    pub fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// status and attempts of one document, by file name.
    pub fn doc(&self, name: &str) -> (String, u32) {
        self.sql()
            .query_row(
                "SELECT status, attempts FROM documents WHERE display_path LIKE '%/' || ?1",
                [name],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32)),
            )
            .unwrap_or_else(|e| panic!("no document {name}: {e}"))
    }

    /// Outcomes of every attempt of one document, in order.
    pub fn attempts(&self, name: &str) -> Vec<String> {
        let conn = self.sql();
        let mut stmt = conn
            .prepare(
                "SELECT a.outcome FROM attempts a JOIN documents d ON d.id = a.doc_id
                 WHERE d.display_path LIKE '%/' || ?1 ORDER BY a.id",
            )
            .unwrap();
        stmt.query_map([name], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    pub fn counts(&self) -> HashMap<String, u64> {
        let st = self.status();
        st["documents"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Never leave processes behind, even when a test fails.
        for pid in self.processes() {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

pub struct Run {
    pub args: Vec<String>,
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), code, "unexpected exit code\n{}", self.dump());
        self
    }

    pub fn dump(&self) -> String {
        format!(
            "command: docmill {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Processes whose environment carries `DOCMILL_TEST_TAG=tag`.
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("DOCMILL_TEST_TAG={tag}\0");
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.windows(needle.len()).any(|w| w == needle.as_bytes()) && !is_zombie(pid) {
                out.push(pid);
            }
        }
    }
    out
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Worker processes (not the supervisor) of this test's runs.
pub fn workers(env: &Env) -> Vec<u32> {
    env.processes()
        .into_iter()
        .filter(|p| cmdline(*p).contains(" __worker "))
        .collect()
}

/// Writes a mock document script.
pub fn mockdoc(dir: &Path, name: &str, script: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(format!("{name}.mockdoc"));
    std::fs::write(&p, script).unwrap();
    p
}

pub fn send_signal(pid: u32, sig: i32) {
    unsafe { libc::kill(pid as i32, sig) };
}

/// Waits for a child with a deadline; kills it and fails if it overruns.
pub fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("docmill did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How the tests run Chromium: headless, in a fresh profile (given apart),
/// with nothing that reaches the network or needs a GPU or a large /dev/shm.
pub const HEADLESS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Chromium, which scripts/test installs; `$CHROMIUM` names another binary.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "headless Chromium is needed to check pages as a browser shows them, and none was \
         found: run scripts/test (it installs the Debian package `chromium`), or \
         `apt-get install chromium`, or set CHROMIUM to a Chromium or Chrome binary"
    );
}
