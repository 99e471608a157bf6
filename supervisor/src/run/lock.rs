//! One index run per database at a time: an exclusive lock on a file beside
//! it, released by the kernel when the process dies, however it dies.

use std::fs::{File, OpenOptions};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

pub struct RunLock {
    _lock: Flock<File>,
}

impl RunLock {
    pub fn acquire(db: &Path) -> Result<RunLock, String> {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
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
