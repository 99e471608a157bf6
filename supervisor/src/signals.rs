//! SIGINT and SIGTERM: the first asks the run to stop (finish in-flight jobs
//! within the grace period, commit, exit 130 or 143); a second SIGINT exits
//! at once. Workers have their own process groups, so a terminal's Ctrl-C
//! reaches only the supervisor, which decides for them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use docmill_protocol::exit_codes;
use signal_hook::consts::{SIGINT, SIGTERM};

#[derive(Clone)]
pub struct Signals {
    got: Arc<AtomicUsize>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let got = Arc::new(AtomicUsize::new(0));
        let int_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The second SIGINT exits immediately: the conditional handler
        // fires only once the flag below is already set.
        signal_hook::flag::register_conditional_shutdown(
            SIGINT,
            exit_codes::INTERRUPTED,
            Arc::clone(&int_flag),
        )?;
        signal_hook::flag::register(SIGINT, int_flag)?;
        signal_hook::flag::register_usize(SIGINT, Arc::clone(&got), SIGINT as usize)?;
        signal_hook::flag::register_usize(SIGTERM, Arc::clone(&got), SIGTERM as usize)?;
        Ok(Signals { got })
    }

    /// The signal that asked the run to stop, if any.
    pub fn requested(&self) -> Option<i32> {
        match self.got.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }

    pub fn exit_code(sig: i32) -> i32 {
        if sig == SIGTERM {
            exit_codes::TERMINATED
        } else {
            exit_codes::INTERRUPTED
        }
    }
}
