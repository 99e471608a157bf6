//! Several supervisors, one PostgreSQL database: real `docmill index`
//! processes with real workers over mock documents and real corpus PDFs.
//! One supervisor is killed, another stopped past its lease; the survivors
//! finish everything, the lost leases count as interrupted once each, the
//! stopped one writes nothing when it wakes, and the result equals a
//! single-machine SQLite run.

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
        "4s",
        "--allow-mock-docs",
        "--quiet",
        "--timeout",
        "60s",
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

/// Documents whose lease supervisor `pid` holds now (none before the first
/// supervisor has made the schema).
fn leases_of(db: &mut postgres::Client, pid: u32) -> BTreeSet<i64> {
    db.query(
        "SELECT id FROM documents WHERE status = 'running' AND lease_owner LIKE '%:' || $1",
        &[&pid.to_string()],
    )
    .map(|rows| rows.iter().map(|r| r.get(0)).collect())
    .unwrap_or_default()
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
    let mut stopped = BTreeSet::new();
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
    let b_run: i64 = db
        .query_one(
            "SELECT id FROM runs WHERE owner LIKE '%:' || $1",
            &[&b.id().to_string()],
        )
        .unwrap()
        .get(0);
    let attempts_of_b = |db: &mut postgres::Client| -> i64 {
        db.query_one("SELECT count(*) FROM attempts WHERE run_id = $1", &[&b_run])
            .unwrap()
            .get(0)
    };
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
            "SELECT id, display_path, status, page_count, interrupted,
                    (SELECT count(*) FROM pages p WHERE p.doc_id = d.id)
             FROM documents d",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), lib.pages.len(), "each document inserted once");
    for r in &rows {
        let id: i64 = r.get(0);
        let path: String = r.get(1);
        assert_eq!(r.get::<_, String>(2), "done", "{path}");
        let want = lib.pages[&path];
        assert_eq!(r.get::<_, Option<i64>>(3), Some(want), "{path}");
        assert_eq!(r.get::<_, i64>(5), want, "{path}: pages stored");
        let lost = i64::from(killed.contains(&id) || stopped.contains(&id));
        assert_eq!(r.get::<_, i64>(4), lost, "{path}: interrupted attempts");
    }
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
