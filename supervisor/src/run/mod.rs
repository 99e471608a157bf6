//! `docmill index`: discover, then drive the worker pool until every
//! pending document has ended, committing finished jobs in batches.

mod action;
mod driver;
mod event;
pub(crate) mod lock;
mod scratch;
mod state;
mod store_thread;
mod summary;
mod totals;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use docmill_protocol::exit_codes;
use serde::Serialize;

use crate::engines::{self, EngineFlag};
use crate::metrics::ProgressMode;
use crate::policy::Timeouts;
use crate::scale::{ScalePolicy, SystemSampler};
use crate::signals::Signals;
use crate::store::{self, Store};
use crate::store::{QueuedDoc, RetryPolicy};
use crate::walk::{self, WalkOptions};
use summary::{CpuSeconds, Failures, Summary};

pub(crate) use lock::held as lock_held;
use state::{RunConfig, State};
pub use totals::Totals;

/// Everything `docmill index` was told.
#[derive(Clone, Debug, Serialize)]
pub struct IndexOptions {
    pub roots: Vec<PathBuf>,
    #[serde(serialize_with = "redacted_db")]
    pub db: PathBuf,
    pub scale: ScalePolicy,
    pub scale_interval: Duration,
    /// Address-space limit per worker; 0 means none.
    pub worker_mem: u64,
    pub worker_fds: u64,
    pub max_attempts: u32,
    #[serde(skip)]
    pub timeouts: Timeouts,
    pub heartbeat_timeout: Duration,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    pub grace: Duration,
    pub allow_mock: bool,
    pub follow_symlinks: bool,
    /// `--exclude` patterns (gitignore syntax), applied by the walk.
    pub exclude: Vec<String>,
    pub retry_failed: bool,
    pub retry_quarantined: bool,
    /// Exit 1 whenever a document under the roots is failed, partial or
    /// quarantined, not only when one is newly so.
    pub strict: bool,
    #[serde(skip)]
    pub pdf_engine: EngineFlag,
    /// The PDF engines found on this machine when the options were read.
    #[serde(skip)]
    pub engines: Vec<crate::engines::DetectedEngine>,
    /// EPUB jobs at once, at most (they hold many descriptors).
    pub max_epubs: u32,
    /// Which documents are split into page-range chunk jobs.
    pub chunking: crate::schedule::Chunking,
    /// The order the queue starts in.
    pub order: crate::schedule::Order,
    pub epub_entry_cap: u64,
    pub epub_book_cap: u64,
    /// What the run does about pages without a text layer.
    pub ocr: crate::ocr::RunOcr,
    /// Said once at the start when OCR is off for want of an engine.
    #[serde(skip)]
    pub ocr_notice: Option<String>,
    pub quiet: bool,
    /// A JSON file rewritten atomically every few seconds, for dashboards.
    pub stats_file: Option<PathBuf>,
    #[serde(skip)]
    pub progress: ProgressMode,
    pub json: bool,
    pub log_interval: Duration,
    /// Serve `docmill serve`'s pages from this run, on this address.
    #[serde(skip)]
    pub serve: Option<std::net::SocketAddr>,
}

/// Runs an index and returns the process exit code.
pub fn index(opts: &IndexOptions) -> anyhow::Result<i32> {
    let started = Instant::now();
    let signals = Signals::install()?;
    let roots = match walk::normalize_roots(&opts.roots) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("docmill: {e}");
            return Ok(exit_codes::USAGE);
        }
    };
    let engine_order = match engines::resolve(opts.pdf_engine, &opts.engines) {
        Ok(order) => order,
        Err(e) => {
            eprintln!("docmill: {e}");
            return Ok(exit_codes::USAGE);
        }
    };
    let mut catalog: Box<dyn Store> = match store::open(&opts.db) {
        Ok(c) => c,
        Err(e) if e.is_setup() => {
            eprintln!("docmill: {}", crate::cli::chain(&e));
            return Ok(exit_codes::USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    // A SQLite file takes one run at a time; the shared store takes many,
    // kept apart by their leases.
    let _lock = if catalog.shared() {
        None
    } else {
        match lock::RunLock::acquire(&opts.db) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("docmill: {e}");
                return Ok(exit_codes::USAGE);
            }
        }
    };
    if let Some(listen) = opts.serve {
        // The page reads the database as `docmill serve` does, from a
        // thread of its own that ends with the run.
        match crate::serve::spawn(opts.db.clone(), listen, false) {
            Ok(url) => eprintln!("docmill serve: {url}"),
            Err(e) => {
                eprintln!("docmill: cannot serve the run's page: {e}");
                return Ok(exit_codes::USAGE);
            }
        }
    }
    // Removed when the run ends, whatever the workers left in it.
    let scratch = scratch::create()?;
    let owner = format!("{}:{}", hostname(), std::process::id());
    // The run records its roots as absolute paths, so that `runs` and the
    // report name the library the same way wherever they are run from.
    let recorded = IndexOptions {
        roots: roots.clone(),
        ..opts.clone()
    };
    let run = catalog.begin_run(&owner, &serde_json::to_string(&recorded)?)?;
    // Read before discovery, which may requeue or relabel them: the run's
    // new failures are those not in this set.
    let failed_before: HashSet<i64> = catalog
        .failures(None)?
        .into_iter()
        .map(|(doc, _)| doc)
        .collect();
    let recovered = catalog.recover_interrupted()?;
    if recovered > 0 {
        tracing::info!("{recovered} jobs interrupted by an earlier run go back to the queue");
    }

    let retry = RetryPolicy {
        failed: opts.retry_failed,
        quarantined: opts.retry_quarantined,
    };
    let walk_opts = WalkOptions {
        follow_symlinks: opts.follow_symlinks,
        allow_mock: opts.allow_mock,
        exclude: opts.exclude.clone(),
    };
    let mut batch = Vec::with_capacity(512);
    let mut discovered = crate::store::DiscoverCounts::default();
    let mut upsert_err = None;
    walk::walk(&roots, &walk_opts, |found| {
        batch.push(found);
        if batch.len() == 512 && upsert_err.is_none() {
            match catalog.upsert_found(&batch, run, retry) {
                Ok(c) => add(&mut discovered, c),
                Err(e) => upsert_err = Some(e),
            }
            batch.clear();
        }
    });
    if let Some(e) = upsert_err {
        return Err(e.into());
    }
    add(&mut discovered, catalog.upsert_found(&batch, run, retry)?);
    discovered.removed = catalog.remove_missing(&roots, run)?;

    let mut queue = catalog.pending()?;
    scheduling_hints(opts, &mut queue);
    let queue = crate::schedule::order(queue, opts.order);
    if !opts.quiet {
        eprintln!(
            "docmill: {} new, {} changed, {} unchanged, {} to retry, {} removed; {} to extract with {}..{} workers, profile {}",
            discovered.new,
            discovered.changed,
            discovered.unchanged,
            discovered.requeued,
            discovered.removed,
            queue.len(),
            opts.scale.min,
            opts.scale.max,
            opts.scale.profile.as_str()
        );
    }
    if let Some(notice) = &opts.ocr_notice {
        if !opts.quiet {
            eprintln!("docmill: {notice}");
        }
    }
    let cfg = RunConfig {
        run,
        engines: engine_order,
        max_attempts: opts.max_attempts,
        timeouts: opts.timeouts,
        heartbeat_timeout: opts.heartbeat_timeout,
        lease: opts.lease,
        grace: opts.grace,
        scale: opts.scale.clone(),
        scale_interval: opts.scale_interval,
        max_epubs: opts.max_epubs,
        chunking: opts.chunking.clone(),
        mem_limit: opts.worker_mem,
        allow_mock: opts.allow_mock,
        epub_entry_cap: opts.epub_entry_cap,
        epub_book_cap: opts.epub_book_cap,
        ocr: opts.ocr.clone(),
        chunks: catalog.chunks(),
        ocr_jobs: catalog.ocr_jobs(),
        shared: catalog.shared(),
    };
    let mut driver = driver::Driver::new(
        opts,
        catalog.as_mut(),
        run,
        owner,
        signals.clone(),
        scratch.path().to_path_buf(),
        SystemSampler::new(),
    )?;
    let target = driver.initial_workers();
    let state = State::new(cfg, queue, target, Instant::now(), store::now_ms());
    let totals = driver.run(state)?;

    let failures = Failures::count(&failed_before, &catalog.failures(Some(run))?);
    let code = summary::exit_code(signals.requested(), &failures, opts.strict);
    let summary = Summary {
        run,
        discovered,
        totals: &totals,
        failed_documents: failures.total(),
        failures,
        strict: opts.strict,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: CpuSeconds::now(),
        exit_code: code,
    };
    catalog.end_run(run, &serde_json::to_string(&summary)?, code)?;
    if opts.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    // --quiet leaves out everything but this summary.
    summary.print();
    Ok(code)
}

/// A mock document may ask to be scheduled as another kind or size.
fn scheduling_hints(opts: &IndexOptions, queue: &mut [QueuedDoc]) {
    if !opts.allow_mock {
        return;
    }
    for doc in queue
        .iter_mut()
        .filter(|d| d.format == docmill_protocol::Format::Mock && d.chunk.is_none())
    {
        if let Ok(script) = docmill_worker::mockdoc::read(&doc.path) {
            doc.sched_format = script.kind();
            doc.sched_size = script.bytes().unwrap_or(doc.size);
        }
    }
}

fn redacted_db<S: serde::Serializer>(db: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&store::redacted(db))
}

fn add(total: &mut crate::store::DiscoverCounts, c: crate::store::DiscoverCounts) {
    total.new += c.new;
    total.changed += c.changed;
    total.unchanged += c.unchanged;
    total.requeued += c.requeued;
    total.removed += c.removed;
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}
