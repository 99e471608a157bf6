//! The command line: parse, set up logging, dispatch to a command, map
//! errors to exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use docmill_protocol::{exit_codes, WORKER_SUBCOMMAND};

use crate::commands;
use crate::engines;
use crate::policy::{self, Timeouts};
use crate::run::{self, IndexOptions};
use crate::units::{parse_duration, parse_size};

#[derive(Parser, Debug)]
#[command(
    name = "docmill",
    version,
    // A flag given twice takes its last value, so scripts can override.
    args_override_self = true,
    about = "Index a library of PDFs and EPUBs into a searchable full-text index, crash-tolerantly."
)]
struct Cli {
    /// The index database (SQLite).
    #[arg(long, global = true, env = "DOCMILL_DB", default_value = "docmill.db")]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Walk paths, extract text, store it; a re-run skips unchanged files.
    Index(IndexArgs),
    /// Full-text search over the index, best matches first.
    Search(SearchArgs),
    /// Counts by state, pages, and failures with reasons.
    Status {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Every page as JSON Lines, ordered by path then page.
    Export {
        /// Accepted for symmetry: export is always JSON Lines.
        #[arg(long)]
        json: bool,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// The PDF engines installed, their versions, and the order `auto` uses.
    Engines {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct IndexArgs {
    /// Files and folders to index.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Worker processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Address-space limit per worker (e.g. 1G); default from available memory.
    #[arg(long, value_parser = parse_size)]
    worker_mem: Option<u64>,
    /// Open-file limit per worker.
    #[arg(long, default_value_t = 256)]
    worker_fds: u64,
    /// Attempts before a crashing, hanging or over-limit document is quarantined.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// Fixed deadline per job (default: 60s plus 2s per MiB, doubled per retry).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Kill a worker that sends no heartbeat for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    heartbeat_timeout: Duration,
    /// After SIGINT/SIGTERM, how long running jobs may take to finish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// PDF engine: auto (fastest installed, the others as fallbacks), builtin,
    /// mupdf, mupdf-inproc (builds with that feature) or poppler.
    #[arg(long, default_value = "auto", value_parser = engines::parse_engine_flag)]
    pdf_engine: engines::EngineFlag,
    /// Obey .mockdoc fault-injection scripts (for tests).
    #[arg(long)]
    allow_mock_docs: bool,
    /// Follow symbolic links (loops are detected and skipped).
    #[arg(long)]
    follow_symlinks: bool,
    /// Try unchanged files that failed before once more.
    #[arg(long)]
    retry_failed: bool,
    /// Give quarantined files another round of attempts.
    #[arg(long)]
    retry_quarantined: bool,
    /// Cap on the decompressed size of one EPUB entry.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    epub_entry_cap: u64,
    /// Cap on the decompressed size of a whole EPUB.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    epub_book_cap: u64,
    /// Print only the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// How often to print a progress line.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    log_interval: Duration,
}

#[derive(Args, Debug)]
struct SearchArgs {
    /// The query (FTS5 syntax: words, "phrases", OR, NOT, prefix*).
    #[arg(required = true)]
    query: Vec<String>,
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// One JSON object per hit.
    #[arg(long)]
    json: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == WORKER_SUBCOMMAND) {
        let Some(server) = args.get(2).and_then(|s| s.to_str()) else {
            eprintln!("docmill: the worker needs a server name");
            return exit_codes::USAGE;
        };
        return docmill_worker::run(server);
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_codes::USAGE
            } else {
                exit_codes::OK
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Index(a) => run::index(&index_options(a, cli.db)),
        Command::Search(a) => commands::search(&cli.db, &a.query.join(" "), a.limit, a.json),
        Command::Status { json } => commands::status(&cli.db, json),
        Command::Export { output, .. } => commands::export(&cli.db, output.as_deref()),
        Command::Engines { json } => engines::list(json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("docmill: {}", chain(e.as_ref()));
            exit_codes::USAGE
        }
    }
}

fn index_options(a: IndexArgs, db: PathBuf) -> IndexOptions {
    let worker_mem = a.worker_mem.unwrap_or_else(|| {
        let available = sysinfo::System::new()
            .map(|mut sys| {
                sys.refresh_memory();
                sys.available_memory()
            })
            .unwrap_or(4 << 30);
        policy::default_worker_mem(available, a.workers)
    });
    IndexOptions {
        roots: a.paths,
        db,
        workers: a.workers,
        worker_mem,
        worker_fds: a.worker_fds,
        max_attempts: a.max_attempts,
        timeouts: Timeouts {
            fixed: a.timeout,
            ..Timeouts::default()
        },
        heartbeat_timeout: a.heartbeat_timeout,
        grace: a.grace,
        allow_mock: a.allow_mock_docs,
        follow_symlinks: a.follow_symlinks,
        retry_failed: a.retry_failed,
        retry_quarantined: a.retry_quarantined,
        pdf_engine: a.pdf_engine,
        epub_entry_cap: a.epub_entry_cap,
        epub_book_cap: a.epub_book_cap,
        quiet: a.quiet,
        json: a.json,
        log_interval: a.log_interval,
    }
}

/// An error and its causes on one line: `a: b: c`.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
