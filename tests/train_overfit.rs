//! The whole train step (forward, loss, autodiff, RMSProp, BN statistics, EMA) learns: the small
//! variant overfits one fixed batch on the CPU plugin, in f32 and in bf16; and the graph shaped
//! for accelerators (grouped depthwise convolutions, the joint batch-norm/SiLU/SE gradient) takes
//! the same steps as the CPU's.

use effnetv2::hlo::Literal;
use effnetv2::model::{load_spec, Backend, Model};
use effnetv2::program::context::Context;
use effnetv2::program::device_state::DeviceState;
use effnetv2::runtime::provision::PluginKind;
use effnetv2::runtime::{CompileOptions, OptionOverride};
use effnetv2::step::graphs::{port, train_step, Precision, StepConfig};
use effnetv2::step::state::StateLayout;
use effnetv2::trainer::init::initial_state;
use rand::{Rng, SeedableRng};

/// Trains `steps` steps on one random batch and returns the losses.
fn overfit(precision: Precision, backend: Backend, steps: usize) -> Vec<f32> {
    let ctx = Context::open(PluginKind::Cpu, None).unwrap();
    let model = Model::new(load_spec("tiny").unwrap()).unwrap();
    let (batch, size, classes) = (32i64, 16i64, 10i64);
    let mut cfg = StepConfig::official(batch, size, precision, backend);
    cfg.objective.label_smoothing = 0.0;
    // XLA's CPU backend otherwise keeps bf16 intermediates in f32 ("excess precision"), which
    // would make this an f32 run in disguise.
    let options = CompileOptions::default()
        .with_override("xla_allow_excess_precision", OptionOverride::Bool(false));
    let (exe, _) = ctx
        .compile_with(&train_step(&model, &cfg).unwrap(), &options)
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let images: Vec<f32> = (0..batch * size * size * 3)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let classes_of: Vec<i32> = (0..batch)
        .map(|_| rng.gen_range(0..classes as i32))
        .collect();
    let labels: Vec<f32> = classes_of
        .iter()
        .flat_map(|&c| (0..classes as i32).map(move |k| if k == c { 1.0 } else { 0.0 }))
        .collect();
    let feeds = ctx
        .upload_named([
            (
                port::IMAGES,
                Literal::from_vec(&[batch, size, size, 3], &images).unwrap(),
            ),
            (
                port::LABELS,
                Literal::from_vec(&[batch, classes], &labels).unwrap(),
            ),
            (
                port::CLASSES,
                Literal::from_vec(&[batch], &classes_of).unwrap(),
            ),
            (port::LEARNING_RATE, Literal::scalar(0.002f32)),
            (port::DROPOUT_RATE, Literal::scalar(0.0f32)),
        ])
        .unwrap();
    let layout = StateLayout::new(&model);
    let mut state = DeviceState::upload(&ctx, &layout, &initial_state(&layout, 1)).unwrap();
    (0..steps)
        .map(|_| state.step(&exe, std::slice::from_ref(&feeds)).unwrap()[0].loss)
        .collect()
}

fn check(losses: &[f32]) {
    let first = losses[0];
    let last = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    println!("loss {first:.4} -> {last:.4} ({} steps)", losses.len());
    assert!(losses.iter().all(|l| l.is_finite()), "losses: {losses:?}");
    assert!(
        last < 0.1 * first,
        "the loss fell only from {first} to {last}: {losses:?}"
    );
}

#[test]
fn small_variant_overfits_one_batch_in_f32() {
    check(&overfit(Precision::F32, Backend::Cpu, 300));
}

#[test]
fn small_variant_overfits_one_batch_in_bf16() {
    check(&overfit(Precision::Bf16, Backend::Cpu, 300));
}

#[test]
fn the_accelerator_graph_takes_the_cpu_graphs_steps() {
    let cpu = overfit(Precision::F32, Backend::Cpu, 12);
    let accelerator = overfit(Precision::F32, Backend::Accelerator, 12);
    for (step, (a, c)) in accelerator.iter().zip(&cpu).enumerate() {
        assert!(
            (a - c).abs() <= 1e-4 * c.abs(),
            "step {step}: loss {a} with the accelerator graph, {c} with the CPU's"
        );
    }
    assert!(cpu[11] < 0.9 * cpu[0], "the loss did not fall: {cpu:?}");
}
