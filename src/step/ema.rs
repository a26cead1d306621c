//! Exponential moving average of the weights, as `tf.train.ExponentialMovingAverage(0.9999,
//! num_updates=global_step)`: the effective decay ramps up as `min(decay, (1+t)/(10+t))`.

use crate::hlo::{error::Result, Builder, Value};

/// The effective decay after `t` optimizer steps (host-side reference of [`decay_in_graph`]).
pub fn decay_at(max_decay: f64, t: f64) -> f64 {
    max_decay.min((1.0 + t) / (10.0 + t))
}

/// The effective decay as a scalar of `t`'s type: `min(max_decay, (1+t)/(10+t))`.
///
/// `t` is the global step *after* the optimizer's increment, because the official trainer runs
/// the EMA update under a control dependency on the train op that increments it.
pub fn decay_in_graph(b: &mut Builder, t: Value, max_decay: f64) -> Result<Value> {
    let ty = b.array_shape("ema", t)?.ty();
    let one = b.scalar_of(ty, 1.0)?;
    let ten = b.scalar_of(ty, 10.0)?;
    let max = b.scalar_of(ty, max_decay)?;
    let num = b.add(one, t)?;
    let den = b.add(ten, t)?;
    let ramp = b.div(num, den)?;
    b.min(max, ramp)
}

/// `shadow <- decay*shadow + (1-decay)*var`, with `decay` a scalar of the variable's type.
pub fn update(b: &mut Builder, shadow: Value, var: Value, decay: Value) -> Result<Value> {
    let shape = b.array_shape("ema", var)?.clone();
    let d = b.broadcast_in_dim(decay, shape.dims(), &[])?;
    let one = b.full(&shape, 1.0)?;
    let keep = b.mul(d, shadow)?;
    let w = b.sub(one, d)?;
    let take = b.mul(w, var)?;
    b.add(keep, take)
}

#[cfg(test)]
mod tests {
    use super::decay_at;

    /// Spec section 7: t=0 gives 0.1, t=10 gives 0.55, t=1000 gives 0.99109.
    #[test]
    fn decay_oracle() {
        assert!((decay_at(0.9999, 0.0) - 0.1).abs() < 1e-12);
        assert!((decay_at(0.9999, 10.0) - 0.55).abs() < 1e-12);
        assert!((decay_at(0.9999, 1000.0) - 0.99109).abs() < 1e-5);
        assert_eq!(decay_at(0.9999, 1e9), 0.9999);
    }
}
