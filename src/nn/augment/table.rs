//! Stage 1: per-channel value tables. The given tables (`Invert`, `Posterize`, `Solarize`,
//! `SolarizeAdd`, identity for the rest) or the tables of `AutoContrast` and `Equalize`, computed
//! from each image's own statistics, applied as matrix products of one-hot codes.

use super::leading;
use crate::data::transform::randaugment::encoded::TableSource;
use crate::hlo::ComparisonDirection::{Eq, Gt, Le, Lt};
use crate::hlo::{
    error::Result, ArrayShape, BinaryOp, Builder, Computation, DotDimensionNumbers, ElementType,
    PadDim, Value, WindowDim,
};

/// Values a channel can take, and so the length of a table.
const LEVELS: i64 = 256;

/// `images` (u8 `[B, H, W, 3]`) through each example's table: `given` (u8 `[B, 3, 256]`) or the
/// computed one that `source` (s32 `[B]`, [`TableSource`] codes) names.
pub(super) fn apply(b: &mut Builder, images: Value, given: Value, source: Value) -> Result<Value> {
    let n = b.array_shape("table", images)?.dims()[0];
    let dims = [n, 3, LEVELS];
    // The histogram's counts need f32 (up to H * W); the look-up's entries (up to 255) are
    // exact in bf16, half the bytes.
    let counting = Nibbles::of(b, images, ElementType::F32)?;
    let statistics = Statistics::of(b, &counting)?;
    let autocontrast = autocontrast_tables(b, &statistics)?;
    let equalize = equalize_tables(b, &statistics)?;
    let nibbles = Nibbles::of(b, images, ElementType::Bf16)?;
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
    look_up(b, &nibbles, tables)
}

/// Every value of a batch split into its high and low four bits, each as a one-hot code of a
/// float type: `[B, 3, H, W, 16]` (channels before the pixels, so that each (example, channel)
/// is one matrix). Table look-ups and histograms are then matrix products, which a TPU runs on
/// its matrix unit; a gather of single bytes at ten million places costs it more than the whole
/// train step.
///
/// The codes are comparisons of each value with the 16 codes (`v ^ 16k < 16` for the high
/// nibble, `(v ^ k) & 15 == 0` for the low one), never a nibble computed from the value alone:
/// XLA would compute such a nibble once per value and write it to memory, two more u8 images,
/// where the comparisons stay inside the matrix product's fusion, which reads the u8 image.
struct Nibbles {
    high: Value,
    low: Value,
}

impl Nibbles {
    /// The codes of `images` (u8 `[B, H, W, 3]`) as values of `ty`.
    fn of(b: &mut Builder, images: Value, ty: ElementType) -> Result<Nibbles> {
        let planes = b.transpose(images, &[0, 3, 1, 2])?;
        let dims = b.array_shape("table", planes)?.dims().to_vec();
        let wide: Vec<i64> = dims.iter().copied().chain([16]).collect();
        let values = b.broadcast_in_dim(planes, &wide, &[0, 1, 2, 3])?;
        let u8s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::U8, &wide), v);
        let code = b.iota_of(ElementType::U8, &wide, 4)?;
        let sixteen = u8s(b, 16.0)?;
        let fifteen = u8s(b, 15.0)?;
        let zero = u8s(b, 0.0)?;
        let row_start = b.mul(code, sixteen)?;
        let in_row = b.xor(values, row_start)?;
        let high = b.compare(Lt, in_row, sixteen)?;
        let column = b.xor(values, code)?;
        let column = b.and(column, fifteen)?;
        let low = b.compare(Eq, column, zero)?;
        let (high, low) = (b.convert(high, ty)?, b.convert(low, ty)?);
        Ok(Nibbles { high, low })
    }
}

/// Channel `c` of example `e` mapped through `tables[e, c]` (u8 `[B, 3, 256]`), back in the
/// images' layout `[B, H, W, 3]`: the high nibble's code picks a row of the table seen as 16 x 16
/// (a matrix product, in bf16), the low nibble's code an entry of that row, taken as u8 before
/// the sum over the row: the u8 result is what XLA then moves back into the images' layout,
/// a quarter of the bytes of an f32 one. Exact: each value is one table entry (at most 255,
/// exact in bf16) times one, and the other fifteen entries of the row are zeros.
fn look_up(b: &mut Builder, nibbles: &Nibbles, tables: Value) -> Result<Value> {
    let n = b.array_shape("table", tables)?.dims()[0];
    let tables = b.convert(tables, ElementType::Bf16)?;
    let tables = b.reshape(tables, &[n, 3, 16, 16])?;
    let rows = DotDimensionNumbers {
        lhs_batch: vec![0, 1],
        rhs_batch: vec![0, 1],
        lhs_contracting: vec![4],
        rhs_contracting: vec![2],
    };
    let rows = b.dot_general(nibbles.high, tables, &rows)?;
    let entries = b.mul(rows, nibbles.low)?;
    let entries = b.convert(entries, ElementType::U8)?;
    let values = b.reduce_binary(entries, BinaryOp::Add, 0.0, &[4])?;
    b.transpose(values, &[0, 2, 3, 1])
}

/// Each channel's 256-bin histogram (s32 `[B, 3, 256]`) and its lowest and highest values
/// (s32 `[B, 3]`), all from the one pass over the image that the histogram takes.
struct Statistics {
    histogram: Value,
    lowest: Value,
    highest: Value,
}

impl Statistics {
    /// The histogram is a matrix product of the nibbles' codes: summed over the pixels, their
    /// product counts every (high, low) pair (32 compares per value instead of 256). The counts
    /// are exact: f32 sums of ones (below 2^24), then integers. The lowest and highest values
    /// are the first and last bins that are not empty.
    fn of(b: &mut Builder, nibbles: &Nibbles) -> Result<Statistics> {
        let n = b.array_shape("histogram", nibbles.high)?.dims()[0];
        let dims = [n, 3, LEVELS];
        let pairs = DotDimensionNumbers {
            lhs_batch: vec![0, 1],
            rhs_batch: vec![0, 1],
            lhs_contracting: vec![2, 3],
            rhs_contracting: vec![2, 3],
        };
        let histogram = b.dot_general(nibbles.high, nibbles.low, &pairs)?;
        let histogram = b.reshape(histogram, &dims)?;
        let histogram = b.convert(histogram, ElementType::S32)?;
        let s32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::S32, &dims), v);
        let empty = s32s(b, 0.0)?;
        let present = b.compare(Gt, histogram, empty)?;
        let level = b.iota_of(ElementType::S32, &dims, 2)?;
        let above_all = s32s(b, LEVELS as f64)?;
        let below_all = s32s(b, -1.0)?;
        let lowest = b.select(present, level, above_all)?;
        let lowest = b.reduce_binary(lowest, BinaryOp::Minimum, LEVELS as f64, &[2])?;
        let highest = b.select(present, level, below_all)?;
        let highest = b.reduce_binary(highest, BinaryOp::Maximum, -1.0, &[2])?;
        Ok(Statistics {
            histogram,
            lowest,
            highest,
        })
    }
}

/// `color::autocontrast`'s tables: per channel, `v * scale + offset` (f32, clipped, truncated)
/// with `scale = 255 / (hi - lo)`, `offset = -lo * scale`; the identity for a flat channel.
fn autocontrast_tables(b: &mut Builder, statistics: &Statistics) -> Result<Value> {
    let n = b.array_shape("autocontrast", statistics.histogram)?.dims()[0];
    let dims = [n, 3, LEVELS];
    let (lo, hi) = (statistics.lowest, statistics.highest);
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
/// `below` is the histogram's running sum.
fn equalize_tables(b: &mut Builder, statistics: &Statistics) -> Result<Value> {
    let histogram = statistics.histogram;
    let n = b.array_shape("equalize", histogram)?.dims()[0];
    let table_dims = [n, 3, LEVELS];
    // `below[v]`, the sum of the bins under `v`: the histogram shifted up by one bin, then its
    // running sum (a window of all 256 bins ending at each one), in integers.
    let zero = b.scalar(0i32)?;
    let keep = PadDim {
        low: 0,
        high: 0,
        interior: 0,
    };
    let shift = PadDim {
        low: 1,
        high: -1,
        interior: 0,
    };
    let shifted = b.pad(histogram, zero, &[keep, keep, shift])?;
    let add = Computation::binary_reducer(BinaryOp::Add, ElementType::S32)?;
    let running = [
        WindowDim::new(1),
        WindowDim::new(1),
        WindowDim::new(LEVELS).padding(LEVELS - 1, 0),
    ];
    let below = b.reduce_window(shifted, zero, &running, &add)?;
    // The values under the channel's highest one: all but the count of the highest value.
    let highest = leading(b, statistics.highest, &table_dims)?;
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
