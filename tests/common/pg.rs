//! A private PostgreSQL cluster per test: `initdb` into a temporary folder,
//! `pg_ctl start` on a free loopback port (as the `postgres` user when the
//! tests run as root, since PostgreSQL refuses root), stopped and checked
//! gone on drop. Never a system-wide server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{cmdline, tagged_processes, wait_until};

pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// Marks every server process, so the test can check none survives.
    tag: String,
    running: bool,
}

/// The folder holding `initdb` and `pg_ctl`: on PATH, else the newest
/// Debian-packaged version.
fn bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    found.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user.
fn postgres_user() -> Option<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl PgCluster {
    /// Starts a cluster listening on loopback (and on `extra_listen`, an
    /// address the test made, if given). None, with a message, when
    /// PostgreSQL is not installed here: `scripts/test` installs it.
    pub fn start(extra_listen: Option<&str>) -> Option<PgCluster> {
        PgCluster::start_with(extra_listen, false)
    }

    /// As `start`; `durable` keeps the server's default fsync settings (for
    /// benchmarks), where tests turn them off for speed.
    pub fn start_with(extra_listen: Option<&str>, durable: bool) -> Option<PgCluster> {
        let Some(bin) = bin_dir() else {
            eprintln!(
                "SKIPPED: PostgreSQL is not installed (initdb/pg_ctl not found); scripts/test installs it"
            );
            return None;
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::tempdir().unwrap();
        let tag = format!(
            "pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        if is_root() {
            let (uid, gid) = postgres_user().expect("running as root needs a `postgres` user");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut cluster = PgCluster {
            dir,
            bin,
            port: 0,
            tag,
            running: false,
        };
        let init = cluster
            .command("initdb")
            .args(["--no-sync", "-A", "trust", "-U", "docmill", "-E", "UTF8"])
            .arg("--locale=C")
            .arg("-D")
            .arg(cluster.data())
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let mut listen = "127.0.0.1".to_string();
        if let Some(extra) = extra_listen {
            listen.push(',');
            listen.push_str(extra);
            // initdb trusts loopback only; the test's own small network too.
            let hba = cluster.data().join("pg_hba.conf");
            let mut conf = std::fs::read_to_string(&hba).unwrap();
            conf.push_str(&format!("host all all {extra}/24 trust\n"));
            std::fs::write(&hba, conf).unwrap();
        }
        // A port picked free may be taken by the time the server binds it.
        for _ in 0..5 {
            cluster.port = free_port();
            let mut options = format!(
                "-p {} -k {} -c listen_addresses={listen} -c max_connections=50",
                cluster.port,
                cluster.dir.path().display()
            );
            if !durable {
                options.push_str(" -c fsync=off -c full_page_writes=off");
            }
            let log = cluster.dir.path().join("server.log");
            let st = cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(cluster.data())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .output()
                .expect("run pg_ctl");
            if st.status.success() {
                cluster.running = true;
                return Some(cluster);
            }
            eprintln!(
                "pg_ctl start failed, trying another port: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("cannot start a private PostgreSQL cluster");
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.env("DOCMILL_TEST_TAG", &self.tag)
            .current_dir(self.dir.path());
        c
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        self.url_at("127.0.0.1", db)
    }

    pub fn url_at(&self, host: &str, db: &str) -> String {
        format!("postgres://docmill@{host}:{}/{db}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        let mut admin = self.client("postgres");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        self.url(name)
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls).unwrap()
    }

    /// Stops the server and checks that no process of it is left.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let gone = wait_until(Duration::from_secs(20), || {
            tagged_processes(&self.tag).is_empty()
        });
        if !gone {
            let left: Vec<String> = tagged_processes(&self.tag)
                .iter()
                .map(|p| format!("{p}: {}", cmdline(*p)))
                .collect();
            for p in tagged_processes(&self.tag) {
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
            panic!("PostgreSQL processes were left behind: {left:?}");
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Do not panic again while unwinding; just make sure it stops.
            if self.running {
                self.running = false;
                let _ = self
                    .command("pg_ctl")
                    .arg("-D")
                    .arg(self.data())
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
                for p in tagged_processes(&self.tag) {
                    unsafe { libc::kill(p as i32, libc::SIGKILL) };
                }
            }
        } else {
            self.stop();
        }
    }
}
