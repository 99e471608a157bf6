//! The closed set of ways a job can end, as stored in the catalog.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    /// The document is bad; the reason says how.
    ExtractFailed,
    /// The worker died: a signal or an exit code.
    Crashed,
    /// The job overran its deadline or stopped sending heartbeats.
    TimedOut,
    /// The worker hit its address-space limit or the RSS watchdog.
    MemoryLimit,
    /// The worker ran out of file descriptors.
    FdLimit,
    /// The run was interrupted before the job finished.
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Done,
        Outcome::ExtractFailed,
        Outcome::Crashed,
        Outcome::TimedOut,
        Outcome::MemoryLimit,
        Outcome::FdLimit,
        Outcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::ExtractFailed => "extract-failed",
            Outcome::Crashed => "crashed",
            Outcome::TimedOut => "timed-out",
            Outcome::MemoryLimit => "memory-limit",
            Outcome::FdLimit => "fd-limit",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("bogus"), None);
    }
}
