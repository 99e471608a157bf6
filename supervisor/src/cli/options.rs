//! From `docmill index`'s flags to the run's options: defaults that depend
//! on the machine or on other flags, and the checks that span several
//! flags (each value alone was checked by its parser).

use std::path::PathBuf;

use super::args::IndexArgs;
use super::values::MIN_WORKER_MEM;
use crate::policy::{self, Timeouts};
use crate::run::IndexOptions;
use crate::scale::{self, Profile, ScalePolicy};
use crate::units::format_size;

const DEFAULT_MIN_WORKERS: u32 = 2;
const DEFAULT_MAX_WORKERS: u32 = 12;

/// The run's options, or a one-line reason the flags do not fit together.
pub fn index_options(a: IndexArgs, db: PathBuf) -> Result<IndexOptions, String> {
    let (min, max) = worker_bounds(a.workers, a.min_workers, a.max_workers)?;
    let (target_cpu, critical_cpu) = cpu_thresholds(a.profile, a.target_cpu, a.critical_cpu)?;
    check_budget(a.memory_budget, a.worker_mem, min)?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    let planned = cores.clamp(min, max);
    let worker_mem = a.worker_mem.unwrap_or_else(|| match a.memory_budget {
        // Within a budget, the planned workers' limits together fit it.
        Some(budget) => (budget.saturating_sub(scale::policy::SUPERVISOR_RESERVE)
            / u64::from(planned))
        .max(MIN_WORKER_MEM),
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
    let scale = ScalePolicy {
        profile: a.profile,
        min,
        max,
        target_cpu,
        critical_cpu,
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
        timeouts.per_page *= 2;
        timeouts.page *= 2;
    }
    if let Some(page) = a.page_timeout {
        timeouts.page = page;
    }
    // Only a run that may recognise asks tesseract what it has; the PDF
    // engines are asked at the same time (see `engines::detect`).
    let flag = a.ocr.unwrap_or(crate::ocr::OcrFlag::Auto);
    let (engine, engines) = std::thread::scope(|s| {
        let engines = s.spawn(crate::engines::detect);
        let engine = if flag == crate::ocr::OcrFlag::Off {
            crate::ocr::OcrEngine::none()
        } else {
            crate::ocr::detect()
        };
        (engine, engines.join().expect("engine probe panicked"))
    });
    let (ocr, ocr_notice) =
        crate::ocr::resolve(flag, &a.ocr_lang, a.ocr_dpi, a.ocr_page_timeout, &engine)?;
    Ok(IndexOptions {
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
        exclude: a.exclude,
        retry_failed: a.retry_failed,
        retry_quarantined: a.retry_quarantined,
        strict: a.strict,
        pdf_engine: a.pdf_engine,
        engines,
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
        ocr,
        ocr_notice,
        quiet: a.quiet,
        stats_file: a.stats,
        progress: a.progress,
        json: a.json,
        log_interval: a.log_interval,
        serve: a.serve,
    })
}

/// `--workers N` fixes the count. Otherwise a bound given alone moves the
/// other default out of its way (`--max-workers 1` means one worker), and
/// two given together must be in order.
fn worker_bounds(
    fixed: Option<u32>,
    min: Option<u32>,
    max: Option<u32>,
) -> Result<(u32, u32), String> {
    match (fixed, min, max) {
        (Some(n), _, _) => Ok((n, n)),
        (None, Some(lo), Some(hi)) if lo > hi => Err(format!(
            "--min-workers {lo} is more than --max-workers {hi}: the fewest workers cannot exceed the most"
        )),
        (None, Some(lo), Some(hi)) => Ok((lo, hi)),
        (None, Some(lo), None) => Ok((lo, DEFAULT_MAX_WORKERS.max(lo))),
        (None, None, Some(hi)) => Ok((DEFAULT_MIN_WORKERS.min(hi), hi)),
        (None, None, None) => Ok((DEFAULT_MIN_WORKERS, DEFAULT_MAX_WORKERS)),
    }
}

/// The profile's thresholds, overridden by the flags; throttling hard must
/// not start below the level the scaler aims at.
fn cpu_thresholds(
    profile: Profile,
    target: Option<f32>,
    critical: Option<f32>,
) -> Result<(f32, f32), String> {
    let (default_target, default_critical) = profile.cpu_thresholds();
    let t = target.unwrap_or(default_target);
    let c = critical.unwrap_or(default_critical);
    if c < t {
        let whence = |given: bool| {
            if given {
                String::new()
            } else {
                format!(" (the {} profile's)", profile_name(profile))
            }
        };
        return Err(format!(
            "--critical-cpu {c}{} is under --target-cpu {t}{}: the critical level must be at least the target",
            whence(critical.is_some()),
            whence(target.is_some()),
        ));
    }
    Ok((t, c))
}

fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Background => "background",
        Profile::Batch => "batch",
        Profile::Conservative => "conservative",
    }
}

/// A budget must hold the supervisor and the fewest workers the run keeps,
/// each at its limit (the given one, or the smallest that works).
fn check_budget(budget: Option<u64>, worker_mem: Option<u64>, min: u32) -> Result<(), String> {
    let Some(budget) = budget else {
        return Ok(());
    };
    let each = worker_mem.unwrap_or(MIN_WORKER_MEM);
    let need = scale::policy::SUPERVISOR_RESERVE + u64::from(min) * each;
    if budget < need {
        let limit = if worker_mem.is_some() {
            "--worker-mem"
        } else {
            "the smallest worker limit"
        };
        return Err(format!(
            "--memory-budget {} is too small: the supervisor ({}) and {min} worker(s) at {} each ({limit}) need at least {}",
            format_size(budget),
            format_size(scale::policy::SUPERVISOR_RESERVE),
            format_size(each),
            format_size(need),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_bounds_table() {
        let ok = |f, lo, hi| worker_bounds(f, lo, hi).unwrap();
        assert_eq!(ok(None, None, None), (2, 12));
        assert_eq!(ok(Some(3), None, None), (3, 3));
        assert_eq!(ok(None, Some(4), None), (4, 12));
        assert_eq!(ok(None, Some(20), None), (20, 20));
        assert_eq!(ok(None, None, Some(1)), (1, 1));
        assert_eq!(ok(None, Some(2), Some(2)), (2, 2));
        let e = worker_bounds(None, Some(8), Some(2)).unwrap_err();
        assert!(
            e.contains("--min-workers 8 is more than --max-workers 2"),
            "{e}"
        );
    }

    #[test]
    fn cpu_thresholds_table() {
        assert_eq!(
            cpu_thresholds(Profile::Background, None, None),
            Ok((70.0, 85.0))
        );
        assert_eq!(
            cpu_thresholds(Profile::Background, Some(90.0), Some(95.0)),
            Ok((90.0, 95.0))
        );
        let e = cpu_thresholds(Profile::Background, Some(95.0), None).unwrap_err();
        assert!(e.contains("background profile"), "{e}");
        assert!(cpu_thresholds(Profile::Batch, Some(60.0), Some(50.0)).is_err());
    }

    #[test]
    fn budget_holds_the_fewest_workers() {
        assert!(check_budget(None, None, 12).is_ok());
        assert!(check_budget(Some(2 << 30), None, 2).is_ok());
        let e = check_budget(Some(1000), None, 2).unwrap_err();
        assert!(e.contains("need at least 256.0 MiB"), "{e}");
        assert!(check_budget(Some(1 << 30), Some(1 << 30), 2).is_err());
        assert!(check_budget(Some(3 << 30), Some(1 << 30), 2).is_ok());
    }
}
