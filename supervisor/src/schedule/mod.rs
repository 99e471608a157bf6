//! What runs next: the queue is scanned from the front (retries are pushed
//! there) for the first document that fits the size-tier quotas and the
//! EPUB limit. Pure: plain data in, an index out.

use std::collections::VecDeque;

use docmill_protocol::Format;

use crate::catalog::QueuedDoc;
use crate::metrics::size_tier;

/// How far down the queue to look for a document that fits, so one
/// blocked kind (EPUBs at their limit, say) does not stall the rest.
const LOOKAHEAD: usize = 512;

/// Concurrent jobs per tier class at 12 workers (the plan's fast 8,
/// standard 4, heavy 2, sequential 1); scaled with the worker count.
const QUOTAS_AT_12: [(&[&str], u32); 4] = [
    (&["tiny", "small"], 8),
    (&["medium"], 4),
    (&["large"], 2),
    (&["huge"], 1),
];

/// The class a tier belongs to, as an index into the quota table.
fn class_of(tier: &str) -> usize {
    QUOTAS_AT_12
        .iter()
        .position(|(tiers, _)| tiers.contains(&tier))
        .unwrap_or(0)
}

/// The quota of each class with `workers` workers: the plan's numbers
/// scaled, at least one; huge documents always run one at a time.
pub fn quotas(workers: u32) -> [u32; 4] {
    let mut q = [0; 4];
    for (i, (_, at12)) in QUOTAS_AT_12.iter().enumerate() {
        q[i] = (at12 * workers).div_ceil(12).max(1);
    }
    q[3] = 1;
    q
}

/// What is running now.
#[derive(Clone, Debug, Default)]
pub struct Running {
    pub epubs: u32,
    pub per_class: [u32; 4],
}

impl Running {
    pub fn add(&mut self, doc: &QueuedDoc) {
        if doc.sched_format == Format::Epub {
            self.epubs += 1;
        }
        self.per_class[class_of(size_tier(doc.sched_size))] += 1;
    }
}

/// The queue position of the next document to dispatch, if any fits.
pub fn pick(
    queue: &VecDeque<QueuedDoc>,
    running: &Running,
    workers: u32,
    max_epubs: u32,
) -> Option<usize> {
    let quotas = quotas(workers);
    queue.iter().take(LOOKAHEAD).position(|d| {
        let class = class_of(size_tier(d.sched_size));
        (d.sched_format != Format::Epub || running.epubs < max_epubs)
            && running.per_class[class] < quotas[class]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: i64, format: Format, size: u64) -> QueuedDoc {
        QueuedDoc {
            id,
            path: format!("/d/{id}").into(),
            size,
            mtime_ns: 0,
            format,
            attempts: 0,
            engine_idx: 0,
            engine_notes: Vec::new(),
            sched_format: format,
            sched_size: size,
        }
    }

    #[test]
    fn quotas_scale_with_workers() {
        assert_eq!(quotas(12), [8, 4, 2, 1]);
        for w in 2..=12 {
            let q = quotas(w);
            assert!(q.iter().all(|n| *n >= 1), "{w}: {q:?}");
            assert!(q[0] <= w && q[1] <= w && q[2] <= w, "{w}: {q:?}");
            assert_eq!(q[3], 1, "huge runs alone in its class");
            assert!(q[0] >= q[1] && q[1] >= q[2], "{w}: {q:?}");
        }
        assert_eq!(quotas(2), [2, 1, 1, 1]);
        assert_eq!(quotas(6), [4, 2, 1, 1]);
    }

    #[test]
    fn front_first_when_it_fits() {
        let q: VecDeque<_> = vec![doc(1, Format::Pdf, 10), doc(2, Format::Pdf, 10)].into();
        assert_eq!(pick(&q, &Running::default(), 4, 2), Some(0));
    }

    #[test]
    fn epub_limit_skips_to_the_next_document() {
        let q: VecDeque<_> = vec![doc(1, Format::Epub, 10), doc(2, Format::Pdf, 10)].into();
        let running = Running {
            epubs: 2,
            ..Running::default()
        };
        assert_eq!(pick(&q, &running, 4, 2), Some(1));
        let only_epubs: VecDeque<_> = vec![doc(1, Format::Epub, 10)].into();
        assert_eq!(pick(&only_epubs, &running, 4, 2), None);
        assert_eq!(pick(&only_epubs, &Running::default(), 4, 2), Some(0));
    }

    #[test]
    fn a_huge_document_waits_for_the_one_running() {
        let huge = 300 << 20;
        let q: VecDeque<_> = vec![doc(1, Format::Pdf, huge), doc(2, Format::Pdf, 5)].into();
        let mut running = Running::default();
        running.add(&doc(9, Format::Pdf, huge));
        assert_eq!(pick(&q, &running, 12, 2), Some(1));
    }

    #[test]
    fn mock_documents_are_scheduled_as_their_kind() {
        let mut d = doc(1, Format::Mock, 10);
        d.sched_format = Format::Epub;
        let mut running = Running::default();
        running.add(&d);
        assert_eq!(running.epubs, 1);
    }
}
