//! The extraction side of docmill. A worker is the `docmill` binary started
//! with a hidden subcommand: it connects back to the supervisor, takes one job
//! at a time, streams page texts back and sends heartbeats while it works.

pub mod cleanup;
pub mod engines;
mod heartbeat;
mod job_loop;
pub mod mockdoc;
pub mod ocr;
mod panic_note;
pub mod quality;

pub use job_loop::run;
