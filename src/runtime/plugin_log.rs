//! Where plugins' own log lines go. XLA plugins write absl log lines straight to file
//! descriptor 2 while they initialize and create clients (`WARNING: All log messages before
//! absl::InitializeLog() is called are written to STDERR`, `I0000 ... cpu_device_count set via
//! create_options: 1`); no environment variable reaches absl's threshold that early. With a log
//! file set, those calls run with descriptor 2 pointed at the file.
//!
//! The redirection is process-wide while it lasts, so it only wraps calls made before anything
//! else writes to the terminal: loading a plugin, creating a client or a topology, and the
//! compiles of commands that print nothing meanwhile (`dump --optimized`, where XLA announces its
//! dump directory).

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file plugin output goes to (`None`: the terminal).
static LOG_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sends what plugins print while loading and creating clients to `path` (appended), or back to
/// the terminal with `None`.
pub fn redirect_plugin_output(path: Option<PathBuf>) {
    *LOG_FILE.lock().unwrap_or_else(|p| p.into_inner()) = path;
}

/// The current plugin log file, if output is redirected.
pub fn plugin_log_file() -> Option<PathBuf> {
    LOG_FILE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Runs `call` with descriptor 2 redirected to the plugin log file, if one is set. When the file
/// cannot be opened, the output stays on the terminal. Nothing else may write to the terminal's
/// descriptor 2 meanwhile: it would go to the file too.
pub fn quietly<T>(call: impl FnOnce() -> T) -> T {
    let _redirect = plugin_log_file().and_then(|path| StderrRedirect::to(&path));
    call()
}

/// Descriptor 2 pointed at a file until dropped.
struct StderrRedirect {
    saved: i32,
    _file: File,
}

impl StderrRedirect {
    fn to(path: &Path) -> Option<StderrRedirect> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).ok()?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        // SAFETY: dup and dup2 on descriptor 2 and on a descriptor this function owns; no
        // memory is involved. On failure nothing was changed.
        unsafe {
            let saved = libc::dup(2);
            if saved < 0 {
                return None;
            }
            if libc::dup2(file.as_raw_fd(), 2) < 0 {
                libc::close(saved);
                return None;
            }
            Some(StderrRedirect { saved, _file: file })
        }
    }
}

impl Drop for StderrRedirect {
    fn drop(&mut self) {
        // SAFETY: restores descriptor 2 from the duplicate taken in `to`, then closes it.
        unsafe {
            libc::dup2(self.saved, 2);
            libc::close(self.saved);
        }
    }
}
