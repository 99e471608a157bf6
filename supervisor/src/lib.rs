//! docmill's supervisor side: the command line, the catalog and index, the
//! walk that discovers documents, the pool of worker processes and the run
//! loop that drives them.

pub mod catalog;
pub mod cli;
mod commands;
pub mod engines;
pub mod metrics;
pub mod policy;
mod pool;
mod run;
pub mod scale;
mod schedule;
mod signals;
pub mod sniff;
pub mod units;
mod walk;
