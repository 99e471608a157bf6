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
    /// The program the worker will run; `None` for the built-in engine.
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

/// Parses `auto|builtin|mupdf|mupdf-inproc|poppler`. `mupdf-inproc` parses
/// even in a build without it, so that `resolve` can say why it is missing
/// on one line rather than clap calling it an unknown value.
pub fn parse_engine_flag(s: &str) -> Result<EngineFlag, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(EngineFlag::Auto),
        "builtin" => Ok(EngineFlag::Only(EngineChoice::Builtin)),
        "mupdf" | "mutool" => Ok(EngineFlag::Only(EngineChoice::Mupdf)),
        "mupdf-inproc" => Ok(EngineFlag::Only(EngineChoice::MupdfInproc)),
        "poppler" | "pdftotext" => Ok(EngineFlag::Only(EngineChoice::Poppler)),
        other => Err(format!(
            "unknown engine {other:?}: expected auto, builtin, mupdf, mupdf-inproc or poppler"
        )),
    }
}

/// Detects every engine: the built-in one is always there, in-process MuPDF
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
    let mupdf = external(EngineChoice::Mupdf, "mutool", &[]);
    // pdftotext extracts, pdfinfo counts pages: the engine needs both.
    let poppler = external(EngineChoice::Poppler, "pdftotext", &["pdfinfo"]);
    vec![builtin, mupdf_inproc(), mupdf, poppler]
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
    let mut child = Command::new(program)
        .arg("-v")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A version banner is a few lines: it fits the pipe, so reading after
    // the exit cannot block.
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut text)?;
    }
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut text)?;
    }
    if !status.success() && parse_version(&text).is_none() {
        return Err(io::Error::other(format!("exited with {status}")));
    }
    Ok(text)
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

/// The engines `auto` tries, fastest first: in-process MuPDF (no child
/// processes), then MuPDF's mutool (the same reader in a separate process,
/// and another MuPDF release), then Poppler, then the built-in engine, which
/// is always last and always there.
pub fn auto_order(detected: &[DetectedEngine]) -> Vec<EngineChoice> {
    let has = |c: EngineChoice| detected.iter().any(|d| d.choice == c && d.available);
    let mut order: Vec<EngineChoice> = [
        EngineChoice::MupdfInproc,
        EngineChoice::Mupdf,
        EngineChoice::Poppler,
    ]
    .into_iter()
    .filter(|c| has(*c))
    .collect();
    order.push(EngineChoice::Builtin);
    order
}

/// The engines a flag selects, in the order to try them; an error when the
/// one asked for is not installed.
pub fn resolve(flag: EngineFlag, detected: &[DetectedEngine]) -> Result<Vec<EngineChoice>, String> {
    match flag {
        EngineFlag::Auto => Ok(auto_order(detected)),
        EngineFlag::Only(EngineChoice::Builtin) => Ok(vec![EngineChoice::Builtin]),
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
    engines: &'a [DetectedEngine],
    auto: Vec<&'static str>,
}

/// `docmill engines [--json]`: what is installed and what `auto` uses.
pub fn list(json: bool) -> anyhow::Result<i32> {
    let detected = detect();
    let auto: Vec<&'static str> = auto_order(&detected)
        .into_iter()
        .map(EngineChoice::as_str)
        .collect();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if json {
        serde_json::to_writer(
            &mut out,
            &Listing {
                engines: &detected,
                auto,
            },
        )?;
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
        }
        writeln!(out, "auto: {}", auto.join(" > "))?;
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
            parse_engine_flag("mupdf-inproc"),
            Ok(EngineFlag::Only(EngineChoice::MupdfInproc))
        );
        let err = parse_engine_flag("xpdf").expect_err("unknown");
        assert!(
            err.contains("auto, builtin, mupdf, mupdf-inproc or poppler"),
            "{err}"
        );
    }

    #[test]
    fn auto_is_fastest_first_and_always_ends_with_builtin() {
        let all = [
            engine(EngineChoice::Builtin, true),
            engine(EngineChoice::Poppler, true),
            engine(EngineChoice::Mupdf, true),
        ];
        assert_eq!(
            auto_order(&all),
            vec![
                EngineChoice::Mupdf,
                EngineChoice::Poppler,
                EngineChoice::Builtin
            ]
        );
        let no_mupdf = [
            engine(EngineChoice::Builtin, true),
            engine(EngineChoice::Mupdf, false),
            engine(EngineChoice::Poppler, true),
        ];
        assert_eq!(
            auto_order(&no_mupdf),
            vec![EngineChoice::Poppler, EngineChoice::Builtin]
        );
        assert_eq!(auto_order(&[]), vec![EngineChoice::Builtin]);
        let with_inproc = [
            engine(EngineChoice::Builtin, true),
            engine(EngineChoice::Poppler, true),
            engine(EngineChoice::Mupdf, true),
            engine(EngineChoice::MupdfInproc, true),
        ];
        assert_eq!(
            auto_order(&with_inproc),
            vec![
                EngineChoice::MupdfInproc,
                EngineChoice::Mupdf,
                EngineChoice::Poppler,
                EngineChoice::Builtin
            ]
        );
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
            resolve(EngineFlag::Auto, &d),
            Ok(vec![EngineChoice::Builtin])
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
