//! A one-page "score" PDF made at test time: a title and instrument names in
//! Helvetica among runs of music glyphs from a font whose ToUnicode map puts
//! every glyph in the private-use area, as a music font's does. Most of its
//! characters are unreadable, yet its words are real text: the case where
//! the text judged garbage must still be kept.

/// The title on the page, searchable once indexed.
pub const TITLE: &str = "Violent Dance For Orchestra";
/// Instrument names down the page's left edge.
pub const INSTRUMENTS: [&str; 6] = ["Flute", "Oboe", "Clarinet", "Bassoon", "Horn", "Violin"];

/// The PDF's bytes; `words: false` leaves out the title and the instrument
/// names, so that nothing readable remains.
pub fn score_pdf(words: bool) -> Vec<u8> {
    let mut content = String::new();
    if words {
        content.push_str(&format!("BT /F1 20 Tf 72 740 Td ({TITLE}) Tj ET\n"));
    }
    for (i, name) in INSTRUMENTS.iter().enumerate() {
        let y = 700 - 60 * i;
        if words {
            content.push_str(&format!("BT /F1 10 Tf 40 {y} Td ({name}) Tj ET\n"));
        }
        // Noteheads, stems and rests: glyph codes the music font maps to
        // the private-use area, in groups like beamed notes.
        content.push_str(&format!(
            "BT /F2 12 Tf 110 {y} Td (qqee hhqq eeqq wwhh qeqe) Tj ET\n"
        ));
    }
    // Every code but the space maps to U+E000 plus the code.
    let cmap = "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
                /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
                /CMapName /Music-UCS def\n/CMapType 2 def\n\
                1 begincodespacerange\n<00> <FF>\nendcodespacerange\n\
                1 beginbfrange\n<21> <7E> <E021>\nendbfrange\n\
                endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 7 0 R >>".to_string(),
        stream(&content),
        stream(cmap),
    ];
    super::pdf::assemble(&objects, "")
}

fn stream(data: &str) -> String {
    format!("<< /Length {} >>\nstream\n{data}endstream", data.len())
}
