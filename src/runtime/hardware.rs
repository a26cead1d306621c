//! Is the accelerator a plugin drives present on this machine? Asked before a client is created,
//! because the accelerator plugins do not fail fast without their device: libtpu polls the
//! cloud metadata server for minutes before it gives up.

use std::fs;
use std::path::Path;

use anyhow::{bail, Result};

use super::cuda_toolkit;
use super::provision::{Cache, Pip, PluginKind};

/// Set to `1` to skip the device check (an unusual device layout, a container without `/dev`).
pub const SKIP_DEVICE_CHECK_VAR: &str = "EFFNETV2_SKIP_DEVICE_CHECK";

/// What libtpu reads from the environment instead of the GCE metadata server.
/// `ALLOW_MULTIPLE_LIBTPU_LOAD` lets several processes compile at once (without it the second
/// fails on libtpu's `/tmp/libtpu_lockfile`, which guards chips that are not there).
const TPU_DEVICELESS_ENV: [(&str, &str); 4] = [
    ("TPU_SKIP_MDS_QUERY", "1"),
    ("ALLOW_MULTIPLE_LIBTPU_LOAD", "1"),
    ("TPU_WORKER_HOSTNAMES", "localhost"),
    ("TPU_ACCELERATOR_TYPE", "v5litepod-1"),
];

/// Fails with a clear "no device" error when `kind` needs an accelerator this machine lacks.
/// CPU plugins always pass.
pub fn check_device_present(kind: PluginKind) -> Result<()> {
    if std::env::var_os(SKIP_DEVICE_CHECK_VAR).is_some_and(|v| v == "1") {
        return Ok(());
    }
    let dev = Path::new("/dev");
    let (present, what) = match kind {
        PluginKind::Cpu | PluginKind::CpuJax => return Ok(()),
        PluginKind::Tpu => (tpu_present(dev), "TPU device (/dev/accel* or /dev/vfio/*)"),
        PluginKind::Cuda => (
            has_entry(dev, |name| {
                name.strip_prefix("nvidia")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }),
            "NVIDIA GPU (/dev/nvidia0, ...)",
        ),
    };
    if !present {
        bail!(
            "no {what} on this machine, so the {kind} plugin cannot run programs here. To compile \
             for it without the device, use `effnetv2 compile --target ...`; set \
             {SKIP_DEVICE_CHECK_VAR}=1 to try anyway"
        );
    }
    Ok(())
}

/// Prepares the process environment for the plugin of `kind`; call before the plugin loads.
///
/// On a machine without a TPU, libtpu is told not to look for the cloud metadata server
/// (otherwise plugin initialization hangs for minutes), may be loaded by several processes, and
/// is given a one-host description
/// (worker `localhost`, accelerator type `v5litepod-1`) in place of the metadata, which it
/// otherwise reports as warnings and an error on the terminal. A compile-only topology is named
/// explicitly, so this description does not reach the compiled programs (same memory and cost
/// figures with and without it, measured for v4 and v5e). Variables already set are kept.
///
/// The CUDA plugin compiles with CUDA's `ptxas` and `libdevice`, with or without a GPU:
/// `XLA_FLAGS` gets the directory of the pinned compiler tools (installed on first use, see
/// [`cuda_toolkit`]) unless it names a CUDA directory already.
pub fn prepare_environment(kind: PluginKind) -> Result<()> {
    match kind {
        PluginKind::Tpu if !tpu_present(Path::new("/dev")) => {
            for (name, value) in TPU_DEVICELESS_ENV {
                if std::env::var_os(name).is_none() {
                    std::env::set_var(name, value);
                }
            }
        }
        PluginKind::Cuda => {
            let flags = std::env::var("XLA_FLAGS").unwrap_or_default();
            if !flags.contains(cuda_toolkit::DATA_DIR_FLAG) {
                let root = cuda_toolkit::install(&Cache::user_default()?, &Pip)?;
                let flag = format!("{}={}", cuda_toolkit::DATA_DIR_FLAG, root.display());
                std::env::set_var("XLA_FLAGS", format!("{flags} {flag}").trim_start());
            }
        }
        _ => {}
    }
    Ok(())
}

/// TPU v2-v4 chips appear as `/dev/accel<N>`, v5e and later as VFIO groups `/dev/vfio/<N>`.
fn tpu_present(dev: &Path) -> bool {
    has_entry(dev, |name| name.starts_with("accel"))
        || has_entry(&dev.join("vfio"), |name| {
            name.bytes().all(|b| b.is_ascii_digit())
        })
}

fn has_entry(dir: &Path, matches: impl Fn(&str) -> bool) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_str().is_some_and(&matches))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpu_chips_are_found_by_their_device_files() {
        let dev = tempfile::tempdir().unwrap();
        assert!(!tpu_present(dev.path()));
        fs::create_dir(dev.path().join("vfio")).unwrap();
        fs::write(dev.path().join("vfio/vfio"), "").unwrap();
        assert!(
            !tpu_present(dev.path()),
            "the VFIO control node is not a chip"
        );
        fs::write(dev.path().join("vfio/0"), "").unwrap();
        assert!(tpu_present(dev.path()));
        let dev = tempfile::tempdir().unwrap();
        fs::write(dev.path().join("accel0"), "").unwrap();
        assert!(tpu_present(dev.path()));
    }

    #[test]
    fn cpu_plugins_need_no_device() {
        check_device_present(PluginKind::Cpu).unwrap();
        check_device_present(PluginKind::CpuJax).unwrap();
    }
}
