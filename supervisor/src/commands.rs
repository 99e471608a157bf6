//! The commands on an existing index: search, status, export, report and
//! runs read it; forget removes documents from it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use docmill_protocol::exit_codes;

use crate::metrics::report::ReportError;
use crate::search::SearchRequest;
use crate::store;
use crate::store::SqliteStore;

/// Searches the index; matches are styled in colour where `colored`, and
/// marked `»…«` otherwise.
pub fn search(
    db: &Path,
    request: &SearchRequest,
    json: bool,
    colored: bool,
) -> anyhow::Result<i32> {
    crate::search::present::command(db, request, json, colored)
}

pub fn status(db: &Path, json: bool) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    let status = catalog.status().map_err(|e| e.naming(db))?;
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, &status)?;
        writeln!(out)?;
        return Ok(exit_codes::OK);
    }
    let total: u64 = status.documents.values().sum();
    writeln!(out, "{total} documents, {} pages", status.pages)?;
    for (state, n) in &status.documents {
        if *n > 0 {
            writeln!(out, "  {state:<12} {n}")?;
        }
    }
    if status.low_quality_pages > 0 {
        writeln!(
            out,
            "  (low-quality pages: {}; unreadable characters removed, words kept)",
            status.low_quality_pages
        )?;
    }
    if status.ocr_pages > 0 || status.ocr_failed_pages > 0 {
        writeln!(
            out,
            "  (OCR pages: {}; {} could not be read)",
            status.ocr_pages, status.ocr_failed_pages
        )?;
    }
    if status.no_text_pages > 0 {
        writeln!(
            out,
            "  (pages without a text layer, not read: {})",
            status.no_text_pages
        )?;
    }
    if status.interrupted > 0 {
        writeln!(
            out,
            "  ({} attempts interrupted by a stopped run, not counted)",
            status.interrupted
        )?;
    }
    if !status.failures.is_empty() {
        let (partial, whole): (Vec<_>, Vec<_>) =
            status.failures.iter().partition(|f| f.status == "partial");
        for (title, list) in [
            ("Not indexed", whole),
            ("Indexed except some pages", partial),
        ] {
            if list.is_empty() {
                continue;
            }
            writeln!(out, "\n{title}:")?;
            for f in list {
                let outcome = f.outcome.as_deref().unwrap_or(&f.status);
                writeln!(
                    out,
                    "  {}: {} [{}, {} attempts]",
                    f.path, f.reason, outcome, f.attempts
                )?;
            }
        }
    }
    if !status.no_text_layer.is_empty() {
        // A warning, not a failure: the text layer that was there is
        // indexed, and an OCR engine would read the rest.
        writeln!(out, "\n{}:", capitalised(store::NO_TEXT_LAYER))?;
        for d in &status.no_text_layer {
            writeln!(out, "  {}: {} of its pages", d.path, d.pages)?;
        }
    }
    if !status.low_quality.is_empty() {
        writeln!(out, "\nIndexed with pages of low quality:")?;
        for d in &status.low_quality {
            writeln!(out, "  {}: {} of its pages", d.path, d.pages)?;
        }
    }
    out.flush()?;
    Ok(exit_codes::OK)
}

/// "No text layer; ..." from "no text layer; ...".
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub fn export(db: &Path, output: Option<&Path>) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    match output {
        Some(path) => {
            let mut w = BufWriter::new(File::create(path)?);
            catalog.export(&mut w).map_err(|e| e.naming(db))?;
            w.flush()?;
        }
        None => {
            // Flushed here rather than on drop, where an error (a reader
            // that went away) would pass unseen.
            let mut w = BufWriter::new(io::stdout().lock());
            catalog.export(&mut w).map_err(|e| e.naming(db))?;
            w.flush()?;
        }
    }
    Ok(exit_codes::OK)
}

pub fn report(db: &Path, run: Option<i64>, out: &Path) -> anyhow::Result<i32> {
    if store::is_postgres(db) {
        eprintln!("docmill: `report` reads a SQLite index; the shared store has no report yet");
        return Ok(exit_codes::USAGE);
    }
    let catalog = SqliteStore::open_existing(db)?;
    match crate::metrics::report::write_report(&catalog, run, out) {
        Ok(id) => {
            eprintln!("docmill: report on run {id} written to {}", out.display());
            Ok(exit_codes::OK)
        }
        // Asking for a run that is not there is a usage error like any other.
        Err(e @ (ReportError::NoRuns | ReportError::NoSuchRun(_))) => {
            eprintln!("docmill: {e}");
            Ok(exit_codes::USAGE)
        }
        Err(e) => Err(e.into()),
    }
}

/// `docmill forget PATH…`: removes the documents at or under each path.
/// Exit 1 when nothing matched, so that a script notices a mistyped path.
pub fn forget(db: &Path, paths: &[std::path::PathBuf]) -> anyhow::Result<i32> {
    let absolute: Vec<std::path::PathBuf> = paths
        .iter()
        .map(|p| absolute(p))
        .collect::<io::Result<_>>()?;
    let mut catalog = store::open_writable(db)?;
    // Forgetting under a running index would race its commits (a document
    // forgotten here could come back with the worker's pages): a SQLite
    // index takes the same lock as `docmill index`; the shared store's rows
    // are kept apart by leases instead.
    let _lock = if catalog.shared() {
        None
    } else {
        match crate::run::lock::RunLock::acquire(db) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("docmill: {e}");
                return Ok(exit_codes::USAGE);
            }
        }
    };
    let n = catalog.forget(&absolute).map_err(|e| e.naming(db))?;
    if n == 0 {
        eprintln!("docmill: nothing in the index at or under the paths given");
        return Ok(exit_codes::SOME_FAILED);
    }
    let mut out = io::stdout().lock();
    writeln!(out, "forgot {n} document{}", if n == 1 { "" } else { "s" })?;
    out.flush()?;
    Ok(exit_codes::OK)
}

/// A path as the index keeps it: absolute, with symbolic links resolved as
/// the walk resolves the paths it is given. A path that no longer exists
/// (a deleted file) is resolved as far as it still does.
fn absolute(path: &Path) -> io::Result<std::path::PathBuf> {
    use std::path::Component;
    if let Ok(p) = path.canonicalize() {
        return Ok(p);
    }
    let mut plain = std::path::PathBuf::new();
    for c in std::path::absolute(path)?.components() {
        match c {
            Component::ParentDir => {
                plain.pop();
            }
            Component::CurDir => {}
            other => plain.push(other),
        }
    }
    let mut missing = Vec::new();
    let mut cur = plain.as_path();
    loop {
        if let Ok(mut found) = cur.canonicalize() {
            found.extend(missing.iter().rev());
            return Ok(found);
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_owned());
                cur = parent;
            }
            _ => return Ok(plain),
        }
    }
}

/// `docmill runs`: every run, oldest first, so that the latest is the line
/// beside the prompt however long the history (as `restic snapshots`).
pub fn runs(db: &Path, json: bool) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    let runs = catalog.runs().map_err(|e| e.naming(db))?;
    let mut out = io::stdout().lock();
    if json {
        for run in &runs {
            serde_json::to_writer(&mut out, run)?;
            writeln!(out)?;
        }
        out.flush()?;
        return Ok(exit_codes::OK);
    }
    if runs.is_empty() {
        eprintln!("docmill: the index has no runs yet");
        return Ok(exit_codes::OK);
    }
    let count = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    writeln!(
        out,
        "{:>4}  {:<19}  {:>8}  {:>6}  {:>6}  {:>7}  {:>4}  ROOTS",
        "RUN", "STARTED", "WALL", "DONE", "FAILED", "PAGES", "EXIT"
    )?;
    for r in &runs {
        writeln!(
            out,
            "{:>4}  {:<19}  {:>8}  {:>6}  {:>6}  {:>7}  {:>4}  {}",
            r.id,
            local_time(r.started_ms),
            r.wall_s.map_or("-".to_string(), wall_time),
            count(r.done),
            count(r.failed),
            count(r.pages),
            r.exit_code.map_or("-".to_string(), |c| c.to_string()),
            r.roots.join(" "),
        )?;
    }
    out.flush()?;
    Ok(exit_codes::OK)
}

/// A moment as the local wall clock shows it: `2025-03-01 02:00:13`.
pub(crate) fn local_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r only writes the `tm` it is given.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return ms.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A run's length: tenths of a second under a minute, whole seconds above.
fn wall_time(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
    }
}
