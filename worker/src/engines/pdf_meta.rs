//! A PDF's page count, title and author read in-process, for the engines
//! that run an outside tool: lopdf's metadata reader parses the
//! cross-reference table, the trailer, the Info dictionary and the root of
//! the page tree, none of the pages. That spares those engines a second
//! process per document (`mutool show`, `pdfinfo`), whose start-up cost as
//! much as a short document's extraction.
//!
//! It answers only the plain case. A file it cannot read this way (a broken
//! cross-reference table the tools would repair, encryption that needs a
//! password, no page count, a title or author it cannot resolve, a file too
//! big to read into memory for this) gives `None`, and the engine asks its
//! tool as before, so every failure reason still comes from the tool.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use pdf_extract::Document;

use super::child::Meta;
use crate::panic_note;

/// Bigger files are left to the tool: reading them whole to find three
/// objects would cost memory the extraction itself may need.
const MAX_BYTES: u64 = 64 << 20;

pub fn read(path: &Path) -> Option<Meta> {
    if fs::metadata(path).ok()?.len() > MAX_BYTES {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    let read = panic::catch_unwind(AssertUnwindSafe(|| Document::load_metadata_mem(&bytes)));
    let found = match read {
        Ok(Ok(found)) => found,
        Ok(Err(_)) => return None,
        Err(_) => {
            // Not the document's failure: the tool decides. Drop the note
            // so it cannot end up in a later reason.
            panic_note::take();
            return None;
        }
    };
    let title = non_empty(found.title);
    let author = non_empty(found.author);
    // lopdf reads only strings written into the Info dictionary itself, not
    // those it refers to as separate objects (Quartz writes them so): where
    // a field came back empty but its key is in the file, the tool reads it.
    let missed = |field: &Option<String>, key: &[u8]| field.is_none() && contains(&bytes, key);
    if found.page_count == 0 || missed(&title, b"/Title") || missed(&author, b"/Author") {
        return None;
    }
    Some(Meta {
        page_count: found.page_count,
        title,
        author,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdf_extract::{dictionary, Object, StringFormat};
    use std::path::PathBuf;

    /// A PDF of `pages` empty pages whose Info dictionary holds `info`,
    /// written to a file in `dir`.
    fn pdf(
        dir: &Path,
        name: &str,
        pages: u32,
        info: impl FnOnce(&mut Document) -> Object,
    ) -> PathBuf {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let kids: Vec<Object> = (0..pages)
            .map(|_| {
                doc.add_object(dictionary! {
                    "Type" => "Page",
                    "Parent" => pages_id,
                    "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
                })
                .into()
            })
            .collect();
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => pages as i64,
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let info = info(&mut doc);
        let info = doc.add_object(info);
        doc.trailer.set("Info", info);
        let path = dir.join(name);
        doc.save(&path).expect("writes the PDF");
        path
    }

    fn text(s: &str) -> Object {
        Object::String(s.as_bytes().to_vec(), StringFormat::Literal)
    }

    #[test]
    fn reads_count_title_and_author_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = pdf(dir.path(), "a.pdf", 3, |_| {
            Object::Dictionary(
                dictionary! { "Title" => text(" A Title "), "Author" => text("Someone") },
            )
        });
        let meta = read(&path).expect("a plain PDF is read in-process");
        assert_eq!(meta.page_count, 3);
        assert_eq!(meta.title.as_deref(), Some("A Title"));
        assert_eq!(meta.author.as_deref(), Some("Someone"));

        let path = pdf(dir.path(), "b.pdf", 1, |_| {
            Object::Dictionary(dictionary! {})
        });
        let meta = read(&path).expect("no title is fine");
        assert_eq!((meta.page_count, meta.title, meta.author), (1, None, None));
    }

    #[test]
    fn leaves_what_it_cannot_resolve_to_the_tool() {
        let dir = tempfile::tempdir().unwrap();
        // The title as a separate object: lopdf's reader does not follow it.
        let path = pdf(dir.path(), "ref.pdf", 2, |doc| {
            let title = doc.add_object(text("Referenced"));
            Object::Dictionary(dictionary! { "Title" => title })
        });
        assert!(read(&path).is_none());
        // No pages counted.
        let path = pdf(dir.path(), "empty.pdf", 0, |_| {
            Object::Dictionary(dictionary! {})
        });
        assert!(read(&path).is_none());
        // Not a PDF, a cut-off one, a missing file.
        let junk = dir.path().join("junk.pdf");
        fs::write(&junk, b"%PDF-1.4\nnot really").unwrap();
        assert!(read(&junk).is_none());
        let good = fs::read(pdf(dir.path(), "c.pdf", 2, |_| {
            Object::Dictionary(dictionary! {})
        }))
        .unwrap();
        let cut = dir.path().join("cut.pdf");
        fs::write(&cut, &good[..good.len() / 2]).unwrap();
        assert!(read(&cut).is_none());
        assert!(read(&dir.path().join("missing.pdf")).is_none());
    }
}
