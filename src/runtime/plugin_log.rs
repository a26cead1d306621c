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
//!
//! A plugin may end the process inside such a call: libtpu exits on a flag in `LIBTPU_INIT_ARGS`
//! it does not know ("ERROR: Unknown command line flag ..."), and a failed check aborts. What it
//! said then is the only explanation there is, so when the process exits or aborts while the
//! output is redirected, what the plugin wrote since the redirection began is copied to the
//! terminal first.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Mutex, Once, OnceLock};

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

/// The redirection in force, for [`replay`]: the terminal's descriptor 2 (a duplicate; -1 while
/// none is in force), the log file's descriptor and the file's length when it began. Atomics,
/// because `replay` runs in an exit handler or a signal handler.
static TERMINAL: AtomicI32 = AtomicI32::new(-1);
static LOG: AtomicI32 = AtomicI32::new(-1);
static LOG_START: AtomicI64 = AtomicI64::new(0);

/// SIGABRT's disposition before [`on_abort`] was installed, restored before aborting on.
static PREVIOUS_ABORT_ACTION: OnceLock<libc::sigaction> = OnceLock::new();

/// Descriptor 2 pointed at a file until dropped.
struct StderrRedirect {
    terminal: i32,
    _file: File,
}

impl StderrRedirect {
    /// `None` when the file cannot be opened or a redirection is in force already: a nested
    /// call's output goes to the file anyway; another thread's goes there until that thread's
    /// redirection ends.
    fn to(path: &Path) -> Option<StderrRedirect> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).ok()?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .ok()?;
        let start = i64::try_from(file.metadata().ok()?.len()).ok()?;
        install_replay();
        // SAFETY: dup and dup2 on descriptor 2 and on descriptors this function owns; no
        // memory is involved. On failure nothing was changed.
        unsafe {
            let terminal = libc::dup(2);
            if terminal < 0 {
                return None;
            }
            if TERMINAL
                .compare_exchange(-1, terminal, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                libc::close(terminal);
                return None;
            }
            LOG_START.store(start, Ordering::SeqCst);
            LOG.store(file.as_raw_fd(), Ordering::SeqCst);
            if libc::dup2(file.as_raw_fd(), 2) < 0 {
                LOG.store(-1, Ordering::SeqCst);
                TERMINAL.store(-1, Ordering::SeqCst);
                libc::close(terminal);
                return None;
            }
            Some(StderrRedirect {
                terminal,
                _file: file,
            })
        }
    }
}

impl Drop for StderrRedirect {
    fn drop(&mut self) {
        LOG.store(-1, Ordering::SeqCst);
        // SAFETY: restores descriptor 2 from the duplicate taken in `to`, then closes it, unless
        // `replay` took it (the process is ending).
        if TERMINAL.swap(-1, Ordering::SeqCst) == self.terminal {
            unsafe {
                libc::dup2(self.terminal, 2);
                libc::close(self.terminal);
            }
        }
    }
}

/// Registers [`replay`] to run when the process exits or aborts (once per process).
fn install_replay() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: `on_exit` and `on_abort` are `extern "C"` functions that only use atomics and
        // async-signal-safe calls (pread, write, dup2, sigaction, raise); the sigaction structs
        // are plain data, zeroed and then filled in.
        unsafe {
            libc::atexit(on_exit);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGABRT, std::ptr::null(), &mut previous) != 0 {
                return;
            }
            PREVIOUS_ABORT_ACTION.get_or_init(|| previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
        }
    });
}

extern "C" fn on_exit() {
    replay();
}

/// Replays, then aborts on with the disposition SIGABRT had before (the default: the process
/// ends with SIGABRT).
extern "C" fn on_abort(signal: libc::c_int) {
    replay();
    let previous = PREVIOUS_ABORT_ACTION.get();
    // SAFETY: restores a disposition read back from sigaction (or the default) and raises the
    // signal again, as a handler that does not handle it must.
    unsafe {
        match previous {
            Some(action) => libc::sigaction(signal, action, std::ptr::null_mut()),
            None => {
                libc::signal(signal, libc::SIG_DFL);
                0
            }
        };
        libc::raise(signal);
    }
}

/// Ends a redirection in force as the process ends: copies what the log file received since it
/// began to the terminal, then points descriptor 2 back at the terminal.
fn replay() {
    let terminal = TERMINAL.swap(-1, Ordering::SeqCst);
    if terminal < 0 {
        return;
    }
    let log = LOG.load(Ordering::SeqCst);
    let mut offset = LOG_START.load(Ordering::SeqCst);
    let mut buffer = [0u8; 4096];
    // SAFETY: reads into and writes from a buffer on this stack, within its length; the
    // descriptors stay open until the process ends (the redirection was never dropped).
    unsafe {
        let mut read = if log < 0 {
            0
        } else {
            libc::pread(log, buffer.as_mut_ptr().cast(), buffer.len(), offset)
        };
        while read > 0 {
            let mut written = 0;
            while written < read {
                let n = libc::write(
                    terminal,
                    buffer[written as usize..].as_ptr().cast(),
                    (read - written) as usize,
                );
                if n <= 0 {
                    break;
                }
                written += n;
            }
            offset += read as i64;
            read = libc::pread(log, buffer.as_mut_ptr().cast(), buffer.len(), offset);
        }
        libc::dup2(terminal, 2);
    }
}
