//! What the `effnetv2` command shows on the terminal: the plugins' own log lines only with
//! `--verbose` (otherwise they go to `logs/plugin.log` in the cache).

use std::process::Command;

fn effnetv2(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args(args)
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
    let (stdout, stderr) = effnetv2(&["info"]);
    assert!(stdout.contains("PJRT C API:   0.115"), "{stdout}");
    assert!(
        !stderr.contains("I0000") && !stderr.contains("absl"),
        "{stderr}"
    );
    let (_, stderr) = effnetv2(&["info", "--verbose"]);
    assert!(
        stderr.contains("cpu_device_count set via create_options"),
        "{stderr}"
    );
    // XLA announces its dump directory while `dump --optimized` compiles.
    let dir = tempfile::tempdir().unwrap();
    let dump = [
        "dump",
        "--model",
        "tiny",
        "--stage",
        "0",
        "--optimized",
        "--out",
    ];
    let (stdout, stderr) = effnetv2(&[&dump[..], &[dir.path().to_str().unwrap()]].concat());
    assert!(stdout.contains("wrote 1 graphs"), "{stdout}");
    assert!(!stderr.contains("I0000"), "{stderr}");
}
