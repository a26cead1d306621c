//! Device-side augmentation: RandAugment, normalisation and mixup/CutMix as graph functions over
//! a batch of `u8` images `[B, H, W, 3]`, reproducing the host path's arithmetic
//! (`data::transform::randaugment`, `Normalization`, `data::mix`) so that the host only crops,
//! resizes and flips, and sends a quarter of the bytes.
//!
//! Each example's RandAugment operation arrives as the parameters of one fixed chain of four
//! stages (`data::transform::randaugment::encoded`): a value table, a blend towards a degenerate
//! image, a projective warp and a cutout box. Every stage runs on every example, the identity
//! where the example's operation is another stage's, so the graph never branches per example:
//! a batch holds different operations, and per-example branches would serialise it.

mod blend;
mod geometry;
mod mix;
mod table;

pub use mix::{mix, normalise, MixArrays};

use crate::hlo::{error::Result, ElementType, HloError, Value};
use crate::hlo::{ArrayShape, Builder};

/// The encoded operations of `L` RandAugment layers for a batch of `B` examples, as
/// `EncodedLayers` lays them out (types and shapes there): `table` u8 `[L, B, 3, 256]`,
/// `table_source`, `blend_kind` s32 `[L, B]`, `blend_level`, `blend_factor` f32 `[L, B]`,
/// `warp` f32 `[L, B, 8]`, `cutout` s32 `[L, B, 4]`.
#[derive(Clone, Copy, Debug)]
pub struct RandAugmentArrays {
    pub table: Value,
    pub table_source: Value,
    pub blend_kind: Value,
    pub blend_level: Value,
    pub blend_factor: Value,
    pub warp: Value,
    pub cutout: Value,
}

impl RandAugmentArrays {
    /// The arrays in their order as step inputs: the order of the fields.
    pub fn values(&self) -> [Value; 7] {
        [
            self.table,
            self.table_source,
            self.blend_kind,
            self.blend_level,
            self.blend_factor,
            self.warp,
            self.cutout,
        ]
    }

    /// The arrays from [`Self::values`]' order.
    pub fn from_values(
        [table, table_source, blend_kind, blend_level, blend_factor, warp, cutout]: [Value; 7],
    ) -> Self {
        RandAugmentArrays {
            table,
            table_source,
            blend_kind,
            blend_level,
            blend_factor,
            warp,
            cutout,
        }
    }

    /// Each array with `f` applied (e.g. the slice of one step of stacked arrays).
    pub fn try_map(&self, mut f: impl FnMut(Value) -> Result<Value>) -> Result<Self> {
        let values = self.values().map(&mut f);
        let [a, b, c, d, e, g, h] = values;
        Ok(Self::from_values([a?, b?, c?, d?, e?, g?, h?]))
    }

    /// The shapes of the arrays, in [`Self::values`]' order, for `layers` layers of `batch`
    /// examples.
    pub fn shapes(layers: i64, batch: i64) -> [ArrayShape; 7] {
        let (l, n) = (layers, batch);
        [
            ArrayShape::new(ElementType::U8, &[l, n, 3, 256]),
            ArrayShape::new(ElementType::S32, &[l, n]),
            ArrayShape::new(ElementType::S32, &[l, n]),
            ArrayShape::new(ElementType::F32, &[l, n]),
            ArrayShape::new(ElementType::F32, &[l, n]),
            ArrayShape::new(ElementType::F32, &[l, n, 8]),
            ArrayShape::new(ElementType::S32, &[l, n, 4]),
        ]
    }
}

/// One layer's arrays: [`RandAugmentArrays`] without the leading `L`.
#[derive(Clone, Copy, Debug)]
struct Layer(RandAugmentArrays);

/// RandAugment's layers applied in turn to `images` (u8 `[B, H, W, 3]`): each example goes
/// through its operation of each layer, exactly as the host's `Op::apply` computes it, up to the
/// rounding notes of [`randaugment_layer`].
pub fn randaugment(b: &mut Builder, images: Value, arrays: &RandAugmentArrays) -> Result<Value> {
    b.scoped("randaugment", |b| {
        let layers = b.array_shape("randaugment", arrays.table_source)?.dims()[0];
        let mut images = images;
        for l in 0..layers {
            let layer = arrays.try_map(|v| {
                let dims = b.array_shape("randaugment", v)?.dims().to_vec();
                let mut start = vec![0; dims.len()];
                let mut limit = dims.clone();
                start[0] = l;
                limit[0] = l + 1;
                let one = b.slice(v, &start, &limit, &vec![1; dims.len()])?;
                b.reshape(one, &dims[1..])
            })?;
            images = b.scoped(format!("layer{l}"), |b| {
                randaugment_layer(b, images, &Layer(layer))
            })?;
        }
        Ok(images)
    })
}

/// One layer: the four stages with each example's parameters. Table look-ups, the cutout and
/// the warp's sampling are exact; the blends and the warp's coordinates use the host's f32
/// formulas in the host's order, but XLA's CPU backend may contract a multiply and an add into
/// one fused multiply-add, which rounds once where the host rounds twice: a value within an ulp
/// of an integer may then truncate one lower or higher than on the host.
fn randaugment_layer(b: &mut Builder, images: Value, layer: &Layer) -> Result<Value> {
    let p = &layer.0;
    check_images(b, images)?;
    let images = b.scoped("table", |b| {
        table::apply(b, images, p.table, p.table_source)
    })?;
    let images = b.scoped("blend", |b| {
        blend::apply(b, images, p.blend_kind, p.blend_level, p.blend_factor)
    })?;
    let images = b.scoped("warp", |b| geometry::warp(b, images, p.warp))?;
    b.scoped("cutout", |b| geometry::cutout(b, images, p.cutout))
}

/// Checks that `images` is u8 `[B, H, W, 3]`.
fn check_images(b: &Builder, images: Value) -> Result<()> {
    let s = b.array_shape("augment", images)?;
    if s.ty() != ElementType::U8 || s.rank() != 4 || s.dims()[3] != 3 {
        return Err(HloError::new(
            "augment",
            &[b.shape(images)],
            "augmentation takes u8 images [batch, height, width, 3]",
        ));
    }
    Ok(())
}

/// `v` (dimensions `[B, ...]`) broadcast to `dims`, its dimensions the leading ones.
fn leading(b: &mut Builder, v: Value, dims: &[i64]) -> Result<Value> {
    let rank = b.array_shape("augment", v)?.rank() as i64;
    b.broadcast_in_dim(v, dims, &(0..rank).collect::<Vec<_>>())
}

/// Column `i` of a `[B, n]` array, as `[B]`.
fn column(b: &mut Builder, v: Value, i: i64) -> Result<Value> {
    let n = b.array_shape("augment", v)?.dims()[0];
    let one = b.slice(v, &[0, i], &[n, i + 1], &[1, 1])?;
    b.reshape(one, &[n])
}

/// `index` (s32, any shape) as one-hot codes of `ty` and `size` in a new last dimension; -1 (or
/// any index outside `0..size`) is all zeros. A TPU runs a matrix product with such codes, built
/// inside the product's fusion, where a gather would cost it a memory tile per index.
fn one_hot(b: &mut Builder, index: Value, size: i64, ty: ElementType) -> Result<Value> {
    use crate::hlo::ComparisonDirection::Eq;
    let dims = b.array_shape("augment", index)?.dims().to_vec();
    let rank = dims.len() as i64;
    let wide: Vec<i64> = dims.iter().copied().chain([size]).collect();
    let index = b.broadcast_in_dim(index, &wide, &(0..rank).collect::<Vec<_>>())?;
    let codes = b.iota_of(ElementType::S32, &wide, rank)?;
    let hit = b.compare(Eq, index, codes)?;
    b.convert(hit, ty)
}

/// `inside(lo <= v < hi)` for an s32 array `v` and per-example bounds `[B]` broadcast to it.
fn within(b: &mut Builder, v: Value, lo: Value, hi: Value) -> Result<Value> {
    use crate::hlo::ComparisonDirection::{Ge, Lt};
    let dims = b.array_shape("augment", v)?.dims().to_vec();
    let lo = leading(b, lo, &dims)?;
    let hi = leading(b, hi, &dims)?;
    let above = b.compare(Ge, v, lo)?;
    let below = b.compare(Lt, v, hi)?;
    b.and(above, below)
}
