//! Plugin output sent to the log file reaches the terminal when the plugin ends the process
//! (exit or abort) inside a redirected call, and only then. Each case runs in a child process:
//! this test binary again, running `child` with the case in the environment.

use std::process::Command;

use effnetv2::runtime::plugin_log::{quietly, redirect_plugin_output};

const CASE: &str = "EFFNETV2_PLUGIN_LOG_CASE";
const LOG: &str = "EFFNETV2_PLUGIN_LOG_FILE";
const LINE: &str = "F1203 plugin.cc:1] Check failed: the plugin gives up\n";

/// What a child run prints on stderr, its exit status and what the log file holds.
fn run_child(case: &str) -> (String, std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs").join("plugin.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, "an earlier run's line\n").unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CASE, case)
        .env(LOG, &log)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stderr, out.status, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_plugin_that_exits_inside_a_redirected_call_is_heard() {
    let (stderr, status, log) = run_child("exit");
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(LINE), "{stderr}");
    assert!(
        !stderr.contains("an earlier run's line"),
        "only this redirection's output: {stderr}"
    );
    assert!(log.ends_with(LINE), "{log}");
}

#[test]
fn a_plugin_that_aborts_inside_a_redirected_call_is_heard() {
    use std::os::unix::process::ExitStatusExt;
    let (stderr, status, log) = run_child("abort");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(stderr.contains(LINE), "{stderr}");
    assert!(log.ends_with(LINE), "{log}");
}

#[test]
fn output_of_a_call_that_returns_stays_in_the_log() {
    let (stderr, status, log) = run_child("return");
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains(LINE), "{stderr}");
    assert!(log.ends_with(LINE), "{log}");
}

/// The child's side: only runs as a child (with `CASE` set).
#[test]
fn child() {
    let (Ok(case), Ok(log)) = (std::env::var(CASE), std::env::var(LOG)) else {
        return;
    };
    redirect_plugin_output(Some(log.into()));
    quietly(|| {
        // Nested, as `dump --optimized` wraps a compile whose plugin load is wrapped too.
        quietly(|| {
            // SAFETY: writes a byte string of its own length to descriptor 2, as a plugin does.
            unsafe { libc::write(2, LINE.as_ptr().cast(), LINE.len()) };
        });
        match case.as_str() {
            "exit" => std::process::exit(3),
            "abort" => std::process::abort(),
            _ => {}
        }
    });
}
