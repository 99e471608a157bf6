//! Worker processes: spawn with limits and a handshake, watch, kill, reap,
//! and say what an exit means.

mod exit;
mod kill;
mod rss;
mod spawn;

pub use exit::classify_exit;
#[cfg(target_os = "linux")]
pub use rss::cpu_ticks;
pub use rss::{open_fds, process_tree, rss_bytes, tree_rss};
pub use spawn::{spawn, SpawnError, SpawnSpec, Worker};
