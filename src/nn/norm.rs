//! Batch normalisation over NHWC (statistics per channel over batch, height and width).
//!
//! Statistics and normalisation run in f32 whatever the compute type, as Keras' mixed precision
//! does; the variance is the biased batch variance, used both to normalise and to update the
//! moving statistics (the official TPU batch norm).
//!
//! The variance is taken in one pass, `E[x²] - E[x]²`, as XLA's own batch-norm expansion (what the
//! official TensorFlow code runs on TPU) and Flax's default do: both sums reduce the same tensor,
//! so XLA computes them in the epilogue of the convolution that produces it, and the backward pass
//! needs one reduction over the gradient instead of two that depend on each other. The two-pass
//! form read every pre-normalisation activation once more in each direction; the one-pass form
//! can lose precision when a channel's mean is large against its spread, which f32 statistics of
//! convolution outputs keep far away from (the difference is checked against a two-pass reference
//! in the tests).

use super::Replicas;
use crate::hlo::{error::Result, ArrayShape, Builder, ElementType, Value};

/// The four per-channel tensors of one batch-norm layer (all f32 `[C]`).
#[derive(Clone, Copy, Debug)]
pub struct BatchNormParams {
    pub gamma: Value,
    pub beta: Value,
    pub moving_mean: Value,
    pub moving_var: Value,
}

/// Updated moving statistics after a training-mode batch norm.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormUpdate {
    pub moving_mean: Value,
    pub moving_var: Value,
}

/// What a training-mode batch norm computes: the normalised output (in the input's type), the
/// batch statistics it normalised with (f32 `[C]`, over every replica's batch when synced) and
/// the updated moving statistics.
#[derive(Clone, Copy, Debug)]
pub struct BatchNormTrain {
    pub y: Value,
    pub mean: Value,
    pub var: Value,
    pub update: BatchNormUpdate,
}

fn normalize(
    b: &mut Builder,
    x32: Value,
    mean: Value,
    var: Value,
    p: &BatchNormParams,
    epsilon: f64,
) -> Result<Value> {
    let dims = b.array_shape("batch_norm", x32)?.dims().to_vec();
    let c = dims[3];
    let eps = b.full(&ArrayShape::new(ElementType::F32, &[c]), epsilon)?;
    let var_eps = b.add(var, eps)?;
    let inv = b.rsqrt(var_eps)?;
    let scale = b.mul(inv, p.gamma)?;
    let shift = b.mul(mean, scale)?;
    let offset = b.sub(p.beta, shift)?;
    let scale = b.broadcast_in_dim(scale, &dims, &[3])?;
    let offset = b.broadcast_in_dim(offset, &dims, &[3])?;
    let scaled = b.mul(x32, scale)?;
    b.add(scaled, offset)
}

/// Training-mode batch norm: normalises with the batch statistics and returns the moving
/// statistics updated as `moving = momentum*moving + (1-momentum)*batch` (TF convention).
///
/// `sync` takes the statistics over the whole batch of every replica (cross-replica batch norm)
/// instead of over this replica's share.
pub fn batch_norm_train(
    b: &mut Builder,
    x: Value,
    p: &BatchNormParams,
    momentum: f64,
    epsilon: f64,
    sync: Replicas,
) -> Result<BatchNormTrain> {
    let shape = b.array_shape("batch_norm", x)?.clone();
    let dims = shape.dims().to_vec();
    let x32 = b.convert(x, ElementType::F32)?;
    let count = (dims[0] * dims[1] * dims[2] * sync.count()) as f64;
    let per_channel = ArrayShape::new(ElementType::F32, &[dims[3]]);
    let n = b.full(&per_channel, count)?;
    let sum = b.reduce_sum(x32, &[0, 1, 2])?;
    let sum = sync.sum(b, sum)?;
    let sq = b.mul(x32, x32)?;
    let sq_sum = b.reduce_sum(sq, &[0, 1, 2])?;
    let sq_sum = sync.sum(b, sq_sum)?;
    let mean = b.div(sum, n)?;
    let mean_sq = b.div(sq_sum, n)?;
    let squared_mean = b.mul(mean, mean)?;
    let difference = b.sub(mean_sq, squared_mean)?;
    // Rounding can make the difference slightly negative for a channel that is nearly constant.
    let zero = b.full(&per_channel, 0.0)?;
    let var = b.max(difference, zero)?;
    let y = normalize(b, x32, mean, var, p, epsilon)?;
    let y = b.convert(y, shape.ty())?;

    // The moving statistics are outputs of their own; the loss never depends on them, so
    // autodiff does not differentiate through this update.
    let m = b.full(&per_channel, momentum)?;
    let one_minus = b.full(&per_channel, 1.0 - momentum)?;
    let update = |b: &mut Builder, moving: Value, batch: Value| -> Result<Value> {
        let kept = b.mul(m, moving)?;
        let fresh = b.mul(one_minus, batch)?;
        b.add(kept, fresh)
    };
    let moving_mean = update(b, p.moving_mean, mean)?;
    let moving_var = update(b, p.moving_var, var)?;
    Ok(BatchNormTrain {
        y,
        mean,
        var,
        update: BatchNormUpdate {
            moving_mean,
            moving_var,
        },
    })
}

/// Inference-mode batch norm with the moving statistics.
pub fn batch_norm_infer(
    b: &mut Builder,
    x: Value,
    p: &BatchNormParams,
    epsilon: f64,
) -> Result<Value> {
    let ty = b.array_shape("batch_norm", x)?.ty();
    let x32 = b.convert(x, ElementType::F32)?;
    let y = normalize(b, x32, p.moving_mean, p.moving_var, p, epsilon)?;
    b.convert(y, ty)
}
