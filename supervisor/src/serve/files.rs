//! `/file/<id>`: the catalogued file itself, so that a hit's link opens the
//! document at its page in the browser (`#page=N` is read by the browser's
//! PDF viewer). Only a document id reaches this code: the path is the one
//! the catalog holds for it, so nothing in a request names a file, and an
//! id that is not in the catalog, or that is no number, is 404.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ServeError;
use super::App;

/// The media type a browser needs to show a document of `format`.
pub fn content_type(format: &str) -> &'static str {
    match format {
        "pdf" => "application/pdf",
        "epub" => "application/epub+zip",
        _ => "application/octet-stream",
    }
}

pub async fn handler(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return ServeError::NotFound.into_response();
    };
    let doc = app
        .catalog
        .read(move |store| store.document(id)?.ok_or(ServeError::NotFound))
        .await;
    let doc = match doc {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let path = std::path::PathBuf::from(OsStr::from_bytes(&doc.path));
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(source) => {
            return ServeError::File {
                path: doc.display_path,
                source,
            }
            .into_response()
        }
    };
    let len = file.metadata().await.ok().map(|m| m.len());
    let name: String = doc
        .display_path
        .rsplit('/')
        .next()
        .unwrap_or("document")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type(&doc.format))
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{name}\""),
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(len) = len {
        response = response.header(header::CONTENT_LENGTH, len);
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    response
        .body(body)
        .unwrap_or_else(|_| ServeError::NotFound.into_response())
}
