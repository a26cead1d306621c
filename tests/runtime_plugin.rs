//! Loading PJRT plugins: versions, attributes, file hash, and errors for files that are not plugins.

mod runtime_common;

use std::process::Command;
use std::sync::Arc;

use effnetv2::runtime::{ApiVersion, Plugin, RuntimeError};
use runtime_common::{cpu_jax_plugin, cpu_plugin};

#[test]
fn both_cpu_plugins_report_their_versions_and_attributes() {
    let official = cpu_plugin();
    assert_eq!(
        official.api_version(),
        ApiVersion {
            major: 0,
            minor: 81
        }
    );
    let Some(jax) = cpu_jax_plugin() else { return };
    assert_eq!(
        jax.api_version(),
        ApiVersion {
            major: 0,
            minor: 115
        }
    );
    for plugin in [&official, &jax] {
        let names: Vec<&str> = plugin
            .attributes()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(
            names.contains(&"xla_version"),
            "{}: attributes {names:?}",
            plugin.path().display()
        );
    }
}

#[test]
fn sha256_matches_the_sha256sum_tool() {
    let plugin = cpu_plugin();
    let output = Command::new("sha256sum")
        .arg(plugin.path())
        .output()
        .expect("sha256sum runs");
    let expected = String::from_utf8(output.stdout).unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    assert_eq!(plugin.sha256_hex(), expected);
    assert_eq!(plugin.sha256_hex().len(), 64);
}

#[test]
fn loading_a_library_again_returns_the_same_plugin() {
    let first = cpu_plugin();
    let again = Plugin::load(first.path()).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
}

#[test]
fn a_shared_library_without_get_pjrt_api_is_rejected() {
    // libc is mapped into every test process, so its path is known to exist.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let libc = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so") || path.contains("/libc-"))
        .expect("libc is mapped");
    let err = Plugin::load(libc).unwrap_err();
    assert!(matches!(err, RuntimeError::Load { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("not a PJRT plugin (no GetPjrtApi symbol)"),
        "{message}"
    );
    assert!(
        message.contains("libc"),
        "the message names the file: {message}"
    );
}

#[test]
fn a_file_that_is_not_a_shared_library_is_rejected() {
    let path =
        std::env::temp_dir().join(format!("effnetv2-not-a-plugin-{}.so", std::process::id()));
    std::fs::write(&path, b"plain text, not ELF").unwrap();
    let err = Plugin::load(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, RuntimeError::Load { .. }), "{err:?}");
    assert!(err.to_string().contains("effnetv2-not-a-plugin"), "{err}");
}

#[test]
fn a_missing_file_is_rejected() {
    let err = Plugin::load("/nonexistent/effnetv2/plugin.so").unwrap_err();
    assert!(matches!(err, RuntimeError::Load { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/effnetv2/plugin.so"),
        "{err}"
    );
}
