//! Stage 1: per-channel value tables. The given tables (`Invert`, `Posterize`, `Solarize`,
//! `SolarizeAdd`, identity for the rest) or the tables of `AutoContrast` and `Equalize`, computed
//! from each image's own statistics, applied as one flat gather.

use super::leading;
use crate::data::transform::randaugment::encoded::TableSource;
use crate::hlo::ComparisonDirection::{Eq, Le, Lt};
use crate::hlo::{
    error::Result, ArrayShape, BinaryOp, Builder, DotDimensionNumbers, ElementType,
    GatherDimensionNumbers, Value,
};

/// Values a channel can take, and so the length of a table.
const LEVELS: i64 = 256;

/// `images` (u8 `[B, H, W, 3]`) through each example's table: `given` (u8 `[B, 3, 256]`) or the
/// computed one that `source` (s32 `[B]`, [`TableSource`] codes) names.
pub(super) fn apply(b: &mut Builder, images: Value, given: Value, source: Value) -> Result<Value> {
    let n = b.array_shape("table", images)?.dims()[0];
    let dims = [n, 3, LEVELS];
    let autocontrast = autocontrast_tables(b, images)?;
    let equalize = equalize_tables(b, images)?;
    let source = leading(b, source, &dims)?;
    let mut tables = given;
    for (code, computed) in [
        (TableSource::AutoContrast, autocontrast),
        (TableSource::Equalize, equalize),
    ] {
        let code = b.full(
            &ArrayShape::new(ElementType::S32, &dims),
            code as i32 as f64,
        )?;
        let chosen = b.compare(Eq, source, code)?;
        tables = b.select(chosen, computed, tables)?;
    }
    look_up(b, images, tables)
}

/// Channel `c` of example `e` mapped through `tables[e, c]`: a gather from the flattened tables
/// at `(e * 3 + c) * 256 + value`.
fn look_up(b: &mut Builder, images: Value, tables: Value) -> Result<Value> {
    let dims = b.array_shape("table", images)?.dims().to_vec();
    let n = dims[0];
    let flat = b.reshape(tables, &[n * 3 * LEVELS])?;
    let example = b.iota_of(ElementType::S32, &dims, 0)?;
    let channel = b.iota_of(ElementType::S32, &dims, 3)?;
    let three = b.full(&ArrayShape::new(ElementType::S32, &dims), 3.0)?;
    let levels = b.full(&ArrayShape::new(ElementType::S32, &dims), LEVELS as f64)?;
    let row = b.mul(example, three)?;
    let row = b.add(row, channel)?;
    let start = b.mul(row, levels)?;
    let value = b.convert(images, ElementType::S32)?;
    let index = b.add(start, value)?;
    let dn = GatherDimensionNumbers {
        offset_dims: vec![],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 4,
    };
    b.gather(flat, index, &dn, &[1])
}

/// `color::autocontrast`'s tables: per channel, `v * scale + offset` (f32, clipped, truncated)
/// with `scale = 255 / (hi - lo)`, `offset = -lo * scale`; the identity for a flat channel.
fn autocontrast_tables(b: &mut Builder, images: Value) -> Result<Value> {
    let n = b.array_shape("autocontrast", images)?.dims()[0];
    let dims = [n, 3, LEVELS];
    let lo = b.reduce_binary(images, BinaryOp::Minimum, 255.0, &[1, 2])?;
    let hi = b.reduce_binary(images, BinaryOp::Maximum, 0.0, &[1, 2])?;
    let flat = b.compare(Le, hi, lo)?;
    let flat = leading(b, flat, &dims)?;
    let lo = b.convert(lo, ElementType::F32)?;
    let hi = b.convert(hi, ElementType::F32)?;
    let f32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::F32, &[n, 3]), v);
    let full_range = f32s(b, 255.0)?;
    let range = b.sub(hi, lo)?;
    let scale = b.div(full_range, range)?;
    let neg_lo = b.neg(lo)?;
    let offset = b.mul(neg_lo, scale)?;
    let scale = leading(b, scale, &dims)?;
    let offset = leading(b, offset, &dims)?;
    let v = b.iota_of(ElementType::F32, &dims, 2)?;
    let scaled = b.mul(v, scale)?;
    let stretched = b.add(scaled, offset)?;
    let zero = b.scalar(0f32)?;
    let top = b.scalar(255f32)?;
    let zero = b.broadcast_in_dim(zero, &dims, &[])?;
    let top = b.broadcast_in_dim(top, &dims, &[])?;
    let clipped = b.clamp(zero, stretched, top)?;
    let table = b.convert(clipped, ElementType::U8)?;
    let identity = b.iota_of(ElementType::U8, &dims, 2)?;
    b.select(flat, identity, table)
}

/// `color::equalize`'s tables: `lut[v] = (below[v] + step / 2) / step` (capped at 255), where
/// `below[v]` counts the channel's values under `v` and `step = (count - count of the highest
/// value) / 255`; the identity where `step == 0`.
///
/// The 256-bin histogram is a matrix product: each value splits into its high and low four
/// bits, and the product of their one-hot codes (16 + 16 compares per value instead of 256)
/// summed over the pixels counts every (high, low) pair; `below` is the histogram times a
/// triangular matrix. The counts are exact in f32 (below 2^24).
fn equalize_tables(b: &mut Builder, images: Value) -> Result<Value> {
    let dims = b.array_shape("equalize", images)?.dims().to_vec();
    let n = dims[0];
    let one_hot = |b: &mut Builder, digit: Value| -> Result<Value> {
        let wide = [dims[0], dims[1], dims[2], 3, 16];
        let digit = b.broadcast_in_dim(digit, &wide, &[0, 1, 2, 3])?;
        let codes = b.iota_of(ElementType::U8, &wide, 4)?;
        let hit = b.compare(Eq, digit, codes)?;
        b.convert(hit, ElementType::F32)
    };
    let u8s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::U8, &dims), v);
    let four = u8s(b, 4.0)?;
    let fifteen = u8s(b, 15.0)?;
    let high = b.shift_right_logical(images, four)?;
    let low = b.and(images, fifteen)?;
    let high = one_hot(b, high)?;
    let low = one_hot(b, low)?;
    let pairs = DotDimensionNumbers {
        lhs_batch: vec![0, 3],
        rhs_batch: vec![0, 3],
        lhs_contracting: vec![1, 2],
        rhs_contracting: vec![1, 2],
    };
    let histogram = b.dot_general(high, low, &pairs)?;
    let histogram = b.reshape(histogram, &[n, 3, LEVELS])?;
    let table_dims = [n, 3, LEVELS];
    let square = [LEVELS, LEVELS];
    let from = b.iota_of(ElementType::S32, &square, 0)?;
    let to = b.iota_of(ElementType::S32, &square, 1)?;
    let under = b.compare(Lt, from, to)?;
    let under = b.convert(under, ElementType::F32)?;
    let cumulative = DotDimensionNumbers {
        lhs_contracting: vec![2],
        rhs_contracting: vec![0],
        ..Default::default()
    };
    let below = b.dot_general(histogram, under, &cumulative)?;
    let below = b.convert(below, ElementType::S32)?;
    // The values under the channel's highest one: all but the count of the highest value.
    let highest = b.reduce_binary(images, BinaryOp::Maximum, 0.0, &[1, 2])?;
    let highest = b.convert(highest, ElementType::S32)?;
    let highest = leading(b, highest, &table_dims)?;
    let level = b.iota_of(ElementType::S32, &table_dims, 2)?;
    let at_highest = b.compare(Eq, level, highest)?;
    let none = b.full(&ArrayShape::new(ElementType::S32, &table_dims), 0.0)?;
    let below_highest = b.select(at_highest, below, none)?;
    let below_highest = b.reduce_sum(below_highest, &[2])?;
    let s32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::S32, &[n, 3]), v);
    let bins = s32s(b, 255.0)?;
    let step = b.div(below_highest, bins)?;
    let zero = s32s(b, 0.0)?;
    let unchanged = b.compare(Eq, step, zero)?;
    let unchanged = leading(b, unchanged, &table_dims)?;
    let one = s32s(b, 1.0)?;
    let step = b.max(step, one)?;
    let two = s32s(b, 2.0)?;
    let half = b.div(step, two)?;
    let step = leading(b, step, &table_dims)?;
    let half = leading(b, half, &table_dims)?;
    let rounded = b.add(below, half)?;
    let lut = b.div(rounded, step)?;
    let top = b.full(&ArrayShape::new(ElementType::S32, &table_dims), 255.0)?;
    let lut = b.min(lut, top)?;
    let lut = b.convert(lut, ElementType::U8)?;
    let identity = b.iota_of(ElementType::U8, &table_dims, 2)?;
    b.select(unchanged, identity, lut)
}
