//! What a file the walk found means for its catalog row, for both stores:
//! new, unchanged (skipped), changed (pending again as a new generation,
//! its chunk plan dropped), a failed or quarantined document kept or
//! requeued by the retry policy, a partial document's failed chunks tried
//! again, and files that are not documents (unsupported, unreadable,
//! skipped) labelled by the walk's latest word.

use std::path::{Path, PathBuf};

use crate::store::{DiscoverCounts, DocState, Found, FoundKind, RetryPolicy};

/// The row the walk's finding asks for: its state, the stored format name
/// and the reason, for a file not (or no longer) a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing<'a> {
    pub state: DocState,
    pub format: &'static str,
    pub reason: Option<&'a str>,
}

/// What the walk made of a path, as a catalog row.
pub fn listing(kind: &FoundKind) -> Listing<'_> {
    let (state, format, reason) = match kind {
        FoundKind::Document(f) => (DocState::Pending, f.as_str(), None),
        FoundKind::Unsupported(r) => (DocState::Unsupported, "other", Some(r.as_str())),
        FoundKind::Failed(r) => (DocState::Failed, "other", Some(r.as_str())),
        FoundKind::Skipped(r) => (DocState::Skipped, "other", Some(r.as_str())),
        // Discovery removes rows the walk left out rather than listing
        // them; were one listed, it would read as skipped.
        FoundKind::Excluded => (
            DocState::Skipped,
            "other",
            Some("left out by an ignore rule"),
        ),
    };
    Listing {
        state,
        format,
        reason,
    }
}

/// Who may hold the lease of a row left `running`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// Nobody: one index run at a time uses the store (the SQLite run
    /// lock), so a running row was left by a dead run.
    Abandoned,
    /// Another supervisor, whose lease has not expired: the job is its.
    Live,
    /// A supervisor whose lease expired; the next claim takes it back.
    Expired,
}

/// The catalog's row for a path the walk found again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub size: i64,
    pub mtime_ns: i64,
    /// None for a state this docmill does not know (a newer one wrote it):
    /// left as it is unless the file changed.
    pub state: Option<DocState>,
    /// Read only when `state` is running.
    pub lease: Lease,
}

/// What discovery does with one found file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rediscovered {
    /// Not in the catalog: a row as `listing` says.
    New,
    /// Another size or modification time: the row takes the listing's
    /// state with a new generation and lease token (a job on the old
    /// version can write nothing), attempts start again and its chunk plan
    /// goes. Its pages go too when the file is no longer a document;
    /// otherwise they stay searchable until the new text commits.
    Changed { drop_pages: bool },
    /// Unchanged, not a document, not indexed before: the walk's latest
    /// word (state and reason) stands.
    Relabelled,
    /// A partial document, with retries asked for: only its failed chunks
    /// are tried again (the document is split again).
    RetryChunks,
    /// Back to the queue, attempts from zero.
    Requeued,
    /// Left as it is, marked as seen by this run. `counted`: it counts as
    /// unchanged (a job another supervisor holds is counted by that one).
    Seen { counted: bool },
}

/// What a found file means, given the row stored for its path (None: the
/// path is new) and which unfinished documents to retry.
pub fn rediscover(found: &Found, stored: Option<&Stored>, retry: RetryPolicy) -> Rediscovered {
    let Some(stored) = stored else {
        return Rediscovered::New;
    };
    let listed = listing(&found.kind).state;
    if stored.size != found.size as i64 || stored.mtime_ns != found.mtime_ns {
        return Rediscovered::Changed {
            drop_pages: listed != DocState::Pending,
        };
    }
    // An unchanged file that was indexed keeps its pages even if it cannot
    // be read right now.
    if listed != DocState::Pending && stored.state != Some(DocState::Done) {
        return Rediscovered::Relabelled;
    }
    match stored.state {
        Some(DocState::Partial) if retry.failed || retry.quarantined => Rediscovered::RetryChunks,
        Some(DocState::Failed) if retry.failed => Rediscovered::Requeued,
        Some(DocState::Quarantined) if retry.quarantined => Rediscovered::Requeued,
        Some(DocState::Pending) => Rediscovered::Requeued,
        Some(DocState::Running) => match stored.lease {
            Lease::Abandoned => Rediscovered::Requeued,
            // Another supervisor's job: its lease decides, not us.
            Lease::Live => Rediscovered::Seen { counted: false },
            Lease::Expired => Rediscovered::Seen { counted: true },
        },
        _ => Rediscovered::Seen { counted: true },
    }
}

impl Rediscovered {
    /// Adds this answer to the run's discovery counts.
    pub fn tally(self, counts: &mut DiscoverCounts) {
        match self {
            Rediscovered::New => counts.new += 1,
            Rediscovered::Changed { .. } => counts.changed += 1,
            Rediscovered::Relabelled | Rediscovered::Seen { counted: true } => {
                counts.unchanged += 1
            }
            Rediscovered::RetryChunks | Rediscovered::Requeued => counts.requeued += 1,
            Rediscovered::Seen { counted: false } => {}
        }
    }
}

/// Whether a row this run's walk did not meet leaves the catalog: it lies
/// under a walked root, and the file is gone (`on_disk` says so) or it was
/// a skipped entry (an unreadable folder, a link), which every walk judges
/// again. A file that exists but was not reached keeps its pages.
pub fn removed(
    path: &Path,
    state: Option<DocState>,
    roots: &[PathBuf],
    on_disk: impl FnOnce(&Path) -> bool,
) -> bool {
    roots.iter().any(|r| path.starts_with(r))
        && (state == Some(DocState::Skipped) || !on_disk(path))
}

/// Whether anything (a file, a folder, a link) is at `path`: the input
/// `removed` asks of the file system.
pub fn on_disk(path: &Path) -> bool {
    !matches!(path.symlink_metadata(), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use docmill_protocol::Format;
    use std::path::PathBuf;

    use DocState::*;
    use Rediscovered::*;

    fn doc() -> FoundKind {
        FoundKind::Document(Format::Pdf)
    }

    fn unsupported() -> FoundKind {
        FoundKind::Unsupported("not a PDF or EPUB".into())
    }

    fn unreadable() -> FoundKind {
        FoundKind::Failed("permission denied".into())
    }

    fn skipped() -> FoundKind {
        FoundKind::Skipped("symbolic link".into())
    }

    fn stored(state: DocState, lease: Lease) -> Option<Stored> {
        Some(Stored {
            size: 10,
            mtime_ns: 5,
            state: Some(state),
            lease,
        })
    }

    const NONE: RetryPolicy = RetryPolicy {
        failed: false,
        quarantined: false,
    };
    const FAILED: RetryPolicy = RetryPolicy {
        failed: true,
        quarantined: false,
    };
    const QUARANTINED: RetryPolicy = RetryPolicy {
        failed: false,
        quarantined: true,
    };

    #[test]
    fn what_a_found_file_means() {
        use Lease::*;
        // (what the walk found, size, stored row, retry policy, answer)
        let cases: Vec<(FoundKind, u64, Option<Stored>, RetryPolicy, Rediscovered)> = vec![
            (doc(), 10, None, NONE, New),
            (unsupported(), 10, None, NONE, New),
            // Changed: pending again, pages kept until the new text commits,
            // unless it is no longer a document.
            (
                doc(),
                11,
                stored(Done, Abandoned),
                NONE,
                Changed { drop_pages: false },
            ),
            (
                doc(),
                11,
                stored(Running, Live),
                NONE,
                Changed { drop_pages: false },
            ),
            (
                unsupported(),
                11,
                stored(Done, Abandoned),
                NONE,
                Changed { drop_pages: true },
            ),
            (
                unreadable(),
                11,
                stored(Partial, Abandoned),
                NONE,
                Changed { drop_pages: true },
            ),
            // Unchanged and finished: skipped.
            (
                doc(),
                10,
                stored(Done, Abandoned),
                FAILED,
                Seen { counted: true },
            ),
            (
                doc(),
                10,
                stored(Split, Abandoned),
                NONE,
                Seen { counted: true },
            ),
            // An indexed file that cannot be read now keeps its pages.
            (
                unreadable(),
                10,
                stored(Done, Abandoned),
                NONE,
                Seen { counted: true },
            ),
            // Not a document: the walk's latest word stands.
            (
                skipped(),
                10,
                stored(Unsupported, Abandoned),
                NONE,
                Relabelled,
            ),
            (
                unsupported(),
                10,
                stored(Failed, Abandoned),
                FAILED,
                Relabelled,
            ),
            (
                unreadable(),
                10,
                stored(Partial, Abandoned),
                FAILED,
                Relabelled,
            ),
            // Failed and quarantined documents, by the retry policy.
            (
                doc(),
                10,
                stored(Failed, Abandoned),
                NONE,
                Seen { counted: true },
            ),
            (doc(), 10, stored(Failed, Abandoned), FAILED, Requeued),
            (
                doc(),
                10,
                stored(Failed, Abandoned),
                QUARANTINED,
                Seen { counted: true },
            ),
            (
                doc(),
                10,
                stored(Quarantined, Abandoned),
                FAILED,
                Seen { counted: true },
            ),
            (
                doc(),
                10,
                stored(Quarantined, Abandoned),
                QUARANTINED,
                Requeued,
            ),
            // A partial document retries only its failed chunks.
            (
                doc(),
                10,
                stored(Partial, Abandoned),
                NONE,
                Seen { counted: true },
            ),
            (doc(), 10, stored(Partial, Abandoned), FAILED, RetryChunks),
            (
                doc(),
                10,
                stored(Partial, Abandoned),
                QUARANTINED,
                RetryChunks,
            ),
            // Still queued: its attempts start again.
            (doc(), 10, stored(Pending, Live), NONE, Requeued),
            // Left running: a dead run's job is requeued; another
            // supervisor's is its own until the lease expires.
            (doc(), 10, stored(Running, Abandoned), NONE, Requeued),
            (
                doc(),
                10,
                stored(Running, Live),
                NONE,
                Seen { counted: false },
            ),
            (
                doc(),
                10,
                stored(Running, Expired),
                NONE,
                Seen { counted: true },
            ),
        ];
        for (kind, size, row, retry, want) in cases {
            let found = Found {
                path: PathBuf::from("a.pdf"),
                size,
                mtime_ns: 5,
                kind: kind.clone(),
            };
            assert_eq!(
                rediscover(&found, row.as_ref(), retry),
                want,
                "{kind:?} of size {size} over {row:?} with {retry:?}"
            );
        }
    }

    #[test]
    fn an_unknown_state_is_left_alone_unless_the_file_changed() {
        let row = Stored {
            size: 10,
            mtime_ns: 5,
            state: None,
            lease: Lease::Abandoned,
        };
        let mut found = Found {
            path: PathBuf::from("a.pdf"),
            size: 10,
            mtime_ns: 5,
            kind: doc(),
        };
        assert_eq!(
            rediscover(&found, Some(&row), FAILED),
            Seen { counted: true }
        );
        found.mtime_ns = 6;
        assert_eq!(
            rediscover(&found, Some(&row), FAILED),
            Changed { drop_pages: false }
        );
    }

    #[test]
    fn what_a_file_not_met_again_means() {
        let roots = [PathBuf::from("/lib")];
        let here = |_: &Path| true;
        let gone = |_: &Path| false;
        // (path, state, on disk, removed)
        let cases = [
            ("/lib/a.pdf", Some(Done), true, false),
            ("/lib/a.pdf", Some(Done), false, true),
            ("/lib/sub/b.epub", Some(Failed), false, true),
            // A skipped entry is judged again by every walk.
            ("/lib/locked", Some(Skipped), true, true),
            // Outside the roots walked this time: kept.
            ("/other/a.pdf", Some(Done), false, false),
            ("/other/locked", Some(Skipped), true, false),
            ("/lib/a.pdf", None, true, false),
        ];
        for (path, state, exists, want) in cases {
            let got = if exists {
                removed(Path::new(path), state, &roots, here)
            } else {
                removed(Path::new(path), state, &roots, gone)
            };
            assert_eq!(got, want, "{path} {state:?} on disk: {exists}");
        }
        assert!(on_disk(Path::new("/")));
        assert!(!on_disk(Path::new("/no/such/path/here")));
    }

    #[test]
    fn listings_and_counts() {
        assert_eq!(
            listing(&doc()),
            Listing {
                state: Pending,
                format: "pdf",
                reason: None
            }
        );
        assert_eq!(listing(&unreadable()).state, Failed);
        assert_eq!(listing(&skipped()).reason, Some("symbolic link"));
        assert_eq!(listing(&unsupported()).format, "other");
        let mut counts = DiscoverCounts::default();
        for r in [
            New,
            Changed { drop_pages: true },
            Relabelled,
            RetryChunks,
            Requeued,
            Seen { counted: true },
            Seen { counted: false },
        ] {
            r.tally(&mut counts);
        }
        assert_eq!(
            counts,
            DiscoverCounts {
                new: 1,
                changed: 1,
                unchanged: 2,
                requeued: 2,
                removed: 0
            }
        );
    }
}
