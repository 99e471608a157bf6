//! `docmill serve`: a local web interface on an index — search with the
//! query language of `docmill search` (`search`), a document's record and
//! text (`document`), the catalogued files themselves (`files`), and the
//! live state of an index run on the same database (`live`). It only reads:
//! the database is opened read-only (`catalog`). The HTTP server (axum, on
//! its own tokio runtime: the rest of docmill is synchronous) and the rule
//! for the listening address live in `server`.

mod catalog;
mod document;
mod error;
mod files;
mod html;
mod live;
mod search;
mod server;

pub use server::{check_listen, command, spawn, ListenError, ServeOptions, DEFAULT_LISTEN};

/// What every request handler shares.
#[derive(Clone)]
pub struct App {
    catalog: catalog::Catalog,
}
