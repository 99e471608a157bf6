//! Format detection by content (magic bytes), with the extension only as a
//! tie-breaker for damaged files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use docmill_protocol::Format;

use crate::store::FoundKind;

const HEAD: usize = 1024;
const EPUB_MIMETYPE: &[u8] = b"mimetypeapplication/epub+zip";

/// Decides what `path` is. `allow_mock` turns `.mockdoc` files into
/// fault-injection documents; otherwise they are unsupported like any text.
pub fn sniff(path: &Path, size: u64, allow_mock: bool) -> FoundKind {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if allow_mock && ext == docmill_worker::mockdoc::EXTENSION {
        return FoundKind::Document(Format::Mock);
    }
    let mut head = Vec::with_capacity(HEAD);
    let read = File::open(path).and_then(|f| f.take(HEAD as u64).read_to_end(&mut head));
    if let Err(e) = read {
        let why = match e.kind() {
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::NotFound => "file vanished during the walk".to_string(),
            _ => e.to_string(),
        };
        return if matches!(ext.as_str(), "pdf" | "epub") {
            FoundKind::Failed(format!("cannot read the file: {why}"))
        } else {
            FoundKind::Unsupported(format!("cannot read the file: {why}"))
        };
    }
    classify(&head, size, &ext)
}

/// The pure part of [`sniff`]: the first bytes, the size and the extension.
pub fn classify(head: &[u8], size: u64, ext: &str) -> FoundKind {
    if size == 0 || head.is_empty() {
        let why = "empty file (0 bytes)".to_string();
        return if matches!(ext, "pdf" | "epub") {
            FoundKind::Failed(why)
        } else {
            FoundKind::Unsupported(why)
        };
    }
    if head.windows(5).any(|w| w == b"%PDF-") {
        return FoundKind::Document(Format::Pdf);
    }
    if head.starts_with(b"PK\x03\x04") {
        if head.get(30..30 + EPUB_MIMETYPE.len()) == Some(EPUB_MIMETYPE) || ext == "epub" {
            return FoundKind::Document(Format::Epub);
        }
        return FoundKind::Unsupported("zip archive, not an EPUB".to_string());
    }
    // A damaged file with the right name: the engine judges it and says why.
    match ext {
        "pdf" => FoundKind::Document(Format::Pdf),
        "epub" => FoundKind::Document(Format::Epub),
        "" => {
            FoundKind::Unsupported("unsupported format (no extension, unknown content)".to_string())
        }
        other => FoundKind::Unsupported(format!("unsupported format (.{other})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_content_not_name() {
        assert_eq!(
            classify(b"%PDF-1.7\n", 9, "txt"),
            FoundKind::Document(Format::Pdf)
        );
        assert_eq!(
            classify(b"\n\n%PDF-1.4", 9, ""),
            FoundKind::Document(Format::Pdf)
        );
        let mut epub = b"PK\x03\x04".to_vec();
        epub.resize(30, 0);
        epub.extend_from_slice(EPUB_MIMETYPE);
        assert_eq!(
            classify(&epub, 100, "zip"),
            FoundKind::Document(Format::Epub)
        );
        assert!(matches!(
            classify(b"PK\x03\x04rest", 10, "zip"),
            FoundKind::Unsupported(_)
        ));
        assert_eq!(
            classify(b"PK\x03\x04rest", 10, "epub"),
            FoundKind::Document(Format::Epub)
        );
    }

    #[test]
    fn empty_and_unknown() {
        assert!(matches!(classify(b"", 0, "pdf"), FoundKind::Failed(r) if r.contains("empty")));
        assert!(matches!(classify(b"", 0, "txt"), FoundKind::Unsupported(_)));
        assert!(
            matches!(classify(b"hello", 5, "txt"), FoundKind::Unsupported(r) if r.contains(".txt"))
        );
        assert_eq!(
            classify(b"garbage", 7, "pdf"),
            FoundKind::Document(Format::Pdf)
        );
    }
}
