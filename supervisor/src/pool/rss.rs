//! Resident memory of a worker, for the watchdog that backs the
//! address-space limit (and replaces it on macOS, which does not enforce
//! RLIMIT_AS).

/// Resident set size of `pid` in bytes, if it can be read.
#[cfg(target_os = "linux")]
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(4096) as u64)
}

#[cfg(not(target_os = "linux"))]
pub fn rss_bytes(pid: u32) -> Option<u64> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let mut sys = System::new().ok()?;
    let pid = Pid::from_u32(pid);
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(pid).map(|p| p.memory())
}

/// A worker and the engine processes it started (its direct children).
#[cfg(target_os = "linux")]
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        out.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out
}

#[cfg(not(target_os = "linux"))]
pub fn process_tree(pid: u32) -> Vec<u32> {
    vec![pid]
}

/// Open descriptors of `pid`, where the system shows them.
#[cfg(target_os = "linux")]
pub fn open_fds(pid: u32) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count() as u64)
}

#[cfg(not(target_os = "linux"))]
pub fn open_fds(_pid: u32) -> Option<u64> {
    None
}

/// CPU time of `pid` in clock ticks, its waited-for children included
/// (utime + stime + cutime + cstime from /proc/PID/stat).
#[cfg(target_os = "linux")]
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14 → index 11.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(get(11)? + get(12)? + get(13)? + get(14)?)
}

/// Resident memory of a worker and the engine processes it started.
pub fn tree_rss(pid: u32) -> u64 {
    process_tree(pid).iter().filter_map(|p| rss_bytes(*p)).sum()
}
