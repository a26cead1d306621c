//! timm as an independent reference: the Python environment the timm tests run their reference
//! scripts (`tools/timm_*.py`) in, and the files they exchange.
//!
//! timm runs from a virtual environment with pinned torch, timm and safetensors, created in the
//! user cache on first use (about 5.5 GB; `EFFNETV2_TIMM_PYTHON` names another Python with them).
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

use effnetv2::trainer::input::DataSpec;

use crate::python_env::venv_python;

/// What the reference environment installs.
const REQUIREMENTS: [&str; 3] = ["torch==2.15.0", "timm==1.0.31", "safetensors==0.8.0"];

/// A Python with timm: `EFFNETV2_TIMM_PYTHON`, or the cache's environment (created once).
pub fn timm_python() -> PathBuf {
    if let Some(python) = std::env::var_os("EFFNETV2_TIMM_PYTHON") {
        return PathBuf::from(python);
    }
    venv_python("timm-venv", &REQUIREMENTS)
}

/// Runs `tools/<tool>` with `args` in the timm environment; fails the test with its output
/// unless it succeeds.
pub fn run_tool(python: &Path, tool: &str, args: &[&std::ffi::OsStr]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(tool);
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{tool}: {output:?}");
}

/// A little-endian f32 file.
pub fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A data set description with ImageNet-1k's 1000 classes and no images (zip shards whose
/// `train/labels.txt` lists the classes): what a run whose head keeps timm's 1000 classes
/// imports for, as the classifier follows the data.
pub fn imagenet_classes(root: &Path) -> DataSpec {
    let train = root.join("train");
    std::fs::create_dir_all(&train).unwrap();
    let labels = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs/labels/imagenet-1k.txt");
    std::fs::copy(labels, train.join("labels.txt")).unwrap();
    DataSpec::Shards(root.to_path_buf())
}
