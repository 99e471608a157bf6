//! Walks the roots given on the command line: each file once, even when
//! roots repeat or nest; symbolic links are not followed unless asked (and
//! then loops are reported, not followed forever); files that the
//! library's ignore files or `--exclude` leave out are never catalogued,
//! and are reported as left out so that discovery drops what the index
//! held there.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::WalkBuilder;

use crate::sniff;
use crate::store::{Found, FoundKind};

/// docmill's own ignore file, read in every folder of a library as ripgrep
/// reads `.rgignore`: gitignore syntax, a folder's file applying to it and
/// below, and taking precedence over a `.ignore` file (which other tools
/// read too) in the same folder.
pub const IGNORE_FILE: &str = ".docmillignore";

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
    /// Gitignore patterns, relative to each root, for what to leave out.
    pub exclude: Vec<String>,
}

/// Walks every root in order, calling `each` for what it finds, and for
/// what `--exclude` or an ignore file leaves out (`FoundKind::Excluded`: a
/// file, or a folder not entered), so that discovery can drop what the
/// index held there. A root named on the command line is always walked,
/// even when a pattern would leave it out, as ripgrep searches a file it is
/// given by name.
pub fn walk(roots: &[PathBuf], opts: &WalkOptions, mut each: impl FnMut(Found)) {
    let ignore_files = Arc::new(IgnoreFiles::default());
    for root in roots {
        let exclude = match exclude_matcher(root, &opts.exclude) {
            Ok(m) => m,
            // The patterns were checked when the command line was read.
            Err(e) => {
                tracing::warn!("--exclude ignored under {}: {e}", root.display());
                None
            }
        };
        let left_out: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let mut builder = WalkBuilder::new(root);
        builder
            // The walk itself applies no rules (no hidden-file or git
            // rules: a library is not a repository, and a hidden PDF is
            // still a PDF); the filter below applies docmill's, so that it
            // knows what it left out.
            .standard_filters(false)
            .follow_links(opts.follow_symlinks)
            .sort_by_file_name(|a, b| a.cmp(b));
        {
            let ignore_files = Arc::clone(&ignore_files);
            let left_out = Arc::clone(&left_out);
            builder.filter_entry(move |e| {
                if e.depth() == 0 {
                    return true;
                }
                let dir = e.file_type().is_some_and(|t| t.is_dir());
                let out = exclude
                    .as_ref()
                    .is_some_and(|m| m.matched(e.path(), dir).is_ignore())
                    || ignore_files.ignores(e.path(), dir);
                if out {
                    lock(&left_out).push(e.path().to_path_buf());
                }
                !out
            });
        }
        let report_left_out = |each: &mut dyn FnMut(Found)| {
            for path in lock(&left_out).drain(..) {
                each(Found {
                    path,
                    size: 0,
                    mtime_ns: 0,
                    kind: FoundKind::Excluded,
                });
            }
        };
        for entry in builder.build() {
            report_left_out(&mut each);
            match entry {
                Ok(e) => {
                    let Some(ft) = e.file_type() else { continue };
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
                    if !ft.is_file() || (e.depth() > 0 && is_ignore_file(&path)) {
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
                    let (path, why) = describe(&err);
                    each(skipped(path.unwrap_or(root), &why));
                }
            }
        }
        report_left_out(&mut each);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The library's ignore files, each folder's read once: `.docmillignore`
/// and `.ignore` in every folder walked and in the folders above a root.
/// The rules are the `ignore` crate's, as ripgrep applies them: the
/// nearest `.docmillignore` with a rule for a path decides; only when none
/// has one does the nearest `.ignore` with one decide.
#[derive(Default)]
struct IgnoreFiles {
    folders: Mutex<HashMap<PathBuf, Arc<[Gitignore; 2]>>>,
}

impl IgnoreFiles {
    fn ignores(&self, path: &Path, dir: bool) -> bool {
        let folders: Vec<Arc<[Gitignore; 2]>> =
            path.ancestors().skip(1).map(|f| self.of(f)).collect();
        for which in 0..2 {
            for files in &folders {
                let m = files[which].matched(path, dir);
                if !m.is_none() {
                    return m.is_ignore();
                }
            }
        }
        false
    }

    fn of(&self, folder: &Path) -> Arc<[Gitignore; 2]> {
        if let Some(files) = lock(&self.folders).get(folder) {
            return Arc::clone(files);
        }
        let files = Arc::new([IGNORE_FILE, ".ignore"].map(|name| read_ignore(&folder.join(name))));
        lock(&self.folders).insert(folder.to_path_buf(), Arc::clone(&files));
        files
    }
}

/// One ignore file's rules (none when there is no such file). A line that
/// is not a valid pattern is left out with a warning; the others apply.
fn read_ignore(file: &Path) -> Gitignore {
    if !file.is_file() {
        return Gitignore::empty();
    }
    let (rules, err) = Gitignore::new(file);
    if let Some(err) = err {
        tracing::warn!("{}: {}", file.display(), one_line(&err.to_string()));
    }
    rules
}

/// The `--exclude` patterns as one gitignore matcher rooted at `root` (or
/// at a file root's folder).
fn exclude_matcher(root: &Path, patterns: &[String]) -> Result<Option<Gitignore>, ignore::Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let base = if root.is_dir() {
        root
    } else {
        root.parent().unwrap_or(root)
    };
    let mut b = GitignoreBuilder::new(base);
    for p in patterns {
        b.add_line(None, p)?;
    }
    b.build().map(Some)
}

/// The ignore files are the library's settings, not its documents.
fn is_ignore_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == IGNORE_FILE || n == ".ignore")
}

/// The path an error is about and why, in one line: the innermost path,
/// and a loop named as such.
fn describe(err: &ignore::Error) -> (Option<&Path>, String) {
    match err {
        ignore::Error::WithPath { path, err } => {
            let (inner, why) = describe(err);
            (Some(inner.unwrap_or(path)), why)
        }
        ignore::Error::WithDepth { err, .. } => describe(err),
        ignore::Error::WithLineNumber { line, err } => {
            let (inner, why) = describe(err);
            (inner, format!("line {line}: {why}"))
        }
        ignore::Error::Partial(errs) if !errs.is_empty() => describe(&errs[0]),
        ignore::Error::Loop { child, .. } => {
            (Some(child), "symbolic link loop, not followed".to_string())
        }
        ignore::Error::Glob { .. } => (
            None,
            format!("bad ignore pattern: {}", one_line(&err.to_string())),
        ),
        other => (
            None,
            format!("cannot read: {}", one_line(&other.to_string())),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the walk found under `root`, and what it left out.
    fn walked(root: &Path, exclude: &[&str]) -> (Vec<String>, Vec<String>) {
        let opts = WalkOptions {
            follow_symlinks: false,
            allow_mock: false,
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        };
        let (mut found, mut left_out) = (Vec::new(), Vec::new());
        walk(&[root.to_path_buf()], &opts, |f| {
            let name = f
                .path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            match f.kind {
                FoundKind::Excluded => left_out.push(name),
                _ => found.push(name),
            }
        });
        (found, left_out)
    }

    fn names(root: &Path, exclude: &[&str]) -> Vec<String> {
        walked(root, exclude).0
    }

    #[test]
    fn what_is_left_out_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a.pdf",
            "b.epub",
            "drafts/c.pdf",
            "drafts/d/e.pdf",
            "keep/f.tmp",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        std::fs::write(root.join("keep/.ignore"), "*.tmp\n").unwrap();
        let (found, left_out) = walked(root, &["*.epub", "drafts/"]);
        assert_eq!(found, ["a.pdf"]);
        // A folder left out is reported once, not entered.
        assert_eq!(left_out, ["b.epub", "drafts", "keep/f.tmp"]);
    }

    #[test]
    fn ignore_files_and_excludes_leave_files_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a.pdf",
            "b.epub",
            "drafts/c.pdf",
            "keep/d.pdf",
            "keep/e.tmp",
            ".hidden.pdf",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(
            names(root, &[]),
            [
                ".hidden.pdf",
                "a.pdf",
                "b.epub",
                "drafts/c.pdf",
                "keep/d.pdf",
                "keep/e.tmp"
            ]
        );
        assert_eq!(
            names(root, &["*.epub", "drafts/"]),
            [".hidden.pdf", "a.pdf", "keep/d.pdf", "keep/e.tmp"]
        );
        std::fs::write(root.join(IGNORE_FILE), "drafts/\n").unwrap();
        std::fs::write(root.join("keep/.ignore"), "*.tmp\n").unwrap();
        assert_eq!(
            names(root, &[]),
            [".hidden.pdf", "a.pdf", "b.epub", "keep/d.pdf"]
        );
        // docmill's own file wins over .ignore in the same folder.
        std::fs::write(root.join("keep").join(IGNORE_FILE), "!e.tmp\n").unwrap();
        assert_eq!(
            names(root, &[]),
            [".hidden.pdf", "a.pdf", "b.epub", "keep/d.pdf", "keep/e.tmp"]
        );
    }

    #[test]
    fn a_root_named_outright_is_walked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.pdf");
        std::fs::write(&file, b"x").unwrap();
        let opts = WalkOptions {
            follow_symlinks: false,
            allow_mock: false,
            exclude: vec!["*.pdf".to_string()],
        };
        let mut seen = 0;
        walk(&[file], &opts, |_| seen += 1);
        assert_eq!(seen, 1);
    }
}
