//! Running an external extraction tool (`mutool`, `pdftotext`, `pdfinfo`) as
//! a child of the worker. The child inherits the worker's limits and process
//! group, so a supervisor kill takes it too. Stdout is streamed and split into
//! pages at form feeds; stderr is drained on a thread and kept only in part
//! (a noisy tool cannot fill memory or block on a full pipe); a child that is
//! still running when the caller gives up is killed and reaped.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};

use docmill_protocol::{DocSummary, PageFlags, WorkerFailure, WorkerFailureKind};

use super::{deterministic, io_failure, PageSink};

/// Lines of stderr kept from the start and from the end.
const STDERR_LINES: usize = 40;
/// Longest stderr line kept, in bytes.
const STDERR_LINE_CAP: usize = 400;
/// Most stdout kept by [`capture`] (metadata commands print little).
const CAPTURE_CAP: usize = 1 << 20;
/// The page separator both tools print.
const FORM_FEED: u8 = 0x0c;

/// What a child said on stderr: its first and last lines, and how many were
/// dropped between them.
#[derive(Debug, Default)]
pub struct Stderr {
    pub head: Vec<String>,
    pub tail: Vec<String>,
    pub dropped: u64,
}

impl Stderr {
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.head.iter().chain(self.tail.iter()).map(String::as_str)
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.lines().any(|l| l.contains(needle))
    }
}

/// How a child ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stderr: Stderr,
}

impl Finished {
    /// "exit status 1" or "killed by signal 11", for reasons.
    pub fn describe_status(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "ended abnormally".to_string(),
        }
    }

    /// Whether the child's stderr says it ran out of memory (the worker's
    /// address-space limit applies to it as well).
    pub fn out_of_memory(&self) -> bool {
        self.stderr.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("out of memory")
                || l.contains("malloc failed")
                || l.contains("cannot allocate")
                || l.contains("bad_alloc")
        })
    }

    /// A failure for a child that ended badly: out of memory when it says
    /// so, otherwise deterministic with `what` and the reason picked from
    /// stderr.
    pub fn failure(&self, what: &str, reason: Option<String>) -> WorkerFailure {
        let status = self.describe_status();
        let reason = match reason {
            Some(r) => format!("{what} ({status}): {r}"),
            None => format!("{what} ({status})"),
        };
        let reason = crate::panic_note::one_line(&reason);
        if self.out_of_memory() {
            WorkerFailure {
                kind: WorkerFailureKind::OutOfMemory,
                reason,
            }
        } else {
            deterministic(reason)
        }
    }
}

/// A file argument a tool cannot mistake for an option.
pub fn file_arg(path: &Path) -> PathBuf {
    if path.as_os_str().as_bytes().starts_with(b"-") {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

/// Kills and reaps the child unless it was waited for: a panic or an early
/// return never leaves a tool running.
struct Guard {
    child: Option<Child>,
}

impl Guard {
    fn wait(&mut self) -> io::Result<ExitStatus> {
        match self.child.take() {
            Some(mut c) => c.wait(),
            None => Err(io::Error::other("child already reaped")),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(tool: &str, cmd: &mut Command) -> Result<(Guard, JoinHandle<Stderr>), WorkerFailure> {
    spawn_with(tool, cmd, Stdio::piped())
}

/// Makes a child die with the worker's calling thread (Linux's parent-death
/// signal). A worker killed by its supervisor takes its group along, but a
/// worker that dies because its supervisor was killed (its own parent-death
/// signal) would otherwise leave its tool running, still writing page files
/// into a scratch folder the next run is sweeping away. Elsewhere the
/// supervisor's group kill is what ends them.
fn die_with_the_worker(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only prctl and getppid, which are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The worker may have died between fork and prctl.
                if libc::getppid() == 1 {
                    return Err(io::Error::other("the worker is gone"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

fn spawn_with(
    tool: &str,
    cmd: &mut Command,
    stdout: Stdio,
) -> Result<(Guard, JoinHandle<Stderr>), WorkerFailure> {
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    die_with_the_worker(cmd);
    let mut child = cmd.spawn().map_err(|e| spawn_failure(tool, &e))?;
    let stderr = child.stderr.take();
    let guard = Guard { child: Some(child) };
    let Some(stderr) = stderr else {
        return Err(deterministic(format!("cannot run {tool}: no stderr pipe")));
    };
    let reader = thread::Builder::new()
        .name(format!("{tool}-stderr"))
        .spawn(move || drain_stderr(stderr))
        .map_err(|e| io_failure(&format!("cannot run {tool}"), &e))?;
    Ok((guard, reader))
}

fn spawn_failure(tool: &str, e: &io::Error) -> WorkerFailure {
    if e.kind() == io::ErrorKind::NotFound {
        deterministic(format!(
            "cannot run {tool}: not installed (not found on PATH)"
        ))
    } else {
        io_failure(&format!("cannot run {tool}"), e)
    }
}

fn drain_stderr(stderr: ChildStderr) -> Stderr {
    let mut out = Stderr::default();
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read at most a capped line; the rest of an overlong line is
        // skipped in the next rounds as its own pieces.
        match (&mut reader)
            .take(STDERR_LINE_CAP as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if text.is_empty() {
            continue;
        }
        if out.head.len() < STDERR_LINES {
            out.head.push(text);
        } else {
            if out.tail.len() == STDERR_LINES {
                out.tail.remove(0);
                out.dropped += 1;
            }
            out.tail.push(text);
        }
    }
    out
}

fn finish(
    tool: &str,
    mut guard: Guard,
    reader: JoinHandle<Stderr>,
) -> Result<Finished, WorkerFailure> {
    let status = guard
        .wait()
        .map_err(|e| io_failure(&format!("cannot wait for {tool}"), &e))?;
    let stderr = reader.join().unwrap_or_default();
    Ok(Finished { status, stderr })
}

/// Runs a short command and returns its stdout (capped) and how it ended.
pub fn capture(tool: &str, cmd: &mut Command) -> Result<(Vec<u8>, Finished), WorkerFailure> {
    let (mut guard, reader) = spawn(tool, cmd)?;
    let mut stdout = Vec::new();
    if let Some(out) = guard.child.as_mut().and_then(|c| c.stdout.take()) {
        let mut out = out.take(CAPTURE_CAP as u64);
        out.read_to_end(&mut stdout)
            .map_err(|e| io_failure(&format!("cannot read from {tool}"), &e))?;
    }
    let finished = finish(tool, guard, reader)?;
    Ok((stdout, finished))
}

/// Runs a command that prints pages separated by form feeds, and calls
/// `page` with each page's bytes (without the separator) as soon as the
/// separator arrives. Bytes after the last separator are returned with the
/// end: tools end every page with a form feed, so these are only a newline
/// or the output of a child that stopped mid-page.
pub fn stream_pages(
    tool: &str,
    cmd: &mut Command,
    mut page: impl FnMut(&[u8]),
) -> Result<(Finished, Vec<u8>), WorkerFailure> {
    let (mut guard, reader) = spawn(tool, cmd)?;
    let mut pending = Vec::new();
    if let Some(mut out) = guard.child.as_mut().and_then(|c| c.stdout.take()) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_failure(&format!("cannot read from {tool}"), &e)),
            };
            let mut chunk = &buf[..n];
            while let Some(at) = chunk.iter().position(|&b| b == FORM_FEED) {
                pending.extend_from_slice(&chunk[..at]);
                page(&pending);
                pending.clear();
                chunk = &chunk[at + 1..];
            }
            pending.extend_from_slice(chunk);
        }
    }
    let finished = finish(tool, guard, reader)?;
    Ok((finished, pending))
}

/// Page text from a tool's bytes: invalid UTF-8 becomes U+FFFD (which the
/// quality check counts), and the newlines around the page are dropped.
pub fn page_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_matches(|c| c == '\n' || c == '\r')
        .to_string()
}

/// Streams the pages `first..=last` of a tool's output into `sink`, in order,
/// numbered absolutely; only finished pages count. Output past `last` is ignored (a form feed inside a
/// page's own text would otherwise shift every later page). Returns how the
/// child ended and how many pages were sent; the caller decides what a short
/// count means.
pub fn pages_to_sink(
    tool: &str,
    cmd: &mut Command,
    first: u32,
    last: u32,
    sink: &mut dyn PageSink,
) -> Result<(Finished, u32), WorkerFailure> {
    let mut next = first;
    let (finished, _unfinished) = stream_pages(tool, cmd, |bytes| {
        if next <= last {
            sink.page(next, page_text(bytes), PageFlags::default());
            next += 1;
        }
    })?;
    // Bytes after the last form feed are a newline, or the start of a page
    // the child did not finish: that page counts as not sent.
    Ok((finished, next - first))
}

/// How often [`pages_from_files`] looks for the next page's file.
const PAGE_FILE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// The file a tool told `-o DIR/p%d.txt` writes page `page` to.
pub fn page_file(dir: &Path, page: u32) -> PathBuf {
    dir.join(format!("p{page}.txt"))
}

/// Runs a command that writes each page to its own file (see
/// [`page_file`]) and streams the pages `first..=last` into `sink` in order:
/// page N is read (and its file removed) once page N+1's file exists or the
/// child has ended. One file per page is the only unambiguous page boundary
/// for a tool whose text may itself hold form feeds. Returns how the child
/// ended and how many pages were sent.
pub fn pages_from_files(
    tool: &str,
    cmd: &mut Command,
    dir: &Path,
    first: u32,
    last: u32,
    sink: &mut dyn PageSink,
) -> Result<(Finished, u32), WorkerFailure> {
    let (mut guard, reader) = spawn_with(tool, cmd, Stdio::null())?;
    let mut next = first;
    loop {
        let ended = match guard.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | None => true,
            Some(Ok(None)) => false,
            Some(Err(e)) => return Err(io_failure(&format!("cannot wait for {tool}"), &e)),
        };
        while next <= last {
            let this = page_file(dir, next);
            if !(page_file(dir, next + 1).exists() || ended && this.exists()) {
                break;
            }
            let bytes = std::fs::read(&this)
                .map_err(|e| io_failure(&format!("cannot read {tool}'s page"), &e))?;
            // Every finished page ends with a form feed and a newline; a
            // file without them is a page the tool did not finish.
            let Some(text) = bytes.strip_suffix(b"\x0c\n") else {
                break;
            };
            sink.page(next, page_text(text), PageFlags::default());
            let _ = std::fs::remove_file(&this);
            next += 1;
        }
        if ended {
            break;
        }
        thread::sleep(PAGE_FILE_POLL);
    }
    let finished = finish(tool, guard, reader)?;
    Ok((finished, next - first))
}

/// What a PDF tool says about a document before extracting it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub page_count: u32,
    pub title: Option<String>,
    pub author: Option<String>,
}

impl Meta {
    pub fn into_summary(self, engine: &str) -> DocSummary {
        DocSummary {
            page_count: self.page_count,
            title: self.title,
            author: self.author,
            language: None,
            engine: engine.to_string(),
            content_hash: None,
        }
    }
}

/// How often [`run_bounded`] looks whether its child has ended.
const BOUNDED_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// How a child run by [`run_bounded`] ended.
#[derive(Debug)]
pub enum Bounded {
    /// It ended by itself: its stdout (capped at the caller's limit) and
    /// how it ended.
    Ended { stdout: Vec<u8>, finished: Finished },
    /// It ran past the time limit; its process group was killed and the
    /// child reaped.
    TimedOut,
}

/// Runs a child that reads `input` on stdin and answers on stdout, in a
/// process group of its own, for at most `limit`: past it the whole group
/// is killed (SIGKILL) and the child reaped, so nothing it started is left
/// behind. The child dies with the worker's calling thread too (Linux's
/// parent-death signal), since a group of its own is no longer reached by a
/// signal to the worker's group. Stdin is fed and stdout read on threads of
/// their own, so a child that stops reading or writes a lot can never block
/// the worker past the limit.
pub fn run_bounded(
    tool: &str,
    cmd: &mut Command,
    input: Vec<u8>,
    stdout_cap: usize,
    limit: std::time::Duration,
) -> Result<Bounded, WorkerFailure> {
    use std::io::Write;
    use std::os::unix::process::CommandExt;

    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    die_with_the_worker(cmd);
    let mut child = cmd.spawn().map_err(|e| spawn_failure(tool, &e))?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let guard = GroupGuard {
        child: Some(child),
        pgid: pid,
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
        return Err(deterministic(format!("cannot run {tool}: no pipes")));
    };
    let thread = |name: &str| thread::Builder::new().name(format!("{tool}-{name}"));
    let spawn_err = |e: io::Error| io_failure(&format!("cannot run {tool}"), &e);
    // A child that stops reading makes the write fail (EPIPE) once it has
    // ended or been killed: the thread ends either way.
    let writer = thread("stdin")
        .spawn(move || {
            let _ = stdin.write_all(&input);
        })
        .map_err(spawn_err)?;
    let reader = thread("stdout")
        .spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.take(stdout_cap as u64).read_to_end(&mut out);
            out
        })
        .map_err(spawn_err)?;
    let errors = thread("stderr")
        .spawn(move || drain_stderr(stderr))
        .map_err(spawn_err)?;
    let mut guard = guard;
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        let polled = guard.child.as_mut().map(Child::try_wait);
        match polled {
            Some(Ok(Some(status))) => {
                // Reaped: its pid (and group id) may be reused from now
                // on, so the group is not signalled after this.
                guard.child = None;
                break Some(status);
            }
            Some(Ok(None)) if std::time::Instant::now() < deadline => thread::sleep(BOUNDED_POLL),
            Some(Ok(None)) => break None,
            Some(Err(e)) => return Err(io_failure(&format!("cannot wait for {tool}"), &e)),
            None => return Err(deterministic(format!("{tool}: child already reaped"))),
        }
    };
    if status.is_none() {
        // Dropping the guard kills the group and reaps the child; the pipes
        // then close and the threads end.
        drop(guard);
    }
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    Ok(match status {
        Some(status) => Bounded::Ended {
            stdout,
            finished: Finished { status, stderr },
        },
        None => Bounded::TimedOut,
    })
}

/// Kills a child's whole process group and reaps the child unless it was
/// waited for.
struct GroupGuard {
    child: Option<Child>,
    pgid: u32,
}

impl GroupGuard {
    fn kill_group(&self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.pgid) {
            // SAFETY: killpg only sends a signal; the group is the child's
            // own (process_group(0)), never the worker's.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.kill_group();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
