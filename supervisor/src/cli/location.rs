//! Where the index is when no `--db` names it: one per user, in the user's
//! data folder, so that `docmill search` finds it from any folder (as
//! Recoll keeps its index under the home folder rather than where it was
//! started).

use std::path::{Path, PathBuf};

/// How the index was chosen, which decides what may be created for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbChoice {
    /// Named by `--db` or `DOCMILL_DB`: used exactly as given.
    Given(PathBuf),
    /// The per-user default; its folder is created by `index` when missing.
    Default(PathBuf),
}

impl DbChoice {
    pub fn path(&self) -> &Path {
        match self {
            DbChoice::Given(p) | DbChoice::Default(p) => p,
        }
    }
}

/// The name of the index file, in the data folder (and the name the
/// current folder held it under before there was a data folder default).
pub const FILE_NAME: &str = "docmill.db";

/// `$XDG_DATA_HOME/docmill/docmill.db` on Linux (`~/.local/share/…` when
/// unset), `~/Library/Application Support/docmill/docmill.db` on macOS;
/// `docmill.db` in the current folder where no home folder is known.
pub fn default_db() -> PathBuf {
    match dirs::data_dir() {
        Some(data) => data.join("docmill").join(FILE_NAME),
        None => PathBuf::from(FILE_NAME),
    }
}

/// `--db` after the subcommand wins over one before it, either over
/// `DOCMILL_DB`, and that over the default.
pub fn choose(after: Option<PathBuf>, after_from_env: bool, before: Option<PathBuf>) -> DbChoice {
    match (after, before) {
        (Some(a), _) if !after_from_env => DbChoice::Given(a),
        (_, Some(b)) => DbChoice::Given(b),
        (Some(env), None) => DbChoice::Given(env),
        (None, None) => DbChoice::Default(default_db()),
    }
}

/// Makes the default index's folder, so that a first `docmill index` works
/// without setup. A folder named by `--db` is never created: a typo there
/// should not scatter databases about.
pub fn prepare_for_writing(db: &DbChoice) -> std::io::Result<()> {
    if let DbChoice::Default(path) = db {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
    }
    Ok(())
}

/// When the default index does not exist but the current folder holds a
/// `docmill.db` (where indexes were made before the data folder default),
/// the hint that names it, rather than a bare "no index".
pub fn hint_for_missing(db: &DbChoice) -> Option<String> {
    let DbChoice::Default(path) = db else {
        return None;
    };
    if path.exists() || !Path::new(FILE_NAME).is_file() || path == Path::new(FILE_NAME) {
        return None;
    }
    Some(format!(
        "no index at {}; this folder has a {FILE_NAME}: pass --db {FILE_NAME} (or set DOCMILL_DB) to use it, \
         or move it there",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let p = |s: &str| Some(PathBuf::from(s));
        let given = |s: &str| DbChoice::Given(PathBuf::from(s));
        assert_eq!(choose(p("a"), false, p("b")), given("a"));
        assert_eq!(choose(p("env"), true, p("b")), given("b"));
        assert_eq!(choose(p("env"), true, None), given("env"));
        assert_eq!(choose(None, false, p("b")), given("b"));
        assert!(matches!(choose(None, false, None), DbChoice::Default(_)));
    }

    #[test]
    fn the_default_is_per_user() {
        let d = default_db();
        assert!(d.ends_with("docmill/docmill.db") || d == Path::new(FILE_NAME));
    }
}
