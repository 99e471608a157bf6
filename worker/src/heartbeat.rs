//! A small thread that sends a heartbeat while a job runs, and notices when
//! the supervisor is gone on systems without a parent-death signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use docmill_protocol::FromWorker;
use ipc_channel::ipc::IpcSender;

const INTERVAL: Duration = Duration::from_millis(250);

/// The job being worked on; 0 while idle.
#[derive(Clone, Default)]
pub struct CurrentJob(Arc<AtomicU64>);

impl CurrentJob {
    pub fn set(&self, job: u64) {
        self.0.store(job, Ordering::SeqCst);
    }
    pub fn clear(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Starts the heartbeat thread. Its stack is small on purpose: the worker's
/// address-space limit counts every reservation.
pub fn start(tx: IpcSender<FromWorker>, current: CurrentJob) {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    thread::Builder::new()
        .name("heartbeat".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            thread::sleep(INTERVAL);
            // The parent-death signal covers Linux; elsewhere a changed parent
            // means the supervisor is gone and this worker must not linger.
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != parent {
                std::process::exit(0);
            }
            let job = current.get();
            if job != 0 && tx.send(FromWorker::Heartbeat { job }).is_err() {
                std::process::exit(0);
            }
        })
        .expect("spawn heartbeat thread");
}
