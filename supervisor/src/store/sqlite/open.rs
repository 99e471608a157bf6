//! How a SQLite file is opened: recognising docmill's own databases (the
//! `application_id` in the header, or an older index's tables) before
//! anything is written, and opening read-only for the reading commands,
//! also where the folder or the file cannot be written.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{schema, SqliteError};

/// `PRAGMA application_id` of every docmill database: "DMIL" in ASCII, so
/// that `file` and other tools can tell what the file is, and docmill can
/// tell its own files from another program's.
pub const APPLICATION_ID: i32 = 0x444d_494c;

/// The tables every docmill index has had since the first release: a
/// database with no application id and these is an index made before the
/// id was written.
const DOCMILL_TABLES: [&str; 4] = ["documents", "pages", "pages_fts", "runs"];

/// The tables and columns the reading commands query. An index made before
/// one of them existed is brought up to date by `index`, never by a read.
const READ_TABLES: [&str; 6] = [
    "documents",
    "pages",
    "pages_fts",
    "runs",
    "chunks",
    "samples",
];

/// What a file at a database path is, judged without writing to it (nor
/// beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// An empty file, or a SQLite database with no tables: free to become
    /// an index.
    Empty,
    /// Marked with docmill's application id.
    Docmill,
    /// Unmarked, with docmill's tables: an index made before the mark.
    OlderDocmill,
    /// A SQLite database of another program.
    Foreign,
    /// Not a SQLite database at all (another kind of file, or one whose
    /// header is destroyed).
    NotSqlite,
}

/// The first 100 bytes of a SQLite file are its header: a magic string,
/// then fixed fields (the application id at offset 68, big-endian).
const HEADER: usize = 100;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Judges the file at `path` from its header and, for a database without
/// an application id, from its table names. Reading the header from the
/// file itself, and the tables through an `immutable` connection, leaves
/// no `-wal` or `-shm` file beside another program's database.
pub fn identify(path: &Path) -> Result<Identity, SqliteError> {
    let mut header = Vec::with_capacity(HEADER);
    File::open(path)
        .and_then(|f| f.take(HEADER as u64).read_to_end(&mut header))
        .map_err(|e| io_error(path, e))?;
    if header.is_empty() {
        return Ok(Identity::Empty);
    }
    if header.len() < HEADER || &header[..16] != MAGIC {
        return Ok(Identity::NotSqlite);
    }
    let id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    if id == APPLICATION_ID {
        return Ok(Identity::Docmill);
    }
    if id != 0 {
        return Ok(Identity::Foreign);
    }
    let judged = judge_tables(&connect(path, Access::Immutable)?, path)?;
    // Tables created since the last checkpoint are only in the write-ahead
    // log, which an immutable connection does not read: a young index that
    // a run is writing right now. Only then is the log read, the usual way.
    let wal = sibling(path, "-wal");
    if judged != Identity::OlderDocmill && wal.metadata().is_ok_and(|m| m.len() > 0) {
        return judge_tables(&connect(path, Access::ReadOnly)?, path);
    }
    Ok(judged)
}

fn judge_tables(conn: &Connection, path: &Path) -> Result<Identity, SqliteError> {
    let names = table_names(conn).map_err(|e| damaged(path, e))?;
    Ok(if names.is_empty() {
        Identity::Empty
    } else if DOCMILL_TABLES.iter().all(|t| names.iter().any(|n| n == t)) {
        Identity::OlderDocmill
    } else {
        Identity::Foreign
    })
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// How a connection reads the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads and writes, creating the file if needed (an index run).
    Create,
    /// Reads and writes an existing file (`forget`).
    Write,
    /// `SQLITE_OPEN_READ_ONLY`: nothing is written to the database, though
    /// SQLite makes the `-shm` and `-wal` files of a WAL database beside it
    /// when the folder lets it (they are how readers and a writer agree).
    ReadOnly,
    /// Read-only, and told the file does not change while it is open
    /// (`immutable=1`): no locks, no `-shm` or `-wal` file, and a `-wal`
    /// file already there is not read.
    Immutable,
}

/// Opens a connection on `path` as `access` says; nothing is read yet.
pub fn connect(path: &Path, access: Access) -> Result<Connection, SqliteError> {
    let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let (flags, query) = match access {
        Access::Create => (
            flags | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            "",
        ),
        Access::Write => (flags | OpenFlags::SQLITE_OPEN_READ_WRITE, ""),
        Access::ReadOnly => (flags | OpenFlags::SQLITE_OPEN_READ_ONLY, "?mode=ro"),
        Access::Immutable => (
            flags | OpenFlags::SQLITE_OPEN_READ_ONLY,
            "?mode=ro&immutable=1",
        ),
    };
    let uri = format!("{}{query}", file_uri(path));
    Connection::open_with_flags(&uri, flags).map_err(|source| SqliteError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// How the reading commands open a docmill index. Plain read-only where
/// SQLite can share the index with a writer: the folder is writable, or a
/// `-shm` file is there (a run holds the index, or left it so). In a folder
/// this user cannot write, with no `-shm` file, SQLite could not make one
/// and would refuse a read-only WAL database; nobody is writing it then (a
/// writer keeps a `-shm` file beside it), so it is read as immutable. The
/// price: a run that the folder's owner starts while a read is under way
/// is not seen by that read, and may make it fail; reads are short, and
/// the next one sees the run's work.
pub fn read_access(path: &Path) -> Access {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let writable = nix::unistd::access(folder, nix::unistd::AccessFlags::W_OK).is_ok();
    if writable || sibling(path, "-shm").exists() {
        Access::ReadOnly
    } else {
        Access::Immutable
    }
}

/// Checks, without writing, that a connection opened read-only can serve
/// the reading commands: a schema this docmill knows, and every table they
/// read.
pub fn check_readable(conn: &Connection, path: &Path) -> Result<(), SqliteError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| damaged(path, e))?;
    if version > schema::VERSION {
        return Err(crate::store::TooNew {
            what: "database",
            found: version,
            known: schema::VERSION,
        }
        .into());
    }
    let names = table_names(conn).map_err(|e| damaged(path, e))?;
    let complete = READ_TABLES.iter().all(|t| names.iter().any(|n| n == t))
        && schema::ADDED_COLUMNS.iter().all(|(table, column, _)| {
            conn.query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0)
        });
    if version < schema::VERSION || !complete {
        return Err(SqliteError::Outdated(path.to_path_buf()));
    }
    Ok(())
}

/// The error for a database SQLite finds damaged (or not a database),
/// naming its path; any other error as it is.
pub fn damaged(path: &Path, e: rusqlite::Error) -> SqliteError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => SqliteError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        _ => SqliteError::Sql(e),
    }
}

/// An error reading the file itself: a missing file is "no index", an
/// unreadable one or one in an unreadable folder "permission denied".
pub fn io_error(path: &Path, e: std::io::Error) -> SqliteError {
    match e.kind() {
        ErrorKind::NotFound => SqliteError::NoIndex(path.to_path_buf()),
        ErrorKind::PermissionDenied => SqliteError::PermissionDenied(path.to_path_buf()),
        _ => SqliteError::Read {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// `path` with `suffix` added to its file name (`x.db-wal`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A `file:` URI for `path`, so that the query parameters (`mode`,
/// `immutable`) can be given: every byte outside the unreserved set and
/// `/` is percent-encoded, so `?`, `#` and `%` in a name, and names that
/// are not UTF-8, keep their meaning.
fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_keep_odd_names() {
        assert_eq!(file_uri(Path::new("/a b/x?.db")), "file:/a%20b/x%3F.db");
        assert_eq!(file_uri(Path::new("rel/%.db")), "file:rel/%25.db");
        let odd = std::ffi::OsStr::from_bytes(b"/t/\xff.db");
        assert_eq!(file_uri(Path::new(odd)), "file:/t/%FF.db");
    }

    #[test]
    fn files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("empty.db"), b"").unwrap();
        assert_eq!(identify(&p("empty.db")).unwrap(), Identity::Empty);
        std::fs::write(p("text.db"), vec![b'x'; 4096]).unwrap();
        assert_eq!(identify(&p("text.db")).unwrap(), Identity::NotSqlite);
        let foreign = Connection::open(p("foreign.db")).unwrap();
        foreign.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(foreign);
        assert_eq!(identify(&p("foreign.db")).unwrap(), Identity::Foreign);
        let marked = Connection::open(p("marked.db")).unwrap();
        marked
            .execute_batch("PRAGMA application_id = 7; CREATE TABLE t (x)")
            .unwrap();
        drop(marked);
        assert_eq!(identify(&p("marked.db")).unwrap(), Identity::Foreign);
        let older = Connection::open(p("older.db")).unwrap();
        older.execute_batch(schema::SCHEMA).unwrap();
        drop(older);
        assert_eq!(identify(&p("older.db")).unwrap(), Identity::OlderDocmill);
        assert!(matches!(
            identify(&p("none.db")),
            Err(SqliteError::NoIndex(_))
        ));
        // Nothing was left beside the files looked at.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["empty.db", "foreign.db", "marked.db", "older.db", "text.db"]
        );
    }
}
