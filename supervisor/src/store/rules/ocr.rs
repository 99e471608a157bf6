//! What both stores decide alike about OCR: how an OCR job's page list is
//! kept in its chunk row, what a cached page is, and when a document whose
//! OCR jobs have all ended is done or partial.

use docmill_protocol::{Outcome, PageFlags};

use super::merge::one_line_list;
use crate::store::{DocState, OcrPage};

/// A page recognised by OCR (from a job or the cache) that was flagged by
/// its text job.
pub fn ocr_flags() -> PageFlags {
    PageFlags {
        needs_ocr: true,
        ocr: true,
        ..PageFlags::default()
    }
}

/// A flagged page OCR could not read.
pub fn failed_flags() -> PageFlags {
    PageFlags {
        failed: true,
        ..ocr_flags()
    }
}

/// A page the cache held.
pub fn cached_page(page: u32, text: String, confidence: Option<f64>) -> OcrPage {
    OcrPage {
        page,
        text,
        flags: ocr_flags(),
        confidence: confidence.map(|c| c as f32),
        note: None,
    }
}

/// An OCR job's pages as its chunk row keeps them: "3,4,9".
pub fn page_list(pages: &[u32]) -> String {
    let list: Vec<String> = pages.iter().map(u32::to_string).collect();
    list.join(",")
}

/// The pages of a chunk row's list; what does not read as a page is left
/// out.
pub fn parse_page_list(s: &str) -> Vec<u32> {
    s.split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

/// One OCR job of a document, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    /// None for a state this docmill does not know: taken as still open.
    pub state: Option<DocState>,
    pub reason: Option<String>,
    pub pages: Vec<u32>,
}

/// A document's end once its OCR jobs have all ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcrEnd {
    pub state: DocState,
    pub outcome: String,
    pub reason: Option<String>,
    /// The pages of jobs that failed, each with the note it is to carry.
    pub failed_pages: Vec<(u32, String)>,
}

/// None while an OCR job is still to run; else the document is done, or
/// partial when a job failed (its pages failing with its reason) or pages
/// failed inside their jobs (`failed_pages`: each with its note). The text
/// the document has is indexed either way; the reason names the pages.
pub fn merge(jobs: &[Ended], failed_pages: &[(u32, String)]) -> Option<OcrEnd> {
    let open = jobs.iter().any(|j| {
        !matches!(
            j.state,
            Some(DocState::Done | DocState::Failed | DocState::Quarantined)
        )
    });
    if open {
        return None;
    }
    let failed: Vec<&Ended> = jobs
        .iter()
        .filter(|j| j.state != Some(DocState::Done))
        .collect();
    let failed_pages_list: Vec<(u32, String)> = failed
        .iter()
        .flat_map(|j| {
            let note = format!(
                "OCR failed: {}",
                j.reason.as_deref().unwrap_or("the OCR job failed")
            );
            j.pages.iter().map(move |p| (*p, note.clone()))
        })
        .collect();
    let lost = failed_pages.len() as u64 + failed_pages_list.len() as u64;
    if lost == 0 {
        return Some(OcrEnd {
            state: DocState::Done,
            outcome: Outcome::Done.as_str().to_string(),
            reason: None,
            failed_pages: Vec::new(),
        });
    }
    let mut reasons: Vec<String> = failed_pages
        .iter()
        .map(|(p, note)| format!("page {p}: {note}"))
        .collect();
    reasons.extend(failed.iter().map(|j| {
        let (a, b) = (j.pages[0], j.pages[j.pages.len() - 1]);
        let pages = if a == b {
            format!("page {a}")
        } else {
            format!("pages {a}-{b}")
        };
        format!(
            "{pages}: {}",
            j.reason.as_deref().unwrap_or("the OCR job failed")
        )
    }));
    let what = format!("OCR could not read {lost} page(s)");
    Some(OcrEnd {
        state: DocState::Partial,
        outcome: Outcome::Done.as_str().to_string(),
        reason: Some(one_line_list(&what, &reasons)),
        failed_pages: failed_pages_list,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: DocState, pages: &[u32], reason: Option<&str>) -> Ended {
        Ended {
            state: Some(state),
            reason: reason.map(str::to_string),
            pages: pages.to_vec(),
        }
    }

    #[test]
    fn page_lists_round_trip() {
        assert_eq!(page_list(&[3, 4, 9]), "3,4,9");
        assert_eq!(parse_page_list("3,4,9"), vec![3, 4, 9]);
        assert_eq!(parse_page_list(""), Vec::<u32>::new());
        assert_eq!(parse_page_list("1,x,2"), vec![1, 2]);
    }

    #[test]
    fn a_document_ends_when_its_last_ocr_job_ends() {
        use DocState::*;
        let done = |p: &[u32]| job(Done, p, None);
        // Still running or pending: not yet.
        assert_eq!(merge(&[done(&[1]), job(Pending, &[2], None)], &[]), None);
        assert_eq!(merge(&[done(&[1]), job(Running, &[2], None)], &[]), None);
        let unknown = Ended {
            state: None,
            reason: None,
            pages: vec![3],
        };
        assert_eq!(merge(&[unknown], &[]), None);
        // All done: done.
        let end = merge(&[done(&[1, 2]), done(&[5])], &[]).unwrap();
        assert_eq!(end.state, Done);
        assert!(end.failed_pages.is_empty());
        // A page that failed inside its job: partial.
        let timed_out = [(2, "OCR timed out after 60s".to_string())];
        let end = merge(&[done(&[1, 2])], &timed_out).unwrap();
        assert_eq!(end.state, Partial);
        assert_eq!(
            end.reason.unwrap(),
            "OCR could not read 1 page(s): page 2: OCR timed out after 60s"
        );
        // A job that failed: its pages fail with its reason.
        let end = merge(
            &[
                done(&[1]),
                job(Quarantined, &[4, 5, 6], Some("the worker crashed")),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(end.state, Partial);
        assert_eq!(end.failed_pages.len(), 3);
        assert_eq!(
            end.failed_pages[0],
            (4, "OCR failed: the worker crashed".into())
        );
        let reason = end.reason.unwrap();
        assert!(reason.contains("pages 4-6: the worker crashed"), "{reason}");
    }
}
