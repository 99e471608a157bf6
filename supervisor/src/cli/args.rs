//! The command line's shape: every subcommand and flag, their help text and
//! headings, and the parser each value goes through.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use super::values::{
    duration_at_least, exclude_glob, percent, size_at_least, worker_fds, worker_mem,
    MIN_HEARTBEAT_TIMEOUT, MIN_TIMEOUT,
};
use crate::engines;
use crate::metrics::ProgressMode;
use crate::scale::Profile;
use crate::units::parse_size;

const SCALING: &str = "Scaling";
const LIMITS: &str = "Limits";
const ENGINES: &str = "Engines";
const SCHEDULING: &str = "Scheduling";
const DISCOVERY: &str = "Discovery";
const OCR: &str = "OCR";
const OUTPUT: &str = "Output";

const EXAMPLES: &str = "\
Examples:
  docmill index ../shared/corpus            index the sample library (beside a checkout)
  docmill search trace                      best matches first: path, page, snippet
  docmill search '\"white whale\"'           a phrase
  docmill status                            counts by state, and failures with reasons
  docmill export | head -1                  JSON Lines, one page per line
  docmill index ~/Books --exclude 'drafts/' --memory-budget 2GiB

The index is $XDG_DATA_HOME/docmill/docmill.db (~/.local/share/docmill/docmill.db)
unless --db or DOCMILL_DB names another.";

const INDEX_EXAMPLES: &str = "\
Examples:
  docmill index ../shared/corpus
  docmill index ~/Books ~/Papers/x.pdf --exclude '*.epub' --exclude 'old/'
  docmill index ~/Books --profile batch --timeout 5m --worker-mem 2GiB
  docmill index ~/Books --memory-budget 4GiB --max-workers 4 -q

Sizes follow SI and IEC: 2GB and 2G are 2,000,000,000 bytes, 2GiB is
2,147,483,648. Durations take units, several in a row: 500ms, 30s, 1h30m.
Files named in a .docmillignore or .ignore file (gitignore syntax, in the
library's folders) are not indexed, nor are those matching --exclude.

Exit status: 0 when no document failed for the first time in this run (an
unchanged file that failed before stays quiet, so a cron alert clears);
1 when one did, or with --strict when any document under the paths is
failed, partly failed or quarantined; 2 for bad flags or an unusable index;
130 and 143 when stopped by SIGINT and SIGTERM.";

const FORGET_EXAMPLES: &str = "\
Examples:
  docmill forget ~/Books/drafts             everything indexed under the folder
  docmill forget old.pdf gone.epub          two files (deleted ones too)

Exits 1 when nothing in the index matched. A later `docmill index` over a
folder adds its files back unless they are left out (--exclude, .docmillignore).";

#[derive(Parser, Debug)]
#[command(
    name = "docmill",
    version,
    long_version = super::generate::long_version(),
    // A flag given twice takes its last value, so scripts can override.
    args_override_self = true,
    about = "Index a library of PDFs and EPUBs into a searchable full-text index, crash-tolerantly.",
    after_help = EXAMPLES,
)]
pub struct Cli {
    /// The index, given before the subcommand (kept for scripts written
    /// that way; the subcommands' own --db is the one to use).
    #[arg(long, hide = true, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// Colour: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE
    /// forces it), always, or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
    /// More log lines on stderr: -v shows every decision and failure, -vv
    /// debugging detail (RUST_LOG does the same, finer).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Walk paths, extract text, store it; a re-run skips unchanged files.
    #[command(after_help = INDEX_EXAMPLES)]
    Index(Box<IndexArgs>),
    /// Full-text search over the index, best matches first.
    Search(SearchArgs),
    /// Counts by state, pages, and failures with reasons.
    Status {
        #[command(flatten)]
        db: DbArg,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Every page as JSON Lines, ordered by path then page.
    Export {
        #[command(flatten)]
        db: DbArg,
        /// Accepted for symmetry: export is always JSON Lines.
        #[arg(long)]
        json: bool,
        /// Write to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// A self-contained HTML report of a run: charts and a summary.
    Report {
        #[command(flatten)]
        db: DbArg,
        /// The run to report on (default: the last one).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        run: Option<i64>,
        /// Where to write the HTML file.
        #[arg(long, short, alias = "out", value_name = "FILE")]
        output: PathBuf,
    },
    /// Remove documents from the index: files, or everything under a
    /// folder (their pages, search entries and chunks).
    #[command(after_help = FORGET_EXAMPLES)]
    Forget {
        /// Files and folders to remove; they need not exist any more.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
    /// The index runs, oldest first: when, over what, what they did, and
    /// their exit status.
    Runs {
        #[command(flatten)]
        db: DbArg,
        /// One JSON object per run, one a line.
        #[arg(long)]
        json: bool,
    },
    /// A local web page on the index: search, documents and their text,
    /// the files themselves, and the live state of an index run.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// The PDF engines installed, their versions, and the order `auto` uses;
    /// the OCR engine and its languages.
    Engines {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// A completion script for a shell, on stdout (see the README for where
    /// each shell looks for it).
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// The manual page, as roff on stdout: `docmill man | man -l -`.
    Man {
        /// A subcommand's own page (its flags), instead of docmill's.
        subcommand: Option<String>,
    },
}

/// `--db` on the subcommands that read or write an index.
#[derive(Args, Debug, Clone)]
pub struct DbArg {
    /// The index: a SQLite file, or a postgres:// URL for the store several
    /// machines share [default: $XDG_DATA_HOME/docmill/docmill.db].
    #[arg(long, env = "DOCMILL_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// Files and folders to index.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,

    /// A fixed number of worker processes (instead of --min-workers and
    /// --max-workers).
    #[arg(long, help_heading = SCALING, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64),
          conflicts_with_all = ["min_workers", "max_workers"])]
    pub workers: Option<u32>,
    /// The fewest workers the scaler keeps, 1 to 64 [default: 2].
    #[arg(long, help_heading = SCALING, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub min_workers: Option<u32>,
    /// The most workers the scaler starts, 1 to 64 [default: 12].
    #[arg(long, help_heading = SCALING, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_workers: Option<u32>,
    /// background (hold CPU near 70%), batch (use the whole machine),
    /// conservative (minimum workers, generous timeouts).
    #[arg(long, help_heading = SCALING, default_value = "background",
          value_parser = PossibleValuesParser::new(["background", "batch", "conservative"])
              .try_map(|s| Profile::parse(&s)))]
    pub profile: Profile,
    /// How often the scaler decides.
    #[arg(long, help_heading = SCALING, default_value = "5s", value_name = "DURATION",
          value_parser = duration_at_least(Duration::from_millis(100)))]
    pub scale_interval: Duration,
    /// CPU percent the scaler aims at, 1 to 100 (default from the profile).
    #[arg(long, help_heading = SCALING, value_name = "PERCENT", value_parser = percent)]
    pub target_cpu: Option<f32>,
    /// CPU percent above which it throttles by two workers at once, 1 to
    /// 100, not under the target (default from the profile).
    #[arg(long, help_heading = SCALING, value_name = "PERCENT", value_parser = percent)]
    pub critical_cpu: Option<f32>,
    /// Memory to leave available to the rest of the machine.
    #[arg(long, help_heading = SCALING, default_value = "1.5GiB", value_name = "SIZE",
          value_parser = parse_size)]
    pub min_free: u64,
    /// Cap on the whole run's memory (supervisor and workers), e.g. 2GiB.
    #[arg(long, help_heading = SCALING, value_name = "SIZE", value_parser = size_at_least(1))]
    pub memory_budget: Option<u64>,

    /// Address-space limit per worker, at least 64 MiB (default: from
    /// available memory, between 1 GiB and 4 GiB).
    #[arg(long, help_heading = LIMITS, value_name = "SIZE", value_parser = worker_mem)]
    pub worker_mem: Option<u64>,
    /// Open-file limit per worker, at least 16.
    #[arg(long, help_heading = LIMITS, default_value = "256", value_name = "N",
          value_parser = worker_fds)]
    pub worker_fds: u64,
    /// Fixed deadline per job, at least 100ms (default: 10s plus 2s per MiB
    /// and 250ms per page, doubled per retry).
    #[arg(long, help_heading = LIMITS, value_name = "DURATION",
          value_parser = duration_at_least(MIN_TIMEOUT))]
    pub timeout: Option<Duration>,
    /// End a job that finishes no page for this long, at least 100ms
    /// (default: 10s, doubled per retry); a PDF goes to the next engine.
    #[arg(long, help_heading = LIMITS, value_name = "DURATION",
          value_parser = duration_at_least(MIN_TIMEOUT))]
    pub page_timeout: Option<Duration>,
    /// Kill a worker that sends no heartbeat for this long (at least 500ms).
    #[arg(long, help_heading = LIMITS, default_value = "10s", value_name = "DURATION",
          value_parser = duration_at_least(MIN_HEARTBEAT_TIMEOUT))]
    pub heartbeat_timeout: Duration,
    /// Attempts before a crashing, hanging or over-limit document is
    /// quarantined.
    #[arg(long, help_heading = LIMITS, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// After SIGINT/SIGTERM, how long running jobs may take to finish (0s:
    /// cancel them at once).
    #[arg(long, help_heading = LIMITS, default_value = "10s", value_name = "DURATION",
          value_parser = duration_at_least(Duration::ZERO))]
    pub grace: Duration,
    /// Cap on the decompressed size of one EPUB entry.
    #[arg(long, help_heading = LIMITS, default_value = "256MiB", value_name = "SIZE",
          value_parser = size_at_least(1))]
    pub epub_entry_cap: u64,
    /// Cap on the decompressed size of a whole EPUB.
    #[arg(long, help_heading = LIMITS, default_value = "1GiB", value_name = "SIZE",
          value_parser = size_at_least(1))]
    pub epub_book_cap: u64,
    /// How long a claimed job stays ours without renewal (renewed every
    /// third of it); after that another supervisor may take it back.
    #[arg(long, default_value = "120s", hide = true,
          value_parser = duration_at_least(Duration::from_secs(1)))]
    pub lease: Duration,

    /// PDF engine: auto (fastest installed, the others as fallbacks),
    /// builtin, lopdf, mupdf, mupdf-inproc (builds with that feature) or
    /// poppler.
    #[arg(long, help_heading = ENGINES, default_value = "auto", ignore_case = true,
          value_parser = PossibleValuesParser::new(["auto", "builtin", "lopdf", "mupdf", "mupdf-inproc", "poppler"])
              .try_map(|s| engines::parse_engine_flag(&s)))]
    pub pdf_engine: engines::EngineFlag,

    /// OCR of pages without a usable text layer: auto (when tesseract is
    /// installed; else off, with a notice), off, or force (every page).
    #[arg(long, help_heading = OCR, value_enum, value_name = "MODE")]
    pub ocr: Option<crate::ocr::OcrFlag>,
    /// Tesseract languages, '+'-joined (eng, eng+deu); each must be
    /// installed (`tesseract --list-langs`).
    #[arg(long, help_heading = OCR, default_value = "eng", value_name = "LANGS",
          value_parser = crate::ocr::lang_list)]
    pub ocr_lang: String,
    /// Resolution pages are rendered at for OCR, 70 to 1200.
    #[arg(long, help_heading = OCR, default_value_t = 300, value_name = "DPI",
          value_parser = crate::ocr::dpi)]
    pub ocr_dpi: u32,
    /// Give up on one page's OCR after this long (that page alone fails);
    /// at least 1s.
    #[arg(long, help_heading = OCR, default_value = "60s", value_name = "DURATION",
          value_parser = duration_at_least(Duration::from_secs(1)))]
    pub ocr_page_timeout: Duration,

    /// The order the queue starts in.
    #[arg(long, help_heading = SCHEDULING, value_enum, default_value = "fifo")]
    pub order: crate::schedule::Order,
    /// EPUB jobs at once, at most.
    #[arg(long, help_heading = SCHEDULING, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_epubs: u32,
    /// Split a PDF with more pages than this into page-range chunk jobs.
    #[arg(long, help_heading = SCHEDULING, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub massive_pages: u32,
    /// Split a PDF at least this large into page-range chunk jobs.
    #[arg(long, help_heading = SCHEDULING, default_value = "500MiB", value_name = "SIZE",
          value_parser = size_at_least(1))]
    pub massive_bytes: u64,
    /// Most pages per chunk job (default: one chunk per worker).
    #[arg(long, help_heading = SCHEDULING, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_pages: Option<u32>,
    /// With two or more workers, split a PDF with more pages than this into
    /// one chunk per worker (at least 50 pages each), so that a long
    /// document is shared instead of finishing last, alone.
    #[arg(long, help_heading = SCHEDULING, value_name = "N", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub long_pages: u32,
    /// Never split documents (neither massive ones nor long ones).
    #[arg(long, help_heading = SCHEDULING)]
    pub no_chunking: bool,
    /// Try unchanged files that failed before once more.
    #[arg(long, help_heading = SCHEDULING)]
    pub retry_failed: bool,
    /// Give quarantined files another round of attempts.
    #[arg(long, help_heading = SCHEDULING)]
    pub retry_quarantined: bool,

    /// Leave out files and folders matching this gitignore pattern, relative
    /// to each path given (repeatable): '*.epub', 'drafts/', 'old/**/*.pdf'.
    #[arg(long, help_heading = DISCOVERY, value_name = "GLOB", value_parser = exclude_glob)]
    pub exclude: Vec<String>,
    /// Follow symbolic links (loops are detected and skipped).
    #[arg(long, help_heading = DISCOVERY)]
    pub follow_symlinks: bool,
    /// Obey .mockdoc fault-injection scripts (for tests).
    #[arg(long, hide = true)]
    pub allow_mock_docs: bool,

    /// Print only the summary at the end (no live display, no scaling
    /// lines).
    #[arg(long, short, help_heading = OUTPUT)]
    pub quiet: bool,
    /// Live display: auto (a progress display on a terminal, plain lines
    /// otherwise), plain, or off.
    #[arg(long, help_heading = OUTPUT, default_value = "auto",
          value_parser = PossibleValuesParser::new(["auto", "plain", "off"])
              .try_map(|s| s.parse::<ProgressMode>()))]
    pub progress: ProgressMode,
    /// Rewrite this JSON file every few seconds with the run's state.
    #[arg(long, help_heading = OUTPUT, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long, help_heading = OUTPUT)]
    pub json: bool,
    /// Exit 1 whenever a document under the paths is failed, partly failed
    /// or quarantined, from this run or an earlier one (by default only
    /// documents that fail for the first time in this run do).
    #[arg(long, help_heading = OUTPUT)]
    pub strict: bool,
    /// Serve the pages of `docmill serve` from this run too, on a loopback
    /// address (--serve=ADDR:PORT; 127.0.0.1:8383 when none is given); the
    /// URL is printed on stderr when the run starts.
    #[arg(long, help_heading = OUTPUT, value_name = "ADDR:PORT", num_args = 0..=1,
          require_equals = true, default_missing_value = crate::serve::DEFAULT_LISTEN)]
    pub serve: Option<std::net::SocketAddr>,
    /// How often to print a progress line.
    #[arg(long, help_heading = OUTPUT, default_value = "30s", value_name = "DURATION",
          value_parser = duration_at_least(Duration::from_millis(100)))]
    pub log_interval: Duration,
}

const SERVE_EXAMPLES: &str = "\
Examples:
  docmill serve                             http://127.0.0.1:8383/ (the first line printed)
  docmill serve --listen 127.0.0.1:0        any free port
  docmill serve --listen 0.0.0.0:8383 --allow-remote

It only reads the index, and keeps answering while `docmill index` runs on
it; /run shows that run live.";

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The address and port to listen on; port 0 takes any free one. Only
    /// a loopback address unless --allow-remote.
    #[arg(long, value_name = "ADDR:PORT", default_value = crate::serve::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Allow an address other machines can reach: anyone who reaches it can
    /// read the index and the files in it.
    #[arg(long)]
    pub allow_remote: bool,
}

#[derive(Args, Debug)]
#[command(after_long_help = crate::search::HELP)]
pub struct SearchArgs {
    /// The query: words, "phrases", prefix*, -word, OR, title:/author:/path:
    /// (see --help).
    #[arg(required = true)]
    pub query: Vec<String>,
    #[command(flatten)]
    pub db: DbArg,
    /// How many documents to show, 1 to 10000.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub limit: u64,
    /// Skip this many documents of the ranking (for paging).
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// The best pages shown per document.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub pages_per_doc: u32,
    /// Only documents whose path matches this glob (`*` any characters, `/`
    /// included; `?` one), e.g. '*/papers/*'.
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only documents of this format.
    #[arg(long, value_parser = ["pdf", "epub"])]
    pub format: Option<String>,
    /// One JSON object: totals, and documents with their hits, snippets,
    /// match offsets and links.
    #[arg(long)]
    pub json: bool,
}

impl SearchArgs {
    pub fn request(&self) -> crate::search::SearchRequest {
        crate::search::SearchRequest {
            query: self.query.join(" "),
            path: self.path.clone(),
            format: self
                .format
                .as_deref()
                .and_then(docmill_protocol::Format::parse),
            limit: self.limit as usize,
            offset: self.offset,
            pages_per_document: self.pages_per_doc as usize,
        }
    }
}
