//! One page's text, read by running its content stream's text operators
//! (and those of the form XObjects it draws) with the text state the PDF
//! specification defines (section 9.4): every shown string lands at a
//! known place, so a gap wide enough for a space becomes one and a move to
//! another baseline becomes a line break, whether the producer placed words
//! with `TJ` kerning, `Td` moves or separate text objects. Text comes out in
//! content-stream order, which is reading order for nearly every producer.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::font::{number, Font};

/// Form XObjects nest at most this deep; deeper (or cyclic) ones are
/// skipped rather than followed.
const MAX_FORM_DEPTH: usize = 12;
/// A gap of at least this many ems between two strings on one line is a
/// space. Word spaces are about a quarter of an em and more; kerning and
/// letter spacing stay well under a tenth.
const SPACE_GAP_EM: f64 = 0.15;
/// A move of more than this many ems across the baseline is a new line;
/// less is a superscript or subscript on the same one.
const LINE_SHIFT_EM: f64 = 0.6;

/// Why a page's text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("no such page")]
    NoPage,
    #[error("unreadable content stream")]
    Content,
}

/// Fonts already read, by object, for every page of one document.
#[derive(Default)]
pub struct FontCache {
    fonts: HashMap<ObjectId, Rc<Font>>,
}

/// The text of page `page_id` of `doc`.
pub fn page_text(
    doc: &Document,
    page_id: ObjectId,
    fonts: &mut FontCache,
) -> Result<String, PageError> {
    let page = doc.get_dictionary(page_id).map_err(|_| PageError::NoPage)?;
    let content = doc
        .get_page_content(page_id)
        .map_err(|_| PageError::Content)?;
    let ops = decode(&content).ok_or(PageError::Content)?;
    let mut reader = Reader {
        doc,
        fonts,
        out: Layout::default(),
        forms: Vec::new(),
    };
    let resources = page_resources(doc, page);
    reader.run(&ops.operations, &resources, State::default());
    Ok(reader.out.text)
}

/// A content stream's operations. lopdf's parser stops at a comment
/// followed by an indented line, so comments are blanked out first.
fn decode(content: &[u8]) -> Option<Content<Vec<Operation>>> {
    let ops = if content.contains(&b'%') {
        Content::decode(&without_comments(content))
    } else {
        Content::decode(content)
    };
    ops.ok()
}

/// `content` with every comment (a `%` outside strings, to the line's
/// end) turned into spaces. Inline image data, between `ID` and `EI`, is
/// left as it is, since its bytes are not syntax.
fn without_comments(content: &[u8]) -> Vec<u8> {
    let mut out = content.to_vec();
    let mut i = 0;
    let mut depth = 0usize;
    while i < out.len() {
        let b = out[i];
        if depth > 0 {
            match b {
                b'\\' => i += 1,
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
        } else {
            match b {
                b'(' => depth = 1,
                b'%' => {
                    while i < out.len() && out[i] != b'\n' && out[i] != b'\r' {
                        out[i] = b' ';
                        i += 1;
                    }
                    continue;
                }
                b'D' if i > 0
                    && out[i - 1] == b'I'
                    && out.get(i + 1).is_some_and(u8::is_ascii_whitespace)
                    && (i < 2 || out[i - 2].is_ascii_whitespace()) =>
                {
                    // Skip the image data to the `EI` that ends it.
                    match out[i..]
                        .windows(3)
                        .position(|w| w[0].is_ascii_whitespace() && w[1] == b'E' && w[2] == b'I')
                    {
                        Some(p) => i += p + 3,
                        None => break,
                    }
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    out
}

/// A page's resource dictionaries, its own first, then those it inherits
/// from the page tree.
fn page_resources<'a>(doc: &'a Document, page: &'a Dictionary) -> Vec<&'a Dictionary> {
    let mut chain = Vec::new();
    let mut node = Some(page);
    let mut seen = Vec::new();
    while let Some(n) = node {
        if let Some(r) = n.get(b"Resources").ok().and_then(|o| dict(doc, o)) {
            chain.push(r);
        }
        node = match n.get(b"Parent") {
            Ok(Object::Reference(id)) if !seen.contains(id) && seen.len() < 64 => {
                seen.push(*id);
                doc.get_dictionary(*id).ok()
            }
            _ => None,
        };
    }
    chain
}

fn dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    match doc.dereference(o).ok()?.1 {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

/// An affine matrix `[a b c d e f]`, as PDF writes them (row vectors).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn from_operands(ops: &[Object]) -> Option<Matrix> {
        let mut m = [0.0; 6];
        for (slot, o) in m.iter_mut().zip(ops) {
            *slot = f64::from(o.as_float().ok()?);
        }
        (ops.len() >= 6).then_some(Matrix(m))
    }

    fn translation(tx: f64, ty: f64) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    /// `self` then `then`.
    fn then(self, then: Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = then.0;
        Matrix([
            a * a2 + b * c2,
            a * b2 + b * d2,
            c * a2 + d * c2,
            c * b2 + d * d2,
            e * a2 + f * c2 + e2,
            e * b2 + f * d2 + f2,
        ])
    }

    fn origin(self) -> (f64, f64) {
        (self.0[4], self.0[5])
    }

    /// A device-space vector in this matrix's own units (ems, for a text
    /// rendering matrix); `None` when the matrix flattens everything.
    fn unmap(self, dx: f64, dy: f64) -> Option<(f64, f64)> {
        let [a, b, c, d, _, _] = self.0;
        let det = a * d - b * c;
        (det.abs() > 1e-12).then(|| ((dx * d - dy * c) / det, (dy * a - dx * b) / det))
    }
}

/// The graphics state's part that text extraction needs (saved by `q`).
#[derive(Clone)]
struct State {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    /// Horizontal scaling as a fraction (`Tz` 100 is 1).
    scaling: f64,
    leading: f64,
    rise: f64,
    /// The text matrix and the text line matrix (only inside BT/ET).
    tm: Matrix,
    tlm: Matrix,
}

impl Default for State {
    fn default() -> Self {
        State {
            ctm: Matrix::IDENTITY,
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scaling: 1.0,
            leading: 0.0,
            rise: 0.0,
            tm: Matrix::IDENTITY,
            tlm: Matrix::IDENTITY,
        }
    }
}

impl State {
    /// The text rendering matrix: text space at the current font size to
    /// device space.
    fn trm(&self) -> Matrix {
        Matrix([
            self.size * self.scaling,
            0.0,
            0.0,
            self.size,
            0.0,
            self.rise,
        ])
        .then(self.tm)
        .then(self.ctm)
    }

    fn next_line(&mut self, tx: f64, ty: f64) {
        self.tlm = Matrix::translation(tx, ty).then(self.tlm);
        self.tm = self.tlm;
    }
}

/// The page's text as it is laid down, with spaces and line breaks where
/// the strings' places call for them.
#[derive(Default)]
struct Layout {
    text: String,
    /// Where the last string shown ended, in device space.
    pen: Option<(f64, f64)>,
}

impl Layout {
    /// Adds `text`, shown from `start` to `end` (device space) under the
    /// text rendering matrix `trm`.
    fn show(&mut self, text: &str, start: (f64, f64), end: (f64, f64), trm: Matrix) {
        if let Some(pen) = self.pen {
            let moved = trm.unmap(start.0 - pen.0, start.1 - pen.1);
            match moved {
                Some((_, dy)) if dy.abs() > LINE_SHIFT_EM => self.newline(),
                Some((dx, _)) if !(-SPACE_GAP_EM..SPACE_GAP_EM).contains(&dx) => self.space(text),
                _ => {}
            }
        }
        for c in text.chars() {
            push_char(&mut self.text, c);
        }
        self.pen = Some(end);
    }

    fn newline(&mut self) {
        while self.text.ends_with(' ') {
            self.text.pop();
        }
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
    }

    fn space(&mut self, next: &str) {
        let ends_blank = self.text.is_empty() || self.text.ends_with(char::is_whitespace);
        if !ends_blank && !next.starts_with(char::is_whitespace) {
            self.text.push(' ');
        }
    }
}

/// Adds one character: ligatures spelt out, as other engines give them,
/// and control characters dropped.
fn push_char(out: &mut String, c: char) {
    let spelt = match c {
        '\u{FB00}' => "ff",
        '\u{FB01}' => "fi",
        '\u{FB02}' => "fl",
        '\u{FB03}' => "ffi",
        '\u{FB04}' => "ffl",
        '\u{FB05}' | '\u{FB06}' => "st",
        '\t' | '\r' | '\n' => " ",
        c if c.is_control() || c == '\0' => "",
        c => {
            out.push(c);
            return;
        }
    };
    out.push_str(spelt);
}

struct Reader<'a, 'c> {
    doc: &'a Document,
    fonts: &'c mut FontCache,
    out: Layout,
    /// The forms being run, to skip one that draws itself.
    forms: Vec<ObjectId>,
}

impl<'a> Reader<'a, '_> {
    fn run(&mut self, ops: &[Operation], resources: &[&'a Dictionary], mut state: State) {
        let mut saved: Vec<State> = Vec::new();
        for op in ops {
            let args = &op.operands;
            let num = |i: usize| args.get(i).and_then(|o| o.as_float().ok()).map(f64::from);
            match op.operator.as_str() {
                "q" => saved.push(state.clone()),
                "Q" => {
                    if let Some(s) = saved.pop() {
                        state = s;
                    }
                }
                "cm" => {
                    if let Some(m) = Matrix::from_operands(args) {
                        state.ctm = m.then(state.ctm);
                    }
                }
                "BT" => {
                    state.tm = Matrix::IDENTITY;
                    state.tlm = Matrix::IDENTITY;
                }
                "Tf" => {
                    state.font = args
                        .first()
                        .and_then(|o| o.as_name().ok())
                        .and_then(|n| self.font(resources, n));
                    state.size = num(1).unwrap_or(state.size);
                }
                "Tc" => state.char_spacing = num(0).unwrap_or(0.0),
                "Tw" => state.word_spacing = num(0).unwrap_or(0.0),
                "Tz" => state.scaling = num(0).unwrap_or(100.0) / 100.0,
                "TL" => state.leading = num(0).unwrap_or(0.0),
                "Ts" => state.rise = num(0).unwrap_or(0.0),
                "Td" => state.next_line(num(0).unwrap_or(0.0), num(1).unwrap_or(0.0)),
                "TD" => {
                    let ty = num(1).unwrap_or(0.0);
                    state.leading = -ty;
                    state.next_line(num(0).unwrap_or(0.0), ty);
                }
                "Tm" => {
                    if let Some(m) = Matrix::from_operands(args) {
                        state.tm = m;
                        state.tlm = m;
                    }
                }
                "T*" => state.next_line(0.0, -state.leading),
                "Tj" => {
                    if let Some(Object::String(s, _)) = args.first() {
                        self.show(&mut state, s);
                    }
                }
                "'" => {
                    state.next_line(0.0, -state.leading);
                    if let Some(Object::String(s, _)) = args.first() {
                        self.show(&mut state, s);
                    }
                }
                "\"" => {
                    state.word_spacing = num(0).unwrap_or(state.word_spacing);
                    state.char_spacing = num(1).unwrap_or(state.char_spacing);
                    state.next_line(0.0, -state.leading);
                    if let Some(Object::String(s, _)) = args.get(2) {
                        self.show(&mut state, s);
                    }
                }
                "TJ" => {
                    for item in args
                        .first()
                        .and_then(|a| a.as_array().ok())
                        .into_iter()
                        .flatten()
                    {
                        match item {
                            Object::String(s, _) => self.show(&mut state, s),
                            Object::Integer(_) | Object::Real(_) => {
                                let adjust = f64::from(item.as_float().unwrap_or(0.0));
                                let tx = -adjust / 1000.0 * state.size * state.scaling;
                                state.tm = Matrix::translation(tx, 0.0).then(state.tm);
                            }
                            _ => {}
                        }
                    }
                }
                "Do" => {
                    if let Some(name) = args.first().and_then(|o| o.as_name().ok()) {
                        self.form(resources, name, &state);
                    }
                }
                _ => {}
            }
        }
    }

    /// Shows one string: its text goes to the layout, and the text matrix
    /// moves past it.
    fn show(&mut self, state: &mut State, bytes: &[u8]) {
        let Some(font) = state.font.clone() else {
            return;
        };
        let start_trm = state.trm();
        let mut text = String::new();
        for glyph in font.decode(bytes) {
            text.push_str(&glyph.text);
            let spacing = state.char_spacing
                + if glyph.word_space {
                    state.word_spacing
                } else {
                    0.0
                };
            let tx = (glyph.width * state.size + spacing) * state.scaling;
            state.tm = Matrix::translation(tx, 0.0).then(state.tm);
        }
        let end = state.trm().origin();
        self.out.show(&text, start_trm.origin(), end, start_trm);
    }

    fn font(&mut self, resources: &[&'a Dictionary], name: &[u8]) -> Option<Rc<Font>> {
        let object = lookup(self.doc, resources, b"Font", name)?;
        if let Object::Reference(id) = object {
            if let Some(font) = self.fonts.fonts.get(id) {
                return Some(font.clone());
            }
            let font = Rc::new(Font::new(self.doc, dict(self.doc, object)?));
            self.fonts.fonts.insert(*id, font.clone());
            return Some(font);
        }
        Some(Rc::new(Font::new(self.doc, dict(self.doc, object)?)))
    }

    /// Runs a form XObject's content with its own resources (falling back
    /// on the caller's) and matrix; images and unreadable forms are skipped.
    fn form(&mut self, resources: &[&'a Dictionary], name: &[u8], state: &State) {
        let Some(Object::Reference(id)) = lookup(self.doc, resources, b"XObject", name) else {
            return;
        };
        if self.forms.contains(id) || self.forms.len() >= MAX_FORM_DEPTH {
            return;
        }
        let Ok(Object::Stream(stream)) = self.doc.get_object(*id) else {
            return;
        };
        if !matches!(stream.dict.get(b"Subtype"), Ok(Object::Name(n)) if n == b"Form") {
            return;
        }
        let Ok(content) = stream.get_plain_content() else {
            return;
        };
        let Some(ops) = decode(&content) else {
            return;
        };
        let mut inner = state.clone();
        if let Some(m) = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|o| self.doc.dereference(o).ok())
            .and_then(|(_, o)| o.as_array().ok())
            .and_then(|a| {
                let nums: Option<Vec<Object>> = a
                    .iter()
                    .map(|o| number(self.doc, o).map(|n| Object::Real(n as f32)))
                    .collect();
                Matrix::from_operands(&nums?)
            })
        {
            inner.ctm = m.then(inner.ctm);
        }
        let mut chain: Vec<&'a Dictionary> = Vec::with_capacity(resources.len() + 1);
        if let Some(own) = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|o| dict(self.doc, o))
        {
            chain.push(own);
        }
        chain.extend_from_slice(resources);
        self.forms.push(*id);
        self.run(&ops.operations, &chain, inner);
        self.forms.pop();
    }
}

/// `/category /name` in the first resource dictionary that has it.
fn lookup<'a>(
    doc: &'a Document,
    resources: &[&'a Dictionary],
    category: &[u8],
    name: &[u8],
) -> Option<&'a Object> {
    resources.iter().find_map(|r| {
        let entries = dict(doc, r.get(category).ok()?)?;
        entries.get(name).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string shown from one point to another, in device space.
    type Shown<'a> = (&'a str, (f64, f64), (f64, f64));

    fn layout(shows: &[Shown]) -> String {
        let mut out = Layout::default();
        let trm = Matrix([10.0, 0.0, 0.0, 10.0, 0.0, 0.0]);
        for (text, start, end) in shows {
            out.show(text, *start, *end, trm);
        }
        out.text
    }

    #[test]
    fn gaps_become_spaces_and_baseline_moves_line_breaks() {
        // At 10 units an em: a 3-unit gap is a space, a 0.5-unit one is
        // kerning, a 12-unit drop is a new line, a 3-unit rise a superscript.
        let text = layout(&[
            ("Hello", (0.0, 100.0), (25.0, 100.0)),
            ("world", (28.0, 100.0), (50.0, 100.0)),
            ("ly", (50.5, 100.0), (55.0, 100.0)),
            ("Next", (0.0, 88.0), (20.0, 88.0)),
            ("2", (21.0, 91.0), (24.0, 91.0)),
        ]);
        assert_eq!(text, "Hello worldly\nNext2");
    }

    #[test]
    fn no_double_spaces_and_ligatures_spelt_out() {
        let text = layout(&[
            ("a ", (0.0, 0.0), (10.0, 0.0)),
            ("\u{FB01}ne", (20.0, 0.0), (40.0, 0.0)),
            (" x", (50.0, 0.0), (60.0, 0.0)),
        ]);
        assert_eq!(text, "a fine x");
    }

    #[test]
    fn comments_go_and_strings_and_images_stay() {
        let content = b"BT %set up\n  /F1 8 Tf %font\n (50% off) Tj ET\nBI /W 1 ID %(\nEI\n";
        let clean = without_comments(content);
        assert_eq!(clean.len(), content.len());
        let text = String::from_utf8_lossy(&clean);
        assert!(!text.contains("set up") && !text.contains("font"), "{text}");
        assert!(
            text.contains("(50% off)") && text.contains("ID %(\nEI"),
            "{text}"
        );
        let ops = decode(content).expect("decodes");
        let names: Vec<&str> = ops.operations.iter().map(|o| o.operator.as_str()).collect();
        assert_eq!(names, ["BT", "Tf", "Tj", "ET", "BI"]);
    }

    #[test]
    fn matrices_compose_as_pdf_does() {
        let scale = Matrix([2.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        let shift = Matrix::translation(10.0, 5.0);
        assert_eq!(shift.then(scale).origin(), (20.0, 10.0));
        assert_eq!(scale.then(shift).origin(), (10.0, 5.0));
        let (x, y) = scale.unmap(4.0, -2.0).unwrap();
        assert_eq!((x, y), (2.0, -1.0));
        assert_eq!(Matrix([0.0; 6]).unmap(1.0, 1.0), None);
    }
}
