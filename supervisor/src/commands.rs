//! The reading commands: search, status, export, report.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use docmill_protocol::exit_codes;

use crate::metrics::report::ReportError;
use crate::store;
use crate::store::{SqliteStore, HIT_END, HIT_START};

/// How search marks the matched words in a snippet.
pub enum Highlight {
    /// This style where colour is on.
    Style(anstyle::Style),
    /// `[word]` where it is off, so that hits still stand out in a pipe.
    Brackets,
}

pub fn search(
    db: &Path,
    query: &str,
    limit: usize,
    json: bool,
    highlight: Highlight,
) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    let hits = catalog.search(query, limit)?;
    let (on, off) = match highlight {
        Highlight::Style(style) => (style.render().to_string(), style.render_reset().to_string()),
        Highlight::Brackets => ("[".to_string(), "]".to_string()),
    };
    let mut out = io::stdout().lock();
    for hit in &hits {
        if json {
            let mut plain = hit.clone();
            plain.snippet = plain.snippet.replace(HIT_START, "[").replace(HIT_END, "]");
            serde_json::to_writer(&mut out, &plain)?;
            writeln!(out)?;
        } else {
            let snippet = hit.snippet.replace(HIT_START, &on).replace(HIT_END, &off);
            writeln!(
                out,
                "{}:{}  ({:.2})\n    {}",
                hit.path, hit.page, hit.score, snippet
            )?;
        }
    }
    out.flush()?;
    if hits.is_empty() && !json {
        eprintln!("docmill: no matches for {query:?}");
    }
    Ok(exit_codes::OK)
}

pub fn status(db: &Path, json: bool) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    let status = catalog.status()?;
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
    if !status.low_quality.is_empty() {
        writeln!(out, "\nIndexed with pages of low quality:")?;
        for d in &status.low_quality {
            writeln!(out, "  {}: {} of its pages", d.path, d.pages)?;
        }
    }
    out.flush()?;
    Ok(exit_codes::OK)
}

pub fn export(db: &Path, output: Option<&Path>) -> anyhow::Result<i32> {
    let mut catalog = store::open_existing(db)?;
    match output {
        Some(path) => {
            let mut w = BufWriter::new(File::create(path)?);
            catalog.export(&mut w)?;
            w.flush()?;
        }
        None => {
            // Flushed here rather than on drop, where an error (a reader
            // that went away) would pass unseen.
            let mut w = BufWriter::new(io::stdout().lock());
            catalog.export(&mut w)?;
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
