//! OCR in the run: a whole document's text job that flagged pages for
//! recognition has them looked up in the OCR cache first (the driver reads
//! it; the state decides), the rest become OCR jobs planned by
//! `schedule::plan_ocr` and queued once the text job's commit has stored
//! them, and an OCR job's pages go back to the store as recognised, every
//! page asked for accounted for.

use std::collections::{BTreeMap, HashSet};

use docmill_protocol::{DocSummary, PageFlags, PageRange};

use super::{InFlight, State};
use crate::run::action::Action;
use crate::schedule::plan_ocr;
use crate::store::{FinishedResult, OcrFollowUp, OcrPage, QueuedDoc};

/// A text job's result waiting for the OCR cache's answer.
#[derive(Debug)]
pub(super) struct Lookup {
    job: InFlight,
    summary: DocSummary,
    pid: u32,
}

/// A split document whose text merged with pages flagged for OCR: the
/// pages (from the catalog) wait for the cache's answer.
#[derive(Debug)]
pub(super) struct ChunkFlags {
    doc: QueuedDoc,
    hash: String,
    page_total: u32,
    pages: Vec<u32>,
}

/// The pages of a text job flagged for OCR, ascending.
fn flagged(pages: &[(u32, String, PageFlags)]) -> Vec<u32> {
    let mut out: Vec<u32> = pages
        .iter()
        .filter(|(_, _, f)| f.needs_ocr)
        .map(|(p, _, _)| *p)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

impl State {
    /// Takes a text job's result when the run recognises its flagged pages:
    /// the cache is asked first, and `ocr_cached` goes on. Gives it back
    /// otherwise (nothing flagged, a chunk of a long document, OCR off, or
    /// no content hash to key the cache by), to be written as it is.
    pub(super) fn ocr_follow_up(
        &mut self,
        job: InFlight,
        summary: DocSummary,
        pid: u32,
    ) -> Option<(InFlight, DocSummary)> {
        if job.doc.chunk.is_some() {
            // A chunk of a long document: its text (flags and hash
            // included) is written as it is, and the pages flagged by any
            // of its chunks, in this run or an earlier one, come from the
            // catalog once the text merges, to be shared by the workers.
            // The document is kept to plan their jobs from, whether or not
            // this chunk flagged any.
            if self.cfg.ocr.recognise && self.cfg.ocr_jobs {
                self.chunk_flags.entry(job.doc.id).or_insert_with(|| {
                    let mut doc = job.doc.clone();
                    doc.chunk = None;
                    doc.sched_size = doc.size;
                    doc
                });
            }
            return Some((job, summary));
        }
        let pages = flagged(&job.pages);
        let wanted = self.cfg.ocr.recognise && !pages.is_empty();
        let Some(hash) = summary.content_hash.clone().filter(|_| wanted) else {
            return Some((job, summary));
        };
        self.out.push(Action::OcrLookup {
            doc: job.doc.id,
            hash,
            key: self.cfg.ocr.settings_key(),
            pages,
        });
        self.ocr_lookups
            .insert(job.doc.id, Lookup { job, summary, pid });
        None
    }

    /// A split document's text merged: if it is done and its chunks
    /// flagged pages, the cache is asked for them, and `ocr_cached` plans
    /// the rest. Returns whether the document's done was counted before
    /// (its OCR jobs then end it without counting it again).
    pub(super) fn text_merged(&mut self, merged: &crate::store::Merged, doc: i64) -> bool {
        let counted = self.recounted.remove(&doc);
        let Some(queued) = self.chunk_flags.remove(&doc) else {
            return counted;
        };
        let pending = merged.ocr.as_ref().filter(|_| {
            merged.status == crate::store::DocState::Done
                && self.cfg.ocr.recognise
                && self.cfg.ocr_jobs
        });
        let Some(pending) = pending else {
            return counted;
        };
        let flags = ChunkFlags {
            doc: queued,
            hash: pending.hash.clone(),
            page_total: pending
                .page_total
                .max(pending.pages.last().copied().unwrap_or(0)),
            pages: pending.pages.clone(),
        };
        let pages = flags.pages.clone();
        self.out.push(Action::OcrLookup {
            doc,
            hash: flags.hash.clone(),
            key: self.cfg.ocr.settings_key(),
            pages,
        });
        self.after_merge.insert(doc, flags);
        counted
    }

    /// The cache answered for a split document whose text merged: the
    /// store writes the cached pages and the OCR jobs for the rest, queued
    /// once it has (`Event::OcrPlanned`).
    fn plan_after_merge(&mut self, flags: ChunkFlags, cached: Vec<OcrPage>) {
        let have: HashSet<u32> = cached.iter().map(|p| p.page).collect();
        let mut missing: Vec<u32> = flags
            .pages
            .iter()
            .copied()
            .filter(|p| !have.contains(p))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let jobs = plan_ocr(&missing, self.target);
        let id = flags.doc.id;
        if !jobs.is_empty() {
            let queued = jobs
                .iter()
                .map(|pages| ocr_job(&flags.doc, flags.page_total, pages))
                .collect();
            self.ocr_waiting.insert(id, queued);
            self.recounted.insert(id);
        }
        self.totals
            .record(crate::run::totals::Fact::OcrCached(cached.len() as u64));
        let ocr = OcrFollowUp {
            key: self.cfg.ocr.settings_key(),
            cached,
            jobs,
        };
        self.out.push(Action::PlanOcr {
            doc: id,
            hash: flags.hash,
            ocr,
        });
    }

    /// The cache answered: its pages are written with the text job, and the
    /// others are planned as OCR jobs across the run's workers (when the
    /// store takes them), queued once that commit has stored them.
    pub(super) fn ocr_cached(&mut self, doc: i64, cached: Vec<OcrPage>) {
        if let Some(flags) = self.after_merge.remove(&doc) {
            self.plan_after_merge(flags, cached);
            return;
        }
        let Some(Lookup {
            mut job,
            summary,
            pid,
        }) = self.ocr_lookups.remove(&doc)
        else {
            return;
        };
        let have: HashSet<u32> = cached.iter().map(|p| p.page).collect();
        let missing: Vec<u32> = flagged(&job.pages)
            .into_iter()
            .filter(|p| !have.contains(p))
            .collect();
        let jobs = if self.cfg.ocr_jobs {
            plan_ocr(&missing, self.target)
        } else {
            Vec::new()
        };
        if !jobs.is_empty() {
            let queued = jobs
                .iter()
                .map(|pages| ocr_job(&job.doc, summary.page_count, pages))
                .collect();
            self.ocr_waiting.insert(doc, queued);
        }
        tracing::debug!(
            path = %job.doc.path.display(),
            cached = cached.len(),
            to_recognise = missing.len(),
            jobs = jobs.len(),
            "pages without a text layer"
        );
        let pages = std::mem::take(&mut job.pages);
        let ocr = OcrFollowUp {
            key: self.cfg.ocr.settings_key(),
            cached,
            jobs,
        };
        self.push_result(
            job.ending(pid),
            FinishedResult::Flagged {
                summary,
                pages,
                ocr,
            },
        );
    }

    /// The OCR jobs a commit stored go first in the queue, so idle workers
    /// take them at once; those of a commit that was lost are dropped.
    pub(super) fn ocr_planned(&mut self, doc: i64, stored: bool) {
        let Some(jobs) = self.ocr_waiting.remove(&doc) else {
            return;
        };
        if !stored {
            return;
        }
        for j in jobs.into_iter().rev() {
            self.queue.push_front(j);
        }
    }

    /// An OCR job ended well: every page it was to recognise is written, a
    /// page it did not send as failed, so that none stays silently empty.
    pub(super) fn on_recognised(&mut self, mut job: InFlight, pid: u32) {
        let wanted = job.doc.ocr_pages.clone().unwrap_or_default();
        let mut got: BTreeMap<u32, OcrPage> = BTreeMap::new();
        for (page, text, flags) in std::mem::take(&mut job.pages) {
            if !wanted.contains(&page) {
                continue;
            }
            let (confidence, note) = job.ocr_extra.remove(&page).unwrap_or_default();
            let flags = PageFlags {
                needs_ocr: true,
                ocr: true,
                ..flags
            };
            got.insert(
                page,
                OcrPage {
                    page,
                    text,
                    flags,
                    confidence,
                    note,
                },
            );
        }
        for &page in &wanted {
            got.entry(page).or_insert_with(|| OcrPage {
                page,
                text: String::new(),
                flags: PageFlags {
                    failed: true,
                    needs_ocr: true,
                    ocr: true,
                    ..PageFlags::default()
                },
                confidence: None,
                note: Some("the OCR job ended without this page".to_string()),
            });
        }
        let result = FinishedResult::Recognised {
            key: self.cfg.ocr.settings_key(),
            pages: got.into_values().collect(),
        };
        self.push_result(job.ending(pid), result);
    }

    /// Whether OCR jobs may follow a commit not yet written (or wait for
    /// one to store them): the run must not end before they are queued.
    pub(super) fn ocr_pending(&self) -> bool {
        !self.ocr_waiting.is_empty()
            || !self.ocr_lookups.is_empty()
            || !self.after_merge.is_empty()
            || (!self.chunk_flags.is_empty() && !self.batch.is_empty())
    }
}

/// The queue entry of one OCR job over `pages` of a document of
/// `page_total` pages: a chunk job whose range spans its pages.
fn ocr_job(doc: &QueuedDoc, page_total: u32, pages: &[u32]) -> QueuedDoc {
    let mut job = doc.clone();
    job.attempts = 0;
    job.engine_notes.clear();
    job.page_total = page_total;
    job.set_chunk(PageRange {
        first: pages[0],
        last: pages[pages.len() - 1],
    });
    job.ocr_pages = Some(pages.to_vec());
    job
}
