//! RandAugment as the official EfficientNetV2 code runs it (spec 6.2): per layer one of 16
//! operations is picked uniformly and always applied at the shared magnitude.
//!
//! Quirks reproduced: `blend` clips only when extrapolating and truncates; `contrast` uses the
//! pixel count / 256 as its grey level; `sharpness` keeps the border and truncates; geometric ops
//! fill uncovered pixels with 128 and sample the nearest pixel; shears are the projective
//! transforms `[1, level, 0, 0, 1, 0, 0, 0]` / `[1, 0, 0, level, 1, 0, 0, 0]`; translations and
//! cutout sizes are in pixels whatever the image size (their constants come from an
//! [`AugmentSettings`], official by default); the magnitude is a float used directly in the
//! formulas.
//! Knowingly dropped: the per-op probability drawn and ignored by the official code is not drawn
//! (it has no effect), signs are drawn only for the selected op (same distribution), and the
//! convolution inside `sharpness` may round differently from TensorFlow's in the last unit (see
//! [`color::sharpness`]).

pub mod color;
pub mod encoded;
pub mod geometric;

use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{AugmentSettings, Policy};

/// Level scale of the official code (`_MAX_LEVEL`).
pub const MAX_LEVEL: f64 = 10.0;
/// Official half side of the cutout square at `MAX_LEVEL`; the default of
/// [`AugmentSettings::cutout_const`].
pub const CUTOUT_CONST: f64 = 40.0;
/// Official translation in pixels at `MAX_LEVEL`; the default of
/// [`AugmentSettings::translate_const`].
pub const TRANSLATE_CONST: f64 = 100.0;
/// Threshold used by `SolarizeAdd`.
pub const SOLARIZE_ADD_THRESHOLD: u32 = 128;

/// The sizes in pixels that a policy's level table scales: each is the argument at
/// [`MAX_LEVEL`]. RandAugment and AutoAugment have different official values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelConsts {
    /// Translation of `TranslateX` / `TranslateY`.
    pub translate: f64,
    /// Half side of the `Cutout` square.
    pub cutout: f64,
}

/// The 16 operations, in the official order (the uniform pick indexes this list). Spec files name
/// them as written here (`"TranslateX"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    Solarize,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Cutout,
    SolarizeAdd,
}

impl OpKind {
    /// All operations in the official order.
    pub const ALL: [OpKind; 16] = [
        OpKind::AutoContrast,
        OpKind::Equalize,
        OpKind::Invert,
        OpKind::Rotate,
        OpKind::Posterize,
        OpKind::Solarize,
        OpKind::Color,
        OpKind::Contrast,
        OpKind::Brightness,
        OpKind::Sharpness,
        OpKind::ShearX,
        OpKind::ShearY,
        OpKind::TranslateX,
        OpKind::TranslateY,
        OpKind::Cutout,
        OpKind::SolarizeAdd,
    ];

    /// The operation with its argument for `magnitude` (the official `level_to_arg` table, spec
    /// 6.2; RandAugment and AutoAugment share it), with translations and cutout sizes scaled by
    /// the policy's `consts`. Random signs (rotate, shear, translate; 50 % negative) and the
    /// cutout centre (uniform over a `width` x `height` image) are drawn from `rng`.
    pub fn resolve(
        self,
        magnitude: f32,
        consts: PixelConsts,
        width: u32,
        height: u32,
        rng: &mut impl Rng,
    ) -> Op {
        let level = f64::from(magnitude) / MAX_LEVEL;
        let enhance = (level * 1.8 + 0.1) as f32;
        let mut signed = |value: f64| {
            let value = value as f32;
            if rng.gen::<f32>() < 0.5 {
                -value
            } else {
                value
            }
        };
        match self {
            OpKind::AutoContrast => Op::AutoContrast,
            OpKind::Equalize => Op::Equalize,
            OpKind::Invert => Op::Invert,
            OpKind::Rotate => Op::Rotate {
                degrees: signed(level * 30.0),
            },
            OpKind::Posterize => Op::Posterize {
                bits: (level * 4.0) as u32,
            },
            OpKind::Solarize => Op::Solarize {
                threshold: (level * 256.0) as u32,
            },
            OpKind::SolarizeAdd => Op::SolarizeAdd {
                addition: (level * 110.0) as i32,
            },
            OpKind::Color => Op::Color { factor: enhance },
            OpKind::Contrast => Op::Contrast { factor: enhance },
            OpKind::Brightness => Op::Brightness { factor: enhance },
            OpKind::Sharpness => Op::Sharpness { factor: enhance },
            OpKind::ShearX => Op::ShearX {
                level: signed(level * 0.3),
            },
            OpKind::ShearY => Op::ShearY {
                level: signed(level * 0.3),
            },
            OpKind::TranslateX => Op::TranslateX {
                pixels: signed(level * consts.translate),
            },
            OpKind::TranslateY => Op::TranslateY {
                pixels: signed(level * consts.translate),
            },
            OpKind::Cutout => Op::Cutout {
                pad: (level * consts.cutout) as u32,
                center_x: rng.gen_range(0..width.max(1)),
                center_y: rng.gen_range(0..height.max(1)),
            },
        }
    }
}

/// The operations RandAugment picks from: a subset of [`OpKind::ALL`], kept in the official order so
/// that the full set draws exactly as the official code does. Serialised as a list of names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OpKind>", into = "Vec<OpKind>")]
pub struct OpSet(u16);

impl OpSet {
    /// All 16 operations (the official policy).
    pub const ALL: OpSet = OpSet(u16::MAX >> (16 - OpKind::ALL.len()));

    /// The enum declares the kinds in the order of [`OpKind::ALL`], so a discriminant is its index.
    fn bit(kind: OpKind) -> u16 {
        1 << kind as u16
    }

    /// The set of `kinds`; `None` when it is empty (RandAugment needs an operation to pick).
    pub fn new(kinds: &[OpKind]) -> Option<OpSet> {
        let bits = kinds.iter().fold(0, |bits, &k| bits | Self::bit(k));
        (bits != 0).then_some(OpSet(bits))
    }

    pub fn contains(self, kind: OpKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    /// The operations in official order.
    pub fn kinds(self) -> impl Iterator<Item = OpKind> {
        OpKind::ALL.into_iter().filter(move |&k| self.contains(k))
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Never true for a constructed set; present for API symmetry with `len`.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Picks one operation uniformly.
    fn pick(self, rng: &mut impl Rng) -> OpKind {
        let i = rng.gen_range(0..self.len());
        self.kinds().nth(i).expect("i < len")
    }
}

impl Default for OpSet {
    fn default() -> Self {
        OpSet::ALL
    }
}

impl TryFrom<Vec<OpKind>> for OpSet {
    type Error = String;

    fn try_from(kinds: Vec<OpKind>) -> Result<Self, String> {
        OpSet::new(&kinds).ok_or_else(|| "the RandAugment operation list is empty".to_string())
    }
}

impl From<OpSet> for Vec<OpKind> {
    fn from(set: OpSet) -> Self {
        set.kinds().collect()
    }
}

/// An operation with its argument fixed, ready to apply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    AutoContrast,
    Equalize,
    Invert,
    Rotate {
        degrees: f32,
    },
    Posterize {
        bits: u32,
    },
    Solarize {
        threshold: u32,
    },
    SolarizeAdd {
        addition: i32,
    },
    Color {
        factor: f32,
    },
    Contrast {
        factor: f32,
    },
    Brightness {
        factor: f32,
    },
    Sharpness {
        factor: f32,
    },
    ShearX {
        level: f32,
    },
    ShearY {
        level: f32,
    },
    TranslateX {
        pixels: f32,
    },
    TranslateY {
        pixels: f32,
    },
    Cutout {
        pad: u32,
        center_x: u32,
        center_y: u32,
    },
}

impl Op {
    /// The projective transform of a geometric operation on a `width` x `height` image; `None`
    /// for the others.
    pub fn transform(&self, width: u32, height: u32) -> Option<geometric::Transform> {
        match *self {
            Op::Rotate { degrees } => Some(geometric::rotation(width, height, degrees)),
            Op::ShearX { level } => Some(geometric::shearing_x(level)),
            Op::ShearY { level } => Some(geometric::shearing_y(level)),
            Op::TranslateX { pixels } => Some(geometric::translation_x(pixels)),
            Op::TranslateY { pixels } => Some(geometric::translation_y(pixels)),
            _ => None,
        }
    }

    /// Applies the operation.
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        match *self {
            Op::AutoContrast => color::autocontrast(image),
            Op::Equalize => color::equalize(image),
            Op::Invert => color::invert(image),
            Op::Posterize { bits } => color::posterize(image, bits),
            Op::Solarize { threshold } => color::solarize(image, threshold),
            Op::SolarizeAdd { addition } => {
                color::solarize_add(image, addition, SOLARIZE_ADD_THRESHOLD)
            }
            Op::Color { factor } => color::color(image, factor),
            Op::Contrast { factor } => color::contrast(image, factor),
            Op::Brightness { factor } => color::brightness(image, factor),
            Op::Sharpness { factor } => color::sharpness(image, factor),
            Op::Cutout {
                pad,
                center_x,
                center_y,
            } => geometric::cutout(image, pad, center_x, center_y),
            Op::Rotate { .. }
            | Op::ShearX { .. }
            | Op::ShearY { .. }
            | Op::TranslateX { .. }
            | Op::TranslateY { .. } => {
                let transform = self.transform(image.width(), image.height());
                geometric::projective(image, transform.expect("a geometric operation"))
            }
        }
    }
}

/// The RandAugment policy: `layers` operations at `magnitude`, each picked uniformly from the
/// settings' [`AugmentSettings::randaugment_ops`] (all 16 officially).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandAugment {
    /// Operations applied in sequence (the official setting is 2).
    pub layers: usize,
    /// Shared magnitude, on the 0..=10 (and beyond) official scale.
    pub magnitude: f32,
}

impl RandAugment {
    /// Draws and applies the policy's operations to `image`, with translations and cutout sizes
    /// from `settings`.
    pub fn apply(
        &self,
        mut image: RgbImage,
        settings: &AugmentSettings,
        rng: &mut impl Rng,
    ) -> RgbImage {
        for op in self.draw(image.width(), image.height(), settings, rng) {
            image = op.apply(&image);
        }
        image
    }

    /// Draws the policy's operations for a `width` x `height` image without applying them: per
    /// layer the pick, then its argument, the very draws [`Self::apply`] makes (no operation
    /// changes the image's size, and none draws while applied), so a device that applies them
    /// augments as the host would.
    pub fn draw(
        &self,
        width: u32,
        height: u32,
        settings: &AugmentSettings,
        rng: &mut impl Rng,
    ) -> Vec<Op> {
        let consts = settings.pixel_consts(Policy::RandAugment {
            layers: self.layers,
        });
        (0..self.layers)
            .map(|_| {
                let kind = settings.randaugment_ops.pick(rng);
                kind.resolve(self.magnitude, consts, width, height, rng)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_set_draws_like_the_official_uniform_pick() {
        let mut a = crate::data::rng::stream(0, 0, 0, crate::data::rng::Purpose::Augment);
        let mut b = a.clone();
        for _ in 0..1000 {
            let official = OpKind::ALL[a.gen_range(0..OpKind::ALL.len())];
            assert_eq!(OpSet::ALL.pick(&mut b), official);
        }
    }

    #[test]
    fn a_subset_picks_only_and_all_of_its_members() {
        let members = [OpKind::Cutout, OpKind::Rotate, OpKind::Brightness];
        let set = OpSet::new(&members).unwrap();
        assert_eq!(set.len(), 3);
        // Kept in official order whatever order they were named in.
        let order: Vec<OpKind> = set.kinds().collect();
        assert_eq!(order, [OpKind::Rotate, OpKind::Brightness, OpKind::Cutout]);
        let mut rng = crate::data::rng::stream(1, 0, 0, crate::data::rng::Purpose::Augment);
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            let kind = set.pick(&mut rng);
            counts[order.iter().position(|&k| k == kind).unwrap()] += 1;
        }
        // Uniform: each of the three about 1000 times.
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
        assert!(OpSet::new(&[]).is_none());
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["Rotate","Brightness","Cutout"]"#);
        assert_eq!(serde_json::from_str::<OpSet>(&json).unwrap(), set);
        assert_eq!(OpSet::ALL.len(), 16);
    }
}
