//! Adaptive worker scaling: a pure policy (`policy`, with the jump a
//! strong signal allows in `ramp`) decides from readings (`sampler`) how
//! many workers the run should have; the driver carries it out.

pub mod policy;
mod ramp;
pub mod sampler;

pub use policy::{decide, initial_workers, Decision, Profile, Readings, ScalePolicy, ScaleState};
pub use sampler::{Sampler, SystemSampler};
