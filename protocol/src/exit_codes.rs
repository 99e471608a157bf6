//! The process exit codes of `docmill`, named in one place.

/// Every supported document was indexed (or there was nothing to do).
pub const OK: i32 = 0;
/// The run finished, but some documents failed or were quarantined.
pub const SOME_FAILED: i32 = 1;
/// `docmill search` found nothing (as grep says it).
pub const NO_MATCH: i32 = 1;
/// Usage or configuration error: bad flags, unusable database path, ...
pub const USAGE: i32 = 2;
/// Interrupted by SIGINT (128 + 2).
pub const INTERRUPTED: i32 = 130;
/// Terminated by SIGTERM (128 + 15).
pub const TERMINATED: i32 = 143;
