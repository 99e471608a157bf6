//! Size tiers: documents grouped by file size, because time per document
//! (and the memory a worker needs) grows with it, and a queue of huge files
//! means something different from a queue of tiny ones.

use std::collections::BTreeMap;

const MIB: u64 = 1 << 20;

/// A size tier, smallest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Under 1 MiB.
    Tiny,
    /// 1 MiB to 10 MiB.
    Small,
    /// 10 MiB to 50 MiB.
    Medium,
    /// 50 MiB to 200 MiB.
    Large,
    /// 200 MiB and more.
    Huge,
}

impl Tier {
    /// Every tier, smallest first.
    pub const ALL: [Tier; 5] = [
        Tier::Tiny,
        Tier::Small,
        Tier::Medium,
        Tier::Large,
        Tier::Huge,
    ];

    /// The tier of a file of `bytes` bytes: tiny < 1 MiB ≤ small < 10 MiB ≤
    /// medium < 50 MiB ≤ large < 200 MiB ≤ huge.
    pub fn of(bytes: u64) -> Tier {
        match bytes {
            b if b < MIB => Tier::Tiny,
            b if b < 10 * MIB => Tier::Small,
            b if b < 50 * MIB => Tier::Medium,
            b if b < 200 * MIB => Tier::Large,
            _ => Tier::Huge,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Tiny => "tiny",
            Tier::Small => "small",
            Tier::Medium => "medium",
            Tier::Large => "large",
            Tier::Huge => "huge",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of documents per tier, from their sizes (for
/// `Snapshot::queue_by_tier`, keyed by the tier's name for the stats file
/// and the stored samples). Every tier is present, zero or not, so that
/// samples line up.
pub fn queue_by_tier(sizes: impl IntoIterator<Item = u64>) -> BTreeMap<String, u64> {
    let mut by: BTreeMap<String, u64> = Tier::ALL
        .iter()
        .map(|t| (t.as_str().to_string(), 0))
        .collect();
    for size in sizes {
        *by.entry(Tier::of(size).as_str().to_string()).or_default() += 1;
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        let table = [
            (0, Tier::Tiny),
            (MIB - 1, Tier::Tiny),
            (MIB, Tier::Small),
            (10 * MIB, Tier::Medium),
            (50 * MIB, Tier::Large),
            (200 * MIB - 1, Tier::Large),
            (200 * MIB, Tier::Huge),
            (u64::MAX, Tier::Huge),
        ];
        for (bytes, tier) in table {
            assert_eq!(Tier::of(bytes), tier, "{bytes}");
        }
    }

    #[test]
    fn counts_by_tier() {
        let by = queue_by_tier([0, 5, 2 * MIB, 300 * MIB]);
        assert_eq!(by["tiny"], 2);
        assert_eq!(by["small"], 1);
        assert_eq!(by["medium"], 0);
        assert_eq!(by["huge"], 1);
        assert_eq!(by.len(), 5);
    }
}
