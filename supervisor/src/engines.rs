//! Which PDF engines this machine has: detection of the external tools at
//! start (`mutool -v`, `pdftotext -v`, which print their versions on
//! stderr) and of the in-process ones this binary was built with, the order
//! `--engine auto` tries them in, the `--engine` flag's parser, and the
//! `docmill engines` listing.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docmill_protocol::{exit_codes, EngineChoice};
use serde::Serialize;

/// The built-in engine's library version, as pinned in the workspace.
const BUILTIN_VERSION: &str = "pdf-extract 0.12";
/// The lopdf engine's library version, as pinned in the workspace.
const LOPDF_VERSION: &str = "lopdf 0.42";
/// How long a version probe may take before the tool counts as missing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One engine as found on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DetectedEngine {
    pub name: &'static str,
    #[serde(skip)]
    pub choice: EngineChoice,
    pub available: bool,
    pub version: Option<String>,
    /// The program the worker will run; `None` for in-process engines.
    pub path: Option<PathBuf>,
    /// Why an external engine is not available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// What `--engine` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineFlag {
    /// The fastest available engine first, the others as fallbacks.
    Auto,
    /// This engine only.
    Only(EngineChoice),
}

/// Parses `auto|builtin|lopdf|mupdf|mupdf-inproc|poppler`. `mupdf-inproc` parses
/// even in a build without it, so that `resolve` can say why it is missing
/// on one line rather than clap calling it an unknown value.
pub fn parse_engine_flag(s: &str) -> Result<EngineFlag, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(EngineFlag::Auto),
        "builtin" => Ok(EngineFlag::Only(EngineChoice::Builtin)),
        "lopdf" => Ok(EngineFlag::Only(EngineChoice::Lopdf)),
        "mupdf" | "mutool" => Ok(EngineFlag::Only(EngineChoice::Mupdf)),
        "mupdf-inproc" => Ok(EngineFlag::Only(EngineChoice::MupdfInproc)),
        "poppler" | "pdftotext" => Ok(EngineFlag::Only(EngineChoice::Poppler)),
        other => Err(format!(
            "unknown engine {other:?}: expected auto, builtin, lopdf, mupdf, mupdf-inproc or poppler"
        )),
    }
}

/// Detects every engine: the built-in and lopdf ones are always there
/// (both pure Rust, in the worker), in-process MuPDF
/// when the binary was built with it; the external ones are looked up on
/// PATH and asked for their version.
pub fn detect() -> Vec<DetectedEngine> {
    let builtin = DetectedEngine {
        name: EngineChoice::Builtin.as_str(),
        choice: EngineChoice::Builtin,
        available: true,
        version: Some(BUILTIN_VERSION.to_string()),
        path: None,
        missing: None,
    };
    let lopdf = DetectedEngine {
        name: EngineChoice::Lopdf.as_str(),
        choice: EngineChoice::Lopdf,
        available: true,
        version: Some(LOPDF_VERSION.to_string()),
        path: None,
        missing: None,
    };
    // Asked at once: a tool whose files the page cache no longer holds
    // takes 100-500 ms to print its version (measured on an idle machine
    // that reclaims memory), and every index run waits for the answers.
    let (mupdf, poppler) = std::thread::scope(|s| {
        let mupdf = s.spawn(|| external(EngineChoice::Mupdf, "mutool", &[]));
        // pdftotext extracts, pdfinfo counts pages: the engine needs both.
        let poppler = external(EngineChoice::Poppler, "pdftotext", &["pdfinfo"]);
        (mupdf.join().expect("engine probe panicked"), poppler)
    });
    vec![builtin, lopdf, mupdf_inproc(), mupdf, poppler]
}

/// In-process MuPDF is there exactly when the worker code linked into this
/// binary has it; nothing on the machine matters.
fn mupdf_inproc() -> DetectedEngine {
    let version = docmill_worker::engines::MUPDF_INPROC_VERSION;
    DetectedEngine {
        name: EngineChoice::MupdfInproc.as_str(),
        choice: EngineChoice::MupdfInproc,
        available: version.is_some(),
        version: version.map(str::to_string),
        path: None,
        missing: version
            .is_none()
            .then(|| docmill_worker::engines::MUPDF_INPROC_MISSING.to_string()),
    }
}

fn external(choice: EngineChoice, program: &str, also: &[&str]) -> DetectedEngine {
    let mut found = DetectedEngine {
        name: choice.as_str(),
        choice,
        available: false,
        version: None,
        path: None,
        missing: None,
    };
    let Some(path) = which(program) else {
        found.missing = Some(format!("{program} not found on PATH"));
        return found;
    };
    if let Some(other) = also.iter().find(|p| which(p).is_none()) {
        found.missing = Some(format!("{other} not found on PATH"));
        found.path = Some(path);
        return found;
    }
    match probe_version(&path) {
        Ok(text) => {
            found.version = parse_version(&text);
            found.available = true;
        }
        Err(e) => found.missing = Some(format!("{program} -v failed: {e}")),
    }
    found.path = Some(path);
    found
}

/// The first executable file called `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    which_in(program, &path)
}

fn which_in(program: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `program -v` and returns what it printed (stderr, then stdout),
/// killing it if it does not finish in time.
fn probe_version(program: &Path) -> io::Result<String> {
    let (status, stdout, stderr) = probe(program, "-v")?;
    let text = stderr + &stdout;
    if !status.success() && parse_version(&text).is_none() {
        return Err(io::Error::other(format!("exited with {status}")));
    }
    Ok(text)
}

/// Runs `program arg` and returns how it ended and what it printed on
/// stdout and stderr, killing it if it does not finish in time: how the
/// installed tools (PDF engines, Tesseract) are found out.
pub(crate) fn probe(
    program: &Path,
    arg: &str,
) -> io::Result<(std::process::ExitStatus, String, String)> {
    let mut child = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    // Looked at after 1 ms, then ever less often: most tools answer in a
    // few milliseconds, and the run waits for them.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    // A banner or a language list is a few lines: it fits the pipe, so
    // reading after the exit cannot block.
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut stdout)?;
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr)?;
    }
    Ok((status, stdout, stderr))
}

/// The version out of a banner such as `mutool version 1.21.1` or
/// `pdftotext version 22.12.0`.
pub fn parse_version(banner: &str) -> Option<String> {
    banner.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w.eq_ignore_ascii_case("version") {
                return words.next().map(str::to_string);
            }
        }
        None
    })
}

/// The engines `auto` tries. Each is kept only where it extracts documents
/// the engines before it fail on; measured over the whole corpus
/// (BENCHMARKS.md, "Which engines `auto` keeps"):
///
/// - with in-process MuPDF built in: MuPDF in process first (fastest, no
///   child processes), then Poppler, which reads 5 corpus PDFs MuPDF fails
///   on. mutool (the same reader in a child process) and pdf-extract read
///   none that those two lose, and neither does lopdf, so `auto` leaves
///   them out; they stay selectable by name.
/// - without it (`--no-default-features`): mutool, Poppler, then the two
///   engines such a build always has: lopdf (70 of the 77 normal corpus
///   PDFs, about three times pdf-extract's pages per second), then
///   pdf-extract, which reads one document lopdf fails on. With no tool
///   installed the two read 71.
pub fn auto_order(detected: &[DetectedEngine]) -> Vec<EngineChoice> {
    let has = |c: EngineChoice| detected.iter().any(|d| d.choice == c && d.available);
    let candidates: &[EngineChoice] = if has(EngineChoice::MupdfInproc) {
        &[EngineChoice::MupdfInproc, EngineChoice::Poppler]
    } else {
        &[EngineChoice::Mupdf, EngineChoice::Poppler]
    };
    let mut order: Vec<EngineChoice> = candidates.iter().copied().filter(|c| has(*c)).collect();
    if !has(EngineChoice::MupdfInproc) {
        order.extend([EngineChoice::Lopdf, EngineChoice::Builtin]);
    }
    order
}

/// Why `engine` is where it is in `auto` (or left out), in one line, for
/// `docmill engines`. `order` is `auto_order`'s answer.
pub fn auto_reason(engine: EngineChoice, order: &[EngineChoice]) -> String {
    let inproc = order.contains(&EngineChoice::MupdfInproc);
    let place = order.iter().position(|c| *c == engine);
    let why = match (engine, inproc) {
        (EngineChoice::MupdfInproc, _) => {
            "fastest: MuPDF in the worker's own process, no child process per document"
        }
        (EngineChoice::Poppler, true) => {
            "reads documents MuPDF fails on (5 corpus PDFs: fonts it cannot map, owner-locked files)"
        }
        (EngineChoice::Poppler, false) => "reads documents MuPDF fails on",
        (EngineChoice::Mupdf, true) => {
            "the same reader as mupdf-inproc in a child process: rescues nothing it loses"
        }
        (EngineChoice::Mupdf, false) => "fastest engine this build has",
        (EngineChoice::Builtin, true) => {
            "reads nothing MuPDF and Poppler both lose, and reads the fewest documents"
        }
        (EngineChoice::Builtin, false) => {
            "always there: reads a few documents lopdf fails on (fonts without a Unicode map)"
        }
        (EngineChoice::Lopdf, true) => "reads nothing MuPDF and Poppler both lose",
        (EngineChoice::Lopdf, false) => {
            "always there, needs nothing installed: reads more documents than pdf-extract, faster"
        }
    };
    let installable =
        matches!(engine, EngineChoice::Poppler) || (engine == EngineChoice::Mupdf && !inproc);
    match place {
        Some(i) => format!("auto #{}: {why}", i + 1),
        None if engine == EngineChoice::MupdfInproc => {
            format!("not built in (cargo feature mupdf-inproc): {why}")
        }
        None if installable => format!("not in auto (not installed): {why}"),
        None => format!("not in auto: {why}"),
    }
}

/// The engines a flag selects, in the order to try them; an error when the
/// one asked for is not installed.
pub fn resolve(flag: EngineFlag, detected: &[DetectedEngine]) -> Result<Vec<EngineChoice>, String> {
    match flag {
        EngineFlag::Auto => Ok(auto_order(detected)),
        EngineFlag::Only(c @ (EngineChoice::Builtin | EngineChoice::Lopdf)) => Ok(vec![c]),
        EngineFlag::Only(c) => match detected.iter().find(|d| d.choice == c) {
            Some(d) if d.available => Ok(vec![c]),
            Some(d) => Err(format!(
                "engine {} is not available: {}",
                c.as_str(),
                d.missing.as_deref().unwrap_or("not detected")
            )),
            None => Err(format!("engine {} is not available", c.as_str())),
        },
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    engines: Vec<ListedEngine<'a>>,
    auto: Vec<&'static str>,
    /// The OCR engine (tesseract), installed or not.
    ocr: crate::ocr::OcrEngine,
}

#[derive(Serialize)]
struct ListedEngine<'a> {
    #[serde(flatten)]
    engine: &'a DetectedEngine,
    /// Where it stands in `auto`, and why.
    auto_reason: String,
}

/// `docmill engines [--json]`: what is installed and what `auto` uses.
pub fn list(json: bool) -> anyhow::Result<i32> {
    let detected = detect();
    let order = auto_order(&detected);
    let auto: Vec<&'static str> = order.iter().map(|c| c.as_str()).collect();
    let ocr = crate::ocr::detect();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if json {
        let engines = detected
            .iter()
            .map(|d| ListedEngine {
                engine: d,
                auto_reason: auto_reason(d.choice, &order),
            })
            .collect();
        serde_json::to_writer(&mut out, &Listing { engines, auto, ocr })?;
        writeln!(out)?;
    } else {
        for d in &detected {
            let state = if d.available { "available" } else { "missing" };
            let version = d.version.as_deref().unwrap_or("-");
            let path = match (&d.path, &d.missing) {
                (_, Some(why)) => why.clone(),
                (Some(p), None) => p.display().to_string(),
                (None, None) => "(in-process)".to_string(),
            };
            writeln!(out, "{:<12} {:<10} {:<28} {path}", d.name, state, version)?;
            writeln!(out, "{:<12} {}", "", auto_reason(d.choice, &order))?;
        }
        writeln!(out, "auto: {}", auto.join(" > "))?;
        writeln!(out, "{}", crate::ocr::describe(&ocr))?;
    }
    Ok(exit_codes::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(choice: EngineChoice, available: bool) -> DetectedEngine {
        DetectedEngine {
            name: choice.as_str(),
            choice,
            available,
            version: None,
            path: None,
            missing: (!available).then(|| "not found".to_string()),
        }
    }

    #[test]
    fn flag_values() {
        assert_eq!(parse_engine_flag("auto"), Ok(EngineFlag::Auto));
        assert_eq!(
            parse_engine_flag("builtin"),
            Ok(EngineFlag::Only(EngineChoice::Builtin))
        );
        assert_eq!(
            parse_engine_flag("MuPDF"),
            Ok(EngineFlag::Only(EngineChoice::Mupdf))
        );
        assert_eq!(
            parse_engine_flag("poppler"),
            Ok(EngineFlag::Only(EngineChoice::Poppler))
        );
        assert_eq!(
            parse_engine_flag("LOPDF"),
            Ok(EngineFlag::Only(EngineChoice::Lopdf))
        );
        assert_eq!(
            parse_engine_flag("mupdf-inproc"),
            Ok(EngineFlag::Only(EngineChoice::MupdfInproc))
        );
        let err = parse_engine_flag("xpdf").expect_err("unknown");
        assert!(
            err.contains("auto, builtin, lopdf, mupdf, mupdf-inproc or poppler"),
            "{err}"
        );
    }

    #[test]
    fn auto_keeps_only_engines_that_rescue_documents() {
        use EngineChoice::*;
        let with = |available: &[EngineChoice]| -> Vec<DetectedEngine> {
            [Builtin, Lopdf, MupdfInproc, Mupdf, Poppler]
                .into_iter()
                .map(|c| engine(c, [Builtin, Lopdf].contains(&c) || available.contains(&c)))
                .collect()
        };
        // In-process MuPDF, then Poppler where installed; mutool, lopdf
        // and pdf-extract rescue nothing those two lose.
        assert_eq!(
            auto_order(&with(&[MupdfInproc, Mupdf, Poppler])),
            vec![MupdfInproc, Poppler]
        );
        assert_eq!(auto_order(&with(&[MupdfInproc, Mupdf])), vec![MupdfInproc]);
        // A build without it: the external engines, then lopdf, then
        // pdf-extract.
        assert_eq!(
            auto_order(&with(&[Mupdf, Poppler])),
            vec![Mupdf, Poppler, Lopdf, Builtin]
        );
        assert_eq!(auto_order(&with(&[Poppler])), vec![Poppler, Lopdf, Builtin]);
        assert_eq!(auto_order(&with(&[])), vec![Lopdf, Builtin]);
        assert_eq!(auto_order(&[]), vec![Lopdf, Builtin]);
    }

    #[test]
    fn every_engine_says_where_it_stands_in_auto() {
        use EngineChoice::*;
        let order = [MupdfInproc, Poppler];
        assert!(auto_reason(MupdfInproc, &order).starts_with("auto #1: fastest"));
        assert!(auto_reason(Poppler, &order).starts_with("auto #2: reads documents MuPDF"));
        assert!(auto_reason(Mupdf, &order).starts_with("not in auto: the same reader"));
        assert!(auto_reason(Builtin, &order).starts_with("not in auto: reads nothing"));
        assert!(auto_reason(Lopdf, &order).starts_with("not in auto: reads nothing"));
        let order = [Mupdf, Lopdf, Builtin];
        assert!(auto_reason(MupdfInproc, &order).starts_with("not built in"));
        assert!(auto_reason(Mupdf, &order).starts_with("auto #1"));
        assert!(auto_reason(Poppler, &order).starts_with("not in auto (not installed)"));
        assert!(auto_reason(Lopdf, &order).starts_with("auto #2: always there"));
        assert!(auto_reason(Builtin, &order).starts_with("auto #3: always there"));
        for c in [MupdfInproc, Mupdf, Poppler, Builtin, Lopdf] {
            assert!(!auto_reason(c, &order).contains('\n'));
        }
    }

    /// Built with the feature, in-process MuPDF is always offered and
    /// `auto` tries it first; built without, asking for it is refused with a
    /// one-line reason that names the feature.
    #[test]
    fn mupdf_inproc_follows_the_build() {
        let detected = detect();
        let flag = EngineFlag::Only(EngineChoice::MupdfInproc);
        // The worker crate decides, not this crate's own feature flag: the
        // two can differ when the feature is turned on for the worker alone.
        if docmill_worker::engines::MUPDF_INPROC_VERSION.is_some() {
            assert_eq!(
                resolve(flag, &detected),
                Ok(vec![EngineChoice::MupdfInproc])
            );
            assert_eq!(auto_order(&detected)[0], EngineChoice::MupdfInproc);
        } else {
            let err = resolve(flag, &detected).expect_err("not built in");
            assert!(
                err.contains("built without the mupdf-inproc feature"),
                "{err}"
            );
            assert!(!err.contains('\n'), "{err}");
            assert!(!auto_order(&detected).contains(&EngineChoice::MupdfInproc));
        }
    }

    #[test]
    fn resolve_refuses_a_missing_engine() {
        let d = [
            engine(EngineChoice::Builtin, true),
            engine(EngineChoice::Mupdf, false),
        ];
        assert!(resolve(EngineFlag::Only(EngineChoice::Mupdf), &d).is_err());
        assert_eq!(
            resolve(EngineFlag::Only(EngineChoice::Builtin), &d),
            Ok(vec![EngineChoice::Builtin])
        );
        assert_eq!(
            resolve(EngineFlag::Only(EngineChoice::Lopdf), &d),
            Ok(vec![EngineChoice::Lopdf])
        );
        assert_eq!(
            resolve(EngineFlag::Auto, &d),
            Ok(vec![EngineChoice::Lopdf, EngineChoice::Builtin])
        );
    }

    #[test]
    fn versions_from_banners() {
        assert_eq!(
            parse_version("mutool version 1.21.1\n").as_deref(),
            Some("1.21.1")
        );
        let poppler = "pdftotext version 22.12.0\nCopyright 2005-2022 The Poppler Developers\n";
        assert_eq!(parse_version(poppler).as_deref(), Some("22.12.0"));
        assert_eq!(parse_version("usage: tool"), None);
    }

    #[test]
    fn which_skips_empty_and_missing_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tool = dir.path().join("faketool");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = std::env::join_paths(["/nonexistent-dir".as_ref(), dir.path()]).expect("join");
        assert_eq!(which_in("faketool", &path), Some(tool));
        assert_eq!(which_in("absent-tool", &path), None);
    }
}
