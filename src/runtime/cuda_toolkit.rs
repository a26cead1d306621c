//! The CUDA compiler tools XLA's GPU backend needs besides the plugin: `ptxas` and `nvlink`
//! (from the `nvidia-cuda-nvcc` wheel) turn the PTX it generates into GPU code, and `libdevice`
//! (from `nvidia-nvvm`) holds the math functions it links into that PTX. They come from the
//! wheels of the CUDA major the plugin was built for, pinned like the plugins, installed into
//! the plugin cache, and assembled into one CUDA directory (`bin/`, `nvvm/libdevice/`) that XLA
//! is pointed at with `--xla_gpu_cuda_data_dir`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::provision::{Cache, WheelFile, WheelPin, WheelSource};

/// The CUDA release of the compiler wheels: 13, the major version `jax-cuda13-pjrt` is built for.
const RELEASE: &str = "13.0.88";

/// The XLA option that names the CUDA directory.
pub const DATA_DIR_FLAG: &str = "--xla_gpu_cuda_data_dir";

static NVCC_PIN: WheelPin<'static> = WheelPin {
    package: "nvidia-cuda-nvcc",
    version: RELEASE,
    python_tag: "py3",
    abi_tag: "none",
    platform_tag: "manylinux2014_x86_64.manylinux_2_17_x86_64",
    sha256: "56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03",
    files: &[
        WheelFile {
            member: "nvidia/cu13/bin/ptxas",
            path: "bin/ptxas",
            executable: true,
        },
        WheelFile {
            member: "nvidia/cu13/bin/nvlink",
            path: "bin/nvlink",
            executable: true,
        },
    ],
};

static NVVM_PIN: WheelPin<'static> = WheelPin {
    package: "nvidia-nvvm",
    version: RELEASE,
    python_tag: "py3",
    abi_tag: "none",
    platform_tag: "manylinux2010_x86_64.manylinux_2_12_x86_64",
    sha256: "c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0",
    files: &[WheelFile {
        member: "nvidia/cu13/nvvm/libdevice/libdevice.10.bc",
        path: "nvvm/libdevice/libdevice.10.bc",
        executable: false,
    }],
};

/// The pinned wheels, for messages and listings.
pub fn pins() -> [&'static WheelPin<'static>; 2] {
    [&NVCC_PIN, &NVVM_PIN]
}

/// Installs the compiler tools into `cache` from `source` (once) and returns the CUDA directory:
/// `cuda-<release>/` beside the wheels' entries, whose `bin` and `nvvm` link into them.
pub fn install(cache: &Cache, source: &dyn WheelSource) -> Result<PathBuf> {
    assemble(cache, source, [(&NVCC_PIN, "bin"), (&NVVM_PIN, "nvvm")])
}

/// Installs each pin and links its `part` of the CUDA directory to it.
fn assemble(
    cache: &Cache,
    source: &dyn WheelSource,
    parts: [(&WheelPin<'_>, &str); 2],
) -> Result<PathBuf> {
    let root = cache.root().join("plugins").join(format!("cuda-{RELEASE}"));
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    for (pin, part) in parts {
        cache.install(pin, source, false).with_context(|| {
            format!(
                "could not install the CUDA compiler tools XLA needs to compile for a GPU ({}); \
                 with a CUDA {} installation of your own, put {DATA_DIR_FLAG}=/path/to/cuda in \
                 XLA_FLAGS instead",
                pin.requirement(),
                RELEASE.split('.').next().unwrap_or(RELEASE),
            )
        })?;
        let entry = cache.entry_dir(pin);
        let name = entry.file_name().expect("an entry has a name");
        link(&Path::new("..").join(name).join(part), &root.join(part))?;
    }
    Ok(root)
}

/// Makes `link` a symbolic link to `target` (relative, so that a copied cache keeps working),
/// atomically: concurrent installs may race, and each leaves a correct link.
fn link(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let dir = link.parent().expect("a link inside the CUDA directory");
    let temp = dir.join(format!(".partial-link-{}", std::process::id()));
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", temp.display()))
        }
        _ => {}
    }
    std::os::unix::fs::symlink(target, &temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    fs::rename(&temp, link).with_context(|| format!("cannot create {}", link.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use zip::write::{SimpleFileOptions, ZipWriter};

    /// A wheel with `pin`'s members, each holding its own member name; returns it and its hash.
    fn fake_wheel(dir: &Path, pin: &WheelPin<'_>) -> (PathBuf, String) {
        let path = dir.join(pin.file_name());
        let mut zip = ZipWriter::new(fs::File::create(&path).unwrap());
        for file in pin.files {
            zip.start_file(file.member, SimpleFileOptions::default())
                .unwrap();
            zip.write_all(file.member.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let hash = Sha256::digest(fs::read(&path).unwrap());
        let hex = hash.iter().map(|b| format!("{b:02x}")).collect();
        (path, hex)
    }

    #[test]
    fn the_cuda_directory_holds_the_tools_where_xla_looks() {
        let dir = tempfile::tempdir().unwrap();
        let (nvcc, nvcc_hash) = fake_wheel(dir.path(), &NVCC_PIN);
        let (nvvm, nvvm_hash) = fake_wheel(dir.path(), &NVVM_PIN);
        let nvcc_pin = WheelPin {
            sha256: &nvcc_hash,
            ..NVCC_PIN
        };
        let nvvm_pin = WheelPin {
            sha256: &nvvm_hash,
            ..NVVM_PIN
        };
        let source = |pin: &WheelPin<'_>, _: &Path| -> Result<PathBuf> {
            Ok(if pin.package == NVCC_PIN.package {
                nvcc.clone()
            } else {
                nvvm.clone()
            })
        };
        let cache = Cache::new(dir.path().join("cache"));
        let parts = [(&nvcc_pin, "bin"), (&nvvm_pin, "nvvm")];
        let root = assemble(&cache, &source, parts).unwrap();
        assert_eq!(
            assemble(&cache, &source, parts).unwrap(),
            root,
            "idempotent"
        );
        let ptxas = root.join("bin/ptxas");
        assert_eq!(fs::read_to_string(&ptxas).unwrap(), "nvidia/cu13/bin/ptxas");
        assert_eq!(
            fs::metadata(&ptxas).unwrap().permissions().mode() & 0o111,
            0o111
        );
        assert!(root.join("bin/nvlink").is_file());
        let libdevice = root.join("nvvm/libdevice/libdevice.10.bc");
        assert_eq!(
            fs::read_to_string(libdevice).unwrap(),
            "nvidia/cu13/nvvm/libdevice/libdevice.10.bc"
        );
        assert_eq!(
            fs::read_link(root.join("bin")).unwrap(),
            Path::new("../nvidia-cuda-nvcc-13.0.88/bin"),
            "relative, so that a copied cache keeps working"
        );
    }

    #[test]
    fn a_wheel_that_cannot_be_fetched_is_named_with_the_way_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let offline = |pin: &WheelPin<'_>, _: &Path| -> Result<PathBuf> {
            anyhow::bail!("no network for {}", pin.package)
        };
        let err = install(&Cache::new(dir.path()), &offline).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("could not install the CUDA compiler tools")
                && message.contains("nvidia-cuda-nvcc==13.0.88")
                && message.contains("--xla_gpu_cuda_data_dir=/path/to/cuda in XLA_FLAGS")
                && message.contains("no network for nvidia-cuda-nvcc"),
            "{message}"
        );
    }
}
