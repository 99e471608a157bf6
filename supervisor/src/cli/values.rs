//! What each flag accepts: the parsers clap runs on every value, each with
//! its allowed range, so that a nonsensical value is refused before any
//! file or process is touched.

use std::time::Duration;

use crate::units::{format_size, parse_duration, parse_size};

/// The smallest address-space limit a worker works under. Measured with a
/// debug build (the larger binary) on a 4-page corpus PDF and a small EPUB:
/// a worker completes its handshake and extracts under 17 MiB with the
/// built-in engine, 19 MiB with Poppler and for EPUBs, and 57 MiB with
/// `mutool`, which runs as the worker's child under the same limit. Below
/// that workers die in their handshake or every document fails, so the
/// floor is the largest of these, rounded up.
pub const MIN_WORKER_MEM: u64 = 64 << 20;

/// The smallest open-file limit a worker works under. Measured the same
/// way: 8 descriptors for the built-in engine and EPUBs, 9 with `mutool`,
/// 10 with Poppler (the IPC channel, the standard streams and an engine's
/// pipes); the floor leaves room for a document that opens a few more.
pub const MIN_WORKER_FDS: u64 = 16;

/// A deadline per job shorter than this fails every document, and with
/// retries quarantines it, so later runs skip it.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Workers send a heartbeat every 250 ms; a timeout under two beats kills
/// healthy workers.
pub const MIN_HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(500);

/// A duration of at least `min`, with the range in the refusal.
pub fn duration_at_least(
    min: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let d = parse_duration(s)?;
        if d < min {
            return Err(format!(
                "must be at least {} (a duration such as 500ms, 30s or 1h30m)",
                crate::units::format_duration(min)
            ));
        }
        Ok(d)
    }
}

/// A size of at least `min` bytes.
pub fn size_at_least(
    min: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |s| {
        let b = parse_size(s)?;
        if b < min {
            return Err(if min == 1 {
                "must be more than 0 (a size such as 512MiB or 2GB)".to_string()
            } else {
                format!(
                    "must be at least {} (a size such as 512MiB or 2GB)",
                    format_size(min)
                )
            });
        }
        Ok(b)
    }
}

/// `--worker-mem`: at least the measured floor.
pub fn worker_mem(s: &str) -> Result<u64, String> {
    let b = parse_size(s)?;
    if b < MIN_WORKER_MEM {
        return Err(format!(
            "must be at least {}: the least address space under which a worker starts and extracts a small PDF with every engine",
            format_size(MIN_WORKER_MEM)
        ));
    }
    Ok(b)
}

/// `--worker-fds`: between the measured floor and the most this process may
/// grant (its own hard limit), since a worker cannot be given more.
pub fn worker_fds(s: &str) -> Result<u64, String> {
    let most = fd_hard_limit();
    let range = || format!("must be between {MIN_WORKER_FDS} and {most}");
    let n: u64 = s.trim().parse().map_err(|_| range())?;
    if n < MIN_WORKER_FDS {
        return Err(format!(
            "{} (a worker needs {MIN_WORKER_FDS} open files to start and extract a small PDF)",
            range()
        ));
    }
    if n > most {
        return Err(format!("{} (the hard limit of open files here)", range()));
    }
    Ok(n)
}

fn fd_hard_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(u64::MAX)
}

/// A share of the whole machine's CPU, in percent.
pub fn percent(s: &str) -> Result<f32, String> {
    let range = "must be a percentage of the whole machine's CPU, between 1 and 100";
    let v: f32 = s.trim().trim_end_matches('%').parse().map_err(|_| range)?;
    if !(1.0..=100.0).contains(&v) {
        return Err(range.to_string());
    }
    Ok(v)
}

/// `--exclude`: one gitignore pattern, checked here so that a bad glob is a
/// usage error before anything runs.
pub fn exclude_glob(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("must be a glob pattern, such as '*.epub' or 'drafts/'".to_string());
    }
    let mut b = ignore::gitignore::GitignoreBuilder::new("/");
    b.add_line(None, s).map_err(|e| e.to_string())?;
    b.build().map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_floors() {
        let timeout = duration_at_least(MIN_TIMEOUT);
        assert_eq!(timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(timeout("100ms"), Ok(MIN_TIMEOUT));
        let e = timeout("0s").unwrap_err();
        assert!(e.contains("at least 100ms"), "{e}");
        assert!(timeout("0").is_err());
        assert!(timeout("later").is_err());
    }

    #[test]
    fn sizes_have_floors() {
        let nonzero = size_at_least(1);
        assert_eq!(nonzero("2GiB"), Ok(2 << 30));
        assert!(nonzero("0").unwrap_err().contains("more than 0"));
        assert!(worker_mem("1K").unwrap_err().contains("64.0 MiB"));
        assert_eq!(worker_mem("64MiB"), Ok(MIN_WORKER_MEM));
        assert_eq!(worker_mem("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn descriptor_and_percent_ranges() {
        assert!(worker_fds("0").unwrap_err().contains("between 16 and"));
        assert!(worker_fds("many").is_err());
        assert_eq!(worker_fds("64"), Ok(64));
        assert_eq!(percent("70"), Ok(70.0));
        assert_eq!(percent("85%"), Ok(85.0));
        for bad in ["0", "500", "-5", "NaN", "lots"] {
            assert!(percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exclude_globs_are_checked() {
        assert!(exclude_glob("*.epub").is_ok());
        assert!(exclude_glob("drafts/").is_ok());
        assert!(exclude_glob("a/**/b").is_ok());
        assert!(exclude_glob("[z-a]").is_err());
        assert!(exclude_glob(" ").is_err());
    }
}
