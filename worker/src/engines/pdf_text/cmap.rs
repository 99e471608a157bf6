//! CMaps as PDF fonts carry them: a ToUnicode map from character codes to
//! text, and the code space ranges that say how many bytes make one code.
//! lopdf parses ToUnicode maps too, but keeps its parser private and only
//! offers them through a font's `/Encoding` (which a composite font names
//! first), so the map is read here, with lopdf's content-stream tokenizer:
//! a CMap's `beginbfchar … endbfchar` sections read as operators with their
//! operands.

use std::collections::HashMap;

use lopdf::content::Content;
use lopdf::Object;

/// One `begincodespacerange` entry: codes of `lo.len()` bytes, each byte
/// within the bounds of the same byte of `lo` and `hi`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CodeRange {
    lo: Vec<u8>,
    hi: Vec<u8>,
}

impl CodeRange {
    fn contains(&self, code: &[u8]) -> bool {
        code.len() == self.lo.len()
            && code
                .iter()
                .zip(self.lo.iter().zip(&self.hi))
                .all(|(b, (lo, hi))| (lo..=hi).contains(&b))
    }
}

/// A `beginbfrange` entry whose destination is a base string: code
/// `first + k` maps to `base` with its last UTF-16 unit raised by `k`.
#[derive(Clone, Debug)]
struct Range {
    len: usize,
    first: u32,
    last: u32,
    base: Vec<u16>,
}

/// A parsed CMap: code space ranges and code-to-text mappings.
#[derive(Clone, Debug, Default)]
pub struct CMap {
    ranges: Vec<CodeRange>,
    /// Single codes (`bfchar`, and ranges given as arrays), by byte length.
    chars: HashMap<(usize, u32), String>,
    /// Ranges given as a base string.
    spans: Vec<Range>,
}

impl CMap {
    /// Reads a CMap stream's (decompressed) bytes. Sections it cannot read
    /// are skipped: a partly read map still decodes what it holds.
    pub fn parse(data: &[u8]) -> CMap {
        let mut map = CMap::default();
        let Ok(content) = Content::decode(data) else {
            return map;
        };
        for op in &content.operations {
            let hex = |o: &Object| match o {
                Object::String(bytes, _) => Some(bytes.clone()),
                _ => None,
            };
            match op.operator.as_str() {
                "endcodespacerange" => {
                    for pair in op.operands.chunks_exact(2) {
                        if let (Some(lo), Some(hi)) = (hex(&pair[0]), hex(&pair[1])) {
                            if lo.len() == hi.len() && (1..=4).contains(&lo.len()) {
                                map.ranges.push(CodeRange { lo, hi });
                            }
                        }
                    }
                }
                "endbfchar" => {
                    for pair in op.operands.chunks_exact(2) {
                        if let (Some(src), Some(dst)) = (hex(&pair[0]), hex(&pair[1])) {
                            if let Some(code) = code_value(&src) {
                                map.chars.insert((src.len(), code), utf16_text(&dst));
                            }
                        }
                    }
                }
                "endbfrange" => {
                    for triple in op.operands.chunks_exact(3) {
                        map.add_range(triple);
                    }
                }
                _ => {}
            }
        }
        map
    }

    fn add_range(&mut self, triple: &[Object]) {
        let (Object::String(lo, _), Object::String(hi, _)) = (&triple[0], &triple[1]) else {
            return;
        };
        let (Some(first), Some(last)) = (code_value(lo), code_value(hi)) else {
            return;
        };
        if lo.len() != hi.len() || last < first {
            return;
        }
        match &triple[2] {
            Object::String(dst, _) => {
                let base = utf16_units(dst);
                if !base.is_empty() {
                    self.spans.push(Range {
                        len: lo.len(),
                        first,
                        last,
                        base,
                    });
                }
            }
            Object::Array(items) => {
                for (code, item) in (first..=last).zip(items) {
                    if let Object::String(dst, _) = item {
                        self.chars.insert((lo.len(), code), utf16_text(dst));
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether the map says how codes are split into bytes.
    pub fn has_code_space(&self) -> bool {
        !self.ranges.is_empty()
    }

    /// Whether the map holds any mapping at all.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty() && self.spans.is_empty()
    }

    /// The byte length of the code at the start of `bytes`, by the code
    /// space ranges; `None` when no range matches (or there are none).
    pub fn code_len(&self, bytes: &[u8]) -> Option<usize> {
        (1..=4.min(bytes.len())).find(|&n| self.ranges.iter().any(|r| r.contains(&bytes[..n])))
    }

    /// The text for one code of `len` bytes.
    pub fn lookup(&self, len: usize, code: u32) -> Option<String> {
        if let Some(text) = self.chars.get(&(len, code)) {
            return Some(text.clone());
        }
        let span = self
            .spans
            .iter()
            .find(|s| s.len == len && (s.first..=s.last).contains(&code))?;
        let mut units = span.base.clone();
        let last = units.len() - 1;
        units[last] = units[last].wrapping_add((code - span.first) as u16);
        Some(String::from_utf16_lossy(&units))
    }
}

/// A code's bytes as one big-endian number (at most four bytes).
pub fn code_value(bytes: &[u8]) -> Option<u32> {
    (1..=4)
        .contains(&bytes.len())
        .then(|| bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)))
}

fn utf16_units(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks(2)
        .map(|c| match c {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            [b] => u16::from(*b),
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

fn utf16_text(bytes: &[u8]) -> String {
    String::from_utf16_lossy(&utf16_units(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &[u8] = b"/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
2 beginbfchar
<0003> <0020>
<0011> <00660069>
endbfchar
2 beginbfrange
<0024> <0026> <0041>
<0030> <0031> [<0078> <D835DC00>]
endbfrange
endcmap
CMapName currentdict /CMap defineresource pop
end
end
";

    #[test]
    fn chars_ranges_and_arrays_map_to_text() {
        let map = CMap::parse(MAP);
        assert!(map.has_code_space());
        assert_eq!(map.lookup(2, 0x0003).as_deref(), Some(" "));
        assert_eq!(map.lookup(2, 0x0011).as_deref(), Some("fi"));
        assert_eq!(map.lookup(2, 0x0024).as_deref(), Some("A"));
        assert_eq!(map.lookup(2, 0x0026).as_deref(), Some("C"));
        assert_eq!(map.lookup(2, 0x0027), None);
        assert_eq!(map.lookup(2, 0x0030).as_deref(), Some("x"));
        assert_eq!(map.lookup(2, 0x0031).as_deref(), Some("\u{1D400}"));
        // A one-byte code is not the two-byte code of the same value.
        assert_eq!(map.lookup(1, 0x24), None);
    }

    #[test]
    fn code_space_ranges_split_mixed_width_codes() {
        let map = CMap::parse(b"2 begincodespacerange <00> <80> <8140> <9FFC> endcodespacerange");
        assert_eq!(map.code_len(b"\x41\x81\x40"), Some(1));
        assert_eq!(map.code_len(b"\x81\x40"), Some(2));
        assert_eq!(map.code_len(b"\xA0"), None);
        assert!(map.is_empty());
    }

    #[test]
    fn unreadable_maps_are_empty() {
        let map = CMap::parse(b"{ not a cmap");
        assert!(map.is_empty());
        assert!(!map.has_code_space());
    }
}
