//! docmill's supervisor side: the command line, the catalog and index, the
//! walk that discovers documents, the pool of worker processes, the run
//! loop that drives them, and the stores (SQLite, PostgreSQL) behind it.

pub mod cli;
mod commands;
pub mod engines;
pub mod metrics;
pub mod ocr;
pub mod policy;
mod pool;
mod run;
pub mod scale;
mod schedule;
pub mod search;
pub mod serve;
mod signals;
pub mod sniff;
pub mod store;
pub mod units;
mod walk;
