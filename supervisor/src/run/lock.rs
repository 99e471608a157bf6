//! One index run per database at a time: an exclusive lock on a file beside
//! it, released by the kernel when the process dies, however it dies.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

pub struct RunLock {
    _lock: Flock<File>,
}

fn lock_path(db: &Path) -> std::ffi::OsString {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    name
}

/// Whether a run holds the lock beside `db`, seen without taking it
/// (taking it even for an instant could refuse a run starting then), from
/// the kernel's list of locks in `/proc/locks`; None where there is no such
/// list (other systems than Linux).
pub fn held(db: &Path) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    match std::fs::metadata(lock_path(db)) {
        Ok(md) => Some(lists_flock_on(&locks, md.ino())),
        Err(_) => Some(false),
    }
}

/// Whether a `/proc/locks` listing holds a granted flock on inode `ino`
/// (`1: FLOCK  ADVISORY  WRITE 8160 fe:00:6760742 0 EOF`; waiting ones
/// carry `->` and are not held). The device is not compared: on layered
/// file systems the list and `stat` may name different ones.
fn lists_flock_on(list: &str, ino: u64) -> bool {
    list.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK")
            && f.get(5)
                .and_then(|id| id.rsplit(':').next())
                .and_then(|i| i.parse::<u64>().ok())
                == Some(ino)
    })
}

impl RunLock {
    pub fn acquire(db: &Path) -> Result<RunLock, String> {
        let name = lock_path(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .map_err(|e| {
                format!(
                    "cannot create the lock file {}: {e}",
                    Path::new(&name).display()
                )
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(RunLock { _lock: lock }),
            Err((_, _)) => Err(format!(
                "another `docmill index` is using {}; wait for it or stop it",
                db.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_locks_are_read_from_the_kernels_list() {
        let list = "1: POSIX  ADVISORY  WRITE 5709 fe:00:10010708 120 120\n\
                    2: FLOCK  ADVISORY  WRITE 8160 fe:00:6760742 0 EOF\n\
                    3: -> FLOCK  ADVISORY  WRITE 8170 fe:00:555 0 EOF\n";
        assert!(lists_flock_on(list, 6760742));
        assert!(
            !lists_flock_on(list, 10010708),
            "a POSIX lock is not a run's"
        );
        assert!(!lists_flock_on(list, 555), "a waiter holds nothing");
        assert!(!lists_flock_on(list, 1));
    }

    #[test]
    fn a_held_lock_is_seen_and_a_released_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        if held(&db).is_none() {
            return; // no /proc/locks here
        }
        assert_eq!(held(&db), Some(false));
        let lock = RunLock::acquire(&db).unwrap();
        assert_eq!(held(&db), Some(true));
        drop(lock);
        assert_eq!(held(&db), Some(false));
    }
}
