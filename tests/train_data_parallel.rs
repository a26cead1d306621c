//! Data parallelism over several CPU devices of the default plugin: the same global batch split
//! over 2 or 4 replicas trains the same weights as one device; replicas stay bit-identical with
//! per-replica batch norm and dropout; checkpoints move between device counts; a stopped and
//! resumed 2-device run ends bit-identical to an uninterrupted one.

mod run_common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use effnetv2::hlo::{ElementType, Literal};
use effnetv2::model::{load_spec, Model};
use effnetv2::program::context::Context;
use effnetv2::program::device_state::DeviceState;
use effnetv2::runtime::provision::PluginKind;
use effnetv2::step::graphs::{port, train_step, Precision, StepConfig};
use effnetv2::step::state::StateLayout;
use effnetv2::trainer::agreement_check::{check_agreement, extremes, Shared};
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::Discard;
use effnetv2::trainer::init::initial_state;
use effnetv2::trainer::run::train;
use run_common::{final_state, short_run};

/// 20 steps of global batch 32 over 2 stages, on `devices` devices.
fn config(model: &str, out: &Path, devices: usize, sync_batch_norm: bool) -> RunConfig {
    RunConfig {
        model: model.into(),
        devices: Some(devices),
        sync_batch_norm,
        seed: 5,
        eval_limit: Some(100),
        ..short_run(out, 20, 2)
    }
}

/// The small variant without randomness in the graph: no dropout, no stochastic depth.
fn deterministic_tiny(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs/efficientnetv2-tiny.json"),
    )
    .unwrap();
    let mut spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    spec["dropout"] = 0.0.into();
    spec["survival_prob"] = 1.0.into();
    spec["progressive"]["official"]["dropout"] = serde_json::json!({"min": 0.0, "max": 0.0});
    let path = dir.join("tiny-deterministic.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn run(config: &RunConfig, resume: bool) {
    train(config, resume, &AtomicBool::new(false), &mut Discard)
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Tensors smaller than this everywhere are compared absolutely (see below).
const NOISE_FLOOR: f64 = 1e-2;

/// How far weights (and their EMA) may drift from the one-device run after 20 steps, relative.
/// Most tensors stay within 1e-5; batch-norm betas reach about 2e-5: their gradients are sums
/// of thousands of terms of both signs that nearly cancel, so the order in which the replicas'
/// shares are summed changes the small result in its fifth digit.
const WEIGHTS: f64 = 5e-5;

/// The optimizer slots accumulate those differences in every update.
const OPTIMIZER_SLOTS: f64 = 1e-4;

#[test]
fn data_parallel_runs_with_sync_batch_norm_match_one_device() {
    let root = tempfile::tempdir().unwrap();
    let spec = deterministic_tiny(root.path());
    let spec = spec.to_str().unwrap();
    let one = root.path().join("one");
    run(&config(spec, &one, 1, true), false);
    let reference = final_state(&one);
    for devices in [2, 4] {
        let out = root.path().join(format!("dp{devices}"));
        run(&config(spec, &out, devices, true), false);
        let state = final_state(&out);
        let mut worst = [(0.0f64, String::new()), (0.0f64, String::new())];
        for ((name, a), (_, b)) in reference.iter().zip(&state) {
            if a.shape().ty() != ElementType::F32 {
                // The step counter agrees; the random key advances differently with replicas
                // (each replica draws from its own stream) and drew nothing here.
                if name != "rng" {
                    assert_eq!(a.bytes(), b.bytes(), "{name}");
                }
                continue;
            }
            // Relative to the tensor's largest magnitude, and at least to NOISE_FLOOR: some
            // tensors are zero in exact arithmetic (the beta of a batch norm whose output feeds
            // another batch norm has a zero gradient, and the moving mean of that next batch norm
            // stays at zero), and hold only rounding noise, around 1e-10, whose value depends on
            // the order of every sum.
            let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
            let scale = a.iter().fold(NOISE_FLOOR, |m, v| m.max(v.abs()));
            let diff = a
                .iter()
                .zip(&b)
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            let kind = usize::from(name.starts_with("opt/"));
            if diff / scale > worst[kind].0 {
                worst[kind] = (diff / scale, name.clone());
            }
        }
        for ((relative, name), limit) in worst.iter().zip([WEIGHTS, OPTIMIZER_SLOTS]) {
            eprintln!("{devices} devices: largest relative difference {relative:.2e} ({name})");
            assert!(
                *relative <= limit,
                "{devices} devices: {name} differs by {relative:.2e} relative"
            );
        }
    }
}

#[test]
fn replicas_stay_bit_identical_with_per_replica_batch_norm_and_dropout() {
    let ctx = Context::open_devices(PluginKind::DEFAULT, None, Some(2)).unwrap();
    let model = Model::new(load_spec("tiny").unwrap()).unwrap();
    let layout = StateLayout::new(&model);
    let cfg = StepConfig {
        replicas: 2,
        ..StepConfig::official(8, 16, Precision::F32, ctx.backend())
    };
    let (exe, _) = ctx.compile(&train_step(&model, &cfg).unwrap()).unwrap();
    let mut state = DeviceState::upload(&ctx, &layout, &initial_state(&layout, 3)).unwrap();
    // Different images and classes on each replica, so batch statistics and gradients differ.
    let feeds: Vec<_> = (0..2)
        .map(|r| {
            let images: Vec<f32> = (0..8 * 16 * 16 * 3)
                .map(|i| ((i * (7 + r)) % 255) as f32 / 128.0 - 1.0)
                .collect();
            let classes: Vec<i32> = (0..8).map(|i| ((i + 3 * r) % 10) as i32).collect();
            let labels: Vec<f32> = classes
                .iter()
                .flat_map(|&c| (0..10).map(move |k| if k == c { 1.0 } else { 0.0 }))
                .collect();
            ctx.upload_named_to(
                r,
                [
                    (
                        port::IMAGES,
                        Literal::from_vec(&[8, 16, 16, 3], &images).unwrap(),
                    ),
                    (port::LABELS, Literal::from_vec(&[8, 10], &labels).unwrap()),
                    (port::CLASSES, Literal::from_vec(&[8], &classes).unwrap()),
                    (port::LEARNING_RATE, Literal::scalar(0.01f32)),
                    (port::DROPOUT_RATE, Literal::scalar(0.3f32)),
                ],
            )
            .unwrap()
        })
        .collect();
    let initial = state.download_replica(0).unwrap();
    for _ in 0..5 {
        let outcome = state.step(&exe, &feeds).unwrap();
        assert!(outcome[0].loss.is_finite());
    }
    let (a, b) = (
        state.download_replica(0).unwrap(),
        state.download_replica(1).unwrap(),
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x.bytes(), y.bytes(), "{name} differs between replicas");
    }
    let moved = a
        .iter()
        .zip(&initial)
        .filter(|((_, x), (_, y))| x.bytes() != y.bytes())
        .count();
    assert!(moved > layout.len() / 2, "only {moved} tensors changed");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_two_device_run_resumes_exactly_and_its_checkpoint_resumes_on_one_and_four() {
    let root = tempfile::tempdir().unwrap();
    let full = root.path().join("full");
    run(&config("tiny", &full, 2, false), false);

    let split = root.path().join("split");
    let mut stopped = config("tiny", &split, 2, false);
    stopped.stop_after = Some(7);
    run(&stopped, false);
    let at_step_7 = root.path().join("at-step-7");
    copy_dir(&split, &at_step_7);
    run(&config("tiny", &split, 2, false), true);
    for ((name, x), (_, y)) in final_state(&full).iter().zip(&final_state(&split)) {
        assert_eq!(x.bytes(), y.bytes(), "{name} differs after resuming");
    }

    for devices in [1, 4] {
        let moved = root.path().join(format!("on-{devices}"));
        copy_dir(&at_step_7, &moved);
        let mut resumed = config("tiny", &moved, devices, false);
        resumed.out = moved.clone();
        let summary = train(&resumed, true, &AtomicBool::new(false), &mut Discard)
            .unwrap_or_else(|e| panic!("{devices} devices: {e:#}"));
        assert!(summary.completed && summary.final_top1 > 0.0);
        let step = final_state(&moved)
            .into_iter()
            .find(|(name, _)| name == "step")
            .unwrap()
            .1;
        assert_eq!(step.to_f64_vec(), [20.0], "{devices} devices");
    }
}

#[test]
fn replicas_compare_the_values_they_must_share() {
    let ctx = Context::open_devices(PluginKind::DEFAULT, None, Some(2)).unwrap();
    let (lowest, highest) = extremes(&ctx, vec![vec![5, -7, 40], vec![5, 9, 3]]).unwrap();
    assert_eq!(lowest, [5, -7, 3]);
    assert_eq!(highest, [5, 9, 40]);
    // Wide values (configuration digests) compare exactly for equality.
    let wide = [1 << 40, i64::MIN + 3];
    assert_eq!(
        extremes(&ctx, vec![wide.to_vec(); 2]).unwrap(),
        (wide.to_vec(), wide.to_vec())
    );
    let (lowest, highest) = extremes(&ctx, vec![vec![1 << 40], vec![(1 << 40) + 1]]).unwrap();
    assert_ne!(lowest, highest);
    let same = [Shared {
        what: "starting step",
        value: 12,
    }];
    check_agreement(&ctx, &same).unwrap();
    assert!(
        extremes(&ctx, vec![vec![1]]).is_err(),
        "one list per local replica"
    );
}
