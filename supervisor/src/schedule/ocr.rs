//! OCR plans: how the pages of a document that need recognition become OCR
//! jobs. An OCR page costs a second or more against a few milliseconds for
//! a text page, so even a short scan is shared by every worker.

/// The most pages one OCR job takes: at a second or more a page, a job
/// stays within a few minutes, so a run killed in the middle loses little,
/// and its lease is renewed many times over within that.
pub const OCR_JOB_MAX_PAGES: usize = 64;

/// The OCR jobs for `pages` (the pages still to recognise, in any order,
/// repeats ignored) on `workers` workers: one job per worker, or more when
/// that would exceed `OCR_JOB_MAX_PAGES`, each a run of consecutive pages
/// of the sorted list, the longer ones first. Opening the file again per
/// job costs milliseconds against seconds of recognition, so jobs are as
/// many as can run at once.
pub fn plan_ocr(pages: &[u32], workers: u32) -> Vec<Vec<u32>> {
    let mut pages = pages.to_vec();
    pages.sort_unstable();
    pages.dedup();
    if pages.is_empty() {
        return Vec::new();
    }
    let n = pages.len();
    let jobs = (workers.max(1) as usize)
        .max(n.div_ceil(OCR_JOB_MAX_PAGES))
        .min(n);
    let (each, rest) = (n / jobs, n % jobs);
    let mut out = Vec::with_capacity(jobs);
    let mut at = 0;
    for j in 0..jobs {
        let take = each + usize::from(j < rest);
        out.push(pages[at..at + take].to_vec());
        at += take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_shared_by_the_workers() {
        // (pages, workers, the jobs' pages)
        type Row = (&'static [u32], u32, &'static [&'static [u32]]);
        let table: &[Row] = &[
            (&[], 4, &[]),
            (&[3], 4, &[&[3]]),
            (&[1, 2, 3], 1, &[&[1, 2, 3]]),
            (&[1, 2, 3, 4, 5], 2, &[&[1, 2, 3], &[4, 5]]),
            // Unsorted, with a repeat: sorted and counted once.
            (&[9, 2, 5, 2], 2, &[&[2, 5], &[9]]),
            (&[1, 2], 8, &[&[1], &[2]]),
            (&[4, 7, 8, 20], 0, &[&[4, 7, 8, 20]]),
        ];
        for (pages, workers, want) in table {
            let got = plan_ocr(pages, *workers);
            let want: Vec<Vec<u32>> = want.iter().map(|j| j.to_vec()).collect();
            assert_eq!(got, want, "{pages:?} on {workers}");
        }
    }

    #[test]
    fn a_long_scan_is_cut_into_jobs_of_bounded_length() {
        let pages: Vec<u32> = (1..=300).collect();
        let jobs = plan_ocr(&pages, 2);
        assert_eq!(jobs.len(), 5);
        assert!(jobs.iter().all(|j| j.len() <= OCR_JOB_MAX_PAGES));
        let back: Vec<u32> = jobs.concat();
        assert_eq!(back, pages, "every page once, in order");
    }
}
