//! Fault-injection documents (test-only). A `.mockdoc` file is a script the
//! worker obeys instead of parsing a real format, and only when the run was
//! started with `--allow-mock-docs`. The format is documented in
//! `tests/MOCKDOC.md`.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use docmill_protocol::{
    DocSummary, Format, Job, OcrMode, PageFlags, WorkerFailure, WorkerFailureKind,
};

use crate::engines::{deterministic, io_failure, PageSink, Stop};

/// The file name suffix that marks a mock document.
pub const EXTENSION: &str = "mockdoc";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Pages(u32),
    Kind(Format),
    Bytes(u64),
    SleepMs(u64),
    SpinMs(u64),
    Hang,
    /// Sleeps until this file exists: holds a run open for as long as a
    /// test needs to look at it, without guessing a duration.
    WaitFor(std::path::PathBuf),
    AllocMb(u64),
    LeakFds(u32),
    Panic,
    Abort,
    Segfault,
    Exit(i32),
    StdoutGarbage(u64),
    FailPages(u32, u32),
    OnAttempt(u32),
    PageMs(u64),
    ClimbMb(u64),
    /// Text jobs flag these pages `needs_ocr` (with empty text).
    NeedsOcr(u32, u32),
    /// OCR jobs run a failing child for these pages (every page when
    /// `None`).
    OcrChild(OcrFault, Option<(u32, u32)>),
}

/// How a mock OCR child fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OcrFault {
    /// Sleeps forever: the page timeout ends it.
    Hang,
    /// Dies of SIGSEGV.
    Crash,
    /// Allocates until its memory limit stops it.
    Oom,
}

impl OcrFault {
    /// The child that fails this way. Each is a real process the worker
    /// runs exactly as it runs Tesseract. The allocating one caps its own
    /// address space (or keeps a lower one it inherited), so that it stops
    /// at a limit even where the worker has none.
    pub fn command(self) -> std::process::Command {
        let script = match self {
            OcrFault::Hang => "exec sleep 3600",
            OcrFault::Crash => "kill -SEGV $$",
            OcrFault::Oom => {
                "ulimit -v 262144 2>/dev/null; exec perl -e '$x = \"x\" x 1048576; while (1) { $x .= $x }'"
            }
        };
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }
}

/// A parsed script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub actions: Vec<Action>,
}

impl Script {
    /// The format to schedule it as (`kind`), PDF unless told.
    pub fn kind(&self) -> Format {
        self.actions
            .iter()
            .find_map(|a| match a {
                Action::Kind(k) => Some(*k),
                _ => None,
            })
            .unwrap_or(Format::Pdf)
    }

    /// The size to pretend for tiering (`bytes`), if any.
    pub fn bytes(&self) -> Option<u64> {
        self.actions.iter().find_map(|a| match a {
            Action::Bytes(n) => Some(*n),
            _ => None,
        })
    }

    /// The wait before each emitted page (`page_ms`), none unless told.
    pub fn page_delay(&self) -> Duration {
        let ms = self.actions.iter().find_map(|a| match a {
            Action::PageMs(n) => Some(*n),
            _ => None,
        });
        Duration::from_millis(ms.unwrap_or(0))
    }

    /// The page ranges text jobs flag `needs_ocr`.
    pub fn needs_ocr(&self) -> Vec<(u32, u32)> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::NeedsOcr(a, b) => Some((*a, *b)),
                _ => None,
            })
            .collect()
    }

    /// The page count the script emits (`pages`, 1 unless told).
    pub fn pages(&self) -> u32 {
        self.actions
            .iter()
            .find_map(|a| match a {
                Action::Pages(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(1)
    }
}

/// Parses a script; the error names the line.
pub fn parse(text: &str) -> Result<Script, String> {
    let mut actions = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let arg = words.next();
        let bad = |what: &str| format!("mockdoc line {}: {what}: {line:?}", i + 1);
        let num = |a: Option<&str>| -> Result<u64, String> {
            a.ok_or_else(|| bad("missing number"))?
                .parse::<u64>()
                .map_err(|_| bad("not a number"))
        };
        let action = match verb {
            "pages" => Action::Pages(num(arg)? as u32),
            "kind" => Action::Kind(match arg {
                Some("pdf") => Format::Pdf,
                Some("epub") => Format::Epub,
                _ => return Err(bad("kind takes pdf or epub")),
            }),
            "bytes" => Action::Bytes(num(arg)?),
            "sleep_ms" => Action::SleepMs(num(arg)?),
            "spin_ms" => Action::SpinMs(num(arg)?),
            "hang" => Action::Hang,
            "wait_for" => Action::WaitFor(arg.ok_or_else(|| bad("missing path"))?.into()),
            "alloc_mb" => Action::AllocMb(num(arg)?),
            "leak_fds" => Action::LeakFds(num(arg)? as u32),
            "panic" => Action::Panic,
            "abort" => Action::Abort,
            "segfault" => Action::Segfault,
            "exit" => Action::Exit(
                arg.ok_or_else(|| bad("missing code"))?
                    .parse()
                    .map_err(|_| bad("not a number"))?,
            ),
            "stdout_garbage" => Action::StdoutGarbage(num(arg)?),
            "fail_pages" => {
                arg.ok_or_else(|| bad("missing range"))?;
                let (a, b) = range(arg).ok_or_else(|| bad("bad range"))?;
                Action::FailPages(a, b)
            }
            "on_attempt" => Action::OnAttempt(num(arg)? as u32),
            "page_ms" => Action::PageMs(num(arg)?),
            "climb_mb" => Action::ClimbMb(num(arg)?),
            "needs_ocr" => {
                let (a, b) = range(arg).ok_or_else(|| bad("bad range"))?;
                Action::NeedsOcr(a, b)
            }
            "ocr_child" => {
                let fault = match arg {
                    Some("hang") => OcrFault::Hang,
                    Some("crash") => OcrFault::Crash,
                    Some("oom") => OcrFault::Oom,
                    _ => return Err(bad("ocr_child takes hang, crash or oom")),
                };
                let pages = match words.next() {
                    None => None,
                    Some(spec) => Some(range(Some(spec)).ok_or_else(|| bad("bad range"))?),
                };
                Action::OcrChild(fault, pages)
            }
            _ => return Err(bad("unknown action")),
        };
        if words.next().is_some() {
            return Err(bad("too many words"));
        }
        actions.push(action);
    }
    Ok(Script { actions })
}

/// `A-B` (or `A`), 1-based, A <= B.
fn range(spec: Option<&str>) -> Option<(u32, u32)> {
    let spec = spec?;
    let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
    let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0 && b >= a).then_some((a, b))
}

/// Reads and parses the script at `path`.
pub fn read(path: &Path) -> Result<Script, WorkerFailure> {
    let text = fs::read_to_string(path).map_err(|e| io_failure("cannot read the file", &e))?;
    parse(&text).map_err(deterministic)
}

/// Obeys the script at `path` for `job`.
pub fn run(path: &Path, job: &Job, sink: &mut dyn PageSink) -> Result<DocSummary, Stop> {
    let script = read(path)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let total = script.pages();
    let delay = script.page_delay();
    if let Some(pages) = &job.ocr_pages {
        return ocr_job(path, &script, job, pages, &stem, sink);
    }
    sink.page_count(total)?;
    let needs_ocr = if job.ocr.mode == OcrMode::Off {
        Vec::new()
    } else {
        script.needs_ocr()
    };
    let wanted = job.range.map_or(1..=total, |r| r.first..=r.last.min(total));
    let mut emitted = false;
    let mut leaked = Vec::new();
    let mut active = true;
    for action in &script.actions {
        if let Action::OnAttempt(k) = action {
            active = *k == job.attempt;
            continue;
        }
        if !active {
            continue;
        }
        match action {
            Action::Pages(_) => {
                emit(&stem, wanted.clone(), delay, &needs_ocr, sink);
                emitted = true;
            }
            Action::Kind(_)
            | Action::Bytes(_)
            | Action::OnAttempt(_)
            | Action::PageMs(_)
            | Action::NeedsOcr(..)
            | Action::OcrChild(..) => {}
            Action::SleepMs(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Action::SpinMs(ms) => spin(Duration::from_millis(*ms)),
            Action::Hang => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            Action::WaitFor(path) => {
                while !path.exists() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Action::AllocMb(mb) => {
                // Touch every page so the memory is really used, as a greedy
                // parser's would be; under the address-space limit the
                // allocation fails and the process aborts like a real engine.
                let mut v = vec![0u8; (*mb as usize) << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                std::hint::black_box(&v);
                leaked.push(v);
            }
            Action::ClimbMb(mb) => loop {
                // Grows without a page, as an engine caught in a loop does,
                // until the run ends the job or the allocation fails.
                let mut v = vec![0u8; (*mb as usize) << 20];
                for i in (0..v.len()).step_by(4096) {
                    v[i] = 1;
                }
                leaked.push(std::hint::black_box(v));
                std::thread::sleep(Duration::from_millis(100));
            },
            Action::LeakFds(n) => {
                for _ in 0..*n {
                    match File::open("/dev/null") {
                        Ok(f) => std::mem::forget(f),
                        Err(e) => {
                            let mut failure = io_failure("mock descriptor leak", &e);
                            if failure.kind != WorkerFailureKind::OutOfDescriptors {
                                failure.kind = WorkerFailureKind::Deterministic;
                            }
                            return Err(failure.into());
                        }
                    }
                }
            }
            Action::Panic => panic!("mock panic in {stem}"),
            Action::Abort => std::process::abort(),
            Action::Segfault => {
                // SAFETY: deliberately not safe. This writes through a null
                // pointer to die of a real SIGSEGV, as a crashing parser would.
                unsafe { std::ptr::null_mut::<u8>().write_volatile(1) }
            }
            Action::Exit(code) => std::process::exit(*code),
            Action::StdoutGarbage(n) => garbage(*n),
            Action::FailPages(a, b) => {
                if wanted.clone().any(|p| (*a..=*b).contains(&p)) {
                    return Err(deterministic(format!("mock: pages {a}-{b} fail")).into());
                }
            }
        }
    }
    let flagged = wanted.clone().any(|p| flagged(&needs_ocr, p));
    if !emitted {
        emit(&stem, wanted, delay, &needs_ocr, sink);
    }
    drop(leaked);
    Ok(DocSummary {
        page_count: total,
        title: None,
        author: None,
        language: None,
        engine: "mock".to_string(),
        content_hash: if flagged {
            Some(crate::ocr::summary_hash(path)?)
        } else {
            None
        },
    })
}

fn flagged(ranges: &[(u32, u32)], page: u32) -> bool {
    ranges.iter().any(|&(a, b)| (a..=b).contains(&page))
}

fn emit(
    stem: &str,
    pages: std::ops::RangeInclusive<u32>,
    delay: Duration,
    needs_ocr: &[(u32, u32)],
    sink: &mut dyn PageSink,
) {
    for k in pages {
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if flagged(needs_ocr, k) {
            let flags = PageFlags {
                needs_ocr: true,
                ..PageFlags::default()
            };
            sink.page(k, String::new(), flags);
        } else {
            sink.page(k, format!("mock page {k} of {stem}"), PageFlags::default());
        }
    }
}

/// A mock OCR job: each page comes back as `mock ocr page N of <stem>` with
/// confidence 90, without Tesseract, unless an `ocr_child` line (in force
/// for this attempt) covers it: then its failing child runs through the
/// same path as Tesseract, with the job's page timeout.
fn ocr_job(
    path: &Path,
    script: &Script,
    job: &Job,
    pages: &[u32],
    stem: &str,
    sink: &mut dyn PageSink,
) -> Result<DocSummary, Stop> {
    let total = script.pages();
    sink.page_count(total)?;
    let mut faults = Vec::new();
    let mut active = true;
    for action in &script.actions {
        match action {
            Action::OnAttempt(k) => active = *k == job.attempt,
            Action::OcrChild(fault, range) if active => faults.push((*fault, *range)),
            _ => {}
        }
    }
    let delay = script.page_delay();
    let limit = Duration::from_millis(job.ocr.page_timeout_ms.max(1));
    crate::ocr::recognise_pages(pages, total, sink, |page| {
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let fault = faults
            .iter()
            .find(|(_, r)| r.is_none_or(|(a, b)| (a..=b).contains(&page)));
        match fault {
            Some((fault, _)) => crate::ocr::tesseract::run(&mut fault.command(), Vec::new(), limit),
            None => Ok(crate::ocr::Recognised {
                text: format!("mock ocr page {page} of {stem}"),
                confidence: Some(90.0),
            }),
        }
    });
    Ok(DocSummary {
        page_count: total,
        title: None,
        author: None,
        language: None,
        engine: "mock".to_string(),
        content_hash: Some(crate::ocr::summary_hash(path)?),
    })
}

fn spin(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Writes pseudo-random bytes to stdout: whatever a worker prints must never
/// reach the IPC channel or block the worker.
fn garbage(n: u64) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    let mut left = n;
    while left > 0 {
        for b in buf.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        let k = left.min(buf.len() as u64) as usize;
        if out.write_all(&buf[..k]).is_err() {
            return;
        }
        left -= k as u64;
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_action() {
        let s = parse(
            "# a comment\npages 3\nkind epub\nbytes 100\nsleep_ms 5 # trailing\nspin_ms 1\nhang\nalloc_mb 2\nleak_fds 4\npanic\nabort\nsegfault\nexit 3\nstdout_garbage 10\nfail_pages 2-4\non_attempt 2\npage_ms 7\nclimb_mb 8\nneeds_ocr 2-3\nocr_child hang\nocr_child oom 4-5\nwait_for /tmp/go\n",
        )
        .unwrap();
        assert_eq!(s.actions.len(), 21);
        assert!(s.actions.contains(&Action::WaitFor("/tmp/go".into())));
        assert_eq!(s.needs_ocr(), vec![(2, 3)]);
        assert!(s.actions.contains(&Action::OcrChild(OcrFault::Hang, None)));
        assert!(s
            .actions
            .contains(&Action::OcrChild(OcrFault::Oom, Some((4, 5)))));
        assert_eq!(s.page_delay(), Duration::from_millis(7));
        assert!(s.actions.contains(&Action::ClimbMb(8)));
        assert_eq!(s.kind(), Format::Epub);
        assert_eq!(s.bytes(), Some(100));
        assert_eq!(s.pages(), 3);
        assert!(s.actions.contains(&Action::FailPages(2, 4)));
        assert!(s.actions.contains(&Action::Exit(3)));
    }

    #[test]
    fn rejects_bad_lines_with_line_number() {
        let err = parse("pages 1\nexplode\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse("fail_pages 5-2").is_err());
        assert!(parse("kind djvu").is_err());
        assert!(parse("pages").is_err());
        assert!(parse("ocr_child melt").is_err());
        assert!(parse("ocr_child hang 3-1").is_err());
        assert!(parse("needs_ocr").is_err());
        assert!(parse("wait_for").is_err());
    }

    #[test]
    fn defaults() {
        let s = parse("").unwrap();
        assert_eq!(s.pages(), 1);
        assert_eq!(s.kind(), Format::Pdf);
        assert_eq!(s.bytes(), None);
    }
}
