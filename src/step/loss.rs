//! The official loss: softmax cross-entropy on label-smoothed soft labels (mean over the batch)
//! plus L2 weight decay `wd * sum(v^2)/2` over the decayed variables.

use crate::hlo::{error::Result, Builder, Value};

/// TF1's label smoothing on (possibly mixed) soft labels: `y*(1-ls) + ls/num_classes`.
pub fn smooth_labels(b: &mut Builder, labels: Value, smoothing: f64) -> Result<Value> {
    let shape = b.array_shape("label_smoothing", labels)?.clone();
    let classes = *shape.dims().last().unwrap_or(&1) as f64;
    let keep = b.full(&shape, 1.0 - smoothing)?;
    let spread = b.full(&shape, smoothing / classes)?;
    let kept = b.mul(labels, keep)?;
    b.add(kept, spread)
}

/// Mean over the batch of `-sum(labels * log_softmax(logits))`; `logits` and `labels` are
/// `[batch, classes]`. Uses the max-shifted log-sum-exp for stability.
pub fn softmax_cross_entropy(b: &mut Builder, logits: Value, labels: Value) -> Result<Value> {
    let shape = b.array_shape("softmax_cross_entropy", logits)?.clone();
    let dims = shape.dims().to_vec();
    let max = b.reduce_max(logits, &[1])?;
    let max = b.broadcast_in_dim(max, &dims, &[0])?;
    let shifted = b.sub(logits, max)?;
    let exp = b.exp(shifted)?;
    let sum = b.reduce_sum(exp, &[1])?;
    let lse = b.log(sum)?;
    let lse = b.broadcast_in_dim(lse, &dims, &[0])?;
    let log_probs = b.sub(shifted, lse)?;
    let weighted = b.mul(labels, log_probs)?;
    let total = b.reduce_sum(weighted, &[0, 1])?;
    let scale = b.scalar_of(shape.ty(), -1.0 / dims[0] as f64)?;
    b.mul(total, scale)
}

/// `weight_decay * sum_v sum(v^2) / 2` over `vars` (`tf.nn.l2_loss` summed), as an f32 scalar of
/// the variables' type.
pub fn l2_penalty(b: &mut Builder, vars: &[Value], weight_decay: f64) -> Result<Option<Value>> {
    let mut total: Option<Value> = None;
    for &v in vars {
        let rank = b.array_shape("l2_loss", v)?.rank() as i64;
        let sq = b.mul(v, v)?;
        let s = b.reduce_sum(sq, &(0..rank).collect::<Vec<_>>())?;
        total = Some(match total {
            Some(t) => b.add(t, s)?,
            None => s,
        });
    }
    total
        .map(|t| {
            let ty = b.array_shape("l2_loss", t)?.ty();
            let c = b.scalar_of(ty, weight_decay / 2.0)?;
            b.mul(t, c)
        })
        .transpose()
}
