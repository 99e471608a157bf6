//! Several supervisors, one PostgreSQL database: real `docmill index`
//! processes with real workers over mock documents and real corpus PDFs.
//! One supervisor is killed, another stopped past its lease; the survivors
//! finish everything (long documents as page-range chunks spread over the
//! machines), the lost leases count as interrupted once each, the stopped
//! one writes nothing when it wakes, and the result equals a single-machine
//! SQLite run.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use common::pg::PgCluster;
use common::*;

const MOCKS: usize = 36;
const MOCK_PAGES: i64 = 10;
/// Long mock documents, split into chunks of `CHUNK_PAGES`.
const LONG: usize = 2;
const LONG_PAGES: i64 = 120;
const CHUNK_PAGES: i64 = 20;
/// Long enough that a live supervisor on a machine loaded by other tests
/// still renews in time (every third of it): only the killed and stopped
/// supervisors may lose a lease.
const LEASE: &str = "10s";

/// The library: mock documents that take a while, and small real PDFs.
struct Library {
    _dir: tempfile::TempDir,
    roots: Vec<PathBuf>,
    /// Expected page count per display path.
    pages: HashMap<String, i64>,
}

fn library() -> Library {
    let dir = tempfile::tempdir().unwrap();
    let mocks = dir.path().join("mocks");
    let mut pages = HashMap::new();
    for i in 0..MOCKS {
        let p = mockdoc(
            &mocks,
            &format!("m{i:02}"),
            &format!("sleep_ms 400\npages {MOCK_PAGES}\n"),
        );
        pages.insert(p.to_string_lossy().into_owned(), MOCK_PAGES);
    }
    for i in 0..LONG {
        let p = mockdoc(
            &mocks,
            &format!("long{i}"),
            &format!("sleep_ms 300\npages {LONG_PAGES}\n"),
        );
        pages.insert(p.to_string_lossy().into_owned(), LONG_PAGES);
    }
    let mut roots = vec![mocks];
    let corpus = corpus();
    for entry in manifest()
        .into_iter()
        .filter(|e| e.class == "normal" && e.path.ends_with(".pdf"))
        .filter(|e| e.pages.is_some_and(|p| p <= 12))
        .take(8)
    {
        let p = corpus.join(&entry.path);
        pages.insert(
            p.to_string_lossy().into_owned(),
            entry.pages.unwrap() as i64,
        );
        roots.push(p);
    }
    Library {
        _dir: dir,
        roots,
        pages,
    }
}

fn index_args(lib: &Library) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["index".into()];
    args.extend(lib.roots.iter().map(|r| r.clone().into_os_string()));
    for a in [
        "--workers",
        "2",
        "--lease",
        LEASE,
        "--allow-mock-docs",
        "--quiet",
        "--timeout",
        "60s",
        "--massive-pages",
        "50",
        "--chunk-pages",
        &CHUNK_PAGES.to_string(),
    ] {
        args.push(a.into());
    }
    args
}

fn spawn(env: &Env, args: &[OsString]) -> (Child, std::thread::JoinHandle<String>) {
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args
        .iter()
        .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
        .collect();
    let mut child = env.spawn(&refs);
    // Read stderr on its own thread so the child can never block on it.
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    (child, reader)
}

/// A job: a document, or the chunk of it starting at a page.
type JobKey = (i64, Option<i64>);

/// Jobs whose lease supervisor `pid` holds now (none before the first
/// supervisor has made the schema).
fn leases_of(db: &mut postgres::Client, pid: u32) -> BTreeSet<JobKey> {
    db.query(
        "SELECT id, NULL::bigint FROM documents
         WHERE status = 'running' AND lease_owner LIKE '%:' || $1
         UNION ALL
         SELECT doc_id, first FROM chunks
         WHERE status = 'running' AND lease_owner LIKE '%:' || $1",
        &[&pid.to_string()],
    )
    .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    .unwrap_or_default()
}

/// Checks that exactly the jobs in `lost` were interrupted, once each.
fn assert_interrupted(db: &mut postgres::Client, lost: &BTreeSet<JobKey>, logs: &str) {
    let rows = db
        .query(
            "SELECT id, NULL::bigint, interrupted FROM documents
             UNION ALL
             SELECT doc_id, first, interrupted FROM chunks",
            &[],
        )
        .unwrap();
    for r in rows {
        let key: JobKey = (r.get(0), r.get(1));
        let want = i64::from(lost.contains(&key));
        assert_eq!(
            r.get::<_, i64>(2),
            want,
            "interrupted attempts of job {key:?}; the supervisors that ran to the end said:\n{logs}"
        );
    }
}

/// Whether supervisor `pid`'s session is between transactions (a process
/// stopped inside one would hold row locks until the server ends it).
fn session_idle(db: &mut postgres::Client, pid: u32) -> bool {
    db.query(
        "SELECT state FROM pg_stat_activity WHERE application_name = $1",
        &[&format!("docmill {pid}")],
    )
    .unwrap()
    .iter()
    .all(|r| r.get::<_, Option<String>>(0).as_deref() == Some("idle"))
}

fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    wait_child(child, limit).code().unwrap_or(-1)
}

#[test]
fn three_supervisors_one_killed_one_paused() {
    let Some(mut cluster) = PgCluster::start(None) else {
        return;
    };
    let lib = library();
    let mut env = Env::new();
    env.db = PathBuf::from(cluster.create_db("multi"));
    let mut db = cluster.client("multi");
    let args = index_args(&lib);

    let (mut a, a_err) = spawn(&env, &args);
    let (mut b, b_err) = spawn(&env, &args);
    let (mut c, c_err) = spawn(&env, &args);

    // Kill one while it holds leases.
    assert!(
        wait_until(Duration::from_secs(60), || !leases_of(&mut db, a.id())
            .is_empty()),
        "the first supervisor never claimed a job"
    );
    send_signal(a.id(), libc::SIGKILL);
    wait_exit(&mut a, Duration::from_secs(10));
    let killed = leases_of(&mut db, a.id());

    // Stop another while it holds leases, outside any transaction.
    let mut stopped: BTreeSet<JobKey> = BTreeSet::new();
    let paused = wait_until(Duration::from_secs(60), || {
        if leases_of(&mut db, b.id()).is_empty() {
            return false;
        }
        send_signal(b.id(), libc::SIGSTOP);
        stopped = leases_of(&mut db, b.id());
        if session_idle(&mut db, b.id()) && !stopped.is_empty() {
            return true;
        }
        send_signal(b.id(), libc::SIGCONT);
        false
    });
    assert!(paused, "the second supervisor never held a lease");
    assert!(killed.is_disjoint(&stopped));
    eprintln!(
        "leases lost: {} by the killed supervisor, {} by the stopped one",
        killed.len(),
        stopped.len()
    );

    // The third finishes everything, taking back both sets of leases once
    // they expire.
    let total = lib.pages.len() as i64;
    let all_done = wait_until(Duration::from_secs(180), || {
        count(
            &mut db,
            "SELECT count(*) FROM documents WHERE status = 'done'",
        ) == total
    });
    assert!(all_done, "not every document was done: {:?}", env.status());
    let b_run = run_of(&mut db, b.id());
    let attempts_of_b = |db: &mut postgres::Client| attempts_in_run(db, b_run);
    let b_before = attempts_of_b(&mut db);
    let export_before = env.export();

    // The stopped one wakes: its results are refused, and it ends cleanly.
    send_signal(b.id(), libc::SIGCONT);
    let b_code = wait_exit(&mut b, Duration::from_secs(60));
    let b_stderr = b_err.join().unwrap();
    assert_eq!(b_code, 0, "stopped supervisor: {b_stderr}");
    assert!(b_stderr.contains("lease lost"), "{b_stderr}");
    let c_code = wait_exit(&mut c, Duration::from_secs(60));
    let c_stderr = c_err.join().unwrap();
    assert_eq!(c_code, 0, "third supervisor: {c_stderr}");
    let _ = a_err.join();
    assert_eq!(attempts_of_b(&mut db), b_before, "a lost lease wrote");
    assert_eq!(env.export(), export_before, "a lost lease wrote pages");

    // Each document once, done, with exactly its pages.
    let rows = db
        .query(
            "SELECT display_path, status, page_count,
                    (SELECT count(*) FROM pages p WHERE p.doc_id = d.id)
             FROM documents d",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), lib.pages.len(), "each document inserted once");
    for r in &rows {
        let path: String = r.get(0);
        assert_eq!(r.get::<_, String>(1), "done", "{path}");
        let want = lib.pages[&path];
        assert_eq!(r.get::<_, Option<i64>>(2), Some(want), "{path}");
        assert_eq!(r.get::<_, i64>(3), want, "{path}: pages stored");
    }
    let lost: BTreeSet<JobKey> = killed.union(&stopped).copied().collect();
    assert_interrupted(&mut db, &lost, &format!("{b_stderr}\n{c_stderr}"));
    // The long documents ran as chunks, spread over the machines.
    let chunk_owners = count(
        &mut db,
        "SELECT count(DISTINCT r.owner) FROM attempts a JOIN runs r ON r.id = a.run_id
         WHERE a.chunk_first IS NOT NULL",
    );
    assert_eq!(
        count(&mut db, "SELECT count(DISTINCT doc_id) FROM chunks"),
        LONG as i64
    );
    eprintln!("chunks were extracted by {chunk_owners} supervisors");
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) - count(DISTINCT (doc_id, page)) FROM pages"
        ),
        0
    );

    // The same files on one machine with SQLite give the same export.
    let single = Env::new();
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args
        .iter()
        .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
        .collect();
    single.run(&refs).assert_code(0);
    assert_eq!(env.export(), single.export());

    env.assert_no_leftovers();
    single.assert_no_leftovers();
    drop(db);
    cluster.stop();
}

/// A network namespace joined to this one by a veth pair, removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// None, with a message, where namespaces cannot be made (not root).
    fn new() -> Option<Netns> {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: a network namespace needs root");
            return None;
        }
        let k = std::process::id() % 50_000;
        let ns = Netns {
            name: format!("dmcut{k}"),
            host_if: format!("dmh{k}"),
            host_ip: format!("10.213.{}.1", k % 250),
        };
        let ns_if = format!("dmn{k}");
        let ns_ip = format!("10.213.{}.2/30", k % 250);
        let made = ip(&["netns", "add", &ns.name])
            && ip(&[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns_if,
                "netns",
                &ns.name,
            ])
            && ip(&[
                "addr",
                "add",
                &format!("{}/30", ns.host_ip),
                "dev",
                &ns.host_if,
            ])
            && ip(&["link", "set", &ns.host_if, "up"])
            && ip(&["-n", &ns.name, "addr", "add", &ns_ip, "dev", &ns_if])
            && ip(&["-n", &ns.name, "link", "set", &ns_if, "up"])
            && ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        if !made {
            eprintln!("SKIPPED: cannot make a network namespace with a veth pair here");
            return None;
        }
        Some(ns)
    }

    fn cut(&self, down: bool) {
        let state = if down { "down" } else { "up" };
        assert!(ip(&["link", "set", &self.host_if, state]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removing the namespace removes the pair with it.
        ip(&["link", "del", &self.host_if]);
        ip(&["netns", "del", &self.name]);
    }
}

/// A supervisor cut off from the database behaves as a paused one: its
/// leases expire and are taken back, and when the network returns it
/// writes nothing.
#[test]
fn network_cut_is_a_pause() {
    let Some(net) = Netns::new() else {
        return;
    };
    let Some(mut cluster) = PgCluster::start(Some(&net.host_ip)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mocks = dir.path().join("mocks");
    for i in 0..24 {
        mockdoc(
            &mocks,
            &format!("m{i:02}"),
            &format!("sleep_ms 400\npages {MOCK_PAGES}\n"),
        );
    }
    let mut env = Env::new();
    env.db = PathBuf::from(cluster.create_db("cut"));
    let mut db = cluster.client("cut");
    let args: Vec<OsString> = [
        "index",
        mocks.to_str().unwrap(),
        "--workers",
        "2",
        "--lease",
        LEASE,
        "--allow-mock-docs",
        "--quiet",
    ]
    .iter()
    .map(OsString::from)
    .collect();

    // One supervisor inside the namespace, reaching the server over the
    // veth pair; one beside the server.
    let mut inside = std::process::Command::new("ip")
        .args(["netns", "exec", &net.name, BIN])
        .arg("--db")
        .arg(cluster.url_at(&net.host_ip, "cut"))
        .args(&args)
        .env("DOCMILL_TEST_TAG", &env.tag)
        .env_remove("DOCMILL_DB")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut inside_err = inside.stderr.take().unwrap();
    let inside_log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = inside_err.read_to_string(&mut s);
        s
    });
    let (mut beside, beside_log) = spawn(&env, &args);

    let mut lost: BTreeSet<JobKey> = BTreeSet::new();
    let cut = wait_until(Duration::from_secs(60), || {
        if !session_idle(&mut db, inside.id()) || leases_of(&mut db, inside.id()).is_empty() {
            return false;
        }
        net.cut(true);
        lost = leases_of(&mut db, inside.id());
        if !lost.is_empty() {
            return true;
        }
        net.cut(false);
        false
    });
    assert!(cut, "the supervisor inside never held a lease");

    let all_done = wait_until(Duration::from_secs(120), || {
        count(
            &mut db,
            "SELECT count(*) FROM documents WHERE status = 'done'",
        ) == 24
    });
    assert!(all_done, "not every document was done: {:?}", env.status());
    let run = run_of(&mut db, inside.id());
    let attempts = |db: &mut postgres::Client| attempts_in_run(db, run);
    let before = attempts(&mut db);
    let export_before = env.export();

    net.cut(false);
    let code = wait_exit(&mut inside, Duration::from_secs(120));
    let log = inside_log.join().unwrap();
    assert_eq!(code, 0, "supervisor inside: {log}");
    assert!(log.contains("lease lost"), "{log}");
    assert_eq!(wait_exit(&mut beside, Duration::from_secs(60)), 0);
    let beside_said = beside_log.join().unwrap_or_default();
    assert_eq!(attempts(&mut db), before, "a lost lease wrote");
    assert_eq!(env.export(), export_before, "a lost lease wrote pages");
    assert_interrupted(&mut db, &lost, &beside_said);
    for r in db
        .query(
            "SELECT page_count, (SELECT count(*) FROM pages p WHERE p.doc_id = d.id)
             FROM documents d",
            &[],
        )
        .unwrap()
    {
        assert_eq!(r.get::<_, Option<i64>>(0), Some(MOCK_PAGES));
        assert_eq!(r.get::<_, i64>(1), MOCK_PAGES);
    }
    env.assert_no_leftovers();
    drop(db);
    cluster.stop();
}

/// The run a supervisor process recorded, found by its pid.
fn run_of(db: &mut postgres::Client, pid: u32) -> i64 {
    db.query_one(
        "SELECT id FROM runs WHERE owner LIKE '%:' || $1",
        &[&pid.to_string()],
    )
    .unwrap()
    .get(0)
}

/// Attempts a run has written.
fn attempts_in_run(db: &mut postgres::Client, run: i64) -> i64 {
    db.query_one("SELECT count(*) FROM attempts WHERE run_id = $1", &[&run])
        .unwrap()
        .get(0)
}
