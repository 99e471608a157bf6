//! The rules both stores apply, written once as pure functions over plain
//! data: each backend reads the inputs with its own SQL and writes the
//! answer back, so a rule changes in one place for SQLite and PostgreSQL.

mod attempt;
mod merge;
pub mod ocr;
mod rediscover;
mod subtree;

pub use attempt::{attempt_of, Attempt};
pub use merge::{merge, Ended};
pub use rediscover::{listing, on_disk, rediscover, removed, Lease, Rediscovered, Stored};
pub use subtree::subtree;
