//! Training-mode batch norm (`nn::batch_norm_train`, one-pass variance in f32) against a two-pass
//! f64 ndarray reference: outputs, moving statistics and, through autodiff, the gradients of the
//! input, gamma and beta against the closed-form batch-norm backward pass.

mod common;

use common::{assert_close, lit, module, random, run};
use effnetv2::autodiff;
use effnetv2::hlo::{ElementType, Shape};
use effnetv2::nn::{batch_norm_train, BatchNormParams, Replicas};
use ndarray::{Array1, ArrayD, Axis};

const DIMS: [usize; 4] = [4, 5, 3, 6];
const MOMENTUM: f64 = 0.9;
const EPSILON: f64 = 1e-3;

/// Per-channel statistics over batch, height and width of an NHWC array.
fn per_channel(x: &ArrayD<f64>, f: impl Fn(f64) -> f64) -> Array1<f64> {
    let c = x.shape()[3];
    let flat = x.view().into_shape_with_order((x.len() / c, c)).unwrap();
    flat.map(|&v| f(v)).mean_axis(Axis(0)).unwrap()
}

/// Inputs whose channels have means from -4 to 6 and spreads from 0.25 to 2.5: means up to
/// six times the spread, the range where a one-pass variance in f32 starts to lose digits.
fn inputs() -> (ArrayD<f64>, Array1<f64>, Array1<f64>, ArrayD<f64>) {
    let unit = random(&DIMS, -1.0, 1.0, 3);
    let means = [-4.0, -0.5, 0.0, 1.0, 3.0, 6.0];
    let spreads = [2.5, 0.5, 1.0, 0.25, 1.5, 1.0];
    let mut x = unit.clone();
    for ((_, v), (i, u)) in x.indexed_iter_mut().zip(unit.indexed_iter()) {
        let c = i[3];
        *v = means[c] + spreads[c] * u;
    }
    let gamma = Array1::from_vec(vec![1.0, 0.5, 2.0, -1.0, 0.8, 1.2]);
    let beta = Array1::from_vec(vec![0.0, 0.1, -0.3, 0.5, 1.0, -1.0]);
    let upstream = random(&DIMS, -1.0, 1.0, 4);
    (x, gamma, beta, upstream)
}

struct Reference {
    y: ArrayD<f64>,
    mean: Array1<f64>,
    var: Array1<f64>,
    dx: ArrayD<f64>,
    dgamma: Array1<f64>,
    dbeta: Array1<f64>,
}

/// Two-pass statistics and the textbook backward pass of `loss = sum(y * upstream)`.
fn reference(
    x: &ArrayD<f64>,
    gamma: &Array1<f64>,
    beta: &Array1<f64>,
    upstream: &ArrayD<f64>,
) -> Reference {
    let mean = per_channel(x, |v| v);
    let centered = x - &mean;
    let var = per_channel(&centered, |v| v * v);
    let inv = var.mapv(|v| 1.0 / (v + EPSILON).sqrt());
    let xhat = &centered * &inv;
    let y = &xhat * gamma + beta;
    let count = (x.len() / x.shape()[3]) as f64;
    let dxhat = upstream * gamma;
    let sum_dxhat = per_channel(&dxhat, |v| v) * count;
    let sum_dxhat_xhat = per_channel(&(&dxhat * &xhat), |v| v) * count;
    let dx = (&dxhat * count - &sum_dxhat - &xhat * &sum_dxhat_xhat) * &inv / count;
    let dgamma = per_channel(&(upstream * &xhat), |v| v) * count;
    let dbeta = per_channel(upstream, |v| v) * count;
    Reference {
        y,
        mean,
        var,
        dx,
        dgamma,
        dbeta,
    }
}

#[test]
fn one_pass_batch_norm_matches_a_two_pass_reference_with_its_gradients() {
    let (x, gamma, beta, upstream) = inputs();
    let expected = reference(&x, &gamma, &beta, &upstream);
    let moving_mean = Array1::from_vec(vec![0.5; 6]);
    let moving_var = Array1::from_vec(vec![2.0; 6]);

    let f32s = |a: &ArrayD<f64>| a.mapv(|v| v as f32);
    let f32v = |a: &Array1<f64>| a.mapv(|v| v as f32).into_dyn();
    let channel = Shape::array(ElementType::F32, &[6]);
    let tensor = Shape::array(ElementType::F32, &DIMS.map(|d| d as i64));
    let m = module(
        "batch_norm",
        &[
            tensor.clone(),
            channel.clone(),
            channel.clone(),
            channel.clone(),
            channel,
            tensor,
        ],
        |b, p| {
            let params = BatchNormParams {
                gamma: p[1],
                beta: p[2],
                moving_mean: p[3],
                moving_var: p[4],
            };
            let norm = batch_norm_train(b, p[0], &params, MOMENTUM, EPSILON, Replicas::new(1))?;
            let (y, update) = (norm.y, norm.update);
            let weighted = b.mul(y, p[5])?;
            let loss = b.reduce_sum(weighted, &[0, 1, 2, 3])?;
            let grads = autodiff::grad(b, loss, &[p[0], p[1], p[2]])?;
            b.tuple(&[&[y, update.moving_mean, update.moving_var][..], &grads].concat())
        },
    );
    let out = run(
        &m,
        &[
            lit(&f32s(&x)),
            lit(&f32v(&gamma)),
            lit(&f32v(&beta)),
            lit(&f32v(&moving_mean)),
            lit(&f32v(&moving_var)),
            lit(&f32s(&upstream)),
        ],
    );

    // f32 against f64: a few units in the last place of the largest terms.
    let to32 = |a: ArrayD<f64>| a.mapv(|v| v as f32);
    assert_close("y", &out[0], &to32(expected.y.clone()), 1e-4, 1e-4);
    let new_mean = (&moving_mean * MOMENTUM + &expected.mean * (1.0 - MOMENTUM)).into_dyn();
    let new_var = (&moving_var * MOMENTUM + &expected.var * (1.0 - MOMENTUM)).into_dyn();
    assert_close("moving mean", &out[1], &to32(new_mean), 1e-5, 1e-6);
    assert_close("moving var", &out[2], &to32(new_var), 1e-5, 1e-6);
    assert_close("d x", &out[3], &to32(expected.dx.clone()), 1e-3, 1e-4);
    assert_close(
        "d gamma",
        &out[4],
        &to32(expected.dgamma.into_dyn()),
        1e-4,
        1e-4,
    );
    assert_close(
        "d beta",
        &out[5],
        &to32(expected.dbeta.into_dyn()),
        1e-5,
        1e-5,
    );

    // The reference itself: each channel of the output has beta as its mean.
    let y_mean = per_channel(&expected.y, |v| v);
    assert!((y_mean - &beta).iter().all(|d| d.abs() < 1e-12));
}
