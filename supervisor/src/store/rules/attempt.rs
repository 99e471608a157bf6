//! What a finished job records, for both stores: the row in `attempts`
//! (its outcome, the failure's reason, the engine that read it), and none
//! for a job handed back before its result could count.

use docmill_protocol::Outcome;

use crate::store::FinishedResult;

/// One attempt's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt<'a> {
    pub outcome: Outcome,
    pub reason: Option<&'a str>,
    pub engine: Option<&'a str>,
}

/// The attempt a job's result records; None for a released job, which was
/// never an attempt.
pub fn attempt_of(result: &FinishedResult) -> Option<Attempt<'_>> {
    match result {
        FinishedResult::Done { summary, .. } | FinishedResult::Flagged { summary, .. } => {
            Some(Attempt {
                outcome: Outcome::Done,
                reason: None,
                engine: Some(summary.engine.as_str()),
            })
        }
        FinishedResult::Failed {
            outcome, reason, ..
        } => Some(Attempt {
            outcome: *outcome,
            reason: Some(reason.as_str()),
            engine: None,
        }),
        FinishedResult::Recognised { .. } => Some(Attempt {
            outcome: Outcome::Done,
            reason: None,
            engine: Some("tesseract"),
        }),
        FinishedResult::Released => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DocState;
    use docmill_protocol::DocSummary;

    #[test]
    fn what_each_result_records() {
        let done = FinishedResult::Done {
            summary: DocSummary {
                page_count: 1,
                title: None,
                author: None,
                language: None,
                engine: "builtin".into(),
                content_hash: None,
            },
            pages: Vec::new(),
        };
        let failed = FinishedResult::Failed {
            outcome: Outcome::Crashed,
            reason: "killed by SIGSEGV".into(),
            status: DocState::Pending,
            counts: true,
        };
        let cases = [
            (
                done,
                Some(Attempt {
                    outcome: Outcome::Done,
                    reason: None,
                    engine: Some("builtin"),
                }),
            ),
            (
                failed,
                Some(Attempt {
                    outcome: Outcome::Crashed,
                    reason: Some("killed by SIGSEGV"),
                    engine: None,
                }),
            ),
            (FinishedResult::Released, None),
        ];
        for (result, want) in &cases {
            assert_eq!(attempt_of(result), *want, "{result:?}");
        }
    }
}
