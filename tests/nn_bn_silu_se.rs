//! `nn::batch_norm_silu_se_train` (batch norm, SiLU and squeeze-and-excite with one gradient
//! rule whose sums are distributed so that they fuse) against the same layers differentiated by
//! autodiff (`batch_norm_train`, `silu`, `squeeze_excite`): outputs, moving statistics and the
//! gradients of the input, gamma, beta and the four gate weights, in f32 and bf16 compute, on one
//! device and with the statistics synced over two.

mod common;

use common::{lit, module, random, run, run_replicated};
use effnetv2::autodiff;
use effnetv2::hlo::{Builder, ElementType, HloError, Literal, Shape, Value};
use effnetv2::nn::{
    batch_norm_silu_se_train, batch_norm_train, silu, squeeze_excite, BatchNormParams, Replicas,
    SeWeights,
};
use ndarray::ArrayD;

const DIMS: [usize; 4] = [4, 5, 3, 6];
const REDUCED: usize = 2;
const MOMENTUM: f64 = 0.9;
const EPSILON: f64 = 1e-3;
const OUTPUTS: [&str; 10] = [
    "out",
    "moving mean",
    "moving var",
    "d x",
    "d gamma",
    "d beta",
    "d reduce w",
    "d reduce b",
    "d expand w",
    "d expand b",
];

/// Parameters: x, gamma, beta, moving mean, moving var, the four gate weights, the upstream
/// gradient; `batch` examples.
fn inputs(batch: usize) -> Vec<ArrayD<f32>> {
    let c = DIMS[3];
    let mut x = random(&[batch, DIMS[1], DIMS[2], c], -1.0f32, 1.0, 11);
    // Channel means and spreads that differ, as after a convolution.
    for (i, v) in x.indexed_iter_mut() {
        *v = (i[3] as f32 - 2.0) * 0.7 + (1.0 + i[3] as f32 * 0.3) * *v;
    }
    vec![
        x,
        random(&[c], 0.5f32, 1.5, 12),
        random(&[c], -0.5f32, 0.5, 13),
        random(&[c], -0.2f32, 0.2, 14),
        random(&[c], 0.8f32, 1.2, 15),
        random(&[c, REDUCED], -1.0f32, 1.0, 16),
        random(&[REDUCED], -0.5f32, 0.5, 17),
        random(&[REDUCED, c], -1.0f32, 1.0, 18),
        random(&[c], -0.5f32, 0.5, 19),
        random(&[batch, DIMS[1], DIMS[2], c], -1.0f32, 1.0, 20),
    ]
}

/// The layers' outputs and gradients of `sum(out * upstream)`, with the joint rule or without.
fn step(
    b: &mut Builder,
    p: &[Value],
    compute: ElementType,
    replicas: Replicas,
    joint: bool,
) -> Result<Value, HloError> {
    let bn = BatchNormParams {
        gamma: p[1],
        beta: p[2],
        moving_mean: p[3],
        moving_var: p[4],
    };
    let x = b.convert(p[0], compute)?;
    let se = SeWeights {
        reduce_w: b.convert(p[5], compute)?,
        reduce_b: b.convert(p[6], compute)?,
        expand_w: b.convert(p[7], compute)?,
        expand_b: b.convert(p[8], compute)?,
    };
    let (out, norm) = if joint {
        batch_norm_silu_se_train(b, x, &bn, MOMENTUM, EPSILON, replicas, &se)?
    } else {
        let norm = batch_norm_train(b, x, &bn, MOMENTUM, EPSILON, replicas)?;
        let act = silu(b, norm.y)?;
        (squeeze_excite(b, act, &se)?, norm)
    };
    let out = b.convert(out, ElementType::F32)?;
    let weighted = b.mul(out, p[9])?;
    let loss = b.reduce_sum(weighted, &[0, 1, 2, 3])?;
    let wrt = [p[0], p[1], p[2], p[5], p[6], p[7], p[8]];
    let grads = autodiff::grad(b, loss, &wrt)?;
    let outputs = [out, norm.update.moving_mean, norm.update.moving_var];
    b.tuple(&[&outputs[..], &grads].concat())
}

fn build(
    batch: usize,
    compute: ElementType,
    replicas: Replicas,
    joint: bool,
) -> effnetv2::hlo::Module {
    let shapes: Vec<Shape> = inputs(batch)
        .iter()
        .map(|a| {
            let dims: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
            Shape::array(ElementType::F32, &dims)
        })
        .collect();
    module("bn_silu_se", &shapes, |b, p| {
        step(b, p, compute, replicas, joint)
    })
}

/// Each output within `rtol` of the largest magnitude of its expected value.
#[track_caller]
fn assert_outputs_close(context: &str, actual: &[Literal], expected: &[Literal], rtol: f64) {
    assert_eq!(actual.len(), OUTPUTS.len());
    for ((name, a), e) in OUTPUTS.iter().zip(actual).zip(expected) {
        assert_eq!(a.shape(), e.shape(), "{context}, {name}: shape");
        let (a, e) = (a.to_f64_vec(), e.to_f64_vec());
        let scale = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{context}, {name}: all zero");
        let worst = a
            .iter()
            .zip(&e)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f64, f64::max);
        assert!(
            worst <= rtol * scale,
            "{context}, {name}: off by {worst} at scale {scale}\n got {a:?}\n expected {e:?}"
        );
    }
}

#[test]
fn the_joint_rule_gives_autodiffs_gradients() {
    let args: Vec<Literal> = inputs(DIMS[0]).iter().map(lit).collect();
    let one = Replicas::new(1);
    let (plain, joint) = (
        build(DIMS[0], ElementType::F32, one, false),
        build(DIMS[0], ElementType::F32, one, true),
    );
    // The rule is what differentiates the joint layers (its ops carry its name).
    let rule = "grad/batch_norm_silu_se";
    assert!(joint.to_text().contains(rule) && !plain.to_text().contains(rule));
    let (plain, joint) = (run(&plain, &args), run(&joint, &args));
    // f32: the same sums in another order.
    assert_outputs_close("f32", &joint, &plain, 2e-6);

    // bf16 compute: the rule keeps its sums in f32, autodiff's bf16 chain rounds on the way, so
    // both are compared with the f32 gradients at bf16's precision.
    let joint = run(&build(DIMS[0], ElementType::Bf16, one, true), &args);
    assert_outputs_close("bf16 joint against f32", &joint, &plain, 2e-2);
    let plain_bf16 = run(&build(DIMS[0], ElementType::Bf16, one, false), &args);
    assert_outputs_close("bf16 autodiff against f32", &plain_bf16, &plain, 3e-2);
}

#[test]
fn the_joint_rule_syncs_its_sums_over_replicas() {
    let half = DIMS[0] / 2;
    let two = Replicas::new(2);
    // Each replica gets its own half of the batch and its own upstream gradient.
    let shares: Vec<Vec<Literal>> = (0..2u64)
        .map(|r| {
            inputs(half)
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let a = if i == 0 || i == 9 {
                        a.mapv(|v| v * (1.0 + r as f32 * 0.5) - r as f32)
                    } else {
                        a
                    };
                    lit(&a)
                })
                .collect()
        })
        .collect();
    let plain = run_replicated(&build(half, ElementType::F32, two, false), &shares);
    let joint = run_replicated(&build(half, ElementType::F32, two, true), &shares);
    for (r, (j, p)) in joint.iter().zip(&plain).enumerate() {
        assert_outputs_close(&format!("replica {r}"), j, p, 2e-6);
    }
    // The replicas' statistics are the global batch's: both updated the same moving mean.
    assert_eq!(plain[0][1].to_f64_vec(), plain[1][1].to_f64_vec());
}
