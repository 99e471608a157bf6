//! Readings of the machine and of the run's own process tree, behind a
//! trait so tests of the policy can script them and the driver can use the
//! real thing.

use std::collections::HashMap;
use std::time::Instant;

use sysinfo::System;
#[cfg(not(target_os = "linux"))]
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate};

use super::Readings;
use crate::pool;

/// Fills the machine-level fields of [`Readings`]; the driver adds what it
/// knows itself (queue, idle workers, recent failures).
pub trait Sampler {
    /// `workers`: the pids of the live workers.
    fn sample(&mut self, workers: &[u32], worker_fd_limit: u64) -> Readings;
    /// The machine's cores, for the initial worker count.
    fn cores(&self) -> u32;
    /// Whole-machine CPU percent and available memory, right now.
    fn machine(&mut self) -> (f32, u64);
}

pub struct SystemSampler {
    sys: Option<System>,
    cores: u32,
    own: u32,
    /// CPU ticks per process at the last sample, for the run's own share.
    #[cfg_attr(
        not(target_os = "linux"),
        expect(dead_code, reason = "read from /proc on Linux only")
    )]
    ticks: HashMap<u32, u64>,
    #[cfg_attr(
        not(target_os = "linux"),
        expect(dead_code, reason = "read from /proc on Linux only")
    )]
    last: Instant,
}

impl SystemSampler {
    pub fn new() -> SystemSampler {
        let mut sys = System::new().ok();
        if let Some(s) = sys.as_mut() {
            // CPU use is a difference between two refreshes: take the first.
            s.refresh_cpu_usage();
            s.refresh_memory();
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        SystemSampler {
            sys,
            cores,
            own: std::process::id(),
            ticks: HashMap::new(),
            last: Instant::now(),
        }
    }

    pub fn cores(&self) -> u32 {
        self.cores
    }

    /// Whole-machine CPU percent and available memory, right now.
    pub fn machine(&mut self) -> (f32, u64) {
        match self.sys.as_mut() {
            Some(s) => {
                s.refresh_cpu_usage();
                s.refresh_memory();
                (s.global_cpu_usage(), s.available_memory())
            }
            None => (0.0, 0),
        }
    }
}

impl SystemSampler {
    /// The run's own CPU share of the machine since the last sample. On
    /// Linux it counts each process's CPU time including the children it
    /// waited for, so short-lived engine processes (a mutool per document)
    /// are not missed between samples.
    #[cfg(target_os = "linux")]
    fn own_cpu(&mut self, workers: &[u32], _tree: &[u32]) -> f32 {
        let elapsed = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut used = 0u64;
        let mut seen = HashMap::new();
        for pid in std::iter::once(self.own).chain(workers.iter().copied()) {
            if let Some(t) = pool::cpu_ticks(pid) {
                // A process first seen now started after the last sample
                // (the supervisor excepted): all its time is recent.
                let before =
                    self.ticks
                        .get(&pid)
                        .copied()
                        .unwrap_or(if pid == self.own { t } else { 0 });
                used += t.saturating_sub(before);
                seen.insert(pid, t);
            }
        }
        self.ticks = seen;
        if elapsed <= 0.0 {
            return 0.0;
        }
        ((used as f64 / hz) / (elapsed * f64::from(self.cores.max(1))) * 100.0).min(100.0) as f32
    }

    #[cfg(not(target_os = "linux"))]
    fn own_cpu(&mut self, _workers: &[u32], tree: &[u32]) -> f32 {
        let Some(s) = self.sys.as_mut() else {
            return 0.0;
        };
        let pids: Vec<Pid> = tree.iter().map(|p| Pid::from_u32(*p)).collect();
        s.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu(),
        );
        let per_core: f32 = pids
            .iter()
            .filter_map(|p| s.process(*p))
            .map(|p| p.cpu_usage())
            .sum();
        (per_core / self.cores.max(1) as f32).min(100.0)
    }
}

impl Default for SystemSampler {
    fn default() -> Self {
        SystemSampler::new()
    }
}

impl Sampler for SystemSampler {
    fn cores(&self) -> u32 {
        SystemSampler::cores(self)
    }

    fn machine(&mut self) -> (f32, u64) {
        SystemSampler::machine(self)
    }

    fn sample(&mut self, workers: &[u32], worker_fd_limit: u64) -> Readings {
        let mut tree: Vec<u32> = vec![self.own];
        for &w in workers {
            tree.extend(pool::process_tree(w));
        }
        let (cpu_total, available_mem) = self.machine();
        let cpu_own = self.own_cpu(workers, &tree);
        let tree_rss = tree.iter().filter_map(|p| pool::rss_bytes(*p)).sum();
        let worker_rss = workers
            .iter()
            .map(|w| pool::tree_rss(*w))
            .max()
            .unwrap_or(0);
        let own_limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
        let mut fd_usage = ratio(pool::open_fds(self.own), own_limit);
        for &w in workers {
            fd_usage = fd_usage.max(ratio(pool::open_fds(w), worker_fd_limit));
        }
        Readings {
            cores: self.cores,
            cpu_total,
            cpu_own,
            available_mem,
            tree_rss,
            worker_rss,
            fd_usage,
            ..Readings::default()
        }
    }
}

fn ratio(used: Option<u64>, limit: u64) -> f32 {
    match used {
        Some(u) if limit > 0 => u as f32 / limit as f32,
        _ => 0.0,
    }
}
