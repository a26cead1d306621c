//! Training-mode batch norm, SiLU and squeeze-and-excite (the tail of an MBConv block's depthwise
//! stage) with one gradient rule for the three.
//!
//! Derived by autodiff, the backward pass of this tail is two passes over the activation: the
//! squeeze-and-excite gate's gradient needs `sum over H, W of g * act` (`g`, the gradient of the
//! block's output), and only once the gate's small dense layers have turned that into the pooled
//! features' gradient is the gradient of the batch-norm output known everywhere, so the
//! batch-norm sums over it are a second reduction that reads `g` and the activation again. The
//! rule distributes those sums over the two terms of that gradient (`g * gate` and the pooled
//! features' gradient spread over H, W): every full-size reduction becomes a per-example,
//! per-channel sum of `g` and the forward values, all taken in the same pass as the gate's,
//! which XLA fuses into the convolution that produces `g`. On TPU that pass was a tenth of the
//! bytes the EfficientNetV2-S step moves. The derivative is the same; only the order of the
//! sums differs (checked against autodiff of the plain layers in the tests).

use super::layers::{gate_channels, global_avg_pool, se_gate, silu};
use super::norm::{batch_norm_train, BatchNormParams, BatchNormTrain};
use super::{Replicas, SeWeights};
use crate::autodiff::{custom_vjp, vjp};
use crate::hlo::{error::Result, ArrayShape, Builder, ElementType, Value};

/// `squeeze_excite(silu(batch_norm(x)))` in training mode, for NHWC `x`: the gated activation
/// and the batch norm's statistics and moving-statistics update. The forward pass is exactly the
/// plain layers'; see the module documentation for its gradient.
pub fn batch_norm_silu_se_train(
    b: &mut Builder,
    x: Value,
    bn: &BatchNormParams,
    momentum: f64,
    epsilon: f64,
    sync: Replicas,
    se: &SeWeights,
) -> Result<(Value, BatchNormTrain)> {
    let norm = batch_norm_train(b, x, bn, momentum, epsilon, sync)?;
    let act = silu(b, norm.y)?;
    let pooled = global_avg_pool(b, act)?;
    let gate = se_gate(b, pooled, se)?;
    let out = gate_channels(b, act, gate)?;
    let forward = Residuals {
        x,
        norm,
        gamma: bn.gamma,
        act,
        pooled,
        gate,
        se: *se,
        epsilon,
        sync,
    };
    let inputs = [
        x,
        bn.gamma,
        bn.beta,
        se.reduce_w,
        se.reduce_b,
        se.expand_w,
        se.expand_b,
    ];
    custom_vjp(b, "batch_norm_silu_se", out, &inputs, move |b, g, needs| {
        forward.backward(b, g, needs)
    })?;
    Ok((out, norm))
}

/// The forward values the gradient rule reads.
#[derive(Clone, Copy)]
struct Residuals {
    x: Value,
    norm: BatchNormTrain,
    gamma: Value,
    act: Value,
    pooled: Value,
    gate: Value,
    se: SeWeights,
    epsilon: f64,
    sync: Replicas,
}

impl Residuals {
    /// The cotangents of (x, gamma, beta, the four squeeze-and-excite weights) given `g`, the
    /// cotangent of the gated activation. With `z` the batch-norm input in f32, `xhat` it
    /// normalised, `u` the batch-norm output, `s'` the derivative of SiLU at `u` and
    /// `q = d pooled / (H W)`, the gradient of `u` is `du = (g * gate + q) * s'`, so for each
    /// example and channel `sum_hw du = gate * sum_hw(g s') + q * sum_hw(s')`, and likewise with
    /// `xhat` inside every sum. Then, as in any batch norm, `d beta = sum du`,
    /// `d gamma = sum du * xhat` and `dz = gamma / sigma * (du - mean(du) - xhat * mean(du * xhat))`,
    /// the means over every replica's batch when the statistics are synced.
    fn backward(&self, b: &mut Builder, g: Value, needs: &[bool]) -> Result<Vec<Option<Value>>> {
        let f32 = ElementType::F32;
        let compute = b.array_shape("batch_norm_silu_se", self.x)?.ty();
        let dims = b.array_shape("batch_norm_silu_se", self.x)?.dims().to_vec();
        let channels = dims[3];
        let per_channel = ArrayShape::new(f32, &[channels]);
        let per_example = ArrayShape::new(f32, &[dims[0], channels]);
        let over_positions = |b: &mut Builder, v: Value| b.reduce_sum(v, &[1, 2]);
        let spread = |b: &mut Builder, v: Value| b.broadcast_in_dim(v, &dims, &[0, 3]);
        let everywhere = |b: &mut Builder, v: Value| b.broadcast_in_dim(v, &dims, &[3]);

        // Forward values in f32: xhat, and SiLU's derivative s' = s (1 + u (1 - s)).
        let z = b.convert(self.x, f32)?;
        let eps = b.full(&per_channel, self.epsilon)?;
        let var_eps = b.add(self.norm.var, eps)?;
        let inv = b.rsqrt(var_eps)?;
        let mean = everywhere(b, self.norm.mean)?;
        let centred = b.sub(z, mean)?;
        let inv_everywhere = everywhere(b, inv)?;
        let xhat = b.mul(centred, inv_everywhere)?;
        let u = b.convert(self.norm.y, f32)?;
        let s = b.logistic(u)?;
        let one = b.full(&ArrayShape::new(f32, &dims), 1.0)?;
        let one_minus_s = b.sub(one, s)?;
        let u_one_minus_s = b.mul(u, one_minus_s)?;
        let slope = b.add(one, u_one_minus_s)?;
        let ds = b.mul(s, slope)?;

        // The per-example, per-channel sums, all over the same tensors in one pass.
        let g32 = b.convert(g, f32)?;
        let act = b.convert(self.act, f32)?;
        let g_act = b.mul(g32, act)?;
        let d_gate = over_positions(b, g_act)?;
        let g_ds = b.mul(g32, ds)?;
        let sum_g_ds = over_positions(b, g_ds)?;
        let g_ds_xhat = b.mul(g_ds, xhat)?;
        let sum_g_ds_xhat = over_positions(b, g_ds_xhat)?;
        let sum_ds = over_positions(b, ds)?;
        let ds_xhat = b.mul(ds, xhat)?;
        let sum_ds_xhat = over_positions(b, ds_xhat)?;

        // Through the gate's dense layers to the pooled features and the weights.
        let d_gate = b.convert(d_gate, compute)?;
        let se = self.se;
        let wrt = [
            self.pooled,
            se.reduce_w,
            se.reduce_b,
            se.expand_w,
            se.expand_b,
        ];
        let se_grads = vjp(b, &[(self.gate, d_gate)], &wrt)?;
        let positions = b.full(&per_example, (dims[1] * dims[2]) as f64)?;
        let d_pooled = b.convert(se_grads[0], f32)?;
        let q = b.div(d_pooled, positions)?;

        // sum_hw du and sum_hw du * xhat per example and channel, then over the batch.
        let gate = b.convert(self.gate, f32)?;
        let per_example_sum = |b: &mut Builder, with_g: Value, without: Value| -> Result<Value> {
            let gated = b.mul(gate, with_g)?;
            let spread_q = b.mul(q, without)?;
            let total = b.add(gated, spread_q)?;
            b.reduce_sum(total, &[0])
        };
        let d_beta = per_example_sum(b, sum_g_ds, sum_ds)?;
        let d_gamma = per_example_sum(b, sum_g_ds_xhat, sum_ds_xhat)?;

        // dz = gamma / sigma * (du - mean(du) - xhat * mean(du * xhat)).
        let count = (dims[0] * dims[1] * dims[2] * self.sync.count()) as f64;
        let count = b.full(&per_channel, count)?;
        let mean_du = self.sync.sum(b, d_beta)?;
        let mean_du = b.div(mean_du, count)?;
        let mean_du_xhat = self.sync.sum(b, d_gamma)?;
        let mean_du_xhat = b.div(mean_du_xhat, count)?;
        let gate_everywhere = spread(b, gate)?;
        let q_everywhere = spread(b, q)?;
        let g_gate = b.mul(g32, gate_everywhere)?;
        let d_act = b.add(g_gate, q_everywhere)?;
        let du = b.mul(d_act, ds)?;
        let mean_du = everywhere(b, mean_du)?;
        let centred_du = b.sub(du, mean_du)?;
        let mean_du_xhat = everywhere(b, mean_du_xhat)?;
        let along_xhat = b.mul(xhat, mean_du_xhat)?;
        let residual = b.sub(centred_du, along_xhat)?;
        let scale = b.mul(self.gamma, inv)?;
        let scale = everywhere(b, scale)?;
        let dz = b.mul(residual, scale)?;
        let dx = b.convert(dz, compute)?;

        let all = [
            Some(dx),
            Some(d_gamma),
            Some(d_beta),
            Some(se_grads[1]),
            Some(se_grads[2]),
            Some(se_grads[3]),
            Some(se_grads[4]),
        ];
        Ok(all
            .into_iter()
            .zip(needs)
            .map(|(ct, &need)| ct.filter(|_| need))
            .collect())
    }
}
