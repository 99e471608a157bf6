//! Worker processes: spawn with limits and a handshake, watch, kill, reap,
//! and say what an exit means.

mod exit;
mod kill;
mod rss;
mod spawn;

pub use exit::{classify_exit, KillReason};
pub use rss::rss_bytes;
pub use spawn::{spawn, SpawnError, SpawnSpec, Worker};
