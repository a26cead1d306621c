//! timm, the independent reference: a randomly initialised `tf_efficientnetv2_b0` and `_s` in
//! timm, imported here (`import_timm`), give the same logits as timm on the same inputs (f32,
//! inference mode, at an odd and an even image size), and the state dict exported back
//! (`export_timm`) loads into timm with `load_state_dict(strict=True)` and gives timm's logits.
//!
//! timm runs from a virtual environment with pinned torch, timm and safetensors, created in the
//! user cache on first use (about 5.5 GB; `EFFNETV2_TIMM_PYTHON` names another Python with them).

mod run_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use effnetv2::hlo::Literal;
use effnetv2::program::context::Context;
use effnetv2::runtime::provision::PluginKind;
use effnetv2::step::graphs::{port, predict_step, Precision};
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::pretrained::WeightCopy;
use effnetv2::weights::transfer::{export_timm, import_timm};
use fs4::fs_std::FileExt;
use run_common::short_run;

/// What the reference environment installs.
const REQUIREMENTS: [&str; 3] = ["torch==2.15.0", "timm==1.0.31", "safetensors==0.8.0"];
const BATCH: usize = 2;
const CLASSES: usize = 1000;

/// A Python with timm: `EFFNETV2_TIMM_PYTHON`, or the cache's environment (created once).
fn timm_python() -> PathBuf {
    if let Some(python) = std::env::var_os("EFFNETV2_TIMM_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = effnetv2::data::cache_dir().unwrap().join("timm-venv");
    std::fs::create_dir_all(&venv).unwrap();
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    lock.lock_exclusive().unwrap();
    let python = venv.join("bin/python");
    let done = venv.join("installed");
    if std::fs::read_to_string(&done).ok().as_deref() != Some(&REQUIREMENTS.join(" ")) {
        let run = |command: &mut Command| {
            let output = command.output().unwrap();
            assert!(output.status.success(), "{command:?}: {output:?}");
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS));
        std::fs::write(&done, REQUIREMENTS.join(" ")).unwrap();
    }
    python
}

fn reference(python: &Path, timm_model: &str, size: usize, dir: &Path, load: Option<&Path>) {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/timm_reference.py");
    let mut command = Command::new(python);
    command
        .arg(tool)
        .args(["--model", timm_model, "--size", &size.to_string()])
        .args(["--batch", &BATCH.to_string(), "--out"])
        .arg(dir);
    if let Some(file) = load {
        command.arg("--load").arg(file);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
}

fn floats(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The largest difference relative to the largest reference logit.
fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// Imports timm's state dict as a run of `model`, runs our forward pass on timm's inputs from
/// the imported checkpoint's EMA weights, and returns the logits.
fn our_logits(ctx: &Context, model: &str, size: usize, dir: &Path) -> Vec<f32> {
    let out = dir.join("run");
    let config = RunConfig {
        model: model.into(),
        ..short_run(&out, 10, 1)
    };
    let checkpoint_dir = import_timm(&dir.join("state_dict.safetensors"), &config)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let model = config.model().unwrap();
    let graph = predict_step(
        &model,
        BATCH as i64,
        size as i64,
        ctx.lowering(Precision::F32),
    )
    .unwrap();
    let weights: Vec<_> = graph
        .signature
        .inputs()
        .iter()
        .filter(|p| p.name != port::IMAGES)
        .collect();
    let expected = weights.iter().map(|p| (p.name.as_str(), &p.shape));
    let (tensors, _): (Vec<Literal>, serde_json::Value) =
        checkpoint::load(&checkpoint_dir, expected).unwrap();
    let images = Literal::from_vec(
        &[BATCH as i64, size as i64, size as i64, 3],
        &floats(&dir.join("images.bin")),
    )
    .unwrap();
    let feeds = ctx
        .upload_named(
            weights
                .iter()
                .map(|p| p.name.as_str())
                .zip(tensors)
                .chain([(port::IMAGES, images)]),
        )
        .unwrap();
    let (exe, _) = ctx.compile(&graph).unwrap();
    let mut outputs = exe
        .run_replicated(vec![feeds
            .iter()
            .map(|(n, b)| (*n, effnetv2::runtime::Arg::Borrowed(b)))
            .collect()])
        .unwrap();
    let logits = outputs[0].take(port::LOGITS).unwrap().to_literal().unwrap();
    assert_eq!(logits.shape().dims(), [BATCH as i64, CLASSES as i64]);
    logits.to_f64_vec().iter().map(|&v| v as f32).collect()
}

fn agree_with_timm(model: &str, timm_model: &str, sizes: [usize; 2]) {
    let python = timm_python();
    let ctx = Context::open(PluginKind::DEFAULT, None).unwrap();
    for size in sizes {
        let dir = tempfile::tempdir().unwrap();
        reference(&python, timm_model, size, dir.path(), None);
        let theirs = floats(&dir.path().join("logits.bin"));
        let ours = our_logits(&ctx, model, size, dir.path());
        let error = relative_error(&ours, &theirs);
        eprintln!("{timm_model} at {size} px: largest logit difference {error:.2e} (relative)");
        assert!(error <= 1e-4, "{timm_model} at {size} px: {error:.2e}");

        // Back to timm: strict loading, the same logits.
        let exported = dir.path().join("exported.safetensors");
        export_timm(&dir.path().join("run"), &exported, WeightCopy::Ema).unwrap();
        reference(&python, timm_model, size, dir.path(), Some(&exported));
        let reloaded = floats(&dir.path().join("logits_loaded.bin"));
        assert_eq!(reloaded, theirs, "the exported weights are timm's own");
    }
}

#[test]
fn b0_imported_from_timm_gives_timms_logits_and_exports_back() {
    agree_with_timm("b0", "tf_efficientnetv2_b0", [225, 192]);
}

#[test]
fn s_imported_from_timm_gives_timms_logits_and_exports_back() {
    agree_with_timm("s", "tf_efficientnetv2_s", [128, 129]);
}
