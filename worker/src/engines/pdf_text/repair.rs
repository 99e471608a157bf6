//! A PDF whose cross-reference table lies (offsets shifted by a line-ending
//! conversion, a table cut off) made readable again: every `N G obj` in
//! the file is found by scanning, and a fresh table and trailer that point
//! at them are appended, as other readers rebuild a broken file. lopdf has
//! no such recovery of its own; given the appended table, it loads the file
//! as it loads any incrementally updated one.

/// The file with a rebuilt cross-reference table appended, or `None` when
/// no object or no catalog reference is found.
pub fn rebuild_xref(bytes: &[u8]) -> Option<Vec<u8>> {
    // lopdf reads offsets from the header on, as the specification counts.
    let start = find(bytes, b"%PDF-", 0)?;
    let pdf = &bytes[start..];
    let objects = scan_objects(pdf);
    let max = objects.iter().map(|o| o.0).max()?;
    let root = last_reference(pdf, b"/Root")?;
    let mut offsets = vec![None; max as usize + 1];
    // A later definition of an object (an incremental update) wins.
    for (number, generation, offset) in objects {
        offsets[number as usize] = Some((generation, offset));
    }
    let mut out = pdf.to_vec();
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n", max + 1).as_bytes());
    for entry in &offsets {
        let line = match entry {
            Some((generation, offset)) => format!("{offset:010} {generation:05} n\r\n"),
            None => "0000000000 65535 f\r\n".to_string(),
        };
        out.extend_from_slice(line.as_bytes());
    }
    let mut trailer = format!("trailer\n<< /Size {} /Root {root}", max + 1);
    for key in [&b"/Info"[..], b"/Encrypt"] {
        if let Some(r) = last_reference(pdf, key) {
            trailer.push_str(&format!(" {} {r}", String::from_utf8_lossy(key)));
        }
    }
    if let Some(id) = last_id(pdf) {
        trailer.push_str(&format!(" /ID {id}"));
    }
    trailer.push_str(&format!(" >>\nstartxref\n{xref}\n%%EOF\n"));
    out.extend_from_slice(trailer.as_bytes());
    Some(out)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Every `number generation obj` that starts a line or follows a
/// delimiter: (number, generation, offset of the number).
fn scan_objects(pdf: &[u8]) -> Vec<(u32, u16, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = find(pdf, b"obj", at) {
        at = pos + 3;
        let after_ok = pdf
            .get(pos + 3)
            .is_none_or(|b| b.is_ascii_whitespace() || b"<[/(%".contains(b));
        if !after_ok {
            continue;
        }
        if let Some(object) = numbers_before(pdf, pos) {
            found.push(object);
        }
    }
    found
}

/// The `N G` written right before the `obj` at `pos`.
fn numbers_before(pdf: &[u8], pos: usize) -> Option<(u32, u16, usize)> {
    let (generation, gen_start) = number_before(pdf, skip_space_back(pdf, pos)?)?;
    let (number, num_start) = number_before(pdf, skip_space_back(pdf, gen_start)?)?;
    let boundary = num_start == 0 || {
        let b = pdf[num_start - 1];
        b.is_ascii_whitespace() || b"<>[]()/%".contains(&b)
    };
    (boundary && number > 0).then_some((
        u32::try_from(number).ok()?,
        u16::try_from(generation).ok()?,
        num_start,
    ))
}

/// The end of the run of whitespace that ends right before `pos`; `None`
/// when there is none.
fn skip_space_back(pdf: &[u8], pos: usize) -> Option<usize> {
    let mut end = pos;
    while end > 0 && pdf[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (end < pos).then_some(end)
}

/// The decimal number ending at `end`, with where it starts.
fn number_before(pdf: &[u8], end: usize) -> Option<(u64, usize)> {
    let mut start = end;
    while start > 0 && pdf[start - 1].is_ascii_digit() && end - start < 10 {
        start -= 1;
    }
    let digits = std::str::from_utf8(&pdf[start..end]).ok()?;
    Some((digits.parse().ok()?, start))
}

/// The last `key N G R` in the file, as `N G R`: the newest trailer's (or
/// cross-reference stream's) entry, since only those name the catalog.
fn last_reference(pdf: &[u8], key: &[u8]) -> Option<String> {
    let mut best = None;
    let mut at = 0;
    while let Some(pos) = find(pdf, key, at) {
        at = pos + key.len();
        let rest = &pdf[at..pdf.len().min(at + 40)];
        let text = String::from_utf8_lossy(rest);
        let mut words = text.split_whitespace();
        let (Some(n), Some(g), Some(r)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if n.bytes().all(|b| b.is_ascii_digit())
            && g.bytes().all(|b| b.is_ascii_digit())
            && r.starts_with('R')
        {
            best = Some(format!("{n} {g} R"));
        }
    }
    best
}

/// The last `/ID [<…> <…>]` in the file, as written.
fn last_id(pdf: &[u8]) -> Option<String> {
    let mut best = None;
    let mut at = 0;
    while let Some(pos) = find(pdf, b"/ID", at) {
        at = pos + 3;
        let open = at + pdf[at..].iter().take(8).position(|&b| b == b'[')?;
        let close = open + pdf[open..].iter().take(200).position(|&b| b == b']')?;
        let id = &pdf[open..=close];
        if id
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b" \r\n\t<>[]".contains(b))
        {
            best = Some(String::from_utf8_lossy(id).into_owned());
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-page PDF whose table's offsets are all wrong.
    fn shifted() -> Vec<u8> {
        let body = "%PDF-1.4\n\
            1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
            2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n\
            3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>\nendobj\n\
            xref\n0 4\n0000000000 65535 f \n0000000100 00000 n \n\
            0000000200 00000 n \n0000000300 00000 n \n\
            trailer\n<< /Size 4 /Root 1 0 R /ID [<0A1B> <0A1B>] >>\nstartxref\n999\n%%EOF\n";
        body.as_bytes().to_vec()
    }

    #[test]
    fn a_lying_table_is_rebuilt_from_the_objects() {
        let broken = shifted();
        assert!(lopdf::Document::load_mem(&broken).is_err());
        let fixed = rebuild_xref(&broken).expect("rebuilt");
        let doc = lopdf::Document::load_mem(&fixed).expect("loads");
        assert_eq!(doc.get_pages().len(), 1);
    }

    #[test]
    fn objects_are_found_at_their_numbers() {
        let pdf = b"%PDF-1.4\n12 0 obj\n<<>>\nendobj\nx 7 1 obj[1]\nendobj\nnot13 0 object";
        let found = scan_objects(pdf);
        assert_eq!(found, vec![(12, 0, 9), (7, 1, 32)]);
        assert_eq!(
            last_reference(b"/Root 4 0 R /Root 5 0 R", b"/Root").as_deref(),
            Some("5 0 R")
        );
        assert!(rebuild_xref(b"no header").is_none());
    }
}
