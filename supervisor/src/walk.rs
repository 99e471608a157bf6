//! Walks the roots given on the command line: each file once, even when
//! roots repeat or nest; symbolic links are not followed unless asked (and
//! then loops are reported, not followed forever).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::sniff;
use crate::store::{Found, FoundKind};

/// Makes roots absolute and canonical, drops duplicates and roots inside
/// another root. A root that does not exist is an error for the caller.
pub fn normalize_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = Vec::new();
    for r in roots {
        let c = r
            .canonicalize()
            .map_err(|e| format!("cannot index {}: {e}", r.display()))?;
        out.push(c);
    }
    out.sort();
    out.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for r in out {
        if !kept.iter().any(|k| r.starts_with(k)) {
            kept.push(r);
        }
    }
    Ok(kept)
}

pub struct WalkOptions {
    pub follow_symlinks: bool,
    pub allow_mock: bool,
}

/// Walks every root in order, calling `each` for what it finds.
pub fn walk(roots: &[PathBuf], opts: &WalkOptions, mut each: impl FnMut(Found)) {
    for root in roots {
        let walker = WalkDir::new(root)
            .follow_links(opts.follow_symlinks)
            .sort_by_file_name();
        for entry in walker {
            match entry {
                Ok(e) => {
                    let ft = e.file_type();
                    if ft.is_dir() {
                        continue;
                    }
                    let path = e.path().to_path_buf();
                    if ft.is_symlink() {
                        // Only reached when links are not followed.
                        each(skipped(
                            &path,
                            "symbolic link, not followed (use --follow-symlinks)",
                        ));
                        continue;
                    }
                    if !ft.is_file() {
                        continue;
                    }
                    match e.metadata() {
                        Ok(md) => {
                            let size = md.len();
                            let mtime_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
                            let kind = sniff::sniff(&path, size, opts.allow_mock);
                            each(Found {
                                path,
                                size,
                                mtime_ns,
                                kind,
                            });
                        }
                        Err(err) => each(skipped(&path, &one_line(&err.to_string()))),
                    }
                }
                Err(err) => {
                    let path = err
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let why = if err.loop_ancestor().is_some() {
                        "symbolic link loop, not followed".to_string()
                    } else {
                        format!("cannot read: {}", one_line(&err.to_string()))
                    };
                    each(skipped(&path, &why));
                }
            }
        }
    }
}

fn skipped(path: &Path, why: &str) -> Found {
    Found {
        path: path.to_path_buf(),
        size: 0,
        mtime_ns: 0,
        kind: FoundKind::Skipped(why.to_string()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
