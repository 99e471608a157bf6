//! What a request that cannot be answered gets: 404 for anything not in the
//! catalog (an unknown id, a path that is no page), 400 for a query that
//! cannot be read, 500 with the cause for the rest. Causes are logged, and
//! shown escaped like any other text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::html::page;
use crate::search::SearchError;
use crate::store::{SqliteError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Sqlite(#[from] SqliteError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("cannot draw the charts")]
    Report(#[from] crate::metrics::report::ReportError),
    #[error("cannot read the file {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a request's task failed: {0}")]
    Task(String),
}

/// The 404 page.
pub fn not_found() -> Response {
    let body = page(
        "Not found",
        html! { p { "Nothing here: the index has no such document or page." } },
    );
    (StatusCode::NOT_FOUND, body).into_response()
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        if let ServeError::NotFound = self {
            return not_found();
        }
        let text = crate::cli::chain(&self);
        tracing::warn!("serve: {text}");
        let status = match self {
            ServeError::File { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, page("Error", html! { p { (text) } })).into_response()
    }
}
