//! Starting a worker: the `docmill` binary again, with the hidden worker
//! subcommand and the name of a one-shot IPC server it connects back to. The
//! limits (address space, descriptors, no core dumps) and the parent-death
//! signal are set between fork and exec, so they hold before the worker
//! touches a document.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use docmill_protocol::{FromWorker, ToWorker, PROTOCOL_VERSION, WORKER_SUBCOMMAND};
use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use thiserror::Error;

/// How long a new worker has to connect back.
const HANDSHAKE: Duration = Duration::from_secs(15);
/// Lines of a worker's stderr kept for failure reasons.
const STDERR_LINES: usize = 12;

#[derive(Clone, Debug)]
pub struct SpawnSpec {
    pub exe: PathBuf,
    /// Address-space limit in bytes (0: none).
    pub mem_limit: u64,
    pub fd_limit: u64,
    /// The workers' TMPDIR: the run's scratch folder.
    pub tmpdir: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("cannot create the IPC server")]
    Server(#[source] io::Error),
    #[error("cannot start the worker process {exe}")]
    Exec {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the worker exited during its handshake ({0})")]
    DiedEarly(String),
    #[error("the worker did not connect back within {0:?}")]
    Timeout(Duration),
    #[error("the worker speaks protocol {found}, this supervisor {known}: a stale binary?")]
    Protocol { found: u32, known: u32 },
    #[error("the worker's first message was not a hello")]
    NoHello,
}

/// The last lines a worker wrote to stderr, collected on their own thread
/// so a chatty worker can never block on a full pipe. A line that says an
/// allocation failed is kept however much follows it.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<(Mutex<Tail>, Condvar)>);

#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    out_of_memory: Option<String>,
    /// The pipe reached its end: every line the worker wrote is here.
    ended: bool,
}

impl StderrTail {
    /// The lines of a worker that has exited, once its reader has seen the
    /// end of the pipe (at most `wait`): the reader thread may not have run
    /// since the worker's last words, and those say why it died ("memory
    /// allocation of N bytes failed" before an abort).
    pub fn final_lines(&self, wait: Duration) -> Vec<String> {
        let (lock, ended) = &*self.0;
        let Ok(tail) = lock.lock() else {
            return Vec::new();
        };
        let tail = match ended.wait_timeout_while(tail, wait, |t| !t.ended) {
            Ok((tail, _)) => tail,
            Err(poisoned) => poisoned.into_inner().0,
        };
        tail.out_of_memory
            .iter()
            .chain(tail.lines.iter())
            .cloned()
            .collect()
    }

    fn follow(&self, pipe: impl io::Read + Send + 'static, pid: u32) {
        let shared = self.0.clone();
        let spawned = thread::Builder::new()
            .name(format!("stderr-{pid}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let (lock, ended) = &*shared;
                let mut reader = BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                            if line.is_empty() {
                                continue;
                            }
                            tracing::debug!(worker = pid, "{line}");
                            if let Ok(mut t) = lock.lock() {
                                if t.out_of_memory.is_none()
                                    && super::exit::says_out_of_memory(&line)
                                {
                                    t.out_of_memory = Some(line.clone());
                                }
                                if t.lines.len() == STDERR_LINES {
                                    t.lines.pop_front();
                                }
                                t.lines.push_back(line);
                            }
                        }
                    }
                }
                if let Ok(mut t) = lock.lock() {
                    t.ended = true;
                }
                ended.notify_all();
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot follow stderr of worker {pid}: {e}");
        }
    }
}

pub struct Worker {
    pub pid: u32,
    pub(super) child: Child,
    pub jobs: IpcSender<ToWorker>,
    pub stderr: StderrTail,
    pub mem_limit: u64,
}

/// Starts a worker and waits for its hello. Must be called from the thread
/// that lives as long as the supervisor: on Linux the parent-death signal
/// fires when the thread that forked the child ends.
pub fn spawn(spec: &SpawnSpec) -> Result<(Worker, IpcReceiver<FromWorker>), SpawnError> {
    let (server, name) = IpcOneShotServer::<FromWorker>::new().map_err(SpawnError::Server)?;
    let mut cmd = Command::new(&spec.exe);
    cmd.arg(WORKER_SUBCOMMAND)
        .arg(&name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Fewer malloc arenas: each one reserves address space, which the
        // worker's address-space limit counts.
        .env("MALLOC_ARENA_MAX", "2")
        // Panics are reported in one line by the worker's own hook; a
        // backtrace would only push the useful lines out of the tail.
        .env("RUST_BACKTRACE", "0")
        .process_group(0);
    if let Some(dir) = &spec.tmpdir {
        cmd.env("TMPDIR", dir);
    }
    let limits = Limits {
        mem: spec.mem_limit,
        fds: spec.fd_limit,
        parent: std::process::id(),
    };
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid, setrlimit, _exit).
    unsafe {
        cmd.pre_exec(move || limits.apply());
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Exec {
        exe: spec.exe.clone(),
        source,
    })?;
    let pid = child.id();
    let stderr = StderrTail::default();
    if let Some(pipe) = child.stderr.take() {
        stderr.follow(pipe, pid);
    }

    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("handshake".into())
        .spawn(move || {
            let _ = tx.send(server.accept());
        })
        .map_err(SpawnError::Server)?;
    let deadline = Instant::now() + HANDSHAKE;
    let accepted = loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => break Ok(result),
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err(SpawnError::NoHello),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let died = match child.try_wait() {
            Ok(Some(status)) => Some(SpawnError::DiedEarly(status.to_string())),
            Ok(None) if Instant::now() >= deadline => Some(SpawnError::Timeout(HANDSHAKE)),
            Ok(None) => None,
            Err(e) => Some(SpawnError::DiedEarly(e.to_string())),
        };
        if let Some(err) = died {
            release_acceptor(&name);
            let _ = child.kill();
            let _ = child.wait();
            break Err(err);
        }
    };
    let fail = |mut child: Child, e: SpawnError| {
        let _ = child.kill();
        let _ = child.wait();
        Err(e)
    };
    match accepted? {
        Ok((
            results,
            FromWorker::Hello {
                protocol,
                pid: _,
                jobs,
            },
        )) => {
            if protocol != PROTOCOL_VERSION {
                return fail(
                    child,
                    SpawnError::Protocol {
                        found: protocol,
                        known: PROTOCOL_VERSION,
                    },
                );
            }
            Ok((
                Worker {
                    pid,
                    child,
                    jobs,
                    stderr,
                    mem_limit: spec.mem_limit,
                },
                results,
            ))
        }
        _ => fail(child, SpawnError::NoHello),
    }
}

/// Ends the thread waiting in `accept` for a worker that will never
/// connect: the supervisor connects to its own server and sends an empty
/// message, which no worker sends and which `accept` cannot read as a
/// hello, so it returns with an error and its thread ends.
fn release_acceptor(name: &str) {
    if let Ok(s) = IpcSender::<()>::connect(name.to_string()) {
        let _ = s.send(());
    }
}

#[derive(Clone, Copy)]
struct Limits {
    mem: u64,
    fds: u64,
    #[cfg_attr(
        not(target_os = "linux"),
        expect(dead_code, reason = "only the Linux parent-death check reads it")
    )]
    parent: u32,
}

impl Limits {
    fn apply(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: prctl and getppid are async-signal-safe system calls.
            unsafe {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The supervisor may have died between fork and prctl.
                if libc::getppid() as u32 != self.parent {
                    libc::_exit(0);
                }
            }
        }
        if self.mem > 0 {
            let r = rlimit::setrlimit(rlimit::Resource::AS, self.mem, self.mem);
            // macOS does not enforce RLIMIT_AS (and may refuse it); the
            // supervisor's RSS watchdog is the guard there.
            if cfg!(target_os = "linux") {
                r?;
            }
        }
        rlimit::setrlimit(rlimit::Resource::NOFILE, self.fds, self.fds)?;
        rlimit::setrlimit(rlimit::Resource::CORE, 0, 0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_lines_hold_the_last_words_of_an_exited_process() {
        // Many lines, the telling one last, as an aborting allocator writes.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200 ]; do echo noise $i >&2; i=$((i+1)); done; \
                 echo 'memory allocation of 3145728000 bytes failed' >&2; exit 134",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let tail = StderrTail::default();
        tail.follow(child.stderr.take().unwrap(), child.id());
        assert_eq!(child.wait().unwrap().code(), Some(134));
        let lines = tail.final_lines(Duration::from_secs(10));
        assert_eq!(
            lines.first().map(String::as_str),
            Some("memory allocation of 3145728000 bytes failed"),
            "{lines:?}"
        );
        assert_eq!(lines.len(), STDERR_LINES + 1);
        assert_eq!(lines.last(), lines.first());
    }

    #[test]
    fn final_lines_give_up_on_a_pipe_held_open() {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        // A grandchild keeps the pipe open: the wait is bounded.
        let mut child = Command::new("sh")
            .args(["-c", "echo early >&2; sleep 30 & exit 0"])
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let group = Pid::from_raw(child.id() as i32);
        let tail = StderrTail::default();
        tail.follow(child.stderr.take().unwrap(), child.id());
        child.wait().unwrap();
        let started = Instant::now();
        let lines = tail.final_lines(Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(lines, vec!["early".to_string()]);
        // The grandchild goes; the pipe then ends, which shows it is gone.
        killpg(group, Signal::SIGKILL).unwrap();
        let (lock, _) = &*tail.0;
        tail.final_lines(Duration::from_secs(10));
        assert!(
            lock.lock().unwrap().ended,
            "the sleeping grandchild outlived the test"
        );
    }
}
