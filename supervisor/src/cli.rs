//! The command line: parse, set up logging, dispatch to a command, map
//! errors to exit codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use docmill_protocol::{exit_codes, WORKER_SUBCOMMAND};

use crate::commands;
use crate::engines;
use crate::metrics::ProgressMode;
use crate::policy::{self, Timeouts};
use crate::run::{self, IndexOptions};
use crate::scale::{self, Profile, ScalePolicy};
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
    /// The index database: a SQLite file, or a `postgres://` URL for the
    /// store several machines share.
    #[arg(long, global = true, env = "DOCMILL_DB", default_value = "docmill.db")]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Walk paths, extract text, store it; a re-run skips unchanged files.
    Index(Box<IndexArgs>),
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
    /// A self-contained HTML report of a run: charts and a summary.
    Report {
        /// The run to report on (default: the last one).
        #[arg(long)]
        run: Option<i64>,
        /// Where to write the HTML file.
        #[arg(long, short)]
        out: PathBuf,
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
    /// A fixed number of worker processes (shorthand for equal
    /// --min-workers and --max-workers).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: Option<u32>,
    /// The fewest workers the scaler keeps.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    min_workers: u32,
    /// The most workers the scaler starts.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=64))]
    max_workers: u32,
    /// background (default: hold CPU near 70%), batch (use the whole machine),
    /// conservative (minimum workers, generous timeouts).
    #[arg(long, default_value = "background", value_parser = Profile::parse)]
    profile: Profile,
    /// How often the scaler decides.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    scale_interval: Duration,
    /// CPU percent the scaler aims at (default from the profile).
    #[arg(long)]
    target_cpu: Option<f32>,
    /// CPU percent above which it throttles by two workers at once.
    #[arg(long)]
    critical_cpu: Option<f32>,
    /// Memory to leave available to the rest of the machine.
    #[arg(long, default_value = "1.5G", value_parser = parse_size)]
    min_free: u64,
    /// Cap on the whole run's memory (supervisor and workers), e.g. 2G.
    #[arg(long, value_parser = parse_size)]
    memory_budget: Option<u64>,
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
    /// How long a claimed job stays ours without renewal (renewed every
    /// third of it); after that another supervisor may take it back.
    #[arg(long, default_value = "120s", value_parser = parse_duration, hide = true)]
    lease: Duration,
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
    /// EPUB jobs at once, at most.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    max_epubs: u32,
    /// Split a PDF with more pages than this into page-range chunk jobs.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    massive_pages: u32,
    /// Split a PDF at least this large into page-range chunk jobs.
    #[arg(long, default_value = "500M", value_parser = parse_size)]
    massive_bytes: u64,
    /// Pages per chunk job of a massive PDF.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    chunk_pages: u32,
    /// With two or more workers, split a PDF with more pages than this into
    /// one chunk per worker (at least 50 pages each), so that a long
    /// document is shared instead of finishing last, alone.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    long_pages: u32,
    /// Never split documents (neither massive ones nor long ones).
    #[arg(long)]
    no_chunking: bool,
    /// The order the queue starts in: fifo (path order), largest (first)
    /// or mix (6 small, 3 medium, 1 large per round of ten).
    #[arg(long, value_enum, default_value = "fifo")]
    order: crate::schedule::Order,
    /// Cap on the decompressed size of one EPUB entry.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    epub_entry_cap: u64,
    /// Cap on the decompressed size of a whole EPUB.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    epub_book_cap: u64,
    /// Print only the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Live display: auto (a progress display on a terminal, plain lines
    /// otherwise), plain, or off.
    #[arg(long, default_value = "auto")]
    progress: ProgressMode,
    /// Rewrite this JSON file every few seconds with the run's state.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// How often to print a progress line.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    log_interval: Duration,
}

#[derive(Args, Debug)]
#[command(after_long_help = crate::search::HELP)]
struct SearchArgs {
    /// The query: words, "phrases", prefix*, -word, OR, title:/author:/path:
    /// (see --help).
    #[arg(required = true)]
    query: Vec<String>,
    /// How many documents to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Skip this many documents of the ranking (for paging).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// The best pages shown per document.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pages_per_doc: u32,
    /// Only documents whose path matches this glob (`*` any characters, `/`
    /// included; `?` one), e.g. '*/papers/*'.
    #[arg(long, value_name = "GLOB")]
    path: Option<String>,
    /// Only documents of this format.
    #[arg(long, value_parser = ["pdf", "epub"])]
    format: Option<String>,
    /// One JSON object: totals, and documents with their hits, snippets,
    /// match offsets and links.
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    fn request(&self) -> crate::search::SearchRequest {
        crate::search::SearchRequest {
            query: self.query.join(" "),
            path: self.path.clone(),
            format: self
                .format
                .as_deref()
                .and_then(docmill_protocol::Format::parse),
            limit: self.limit,
            offset: self.offset,
            pages_per_document: self.pages_per_doc as usize,
        }
    }
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
        Command::Index(a) => run::index(&index_options(*a, cli.db)),
        Command::Search(a) => commands::search(&cli.db, &a.request(), a.json),
        Command::Status { json } => commands::status(&cli.db, json),
        Command::Export { output, .. } => commands::export(&cli.db, output.as_deref()),
        Command::Report { run, out } => commands::report(&cli.db, run, &out),
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
    let (min, max) = match a.workers {
        Some(n) => (n, n),
        None => (a.min_workers, a.max_workers.max(a.min_workers)),
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let planned = cores.clamp(min, max);
    let worker_mem = a.worker_mem.unwrap_or_else(|| match a.memory_budget {
        // Within a budget, the planned workers' limits together fit it.
        Some(budget) => (budget.saturating_sub(scale::policy::SUPERVISOR_RESERVE)
            / u64::from(planned))
        .max(256 << 20),
        None => {
            let available = sysinfo::System::new()
                .map(|mut sys| {
                    sys.refresh_memory();
                    sys.available_memory()
                })
                .unwrap_or(4 << 30);
            policy::default_worker_mem(available, planned)
        }
    });
    let (target, critical) = a.profile.cpu_thresholds();
    let scale = ScalePolicy {
        profile: a.profile,
        min,
        max,
        target_cpu: a.target_cpu.unwrap_or(target),
        critical_cpu: a.critical_cpu.unwrap_or(critical),
        min_free: a.min_free,
        budget: a.memory_budget,
        worker_limit: worker_mem,
        cooldown_ms: (a.scale_interval.as_millis() as i64) * 2,
        hysteresis: 2,
        error_rate: 0.3,
    };
    let mut timeouts = Timeouts {
        fixed: a.timeout,
        ..Timeouts::default()
    };
    if a.profile == Profile::Conservative {
        timeouts.base *= 2;
        timeouts.per_mib *= 2;
    }
    IndexOptions {
        roots: a.paths,
        db,
        scale,
        scale_interval: a.scale_interval,
        worker_mem,
        worker_fds: a.worker_fds,
        max_attempts: a.max_attempts,
        timeouts,
        heartbeat_timeout: a.heartbeat_timeout,
        lease: a.lease,
        grace: a.grace,
        allow_mock: a.allow_mock_docs,
        follow_symlinks: a.follow_symlinks,
        retry_failed: a.retry_failed,
        retry_quarantined: a.retry_quarantined,
        pdf_engine: a.pdf_engine,
        max_epubs: a.max_epubs,
        chunking: crate::schedule::Chunking {
            enabled: !a.no_chunking,
            massive_pages: a.massive_pages,
            massive_bytes: a.massive_bytes,
            chunk_pages: a.chunk_pages,
            long_pages: a.long_pages,
        },
        order: a.order,
        epub_entry_cap: a.epub_entry_cap,
        epub_book_cap: a.epub_book_cap,
        quiet: a.quiet,
        stats_file: a.stats,
        progress: a.progress,
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
