//! The TF1 RMSProp update (`ApplyRMSProp`) of the official recipe, emitted as HLO.
//!
//! `ms <- rho*ms + (1-rho)*g^2; mom <- mu*mom + lr*g/sqrt(ms + eps); var <- var - mom`, with the
//! epsilon inside the square root and the `ms` slot initialised to ones (TF1's
//! `RMSPropOptimizer`; PyTorch's RMSprop differs on both counts).

use serde::{Deserialize, Serialize};

use crate::hlo::{error::Result, Builder, Value};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsProp {
    /// Decay of the mean-square slot (`rho`).
    pub decay: f64,
    pub momentum: f64,
    pub epsilon: f64,
}

impl Default for RmsProp {
    /// The official values: decay 0.9, momentum 0.9, epsilon 1e-3.
    fn default() -> RmsProp {
        RmsProp {
            decay: 0.9,
            momentum: 0.9,
            epsilon: 1e-3,
        }
    }
}

/// The two optimizer slots of one variable.
#[derive(Clone, Copy, Debug)]
pub struct RmsSlots {
    pub mean_square: Value,
    pub momentum: Value,
}

/// Initial value of each slot (`ms` starts at one, `mom` at zero).
pub const INITIAL_MEAN_SQUARE: f64 = 1.0;
pub const INITIAL_MOMENTUM: f64 = 0.0;

impl RmsProp {
    /// Emits one update of `var` with gradient `grad`; `lr` is a scalar of `var`'s type.
    /// Returns the new variable and slots.
    pub fn update(
        &self,
        b: &mut Builder,
        var: Value,
        grad: Value,
        slots: RmsSlots,
        lr: Value,
    ) -> Result<(Value, RmsSlots)> {
        let shape = b.array_shape("rmsprop", var)?.clone();
        let dims = shape.dims().to_vec();
        let rho = b.full(&shape, self.decay)?;
        let one_minus_rho = b.full(&shape, 1.0 - self.decay)?;
        let mu = b.full(&shape, self.momentum)?;
        let eps = b.full(&shape, self.epsilon)?;
        let lr = b.broadcast_in_dim(lr, &dims, &[])?;

        let g2 = b.mul(grad, grad)?;
        let decayed = b.mul(rho, slots.mean_square)?;
        let fresh = b.mul(one_minus_rho, g2)?;
        let ms = b.add(decayed, fresh)?;

        let denom = b.add(ms, eps)?;
        let inv_rms = b.rsqrt(denom)?;
        let scaled = b.mul(lr, grad)?;
        let step = b.mul(scaled, inv_rms)?;
        let carried = b.mul(mu, slots.momentum)?;
        let mom = b.add(carried, step)?;

        let new_var = b.sub(var, mom)?;
        Ok((
            new_var,
            RmsSlots {
                mean_square: ms,
                momentum: mom,
            },
        ))
    }
}
