//! The run's scratch folder. Workers get it as TMPDIR, so whatever an
//! engine leaves behind when its worker is killed mid-job (mutool's page
//! files, say) goes with the run. A folder left by a supervisor that was
//! itself killed is removed by the next run on the machine. On Linux it
//! lives in /dev/shm (memory): mutool writes a small file per page, and
//! creating them on a disk file system cost 0.85 ms of kernel time a page,
//! several times what the text extraction of a small page costs.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

const PREFIX: &str = "docmill-run-";

/// Makes this run's folder under the system's temporary folder, after
/// removing those of runs whose supervisor is gone.
pub fn create() -> io::Result<tempfile::TempDir> {
    let root = root();
    sweep(&root);
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(&root)
}

/// Where scratch folders go: memory-backed /dev/shm when it is there and
/// writable, else the system's temporary folder.
pub fn root() -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
            return shm.to_path_buf();
        }
    }
    std::env::temp_dir()
}

/// Removes the scratch folders of supervisors that no longer run.
fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        if !alive(pid) {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(
                    "cannot remove an old run's scratch folder {}: {e}",
                    entry.path().display()
                );
            }
        }
    }
}

fn alive(pid: i32) -> bool {
    // EPERM: it exists but belongs to someone else.
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_dead_runs_are_swept_and_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        // A pid far above any pid_max is never alive.
        let dead = root.path().join(format!("{PREFIX}2147483600-abc"));
        let live = root
            .path()
            .join(format!("{PREFIX}{}-abc", std::process::id()));
        let other = root.path().join("something-else");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("inner")).unwrap();
        }
        sweep(root.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }
}
