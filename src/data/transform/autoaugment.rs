//! AutoAugment policy v0, the augmentation of the official B0–B3 recipe (`effnetv1_autoaug`,
//! `autoaugment.distort_image_with_autoaugment(image, 'v0')`): one of 25 sub-policies is picked
//! uniformly and its two operations run in order, each with its own probability, at fixed levels.
//!
//! The operations, their quirks and the level-to-argument table are RandAugment's
//! ([`OpKind::resolve`]); only the pixel constants differ (translations of [`TRANSLATE_CONST`]
//! and cutouts of [`CUTOUT_CONST`] at level 10, fill 128). Some steps of the official policy do
//! nothing by construction and are kept as they are, so that the draws keep the official
//! distribution: `('ShearX', 0.0, 0)` and `('Equalize', 0.0, 8)` never run, rotations and shears
//! at level 0 are the identity, and `('Solarize', 0.6, 10)` has threshold 256.
//! Knowingly dropped, as for RandAugment: the official code draws the random signs of every step
//! of every sub-policy whether it runs or not; here a sign is drawn only for a step that runs
//! (same distribution).

use image::RgbImage;
use rand::Rng;

use super::randaugment::OpKind::{
    self, AutoContrast, Color, Equalize, Invert, Posterize, Rotate, ShearX, ShearY, Solarize,
    SolarizeAdd, TranslateY,
};
use super::randaugment::PixelConsts;

/// AutoAugment's translation in pixels at level 10 (`translate_const=250`); the default of
/// [`AugmentSettings::translate_const`](super::AugmentSettings) under this policy.
pub const TRANSLATE_CONST: f64 = 250.0;
/// AutoAugment's cutout half side in pixels at level 10 (`cutout_const=100`). Policy v0 has no
/// cutout step; the constant completes the policy's level table as the official code defines it.
pub const CUTOUT_CONST: f64 = 100.0;

/// One step of a sub-policy: `kind` at `level` (on the 0..=10 scale), run with `probability`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub kind: OpKind,
    pub probability: f32,
    pub level: u8,
}

const fn step(kind: OpKind, probability: f32, level: u8) -> Step {
    Step {
        kind,
        probability,
        level,
    }
}

/// A sub-policy: two steps applied in order.
pub type SubPolicy = [Step; 2];

/// The 25 sub-policies of the official `policy_v0()`, in its order.
pub const POLICY_V0: [SubPolicy; 25] = [
    [step(Equalize, 0.8, 1), step(ShearY, 0.8, 4)],
    [step(Color, 0.4, 9), step(Equalize, 0.6, 3)],
    [step(Color, 0.4, 1), step(Rotate, 0.6, 8)],
    [step(Solarize, 0.8, 3), step(Equalize, 0.4, 7)],
    [step(Solarize, 0.4, 2), step(Solarize, 0.6, 2)],
    [step(Color, 0.2, 0), step(Equalize, 0.8, 8)],
    [step(Equalize, 0.4, 8), step(SolarizeAdd, 0.8, 3)],
    [step(ShearX, 0.2, 9), step(Rotate, 0.6, 8)],
    [step(Color, 0.6, 1), step(Equalize, 1.0, 2)],
    [step(Invert, 0.4, 9), step(Rotate, 0.6, 0)],
    [step(Equalize, 1.0, 9), step(ShearY, 0.6, 3)],
    [step(Color, 0.4, 7), step(Equalize, 0.6, 0)],
    [step(Posterize, 0.4, 6), step(AutoContrast, 0.4, 7)],
    [step(Solarize, 0.6, 8), step(Color, 0.6, 9)],
    [step(Solarize, 0.2, 4), step(Rotate, 0.8, 9)],
    [step(Rotate, 1.0, 7), step(TranslateY, 0.8, 9)],
    [step(ShearX, 0.0, 0), step(Solarize, 0.8, 4)],
    [step(ShearY, 0.8, 0), step(Color, 0.6, 4)],
    [step(Color, 1.0, 0), step(Rotate, 0.6, 2)],
    [step(Equalize, 0.8, 4), step(Equalize, 0.0, 8)],
    [step(Equalize, 1.0, 4), step(AutoContrast, 0.6, 2)],
    [step(ShearY, 0.4, 7), step(SolarizeAdd, 0.6, 7)],
    [step(Posterize, 0.8, 2), step(Solarize, 0.6, 10)],
    [step(Solarize, 0.6, 8), step(Equalize, 0.6, 1)],
    [step(Color, 0.8, 6), step(Rotate, 0.4, 5)],
];

/// Applies AutoAugment v0 to `image`: picks a sub-policy of [`POLICY_V0`] uniformly, then runs
/// it with [`apply_sub_policy`].
pub fn autoaugment_v0(image: RgbImage, consts: PixelConsts, rng: &mut impl Rng) -> RgbImage {
    let index = rng.gen_range(0..POLICY_V0.len());
    apply_sub_policy(image, &POLICY_V0[index], consts, rng)
}

/// Runs each step of `sub_policy` in order with its probability (a uniform draw below it, the
/// official `floor(u + p)`), resolving its argument at its level with `consts`.
pub fn apply_sub_policy(
    mut image: RgbImage,
    sub_policy: &SubPolicy,
    consts: PixelConsts,
    rng: &mut impl Rng,
) -> RgbImage {
    for step in sub_policy {
        if rng.gen::<f32>() < step.probability {
            let op = step.kind.resolve(
                f32::from(step.level),
                consts,
                image.width(),
                image.height(),
                rng,
            );
            image = op.apply(&image);
        }
    }
    image
}
