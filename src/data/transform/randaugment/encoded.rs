//! A drawn RandAugment operation as the parameters of one fixed chain of four stages, so that a
//! step graph can apply each example's operation without branching on it: the host draws the
//! operations (the same draws as the host path), the device applies them to `u8` images.
//!
//! Each of the 16 operations is exactly one stage with the others left as the identity:
//! 1. a per-channel value table (`Invert`, `Posterize`, `Solarize`, `SolarizeAdd` as fixed tables;
//!    `AutoContrast` and `Equalize` as tables the device computes from the image's own
//!    statistics, [`TableSource`]);
//! 2. a blend towards a degenerate image (`Brightness`, `Contrast`: a flat level; `Color`: the
//!    greyscale image; `Sharpness`: the smoothed image), with [`color::blend`]'s clipping and
//!    truncation; factor 1 is the identity;
//! 3. a projective warp with nearest sampling and [`FILL`] outside (`Rotate`, shears,
//!    translations); [`geometric::IDENTITY`] is the identity;
//! 4. a cutout box filled with [`FILL`] (`Cutout`); an empty box is the identity.
//!
//! [`color::blend`]: super::color::blend
//! [`FILL`]: super::geometric::FILL

use image::RgbImage;

use super::geometric::{self, Transform};
use super::Op;

/// Where stage 1 takes its value table from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum TableSource {
    /// [`EncodedOp::table`] as given (the identity table for operations of other stages).
    Given = 0,
    /// [`super::color::autocontrast`]'s table from the image's per-channel minimum and maximum.
    AutoContrast = 1,
    /// [`super::color::equalize`]'s table from the image's per-channel histogram.
    Equalize = 2,
}

/// What stage 2 blends towards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Degenerate {
    /// Every value `level` (`Brightness`: 0; `Contrast`: the official pixel count / 256).
    Flat { level: f32 },
    /// [`super::color::grey_level`] of each pixel in all three channels (`Color`).
    Grey,
    /// The 3x3 smoothing of [`super::color::sharpness`], border kept (`Sharpness`).
    Smooth,
}

impl Degenerate {
    /// The code of the kind in the `blend_kind` array: 0 flat, 1 grey, 2 smooth.
    pub fn code(self) -> i32 {
        match self {
            Degenerate::Flat { .. } => 0,
            Degenerate::Grey => 1,
            Degenerate::Smooth => 2,
        }
    }

    /// The flat level (0 for the other kinds, where it is unused).
    pub fn level(self) -> f32 {
        match self {
            Degenerate::Flat { level } => level,
            Degenerate::Grey | Degenerate::Smooth => 0.0,
        }
    }
}

/// One operation as the four stages' parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedOp {
    pub table_source: TableSource,
    /// Per-channel value tables (`[channel][value]`), used when `table_source` is `Given`.
    pub table: [[u8; 256]; 3],
    pub degenerate: Degenerate,
    /// The blend factor; 1 leaves the image unchanged.
    pub factor: f32,
    pub warp: Transform,
    /// Columns `x0..x1` and rows `y0..y1` of the cutout, as `[x0, x1, y0, y1]`; empty for none.
    pub cutout: [u32; 4],
}

impl EncodedOp {
    /// The chain that changes nothing.
    pub fn identity() -> EncodedOp {
        EncodedOp {
            table_source: TableSource::Given,
            table: [std::array::from_fn(|v| v as u8); 3],
            degenerate: Degenerate::Flat { level: 0.0 },
            factor: 1.0,
            warp: geometric::IDENTITY,
            cutout: [0; 4],
        }
    }

    /// `op` on a `width` x `height` image as stage parameters.
    pub fn of(op: &Op, width: u32, height: u32) -> EncodedOp {
        let mut encoded = EncodedOp::identity();
        match *op {
            Op::AutoContrast => encoded.table_source = TableSource::AutoContrast,
            Op::Equalize => encoded.table_source = TableSource::Equalize,
            Op::Invert | Op::Posterize { .. } | Op::Solarize { .. } | Op::SolarizeAdd { .. } => {
                encoded.table = value_table(op);
            }
            Op::Brightness { factor } => {
                encoded.degenerate = Degenerate::Flat { level: 0.0 };
                encoded.factor = factor;
            }
            Op::Contrast { factor } => {
                let pixel_count = (width * height) as f32;
                let level = (pixel_count / 256.0).clamp(0.0, 255.0) as u8;
                encoded.degenerate = Degenerate::Flat {
                    level: f32::from(level),
                };
                encoded.factor = factor;
            }
            Op::Color { factor } => {
                encoded.degenerate = Degenerate::Grey;
                encoded.factor = factor;
            }
            Op::Sharpness { factor } => {
                encoded.degenerate = Degenerate::Smooth;
                encoded.factor = factor;
            }
            Op::Rotate { .. }
            | Op::ShearX { .. }
            | Op::ShearY { .. }
            | Op::TranslateX { .. }
            | Op::TranslateY { .. } => {
                encoded.warp = op.transform(width, height).expect("a geometric operation");
            }
            Op::Cutout {
                pad,
                center_x,
                center_y,
            } => {
                let (xs, ys) = geometric::cutout_box(width, height, pad, center_x, center_y);
                encoded.cutout = [xs.start, xs.end, ys.start, ys.end];
            }
        }
        encoded
    }
}

/// The table of a value-wise operation: the operation applied to a ramp of all 256 grey values.
/// A value-wise operation maps every channel value independently, so the ramp's result is
/// its table, computed by the host's own code.
fn value_table(op: &Op) -> [[u8; 256]; 3] {
    let ramp = RgbImage::from_fn(256, 1, |v, _| image::Rgb([v as u8; 3]));
    let mapped = op.apply(&ramp);
    std::array::from_fn(|c| std::array::from_fn(|v| mapped.get_pixel(v as u32, 0).0[c]))
}

/// The encoded operations of `layers` RandAugment layers for a batch of `examples`, as the
/// row-major arrays a step graph takes (`L` layers, `n` examples):
///
/// | array | type | shape |
/// |---|---|---|
/// | `table` | u8 | `[L, n, 3, 256]` |
/// | `table_source` | s32 | `[L, n]` ([`TableSource`] as its code) |
/// | `blend_kind` | s32 | `[L, n]` ([`Degenerate::code`]) |
/// | `blend_level` | f32 | `[L, n]` |
/// | `blend_factor` | f32 | `[L, n]` |
/// | `warp` | f32 | `[L, n, 8]` |
/// | `cutout` | s32 | `[L, n, 4]` (`x0, x1, y0, y1`) |
///
/// New arrays hold the identity for every slot.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedLayers {
    pub layers: usize,
    pub examples: usize,
    pub table: Vec<u8>,
    pub table_source: Vec<i32>,
    pub blend_kind: Vec<i32>,
    pub blend_level: Vec<f32>,
    pub blend_factor: Vec<f32>,
    pub warp: Vec<f32>,
    pub cutout: Vec<i32>,
}

impl EncodedLayers {
    /// Arrays for `layers` x `examples` slots, each the identity.
    pub fn identity(layers: usize, examples: usize) -> EncodedLayers {
        let slots = layers * examples;
        let identity = EncodedOp::identity();
        EncodedLayers {
            layers,
            examples,
            table: identity.table.concat().repeat(slots),
            table_source: vec![identity.table_source as i32; slots],
            blend_kind: vec![identity.degenerate.code(); slots],
            blend_level: vec![identity.degenerate.level(); slots],
            blend_factor: vec![identity.factor; slots],
            warp: identity.warp.repeat(slots),
            cutout: vec![0; slots * 4],
        }
    }

    /// Writes `op` into the slot of `layer` and `example`.
    ///
    /// # Panics
    /// If the slot is outside the arrays (a caller bug).
    pub fn set(&mut self, layer: usize, example: usize, op: &EncodedOp) {
        assert!(
            layer < self.layers && example < self.examples,
            "slot ({layer}, {example}) outside {} layers x {} examples",
            self.layers,
            self.examples
        );
        let slot = layer * self.examples + example;
        self.table[slot * 768..][..768].copy_from_slice(&op.table.concat());
        self.table_source[slot] = op.table_source as i32;
        self.blend_kind[slot] = op.degenerate.code();
        self.blend_level[slot] = op.degenerate.level();
        self.blend_factor[slot] = op.factor;
        self.warp[slot * 8..][..8].copy_from_slice(&op.warp);
        let cutout = op.cutout.map(|v| v as i32);
        self.cutout[slot * 4..][..4].copy_from_slice(&cutout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_tables_are_the_operations_on_every_value() {
        let table = value_table(&Op::Solarize { threshold: 128 });
        for (v, &mapped) in table[1].iter().enumerate() {
            let expected = if v < 128 { v as u8 } else { 255 - v as u8 };
            assert_eq!(mapped, expected, "value {v}");
        }
        assert_eq!(value_table(&Op::Invert)[2][0], 255);
    }

    #[test]
    fn every_operation_sets_exactly_one_stage() {
        let identity = EncodedOp::identity();
        let ops = [
            Op::AutoContrast,
            Op::Equalize,
            Op::Invert,
            Op::Rotate { degrees: 30.0 },
            Op::Posterize { bits: 4 },
            Op::Solarize { threshold: 100 },
            Op::SolarizeAdd { addition: 40 },
            Op::Color { factor: 1.9 },
            Op::Contrast { factor: 0.4 },
            Op::Brightness { factor: 1.3 },
            Op::Sharpness { factor: 0.5 },
            Op::ShearX { level: 0.3 },
            Op::ShearY { level: -0.3 },
            Op::TranslateX { pixels: 10.0 },
            Op::TranslateY { pixels: -10.0 },
            Op::Cutout {
                pad: 5,
                center_x: 3,
                center_y: 30,
            },
        ];
        for op in ops {
            let e = EncodedOp::of(&op, 40, 32);
            let stages = [
                e.table_source != identity.table_source || e.table != identity.table,
                e.factor != 1.0,
                e.warp != identity.warp,
                e.cutout[0] < e.cutout[1] && e.cutout[2] < e.cutout[3],
            ];
            assert_eq!(
                stages.iter().filter(|&&s| s).count(),
                1,
                "{op:?}: {stages:?}"
            );
        }
        let e = EncodedOp::of(
            &Op::Cutout {
                pad: 5,
                center_x: 3,
                center_y: 30,
            },
            40,
            32,
        );
        assert_eq!(e.cutout, [0, 8, 25, 32]);
    }

    #[test]
    fn layers_hold_each_slot_at_its_row_major_place() {
        let mut layers = EncodedLayers::identity(2, 3);
        let op = EncodedOp::of(&Op::TranslateX { pixels: 7.0 }, 10, 10);
        layers.set(1, 2, &op);
        let slot = 3 + 2;
        assert_eq!(layers.warp[slot * 8 + 2], 7.0);
        assert_eq!(layers.warp[(slot - 1) * 8..][..8], geometric::IDENTITY);
        assert_eq!(layers.table.len(), 6 * 768);
        assert_eq!(layers.table[slot * 768 + 256 + 200], 200);
    }
}
