//! Real image fixtures for the data tests and benchmark, fetched from PyPI wheels into the user
//! cache on first use (pinned versions, so every run sees the same bytes).
#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use effnetv2::data::cache_dir;

/// `foolbox/data` of foolbox 3.3.4: 20 progressive ImageNet JPEGs (512x512), CIFAR PNGs and the
/// first 20 Fashion-MNIST test images as PNGs, each named `<set>_<nn>_<label>.<ext>`.
pub fn foolbox_data() -> PathBuf {
    wheel_dir("foolbox", "3.3.4", &[], "foolbox/data/")
}

/// `sklearn/datasets/images` of scikit-learn 1.5.2: `china.jpg` and `flower.jpg`, baseline JPEGs
/// of 640x427. The platform flags pick one fixed wheel whatever the local Python is.
pub fn sklearn_images() -> PathBuf {
    let platform = [
        "--platform",
        "manylinux2014_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ];
    wheel_dir(
        "scikit-learn",
        "1.5.2",
        &platform,
        "sklearn/datasets/images/",
    )
}

/// Files of `dir` whose names start with `prefix` and end with `suffix`, sorted.
pub fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    found.sort();
    found
}

/// The folder of the cached copy of `member_prefix` from wheel `name==version`, downloading and
/// extracting it first if needed.
fn wheel_dir(name: &str, version: &str, pip_args: &[&str], member_prefix: &str) -> PathBuf {
    let cache = cache_dir().expect("user cache folder");
    let root = cache.join("fixtures").join(format!("{name}-{version}"));
    let target = root.join(member_prefix);
    if root.join(".complete").is_file() {
        return target;
    }
    let fixtures = cache.join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("create the fixtures cache folder");
    let work = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&fixtures)
        .expect("temporary folder in the cache");
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
        ])
        .args(pip_args)
        .arg(format!("{name}=={version}"))
        .arg("-d")
        .arg(work.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `python3 -m pip` to fetch test fixtures: {e}"));
    assert!(
        output.status.success(),
        "`pip download {name}=={version}` failed (offline? no access to PyPI?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wheel = files(work.path(), "", ".whl")
        .pop()
        .unwrap_or_else(|| panic!("pip left no wheel for {name}=={version}"));
    let extracted = work.path().join("extracted");
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&wheel).expect("open wheel")).expect("read wheel");
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).expect("wheel member");
        let member_name = member.name().to_owned();
        if !member_name.starts_with(member_prefix) || member_name.ends_with('/') {
            continue;
        }
        let path = extracted.join(&member_name);
        std::fs::create_dir_all(path.parent().unwrap()).expect("create fixture folder");
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).expect("read wheel member");
        std::fs::write(&path, bytes).expect("write fixture");
    }
    std::fs::write(extracted.join(".complete"), version).expect("mark fixture complete");
    // A concurrent test binary may have installed the same fixture first; either copy is fine.
    if std::fs::rename(&extracted, &root).is_err() {
        assert!(
            root.join(".complete").is_file(),
            "cannot move fixtures into {}",
            root.display()
        );
    }
    target
}

/// The argument an augmentation operation was resolved to, its random sign removed; `None` for
/// the operations that take none (AutoContrast, Equalize, Invert).
pub fn op_argument(op: effnetv2::data::transform::randaugment::Op) -> Option<f64> {
    use effnetv2::data::transform::randaugment::Op;
    Some(match op {
        Op::Rotate { degrees } => f64::from(degrees.abs()),
        Op::Posterize { bits } => f64::from(bits),
        Op::Solarize { threshold } => f64::from(threshold),
        Op::SolarizeAdd { addition } => f64::from(addition),
        Op::Color { factor }
        | Op::Contrast { factor }
        | Op::Brightness { factor }
        | Op::Sharpness { factor } => f64::from(factor),
        Op::ShearX { level } | Op::ShearY { level } => f64::from(level.abs()),
        Op::TranslateX { pixels } | Op::TranslateY { pixels } => f64::from(pixels.abs()),
        Op::Cutout { pad, .. } => f64::from(pad),
        Op::AutoContrast | Op::Equalize | Op::Invert => return None,
    })
}
