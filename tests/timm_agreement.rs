//! timm, the independent reference: a randomly initialised `tf_efficientnetv2_b0` and `_s` in
//! timm, imported here (`import_timm`), give the same logits as timm on the same inputs (f32,
//! inference mode, at an odd and an even image size), and the state dict exported back
//! (`export_timm`) loads into timm with `load_state_dict(strict=True)` and gives timm's logits.
//! timm runs in the environment of `timm_common`.

mod python_env;
mod run_common;
mod timm_common;

use std::ffi::OsStr;
use std::path::Path;

use effnetv2::hlo::Literal;
use effnetv2::program::context::Context;
use effnetv2::runtime::provision::PluginKind;
use effnetv2::step::graphs::{port, predict_step, Precision};
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::Discard;
use effnetv2::trainer::pretrained::WeightCopy;
use effnetv2::weights::transfer::{export_timm, import_timm};
use run_common::short_run;
use timm_common::{floats, imagenet_classes, run_tool, timm_python};

const BATCH: usize = 2;
const CLASSES: usize = 1000;

fn reference(python: &Path, timm_model: &str, size: usize, dir: &Path, load: Option<&Path>) {
    let (size, batch) = (size.to_string(), BATCH.to_string());
    let options = ["--model", timm_model, "--size", &size, "--batch", &batch];
    let mut args: Vec<&OsStr> = options.iter().map(OsStr::new).collect();
    args.extend([OsStr::new("--out"), dir.as_os_str()]);
    if let Some(file) = load {
        args.extend([OsStr::new("--load"), file.as_os_str()]);
    }
    run_tool(python, "timm_reference.py", &args);
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
        data: imagenet_classes(&dir.join("imagenet")),
        ..short_run(&out, 10, 1)
    };
    let checkpoint_dir = import_timm(&dir.join("state_dict.safetensors"), &config, &mut Discard)
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
