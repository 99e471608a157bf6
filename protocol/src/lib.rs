//! The types that cross the process boundary between the supervisor and its
//! workers: jobs, messages each way, the handshake, outcome classes and the
//! named exit codes. Nothing here does I/O.

pub mod exit_codes;
mod job;
mod message;
mod outcome;

pub use job::{EngineChoice, Format, Job, JobId, OcrMode, OcrSettings, PageRange};
pub use message::{DocSummary, FromWorker, PageFlags, ToWorker, WorkerFailure, WorkerFailureKind};
pub use outcome::Outcome;

/// The hidden subcommand that turns the `docmill` binary into a worker.
pub const WORKER_SUBCOMMAND: &str = "__worker";

/// Bumped whenever a message changes shape; the worker echoes it in its
/// hello so a stale binary is refused instead of misread.
pub const PROTOCOL_VERSION: u32 = 6;
