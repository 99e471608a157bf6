//! When a split document is merged, and with what state, outcome and
//! reason, for both stores: once every chunk has ended, the document is
//! `done` (every chunk done), `partial` (some chunks kept failing: "some
//! pages failed: pages a-b: …") or, when no chunk could be read, `failed`
//! or `quarantined` ("every chunk failed: …").

use docmill_protocol::Outcome;

use crate::store::DocState;

/// One chunk of a split document, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    pub first: u32,
    pub last: u32,
    /// None for a state this docmill does not know: taken as still open.
    pub state: Option<DocState>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub engine: Option<String>,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
}

/// A merged document's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub state: DocState,
    pub outcome: String,
    pub reason: Option<String>,
    /// What the done chunks make of the document; None when no chunk could
    /// be read, so nothing of it is indexed.
    pub indexed: Option<Indexed>,
}

/// The pages of the done chunks become the document's, in page order; its
/// metadata comes from the first done chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indexed {
    /// The engines of the done chunks, in page order, a run of one engine
    /// named once ("builtin+mupdf").
    pub engine: String,
    pub title: Option<String>,
    pub author: Option<String>,
    pub language: Option<String>,
}

/// Whether and how a document in state `doc` merges, given all its chunks
/// in page order: None while a chunk is still open, or when the document is
/// no longer split (its plan was undone, or it merged already).
pub fn merge(doc: Option<DocState>, chunks: &[Ended]) -> Option<Merge> {
    let ended = |c: &Ended| {
        matches!(
            c.state,
            Some(DocState::Done | DocState::Failed | DocState::Quarantined)
        )
    };
    if doc != Some(DocState::Split) || chunks.is_empty() || !chunks.iter().all(ended) {
        return None;
    }
    let (done, failed): (Vec<&Ended>, Vec<&Ended>) =
        chunks.iter().partition(|c| c.state == Some(DocState::Done));
    let failed_text: Vec<String> = failed
        .iter()
        .map(|c| {
            format!(
                "pages {}-{}: {}",
                c.first,
                c.last,
                c.reason.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    let first_outcome = || {
        failed[0]
            .outcome
            .clone()
            .unwrap_or_else(|| Outcome::ExtractFailed.as_str().to_string())
    };
    let Some(head) = done.first() else {
        let quarantined = failed
            .iter()
            .any(|c| c.state == Some(DocState::Quarantined));
        // Nothing of it could be read: the document fails as a whole.
        return Some(Merge {
            state: if quarantined {
                DocState::Quarantined
            } else {
                DocState::Failed
            },
            outcome: first_outcome(),
            reason: Some(one_line_list("every chunk failed", &failed_text)),
            indexed: None,
        });
    };
    let mut engines: Vec<&str> = done.iter().filter_map(|c| c.engine.as_deref()).collect();
    engines.dedup();
    let (state, outcome, reason) = if failed.is_empty() {
        (DocState::Done, Outcome::Done.as_str().to_string(), None)
    } else {
        (
            DocState::Partial,
            first_outcome(),
            Some(one_line_list("some pages failed", &failed_text)),
        )
    };
    Some(Merge {
        state,
        outcome,
        reason,
        indexed: Some(Indexed {
            engine: engines.join("+"),
            title: head.title.clone(),
            author: head.author.clone(),
            language: head.language.clone(),
        }),
    })
}

/// "what: a; b; c", cut to a readable length.
pub fn one_line_list(what: &str, items: &[String]) -> String {
    let joined = format!("{what}: {}", items.join("; "));
    match crate::units::clip(&joined, 400) {
        (text, true) => format!("{text}… ({} ranges)", items.len()),
        (_, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DocState::*;

    fn chunk(first: u32, state: DocState, engine: &str, reason: Option<&str>) -> Ended {
        Ended {
            first,
            last: first + 9,
            state: Some(state),
            outcome: match state {
                Done => Some("done".into()),
                Failed | Quarantined => Some("crashed".into()),
                _ => None,
            },
            reason: reason.map(str::to_string),
            engine: (state == Done).then(|| engine.to_string()),
            title: (state == Done).then(|| format!("title {first}")),
            author: None,
            language: None,
        }
    }

    fn indexed(
        state: DocState,
        outcome: &str,
        reason: Option<&str>,
        engine: &str,
    ) -> Option<Merge> {
        Some(Merge {
            state,
            outcome: outcome.into(),
            reason: reason.map(str::to_string),
            indexed: Some(Indexed {
                engine: engine.into(),
                title: Some("title 1".into()),
                author: None,
                language: None,
            }),
        })
    }

    fn failed(state: DocState, outcome: &str, reason: &str) -> Option<Merge> {
        Some(Merge {
            state,
            outcome: outcome.into(),
            reason: Some(reason.into()),
            indexed: None,
        })
    }

    #[test]
    fn when_and_how_a_split_document_merges() {
        let cases: Vec<(Option<DocState>, Vec<Ended>, Option<Merge>)> = vec![
            // A chunk still open, or running: not yet.
            (
                Some(Split),
                vec![chunk(1, Done, "a", None), chunk(11, Pending, "", None)],
                None,
            ),
            (
                Some(Split),
                vec![chunk(1, Done, "a", None), chunk(11, Running, "", None)],
                None,
            ),
            // The plan was undone (the file changed), or merged already.
            (Some(Pending), vec![chunk(1, Done, "a", None)], None),
            (Some(Done), vec![chunk(1, Done, "a", None)], None),
            (Some(Split), vec![], None),
            // A chunk in a state this docmill does not know is open.
            (
                Some(Split),
                vec![Ended {
                    state: None,
                    ..chunk(1, Done, "a", None)
                }],
                None,
            ),
            // Every chunk done: done, engines named once per run of them.
            (
                Some(Split),
                vec![
                    chunk(1, Done, "builtin", None),
                    chunk(11, Done, "builtin", None),
                    chunk(21, Done, "mupdf", None),
                ],
                indexed(Done, "done", None, "builtin+mupdf"),
            ),
            // Some failed: partial, naming the failed ranges.
            (
                Some(Split),
                vec![
                    chunk(1, Done, "builtin", None),
                    chunk(11, Failed, "", Some("killed by SIGSEGV")),
                    chunk(21, Quarantined, "", None),
                ],
                indexed(
                    Partial,
                    "crashed",
                    Some("some pages failed: pages 11-20: killed by SIGSEGV; pages 21-30: failed"),
                    "builtin",
                ),
            ),
            // None done: failed as a whole, or quarantined if any chunk is.
            (
                Some(Split),
                vec![
                    chunk(1, Failed, "", Some("bad xref")),
                    chunk(11, Failed, "", Some("bad xref")),
                ],
                failed(
                    Failed,
                    "crashed",
                    "every chunk failed: pages 1-10: bad xref; pages 11-20: bad xref",
                ),
            ),
            (
                Some(Split),
                vec![
                    Ended {
                        outcome: None,
                        ..chunk(1, Failed, "", Some("bad xref"))
                    },
                    chunk(11, Quarantined, "", Some("timed out")),
                ],
                failed(
                    Quarantined,
                    "extract-failed",
                    "every chunk failed: pages 1-10: bad xref; pages 11-20: timed out",
                ),
            ),
        ];
        for (doc, chunks, want) in cases {
            assert_eq!(merge(doc, &chunks), want, "{doc:?} over {chunks:?}");
        }
    }

    #[test]
    fn a_long_list_is_cut() {
        let items: Vec<String> = (0..100).map(|i| format!("pages {i}-{i}: failed")).collect();
        let text = one_line_list("some pages failed", &items);
        assert!(text.ends_with("… (100 ranges)"), "{text}");
        assert!(text.chars().count() < 450, "{text}");
        assert_eq!(one_line_list("x", &["a".into()]), "x: a");
    }
}
