//! Adaptive worker scaling: a pure policy (`policy`) decides from readings
//! (`sampler`) how many workers the run should have; the driver carries it
//! out.

pub mod policy;
pub mod sampler;

pub use policy::{decide, initial_workers, Decision, Profile, Readings, ScalePolicy, ScaleState};
pub use sampler::{Sampler, SystemSampler};
