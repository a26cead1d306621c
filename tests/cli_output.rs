//! What the `effnetv2` command shows on the terminal: the plugins' own log lines only with
//! `--verbose` (otherwise they go to `logs/plugin.log` in the cache).

use std::process::Command;

fn info(extra: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .arg("info")
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_log_lines_stay_off_the_terminal_unless_verbose() {
    let (stdout, stderr) = info(&[]);
    assert!(stdout.contains("PJRT C API:   0.115"), "{stdout}");
    assert!(
        !stderr.contains("I0000") && !stderr.contains("absl"),
        "{stderr}"
    );
    let (_, stderr) = info(&["--verbose"]);
    assert!(
        stderr.contains("cpu_device_count set via create_options"),
        "{stderr}"
    );
}
