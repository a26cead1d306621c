//! The images of a training batch for a step that augments on the device
//! ([`AugmentOn::Device`](super::transform::AugmentOn)): `u8` images after the crop, resize and
//! flip, the RandAugment operations drawn for them as the four-stage parameters a step graph
//! applies ([`EncodedLayers`]), and the mixup/CutMix draws as per-example arrays. The labels
//! are mixed on the host as in the host path; the step normalises and mixes the images.

use super::mix::MixPlan;
use super::transform::randaugment::encoded::{EncodedLayers, EncodedOp};
use super::transform::randaugment::Op;

/// A batch's device-side inputs besides the labels.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceImages {
    /// `u8` `[n, size, size, 3]`.
    pub pixels: Vec<u8>,
    /// Each example's drawn operations, in the order they apply (what `augment` encodes).
    pub ops: Vec<Vec<Op>>,
    /// The operations as the step's stage parameters, `[layers, n, ...]`; slots of examples
    /// with fewer operations than layers hold the identity.
    pub augment: EncodedLayers,
    /// The mixing draws; [`DeviceMix::identity`] when the stage does not mix (a step built to
    /// mix in some stages takes the arrays in every stage).
    pub mix: DeviceMix,
}

impl DeviceImages {
    /// The images of `n` examples of `size` x `size` with `layers` RandAugment layers: `pixels`
    /// and `ops` per example, the operations encoded here.
    pub fn new(pixels: Vec<u8>, ops: Vec<Vec<Op>>, layers: usize, size: usize) -> DeviceImages {
        let n = ops.len();
        let mut augment = EncodedLayers::identity(layers, n);
        for (example, drawn) in ops.iter().enumerate() {
            for (layer, op) in drawn.iter().enumerate() {
                augment.set(layer, example, &EncodedOp::of(op, size as u32, size as u32));
            }
        }
        DeviceImages {
            pixels,
            ops,
            augment,
            mix: DeviceMix::identity(n),
        }
    }
}

/// Per-example mixing arrays as a step graph takes them: example `k`'s image becomes
/// `image[partner[k]]` inside `paste[k]` and `image[k] * weight[k] + image[partner[k]] *
/// (1 - weight[k])` elsewhere ([`MixPlan`]'s rule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceMix {
    /// `[n]`: the partner's index within the example's own part of the batch (its replica's
    /// share): mixing pairs never cross replicas, as the official TPU input mixes each core's
    /// batch on its own.
    pub partner: Vec<i32>,
    /// `[n]`.
    pub weight: Vec<f32>,
    /// `[n, 4]` as `[x0, x1, y0, y1]`: columns `x0..x1`, rows `y0..y1`; empty for no paste.
    pub paste: Vec<i32>,
}

impl DeviceMix {
    /// The arrays of `n` examples that do not mix: each its own partner, weight 1, no paste.
    pub fn identity(n: usize) -> DeviceMix {
        DeviceMix {
            partner: (0..n as i32).collect(),
            weight: vec![1.0; n],
            paste: vec![0; n * 4],
        }
    }

    /// Whether no example mixes.
    pub fn is_identity(&self) -> bool {
        *self == DeviceMix::identity(self.partner.len())
    }

    /// The arrays of the batch whose consecutive parts mixed by `plans` (one per part, each
    /// with partners among its own examples).
    pub fn of_parts(plans: &[MixPlan]) -> DeviceMix {
        let mut mix = DeviceMix::default();
        for plan in plans {
            mix.partner.extend(plan.partner.iter().map(|&p| p as i32));
            mix.weight.extend(&plan.weight);
            mix.paste.extend(
                plan.paste
                    .iter()
                    .flat_map(|b| [b.x0, b.x1, b.y0, b.y1].map(|v| v as i32)),
            );
        }
        mix
    }
}
