//! Size tiers: documents grouped by file size, because time per document
//! (and the memory a worker needs) grows with it, and a queue of huge files
//! means something different from a queue of tiny ones.

use std::collections::BTreeMap;

const MIB: u64 = 1 << 20;

/// The tiers, smallest first: (name, upper bound in bytes, exclusive).
pub const TIERS: [(&str, u64); 5] = [
    ("tiny", MIB),
    ("small", 10 * MIB),
    ("medium", 50 * MIB),
    ("large", 200 * MIB),
    ("huge", u64::MAX),
];

/// The tier of a file of `bytes` bytes: tiny < 1 MiB ≤ small < 10 MiB ≤
/// medium < 50 MiB ≤ large < 200 MiB ≤ huge.
pub fn size_tier(bytes: u64) -> &'static str {
    TIERS
        .iter()
        .find(|(_, below)| bytes < *below)
        .map(|(name, _)| *name)
        .unwrap_or("huge")
}

/// Counts of documents per tier, from their sizes (for
/// `Snapshot::queue_by_tier`). Every tier is present, zero or not, so that
/// samples line up.
pub fn queue_by_tier(sizes: impl IntoIterator<Item = u64>) -> BTreeMap<String, u64> {
    let mut by: BTreeMap<String, u64> = TIERS.iter().map(|(t, _)| (t.to_string(), 0)).collect();
    for size in sizes {
        *by.entry(size_tier(size).to_string()).or_default() += 1;
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(size_tier(0), "tiny");
        assert_eq!(size_tier(MIB - 1), "tiny");
        assert_eq!(size_tier(MIB), "small");
        assert_eq!(size_tier(10 * MIB), "medium");
        assert_eq!(size_tier(50 * MIB), "large");
        assert_eq!(size_tier(200 * MIB - 1), "large");
        assert_eq!(size_tier(200 * MIB), "huge");
        assert_eq!(size_tier(u64::MAX), "huge");
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
