//! Ctrl-C for the long-running commands: the first one asks the work to stop at its next safe
//! point (the run checkpoints, the search finishes its candidate), a second one kills.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;

/// Installs the process's Ctrl-C handler and returns the flag the first Ctrl-C sets; a second
/// Ctrl-C exits at once with status 130.
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })?;
    Ok(interrupted)
}
