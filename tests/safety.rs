//! Safety of the commands on an index, each checked by running the real
//! binary: the reading commands never change a file and refuse another
//! program's database, an index in a read-only place is read by an
//! unprivileged user, unreadable and damaged indexes say so; `forget` and
//! left-out files remove documents; `runs` lists the runs and `report`
//! picks the last one that did work; `--version` names the schema.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::pg::PgCluster;
use common::{corpus, Env, Run, BIN};

/// A small real library: two PDFs and an EPUB from the sample corpus,
/// copied into the test's folder (`a.pdf`, `sub/b.pdf`, `sub/c.epub`).
fn library(env: &Env) -> PathBuf {
    let lib = env.path("lib");
    std::fs::create_dir_all(lib.join("sub")).unwrap();
    for (from, to) in [
        ("pdf/pypdf-001-minimal-document.pdf", "a.pdf"),
        ("pdf/pypdf-002-libreoffice-writer.pdf", "sub/b.pdf"),
        ("epub/epubcheck-epub2-minimal.epub", "sub/c.epub"),
    ] {
        std::fs::copy(corpus().join(from), lib.join(to)).unwrap();
    }
    lib
}

/// Runs docmill on the database `db` (a file or a URL) as the test's
/// process, tagged for the leftover check.
fn run_on(env: &Env, db: impl AsRef<OsStr>, args: &[&dyn AsRef<OsStr>]) -> Run {
    let mut c = Command::new(BIN);
    c.arg("--db").arg(db.as_ref());
    for a in args {
        c.arg(a.as_ref());
    }
    output(env, c)
}

fn output(env: &Env, mut c: Command) -> Run {
    c.env("DOCMILL_TEST_TAG", &env.tag)
        .env_remove("DOCMILL_DB")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    let args = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Run {
        args,
        out: c.output().expect("run docmill"),
    }
}

/// Every file in `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<OsString, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Every reading command, and `forget` and `index`, on `db`: each must
/// refuse with exit 2 and a line containing `says`.
fn every_command_refuses(env: &Env, db: &Path, lib: &Path, says: &str) {
    let report = env.path("report.html");
    let cases: [&[&dyn AsRef<OsStr>]; 8] = [
        &[&"status"],
        &[&"status", &"--json"],
        &[&"search", &"lorem"],
        &[&"export"],
        &[&"report", &"-o", &report],
        &[&"runs"],
        &[&"forget", &lib],
        &[&"index", &lib, &"-q"],
    ];
    for args in cases {
        let r = run_on(env, db, args);
        r.assert_code(2);
        assert!(r.stderr().contains(says), "{}", r.dump());
        assert_eq!(r.stderr().trim_end().lines().count(), 1, "{}", r.dump());
        assert!(r.stdout().is_empty(), "{}", r.dump());
    }
    assert!(!report.exists());
}

#[test]
fn another_programs_database_is_refused_and_left_byte_identical() {
    let env = Env::new();
    let lib = library(&env);
    // One database in each journal mode, and a file that is no database.
    for (name, wal) in [("rollback", false), ("wal", true)] {
        let dir = env.path(name);
        std::fs::create_dir(&dir).unwrap();
        let db = dir.join("foreign.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        if wal {
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
             INSERT INTO notes (text) VALUES ('mine, not docmill''s');",
        )
        .unwrap();
        drop(conn);
        let before = snapshot(&dir);
        assert_eq!(before.len(), 1, "{before:?}");
        every_command_refuses(&env, &db, &lib, "is not a docmill index");
        // Not a byte changed, and nothing beside it (-wal, -shm, .lock).
        assert!(snapshot(&dir) == before, "{name}: the file was touched");
    }
    let dir = env.path("text");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("notes.db");
    std::fs::write(&db, "my notes, not a database\n".repeat(40)).unwrap();
    let before = snapshot(&dir);
    every_command_refuses(&env, &db, &lib, "is not a SQLite database");
    assert!(snapshot(&dir) == before, "the text file was touched");
    env.assert_no_leftovers();
}

#[test]
fn an_index_is_marked_and_an_older_one_recognised_by_its_tables() {
    let env = Env::new();
    let lib = library(&env);
    run_on(&env, &env.db, &[&"index", &lib, &"-q"]).assert_code(0);
    let app_id = |db: &Path| -> i32 {
        rusqlite::Connection::open(db)
            .unwrap()
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(app_id(&env.db), docmill::store::APPLICATION_ID);
    // An index made before the mark: application id 0, docmill's tables.
    rusqlite::Connection::open(&env.db)
        .unwrap()
        .pragma_update(None, "application_id", 0)
        .unwrap();
    let before = std::fs::read(&env.db).unwrap();
    let r = run_on(&env, &env.db, &[&"status", &"--json"]);
    r.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(status["documents"]["done"], 3, "{}", r.dump());
    run_on(&env, &env.db, &[&"search", &"lorem"]).assert_code(0);
    assert!(
        std::fs::read(&env.db).unwrap() == before,
        "a reading command changed the index"
    );
    // The next run marks it.
    run_on(&env, &env.db, &[&"index", &lib, &"-q"]).assert_code(0);
    assert_eq!(app_id(&env.db), docmill::store::APPLICATION_ID);
    env.assert_no_leftovers();
}

/// How to run docmill as an unprivileged user, when the tests run as
/// root: `setpriv` or `runuser` to `nobody`. Without root, the test's own
/// user is already subject to the permissions. None when neither tool is
/// there, or `nobody` cannot run the binary.
fn unprivileged() -> Option<Vec<OsString>> {
    if unsafe { libc::geteuid() } != 0 {
        return Some(Vec::new());
    }
    let name = std::ffi::CString::new("nobody").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        eprintln!("SKIPPED: running as root, and there is no `nobody` user to drop to");
        return None;
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
    };
    let prefix: Vec<OsString> = if on_path("setpriv") {
        [
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={gid}"),
            "--clear-groups".to_string(),
        ]
        .map(OsString::from)
        .to_vec()
    } else if on_path("runuser") {
        ["runuser", "-u", "nobody", "--"]
            .map(OsString::from)
            .to_vec()
    } else {
        eprintln!("SKIPPED: running as root, and neither setpriv nor runuser is installed to drop privileges");
        return None;
    };
    let mut probe = Command::new(&prefix[0]);
    probe.args(&prefix[1..]).arg(BIN).arg("--version");
    if !probe.output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: the unprivileged user cannot run {BIN} (a folder above it is closed)");
        return None;
    }
    Some(prefix)
}

/// docmill as the unprivileged user, on the database `db`.
fn run_as(env: &Env, prefix: &[OsString], db: &Path, args: &[&dyn AsRef<OsStr>]) -> Run {
    let mut c = match prefix.split_first() {
        Some((tool, rest)) => {
            let mut c = Command::new(tool);
            c.args(rest).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    c.arg("--db").arg(db);
    for a in args {
        c.arg(a.as_ref());
    }
    output(env, c)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_index_in_a_read_only_place_is_read_by_an_unprivileged_user() {
    let Some(prefix) = unprivileged() else {
        return;
    };
    let env = Env::new();
    let lib = library(&env);
    let place = env.path("shelf");
    std::fs::create_dir(&place).unwrap();
    let db = place.join("index.db");
    run_on(&env, &db, &[&"index", &lib, &"-q"]).assert_code(0);
    let expected_export = run_on(&env, &db, &[&"export"]).out.stdout;
    // Three cases: nobody holds the index and nothing is beside it (SQLite
    // could not make its -shm file here); an earlier reader left the -wal
    // and -shm files; a writer holds it open.
    let wal = place.join("index.db-wal");
    let shm = place.join("index.db-shm");
    for case in ["clean", "left", "held"] {
        if case == "clean" {
            // Left by the export above, empty, and nobody holds them.
            for f in [&wal, &shm] {
                if f.exists() {
                    std::fs::remove_file(f).unwrap();
                }
            }
        }
        if case == "left" {
            run_on(&env, &db, &[&"status"]).assert_code(0);
        }
        let holder = (case == "held").then(|| {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.query_row("SELECT count(*) FROM documents", [], |r| r.get::<_, i64>(0))
                .unwrap();
            conn
        });
        assert_eq!(shm.exists(), case != "clean", "{case}");
        chmod(env.dir.path(), 0o755);
        chmod(&place, 0o555);
        chmod(&db, 0o444);
        let before = snapshot(&place);
        let r = run_as(&env, &prefix, &db, &[&"status", &"--json"]);
        r.assert_code(0);
        let status: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
        assert_eq!(status["documents"]["done"], 3, "{}", r.dump());
        let r = run_as(&env, &prefix, &db, &[&"search", &"ishmael"]);
        r.assert_code(0);
        assert!(r.stdout().contains("c.epub"), "{}", r.dump());
        let r = run_as(&env, &prefix, &db, &[&"export"]);
        r.assert_code(0);
        assert!(r.out.stdout == expected_export, "{}", r.dump());
        run_as(&env, &prefix, &db, &[&"runs"]).assert_code(0);
        assert!(
            snapshot(&place) == before,
            "a read changed the folder ({case})"
        );
        chmod(&place, 0o755);
        chmod(&db, 0o644);
        drop(holder);
    }
    env.assert_no_leftovers();
}

#[test]
fn an_unreadable_folder_says_permission_denied() {
    let Some(prefix) = unprivileged() else {
        return;
    };
    let env = Env::new();
    let lib = library(&env);
    let closed = env.path("closed");
    std::fs::create_dir(&closed).unwrap();
    let db = closed.join("index.db");
    run_on(&env, &db, &[&"index", &lib, &"-q"]).assert_code(0);
    chmod(env.dir.path(), 0o755);
    chmod(&closed, 0o700);
    if prefix.is_empty() {
        // Not root: the folder must be closed to this very user.
        chmod(&closed, 0o000);
    }
    for args in [
        &[&"status" as &dyn AsRef<OsStr>][..],
        &[&"search", &"lorem"],
        &[&"export"],
    ] {
        let r = run_as(&env, &prefix, &db, args);
        r.assert_code(2);
        assert!(r.stderr().contains("permission denied"), "{}", r.dump());
        assert!(!r.stderr().contains("no index"), "{}", r.dump());
    }
    chmod(&closed, 0o755);
    env.assert_no_leftovers();
}

#[test]
fn a_damaged_index_names_its_path_and_what_to_do() {
    let env = Env::new();
    let lib = library(&env);
    run_on(&env, &env.db, &[&"index", &lib, &"-q"]).assert_code(0);
    let good = std::fs::read(&env.db).unwrap();
    // Garbage over the first page's tables, after an intact header; and a
    // file that is garbage from its first byte.
    let mut inside = good.clone();
    for (i, b) in inside[100..4096].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    let whole: Vec<u8> = (0..good.len()).map(|i| (i % 251) as u8).collect();
    for (name, bytes) in [("inside.db", inside), ("whole.db", whole)] {
        let copy = env.path(name);
        std::fs::write(&copy, &bytes).unwrap();
        for args in [
            &[&"status" as &dyn AsRef<OsStr>][..],
            &[&"search", &"lorem"],
            &[&"index", &lib, &"-q"],
        ] {
            let r = run_on(&env, &copy, args);
            r.assert_code(2);
            let err = r.stderr();
            assert_eq!(err.trim_end().lines().count(), 1, "{}", r.dump());
            assert!(err.contains(&copy.display().to_string()), "{}", r.dump());
            assert!(
                err.contains("move it aside and run `docmill index`"),
                "{}",
                r.dump()
            );
        }
        assert!(std::fs::read(&copy).unwrap() == bytes, "{name} was changed");
    }
    env.assert_no_leftovers();
}

/// The paths of the documents `export` shows, relative to `lib`.
fn exported(env: &Env, db: impl AsRef<OsStr>, lib: &Path) -> Vec<String> {
    let r = run_on(env, db, &[&"export"]);
    r.assert_code(0);
    let mut paths: Vec<String> = r
        .stdout()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p = PathBuf::from(v["path"].as_str().unwrap());
            p.strip_prefix(lib).unwrap().to_string_lossy().into_owned()
        })
        .collect();
    paths.dedup();
    paths
}

/// Pages that match `query` (search exits 1 when there are none).
fn search_hits(env: &Env, db: impl AsRef<OsStr>, query: &str) -> u64 {
    let r = run_on(env, db, &[&"search", &query, &"--json"]);
    let found: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    let pages = found["total_pages"].as_u64().unwrap();
    r.assert_code(if pages == 0 { 1 } else { 0 });
    pages
}

/// `forget` on one store: a file, a folder, a deleted file, nothing.
fn forget_case(env: &Env, db: &OsStr) {
    let lib = library(env).canonicalize().unwrap();
    run_on(env, db, &[&"index", &lib, &"-q"]).assert_code(0);
    assert_eq!(
        exported(env, db, &lib),
        ["a.pdf", "sub/b.pdf", "sub/c.epub"]
    );
    assert_eq!(search_hits(env, db, "ishmael"), 1);

    let r = run_on(env, db, &[&"forget", &lib.join("sub/c.epub")]);
    r.assert_code(0);
    assert_eq!(r.stdout().trim(), "forgot 1 document", "{}", r.dump());
    assert_eq!(exported(env, db, &lib), ["a.pdf", "sub/b.pdf"]);
    // Gone from the full-text index too.
    assert_eq!(search_hits(env, db, "ishmael"), 0);

    // A folder, named by a relative path, stands for everything under it;
    // `sub` must not take `sub2` with it.
    std::fs::create_dir(lib.join("sub2")).unwrap();
    std::fs::copy(lib.join("a.pdf"), lib.join("sub2/d.pdf")).unwrap();
    run_on(env, db, &[&"index", &lib, &"-q"]).assert_code(0);
    assert_eq!(
        exported(env, db, &lib),
        ["a.pdf", "sub/b.pdf", "sub/c.epub", "sub2/d.pdf"]
    );
    let mut c = Command::new(BIN);
    c.current_dir(&lib)
        .arg("--db")
        .arg(db)
        .args(["forget", "sub"]);
    let r = output(env, c);
    r.assert_code(0);
    assert_eq!(r.stdout().trim(), "forgot 2 documents", "{}", r.dump());
    assert_eq!(exported(env, db, &lib), ["a.pdf", "sub2/d.pdf"]);

    // A file deleted from the disk is forgotten by its old path.
    std::fs::remove_file(lib.join("sub2/d.pdf")).unwrap();
    run_on(env, db, &[&"forget", &lib.join("sub2/d.pdf")]).assert_code(0);
    assert_eq!(exported(env, db, &lib), ["a.pdf"]);

    // Nothing there: exit 1, and the index as it was.
    let r = run_on(
        env,
        db,
        &[&"forget", &lib.join("sub"), &lib.join("nowhere.pdf")],
    );
    r.assert_code(1);
    assert!(r.stderr().contains("nothing in the index"), "{}", r.dump());
    assert_eq!(exported(env, db, &lib), ["a.pdf"]);
    let status = run_on(env, db, &[&"status", &"--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status["documents"]["done"], 1);
}

#[test]
fn forget_removes_documents_from_the_index() {
    let env = Env::new();
    forget_case(&env, env.db.as_os_str());
    env.assert_no_leftovers();
}

#[test]
fn forget_removes_documents_from_the_shared_index() {
    let Some(cluster) = PgCluster::start(None) else {
        return;
    };
    let env = Env::new();
    forget_case(&env, OsStr::new(&cluster.create_db("forget")));
    env.assert_no_leftovers();
}

/// Files left out by a later run leave the index as deleted ones do.
fn left_out_case(env: &Env, db: &OsStr) {
    let lib = library(env).canonicalize().unwrap();
    run_on(env, db, &[&"index", &lib, &"-q"]).assert_code(0);
    assert_eq!(
        exported(env, db, &lib),
        ["a.pdf", "sub/b.pdf", "sub/c.epub"]
    );
    std::fs::write(lib.join(".docmillignore"), "a.pdf\n").unwrap();
    let r = run_on(
        env,
        db,
        &[&"index", &lib, &"--exclude", &"*.epub", &"--json"],
    );
    r.assert_code(0);
    let summary: serde_json::Value =
        serde_json::from_str(r.stdout().lines().last().unwrap()).unwrap();
    assert_eq!(summary["discovered"]["removed"], 2, "{}", r.dump());
    assert_eq!(exported(env, db, &lib), ["sub/b.pdf"]);
    assert_eq!(search_hits(env, db, "ishmael"), 0);
    let status = run_on(env, db, &[&"status", &"--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status["documents"]["done"], 1, "{}", status);
    // A whole folder left out.
    run_on(env, db, &[&"index", &lib, &"--exclude", &"sub/", &"-q"]).assert_code(0);
    assert!(exported(env, db, &lib).is_empty());
    // Taken back in: indexed again.
    std::fs::remove_file(lib.join(".docmillignore")).unwrap();
    run_on(env, db, &[&"index", &lib, &"-q"]).assert_code(0);
    assert_eq!(
        exported(env, db, &lib),
        ["a.pdf", "sub/b.pdf", "sub/c.epub"]
    );
}

#[test]
fn files_left_out_later_leave_the_index() {
    let env = Env::new();
    left_out_case(&env, env.db.as_os_str());
    env.assert_no_leftovers();
}

#[test]
fn files_left_out_later_leave_the_shared_index() {
    let Some(cluster) = PgCluster::start(None) else {
        return;
    };
    let env = Env::new();
    left_out_case(&env, OsStr::new(&cluster.create_db("left_out")));
    env.assert_no_leftovers();
}

/// Two runs, the second with nothing to do: `runs` lists both, oldest
/// first.
fn runs_case(env: &Env, db: &OsStr) {
    let lib = library(env).canonicalize().unwrap();
    run_on(env, db, &[&"index", &lib, &"-q"]).assert_code(0);
    run_on(env, db, &[&"index", &lib, &"-q"]).assert_code(0);
    let r = run_on(env, db, &[&"runs", &"--json"]);
    r.assert_code(0);
    let runs: Vec<serde_json::Value> = r
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 2, "{}", r.dump());
    assert!(runs[0]["id"].as_i64() < runs[1]["id"].as_i64());
    assert_eq!(runs[0]["done"], 3);
    assert_eq!(runs[0]["pages"], 3);
    assert_eq!(runs[1]["done"], 0);
    for run in &runs {
        assert_eq!(run["exit_code"], 0);
        assert_eq!(run["failed"], 0);
        assert_eq!(run["roots"][0], lib.to_str().unwrap());
        assert!(run["wall_s"].as_f64().is_some());
    }
    let r = run_on(env, db, &[&"runs"]);
    r.assert_code(0);
    let lines: Vec<String> = r.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{}", r.dump());
    assert!(lines[0].contains("STARTED") && lines[0].contains("EXIT"));
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    // id, date, time, wall, done, failed, pages, exit, root
    assert_eq!(first[0], runs[0]["id"].to_string());
    assert_eq!(&first[4..8], ["3", "0", "3", "0"], "{}", r.dump());
    assert_eq!(first[8], lib.to_str().unwrap());
}

#[test]
fn runs_are_listed_and_the_report_shows_the_last_that_did_work() {
    let env = Env::new();
    runs_case(&env, env.db.as_os_str());
    let out = env.path("run.html");
    let r = run_on(&env, &env.db, &[&"report", &"-o", &out]);
    r.assert_code(0);
    assert!(r.stderr().contains("report on run 1 "), "{}", r.dump());
    env.assert_no_leftovers();
}

#[test]
fn runs_are_listed_on_the_shared_index() {
    let Some(cluster) = PgCluster::start(None) else {
        return;
    };
    let env = Env::new();
    runs_case(&env, OsStr::new(&cluster.create_db("runs")));
    env.assert_no_leftovers();
}

#[test]
fn reading_an_empty_shared_database_creates_nothing() {
    let Some(cluster) = PgCluster::start(None) else {
        return;
    };
    let env = Env::new();
    let url = cluster.create_db("empty");
    for args in [
        &[&"status" as &dyn AsRef<OsStr>][..],
        &[&"search", &"x"],
        &[&"export"],
        &[&"runs"],
        &[&"forget", &"/x"],
    ] {
        let r = run_on(&env, &url, args);
        r.assert_code(2);
        assert!(r.stderr().contains("no docmill index"), "{}", r.dump());
    }
    let tables: i64 = cluster
        .client("empty")
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    env.assert_no_leftovers();
}

#[test]
fn the_version_names_the_catalog_schema() {
    let env = Env::new();
    let r = output(&env, {
        let mut c = Command::new(BIN);
        c.arg("--version");
        c
    });
    r.assert_code(0);
    let line = format!(
        "catalog schema: {} (SQLite), {} (PostgreSQL)",
        docmill::store::SQLITE_SCHEMA_VERSION,
        docmill::store::PG_SCHEMA_VERSION
    );
    assert!(r.stdout().contains(&line), "{}", r.dump());
}

/// `forget` under a running `docmill index` on a SQLite index is refused
/// (exit 2, the same line `index` gives), so that it cannot race the run's
/// commits; once the run has ended it forgets as usual.
#[test]
fn forget_is_refused_while_an_index_runs() {
    let env = Env::new();
    let lib = env.path("lib");
    common::mockdoc(&lib, "stuck", "hang\n");
    let mut index = env.spawn(&[
        &"index",
        &lib,
        &"--allow-mock-docs",
        &"--page-timeout",
        &"120s",
        &"-q",
    ]);
    let mut last = String::new();
    let refused = common::wait_until(std::time::Duration::from_secs(60), || {
        let r = env.run(&[&"forget", &lib]);
        last = r.dump();
        r.code() == 2 && r.stderr().contains("another `docmill index` is using")
    });
    common::send_signal(index.id(), libc::SIGTERM);
    common::wait_child(&mut index, std::time::Duration::from_secs(60));
    let mut said = String::new();
    std::io::Read::read_to_string(index.stderr.as_mut().unwrap(), &mut said).unwrap();
    assert!(
        refused,
        "forget was not refused during the run:\n{last}\nthe run said:\n{said}"
    );
    env.assert_no_leftovers();

    let r = env.run(&[&"forget", &lib]);
    r.assert_code(0);
    assert_eq!(r.stdout().trim(), "forgot 1 document", "{}", r.dump());
}
