//! A PDF font as text extraction sees it: how a shown string splits into
//! character codes, what text each code stands for, and how far each moves
//! the pen. Text comes from the font's ToUnicode map first, then from its
//! encoding (a named base encoding with its Differences, for simple fonts;
//! a predefined CJK CMap, for composite ones without a ToUnicode map).
//! Fonts whose codes map to nothing readable (an Identity-encoded font
//! without ToUnicode) give no text: other engines read the font program
//! itself for that.

use std::collections::HashMap;

use lopdf::{Dictionary, Document, Object};

use super::cmap::{code_value, CMap};

/// How a composite font without a ToUnicode map turns codes into text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Legacy {
    /// Codes are UTF-16BE (the `Uni…-UCS2` and `Uni…-UTF16` CMaps).
    Utf16,
    /// Codes are in a legacy CJK character set that encoding_rs reads.
    Charset(&'static encoding_rs::Encoding),
    /// JIS X 0208 in its 7-bit form (the `H` and `V` CMaps of Adobe-Japan1):
    /// EUC-JP with the high bit of each byte cleared.
    Jis,
}

/// One character code of a shown string.
#[derive(Clone, Debug, PartialEq)]
pub struct Glyph {
    /// The text it stands for; empty when the font does not say.
    pub text: String,
    /// Horizontal displacement in text space units, for a font size of 1.
    pub width: f64,
    /// A one-byte code 32, which word spacing (`Tw`) applies to.
    pub word_space: bool,
}

/// A font, ready to decode strings.
#[derive(Debug)]
pub struct Font {
    /// Composite (Type0) fonts have multi-byte codes and CID widths.
    composite: bool,
    to_unicode: Option<CMap>,
    /// A composite font's embedded encoding CMap, for its code space only.
    code_space: Option<CMap>,
    /// A simple font's byte-to-text table, from its encoding.
    table: Option<Vec<Option<char>>>,
    legacy: Option<Legacy>,
    /// Widths by code (simple fonts) or CID (composite), in glyph units.
    widths: HashMap<u32, f64>,
    default_width: f64,
    /// Glyph units to text space units: 1/1000, or a Type3 font's matrix.
    scale: f64,
}

impl Font {
    /// Reads the font dictionary `dict` of `doc`.
    pub fn new(doc: &Document, dict: &Dictionary) -> Font {
        let subtype = name(doc, dict.get(b"Subtype").ok()).unwrap_or_default();
        let composite = subtype == b"Type0";
        let to_unicode = stream_bytes(doc, dict.get(b"ToUnicode").ok())
            .map(|bytes| CMap::parse(&bytes))
            .filter(|m| !m.is_empty());
        // `/ToUnicode /Identity-H` is no map, but says what some producers
        // mean by it: the codes are Unicode already.
        let identity_unicode =
            name(doc, dict.get(b"ToUnicode").ok()).is_some_and(|n| n.starts_with(b"Identity"));
        let mut font = Font {
            composite,
            to_unicode,
            code_space: None,
            table: None,
            legacy: None,
            widths: HashMap::new(),
            default_width: 0.0,
            scale: 0.001,
        };
        if composite {
            font.read_composite(doc, dict);
            if identity_unicode && font.to_unicode.is_none() {
                font.legacy = Some(Legacy::Utf16);
            }
        } else {
            font.read_simple(doc, dict, &subtype);
        }
        font
    }

    fn read_composite(&mut self, doc: &Document, dict: &Dictionary) {
        let encoding = dict.get(b"Encoding").ok().map(|o| deref(doc, o));
        match encoding {
            Some(Object::Name(cmap)) => self.legacy = legacy_cmap(cmap),
            Some(Object::Stream(s)) => {
                self.code_space = s
                    .get_plain_content()
                    .ok()
                    .map(|bytes| CMap::parse(&bytes))
                    .filter(CMap::has_code_space);
            }
            _ => {}
        }
        let descendant = dict
            .get(b"DescendantFonts")
            .ok()
            .map(|o| deref(doc, o))
            .and_then(|o| o.as_array().ok())
            .and_then(|a| a.first())
            .map(|o| deref(doc, o))
            .and_then(|o| o.as_dict().ok());
        self.default_width = 1000.0;
        let Some(cid_font) = descendant else {
            return;
        };
        if let Some(dw) = cid_font.get(b"DW").ok().and_then(|o| number(doc, o)) {
            self.default_width = dw;
        }
        let Some(w) = cid_font
            .get(b"W")
            .ok()
            .and_then(|o| deref(doc, o).as_array().ok())
        else {
            return;
        };
        // `c [w1 w2 …]` gives widths from CID c on; `c1 c2 w` one width
        // for CIDs c1 to c2.
        let mut i = 0;
        while i + 1 < w.len() {
            let Some(first) = number(doc, &w[i]) else {
                break;
            };
            let first = first as u32;
            match deref(doc, &w[i + 1]) {
                Object::Array(list) => {
                    for (k, width) in list.iter().enumerate() {
                        if let Some(width) = number(doc, width) {
                            self.widths.insert(first + k as u32, width);
                        }
                    }
                    i += 2;
                }
                last => {
                    let (Some(last), Some(width)) =
                        (number(doc, last), w.get(i + 2).and_then(|o| number(doc, o)))
                    else {
                        break;
                    };
                    // A range of a whole code space is a default width in
                    // all but name; cap the entries it can add.
                    for cid in first..=(last as u32).min(first + 0xFFFF) {
                        self.widths.insert(cid, width);
                    }
                    i += 3;
                }
            }
        }
    }

    fn read_simple(&mut self, doc: &Document, dict: &Dictionary, subtype: &[u8]) {
        if subtype == b"Type3" {
            if let Some(m) = dict
                .get(b"FontMatrix")
                .ok()
                .and_then(|o| deref(doc, o).as_array().ok())
                .and_then(|a| a.first())
                .and_then(|o| number(doc, o))
            {
                self.scale = m;
            }
        }
        self.table = Some(simple_table(doc, dict));
        let first = dict
            .get(b"FirstChar")
            .ok()
            .and_then(|o| number(doc, o))
            .unwrap_or(0.0) as u32;
        if let Some(widths) = dict
            .get(b"Widths")
            .ok()
            .and_then(|o| deref(doc, o).as_array().ok())
        {
            for (k, w) in widths.iter().enumerate() {
                if let Some(w) = number(doc, w) {
                    self.widths.insert(first + k as u32, w);
                }
            }
        }
        self.default_width = dict
            .get(b"FontDescriptor")
            .ok()
            .and_then(|o| deref(doc, o).as_dict().ok())
            .and_then(|d| d.get(b"MissingWidth").ok())
            .and_then(|o| number(doc, o))
            .unwrap_or(0.0);
        if self.widths.is_empty() {
            // A standard font named without widths: an average glyph, so
            // that the pen still moves on.
            self.default_width = 500.0;
        }
    }

    /// Splits `bytes` into codes and decodes each.
    pub fn decode(&self, bytes: &[u8]) -> Vec<Glyph> {
        if !self.composite {
            return bytes.iter().map(|&b| self.simple_glyph(b)).collect();
        }
        if self.to_unicode.is_none() {
            match self.legacy {
                Some(Legacy::Charset(charset)) => return self.charset_glyphs(charset, bytes),
                Some(Legacy::Jis) => {
                    let euc: Vec<u8> = bytes.iter().map(|b| b | 0x80).collect();
                    return self.charset_glyphs(encoding_rs::EUC_JP, &euc);
                }
                Some(Legacy::Utf16) | None => {}
            }
        }
        let mut glyphs = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = self.code_len(&bytes[at..]);
            let code = &bytes[at..at + len];
            at += len;
            let value = code_value(code).unwrap_or(0);
            let text = match (&self.to_unicode, self.legacy) {
                (Some(map), _) => map.lookup(len, value).unwrap_or_default(),
                (None, Some(Legacy::Utf16)) => String::from_utf16_lossy(&[value as u16]),
                (None, _) => String::new(),
            };
            glyphs.push(Glyph {
                text,
                // For Identity CMaps (nearly every embedded composite font)
                // the code is the CID; for others, the default width is the
                // best guess without the CMap's CID table.
                width: self.width(value) * self.scale,
                word_space: false,
            });
        }
        glyphs
    }

    fn simple_glyph(&self, byte: u8) -> Glyph {
        let code = u32::from(byte);
        let text = self
            .to_unicode
            .as_ref()
            .and_then(|m| m.lookup(1, code))
            .or_else(|| {
                self.table
                    .as_ref()
                    .and_then(|t| t[usize::from(byte)])
                    .map(String::from)
            })
            .unwrap_or_default();
        Glyph {
            text,
            width: self.width(code) * self.scale,
            word_space: byte == b' ',
        }
    }

    fn charset_glyphs(&self, charset: &'static encoding_rs::Encoding, bytes: &[u8]) -> Vec<Glyph> {
        let (text, _) = charset.decode_without_bom_handling(bytes);
        text.chars()
            .map(|c| Glyph {
                width: if c.is_ascii() {
                    self.default_width / 2.0
                } else {
                    self.default_width
                } * self.scale,
                word_space: c == ' ',
                text: c.to_string(),
            })
            .collect()
    }

    /// The byte length of the composite font's code at the start of
    /// `bytes`: by the code space of its encoding CMap, or of its
    /// ToUnicode map, else two bytes (Identity and the Unicode CMaps).
    fn code_len(&self, bytes: &[u8]) -> usize {
        let by_map = |m: &Option<CMap>| m.as_ref().and_then(|m| m.code_len(bytes));
        by_map(&self.code_space)
            .or_else(|| by_map(&self.to_unicode))
            .unwrap_or(2)
            .min(bytes.len())
    }

    fn width(&self, code: u32) -> f64 {
        self.widths
            .get(&code)
            .copied()
            .unwrap_or(self.default_width)
    }
}

/// What a predefined CMap's name says about its codes.
fn legacy_cmap(name: &[u8]) -> Option<Legacy> {
    let name = std::str::from_utf8(name).ok()?;
    if name.contains("UCS2") || name.contains("UTF16") {
        return Some(Legacy::Utf16);
    }
    if name == "H" || name == "V" {
        return Some(Legacy::Jis);
    }
    let charset = if name.contains("RKSJ") {
        encoding_rs::SHIFT_JIS
    } else if name.starts_with("KSC") || name.contains("UHC") {
        encoding_rs::EUC_KR
    } else if name.starts_with("GB") {
        encoding_rs::GBK
    } else if name.starts_with("B5") || name.starts_with("ETen") || name.starts_with("HKscs") {
        encoding_rs::BIG5
    } else if name.starts_with("EUC") {
        encoding_rs::EUC_JP
    } else {
        return None;
    };
    Some(Legacy::Charset(charset))
}

/// A simple font's byte-to-text table: its base encoding (named, or
/// StandardEncoding), with its Differences laid over it.
fn simple_table(doc: &Document, dict: &Dictionary) -> Vec<Option<char>> {
    let encoding = dict.get(b"Encoding").ok().map(|o| deref(doc, o));
    let (base, differences) = match encoding {
        Some(Object::Name(n)) => (Some(n.as_slice()), None),
        Some(Object::Dictionary(d)) => (
            d.get(b"BaseEncoding").ok().and_then(|o| o.as_name().ok()),
            d.get(b"Differences")
                .ok()
                .and_then(|o| deref(doc, o).as_array().ok()),
        ),
        _ => (None, None),
    };
    let mut table = base_table(base.unwrap_or(b"StandardEncoding"));
    let mut code = 0usize;
    for item in differences.into_iter().flatten() {
        match deref(doc, item) {
            Object::Integer(n) => code = usize::try_from(*n).unwrap_or(256),
            Object::Name(glyph) => {
                if code < 256 {
                    table[code] = glyph_char(glyph);
                }
                code += 1;
            }
            _ => {}
        }
    }
    table
}

/// The 256 characters of a named base encoding, as lopdf knows them (it
/// keeps its tables private, so they are read through a font that names
/// the encoding). An unknown name reads as StandardEncoding.
fn base_table(name: &[u8]) -> Vec<Option<char>> {
    let known: &[u8] = match name {
        b"WinAnsiEncoding" | b"MacRomanEncoding" | b"MacExpertEncoding" | b"PDFDocEncoding" => name,
        _ => b"StandardEncoding",
    };
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Encoding", Object::Name(known.to_vec()));
    lopdf_chars(&font, (0..=255).collect())
}

/// The character a glyph name stands for: `uniXXXX` and `uXXXX[XX]` names
/// by their number, the Adobe Glyph List's names through lopdf.
fn glyph_char(name: &[u8]) -> Option<char> {
    let name = std::str::from_utf8(name).ok()?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().and_then(char::from_u32);
    if let Some(h) = name.strip_prefix("uni").filter(|h| h.len() >= 4) {
        return hex(&h[..4]);
    }
    // TeX's bitmap fonts and others name glyphs by their code (`a65`,
    // `g97`, `C32`): a letter or two, then the code in decimal.
    let letters = name.bytes().take_while(u8::is_ascii_alphabetic).count();
    let digits = &name[letters..];
    if (1..=2).contains(&letters)
        && (2..=3).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !name.starts_with("uni")
    {
        let code: u32 = digits.parse().ok()?;
        // Codes below 32 are control characters: no text.
        return (32..=255)
            .contains(&code)
            .then(|| char::from_u32(code))
            .flatten();
    }
    if let Some(h) = name
        .strip_prefix('u')
        .filter(|h| (4..=6).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return hex(h);
    }
    let mut encoding = Dictionary::new();
    encoding.set("Type", Object::Name(b"Encoding".to_vec()));
    encoding.set(
        "Differences",
        Object::Array(vec![
            Object::Integer(0),
            Object::Name(name.as_bytes().to_vec()),
        ]),
    );
    let mut font = Dictionary::new();
    font.set("Type", Object::Name(b"Font".to_vec()));
    font.set("Encoding", Object::Dictionary(encoding));
    // An unknown name makes lopdf fall back to StandardEncoding, where code
    // 0 is nothing: that reads as no character, as it should.
    lopdf_chars(&font, vec![0])[0]
}

/// What lopdf decodes each of `codes` to, through `font`'s encoding.
fn lopdf_chars(font: &Dictionary, codes: Vec<u8>) -> Vec<Option<char>> {
    let doc = Document::new();
    let Ok(encoding) = font.get_font_encoding(&doc) else {
        return vec![None; codes.len()];
    };
    codes
        .into_iter()
        .map(|c| {
            encoding
                .bytes_to_string(&[c])
                .ok()
                .and_then(|s| s.chars().next())
        })
        .collect()
}

fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    doc.dereference(object).map_or(object, |(_, o)| o)
}

fn name(doc: &Document, object: Option<&Object>) -> Option<Vec<u8>> {
    object
        .map(|o| deref(doc, o))
        .and_then(|o| o.as_name().ok())
        .map(<[u8]>::to_vec)
}

pub(super) fn number(doc: &Document, object: &Object) -> Option<f64> {
    deref(doc, object).as_float().ok().map(f64::from)
}

fn stream_bytes(doc: &Document, object: Option<&Object>) -> Option<Vec<u8>> {
    let stream = deref(doc, object?).as_stream().ok()?;
    stream.get_plain_content().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn font(entries: &[(&str, Object)]) -> Font {
        let mut dict = Dictionary::new();
        dict.set("Type", Object::Name(b"Font".to_vec()));
        for (k, v) in entries {
            dict.set(*k, v.clone());
        }
        Font::new(&Document::new(), &dict)
    }

    fn text(font: &Font, bytes: &[u8]) -> String {
        font.decode(bytes).into_iter().map(|g| g.text).collect()
    }

    fn name(n: &str) -> Object {
        Object::Name(n.as_bytes().to_vec())
    }

    #[test]
    fn simple_fonts_read_their_base_encoding_and_differences() {
        let winansi = font(&[
            ("Subtype", name("TrueType")),
            ("Encoding", name("WinAnsiEncoding")),
        ]);
        assert_eq!(
            text(&winansi, b"caf\xe9 \x93q\x94"),
            "café \u{201c}q\u{201d}"
        );
        let mut enc = Dictionary::new();
        enc.set(
            "Differences",
            Object::Array(vec![
                Object::Integer(65),
                name("fi"),
                name("uni20AC"),
                name("g17"),
                name("a68"),
                name("g9"),
            ]),
        );
        let differences = font(&[
            ("Subtype", name("Type1")),
            ("Encoding", Object::Dictionary(enc)),
        ]);
        // `g17` names code 17, a control character: no text; `a68` is "D".
        assert_eq!(text(&differences, b"ABCDEF"), "\u{fb01}\u{20ac}DF");
    }

    #[test]
    fn widths_come_from_the_font_or_a_guess() {
        let f = font(&[
            ("Subtype", name("Type1")),
            ("FirstChar", Object::Integer(32)),
            (
                "Widths",
                Object::Array(vec![Object::Integer(250), Object::Integer(333)]),
            ),
        ]);
        let glyphs = f.decode(b" !");
        assert_eq!(glyphs[0].width, 0.25);
        assert!(glyphs[0].word_space);
        assert_eq!(glyphs[1].width, 0.333);
        // Without widths, every glyph is half an em.
        let f = font(&[("Subtype", name("Type1")), ("BaseFont", name("Helvetica"))]);
        assert_eq!(f.decode(b"i")[0].width, 0.5);
    }

    #[test]
    fn composite_fonts_without_to_unicode_read_predefined_cmaps() {
        let sjis = font(&[
            ("Subtype", name("Type0")),
            ("Encoding", name("90ms-RKSJ-H")),
        ]);
        assert_eq!(text(&sjis, b"\x93\xfa\x96\x7b"), "日本");
        let ucs2 = font(&[
            ("Subtype", name("Type0")),
            ("Encoding", name("UniJIS-UCS2-H")),
        ]);
        assert_eq!(text(&ucs2, b"\x65\xe5\x67\x2c"), "日本");
        let jis = font(&[("Subtype", name("Type0")), ("Encoding", name("H"))]);
        assert_eq!(text(&jis, b"\x46\x7c\x4b\x5c"), "日本");
        // Identity without ToUnicode: codes are glyph ids, nothing to read.
        let identity = font(&[("Subtype", name("Type0")), ("Encoding", name("Identity-H"))]);
        let glyphs = identity.decode(b"\x00\x24\x00\x25");
        assert_eq!(glyphs.len(), 2);
        assert!(glyphs.iter().all(|g| g.text.is_empty()));
        assert_eq!(glyphs[0].width, 1.0);
    }
}
