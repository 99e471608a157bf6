//! Page text read from PDF content streams over lopdf's object model: the
//! `lopdf` engine's reader. `cmap` reads ToUnicode and code space maps,
//! `font` turns shown strings into text and widths, `page` runs a page's
//! text operators and lays the strings out with spaces and line breaks;
//! `repair` rebuilds the cross-reference table of a file whose table lies.

mod cmap;
mod font;
mod page;
mod repair;

pub use page::{page_text, FontCache};
pub use repair::rebuild_xref;
