//! Stopping a worker: SIGTERM to its process group (the worker and any
//! engine it started), a short grace, then SIGKILL; always reaped.

use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::Worker;

impl Worker {
    /// Terminates the worker's process group and reaps the worker.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let group = Pid::from_raw(self.pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        if let Some(status) = self.wait_for(grace) {
            let _ = killpg(group, Signal::SIGKILL);
            return Some(status);
        }
        let _ = killpg(group, Signal::SIGKILL);
        self.child.wait().ok()
    }

    /// Kills the whole group at once, for when a worker must go now.
    pub fn kill_now(&mut self) -> Option<ExitStatus> {
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        self.child.wait().ok()
    }

    /// Reaps a worker whose channel closed (it exited or died); anything
    /// left in its group is killed.
    pub fn reap(&mut self, grace: Duration) -> Option<ExitStatus> {
        let status = self.wait_for(grace);
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        status.or_else(|| self.child.wait().ok())
    }

    /// Asks the worker to exit after its current job and reaps it.
    pub fn shutdown(&mut self, grace: Duration) {
        self.ask_to_exit();
        self.await_exit(grace);
    }

    /// Asks the worker to exit after its current job (see [`Self::await_exit`]).
    pub fn ask_to_exit(&mut self) {
        let _ = self.jobs.send(docmill_protocol::ToWorker::Shutdown);
    }

    /// Reaps a worker asked to exit, killing it (and its group) once
    /// `grace` is up.
    pub fn await_exit(&mut self, grace: Duration) {
        if self.wait_for(grace).is_none() {
            self.kill_now();
        } else {
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
    }

    fn wait_for(&mut self, grace: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + grace;
        // A worker asked to go usually has within a few milliseconds.
        let mut pause = Duration::from_millis(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                _ => return None,
            }
        }
    }
}
