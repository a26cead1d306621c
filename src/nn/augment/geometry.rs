//! Stages 3 and 4: `geometric::projective` (nearest sampling, [`FILL`] outside) and the cutout
//! box.

use super::{column, leading, within};
use crate::data::transform::randaugment::geometric::FILL;
use crate::hlo::ComparisonDirection::{Ge, Le, Ne};
use crate::hlo::{error::Result, ArrayShape, Builder, ElementType, GatherDimensionNumbers, Value};

/// Each example's projective transform `warp` (f32 `[B, 8]`): output pixel (x, y) takes the
/// input pixel nearest to `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`,
/// `k = c0 x + c1 y + 1` (rounded half away from zero), or [`FILL`] where that is outside the
/// image or `k` is 0. The sampling is one gather of whole pixels from the flattened batch, each
/// packed into one s32: a TPU gathers 32-bit elements of a flat array several times faster than
/// rows of three bytes (whose minor dimension its layouts pad).
pub(super) fn warp(b: &mut Builder, images: Value, warp: Value) -> Result<Value> {
    let dims = b.array_shape("warp", images)?.dims().to_vec();
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    let plane = [n, h, w];
    let f32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::F32, &plane), v);
    let x = b.iota_of(ElementType::F32, &plane, 2)?;
    let y = b.iota_of(ElementType::F32, &plane, 1)?;
    let mut t = Vec::with_capacity(8);
    for i in 0..8 {
        let ti = column(b, warp, i)?;
        t.push(leading(b, ti, &plane)?);
    }
    // `(p * x + q * y) + r`, the host's order.
    let affine = |b: &mut Builder, p: Value, q: Value, r: Value| -> Result<Value> {
        let px = b.mul(p, x)?;
        let qy = b.mul(q, y)?;
        let sum = b.add(px, qy)?;
        b.add(sum, r)
    };
    let one = f32s(b, 1.0)?;
    let k = affine(b, t[6], t[7], one)?;
    let source_x = affine(b, t[0], t[1], t[2])?;
    let source_x = b.div(source_x, k)?;
    let source_y = affine(b, t[3], t[4], t[5])?;
    let source_y = b.div(source_y, k)?;
    let source_x = b.round(source_x)?;
    let source_y = b.round(source_y)?;
    let zero = f32s(b, 0.0)?;
    let mut valid = b.compare(Ne, k, zero)?;
    for (v, size) in [(source_x, w), (source_y, h)] {
        // NaN and infinities compare false or out of range, as the host's saturating cast does.
        let last = f32s(b, (size - 1) as f64)?;
        let from_first = b.compare(Ge, v, zero)?;
        let to_last = b.compare(Le, v, last)?;
        valid = b.and(valid, from_first)?;
        valid = b.and(valid, to_last)?;
    }
    // Invalid positions read pixel 0 of their example (then replaced by the fill).
    let source_x = b.select(valid, source_x, zero)?;
    let source_y = b.select(valid, source_y, zero)?;
    let ix = b.convert(source_x, ElementType::S32)?;
    let iy = b.convert(source_y, ElementType::S32)?;
    let s32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::S32, &plane), v);
    let example = b.iota_of(ElementType::S32, &plane, 0)?;
    let rows = s32s(b, h as f64)?;
    let cols = s32s(b, w as f64)?;
    let row = b.mul(example, rows)?;
    let row = b.add(row, iy)?;
    let pixel = b.mul(row, cols)?;
    let pixel = b.add(pixel, ix)?;
    let dn = GatherDimensionNumbers {
        offset_dims: vec![],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 3,
    };
    let packed = pack_pixels(b, images)?;
    let packed = b.reshape(packed, &[n * h * w])?;
    let sampled = b.gather(packed, pixel, &dn, &[1])?;
    let sampled = unpack_pixels(b, sampled)?;
    let valid = b.broadcast_in_dim(valid, &dims, &[0, 1, 2])?;
    let fill = b.full(&ArrayShape::new(ElementType::U8, &dims), FILL as f64)?;
    b.select(valid, sampled, fill)
}

/// Columns `x0..x1` and rows `y0..y1` of each example's box `cutout` (s32 `[B, 4]` as
/// `[x0, x1, y0, y1]`; empty when `x0 >= x1` or `y0 >= y1`) set to [`FILL`].
pub(super) fn cutout(b: &mut Builder, images: Value, cutout: Value) -> Result<Value> {
    let dims = b.array_shape("cutout", images)?.dims().to_vec();
    let inside = inside_boxes(b, &dims, cutout)?;
    let fill = b.full(&ArrayShape::new(ElementType::U8, &dims), FILL as f64)?;
    b.select(inside, fill, images)
}

/// Where pixel `[e, y, x, c]` of an array of `dims` lies in example `e`'s box (s32 `[B, 4]`,
/// `[x0, x1, y0, y1]`).
pub(super) fn inside_boxes(b: &mut Builder, dims: &[i64], boxes: Value) -> Result<Value> {
    let x = b.iota_of(ElementType::S32, dims, 2)?;
    let y = b.iota_of(ElementType::S32, dims, 1)?;
    let bound = |b: &mut Builder, i| column(b, boxes, i);
    let (x0, x1, y0, y1) = (bound(b, 0)?, bound(b, 1)?, bound(b, 2)?, bound(b, 3)?);
    let in_columns = within(b, x, x0, x1)?;
    let in_rows = within(b, y, y0, y1)?;
    b.and(in_columns, in_rows)
}

/// The three u8 channels of each pixel of `[B, H, W, 3]` as one s32 `r + g * 2^8 + b * 2^16`:
/// `[B, H, W]`.
fn pack_pixels(b: &mut Builder, images: Value) -> Result<Value> {
    let dims = b.array_shape("warp", images)?.dims().to_vec();
    let plane = [dims[0], dims[1], dims[2]];
    let values = b.convert(images, ElementType::S32)?;
    let mut packed = None;
    for c in 0..3 {
        let channel = b.slice(
            values,
            &[0, 0, 0, c],
            &[plane[0], plane[1], plane[2], c + 1],
            &[1; 4],
        )?;
        let channel = b.reshape(channel, &plane)?;
        let bits = b.full(&ArrayShape::new(ElementType::S32, &plane), (8 * c) as f64)?;
        let shifted = b.shift_left(channel, bits)?;
        packed = Some(match packed {
            None => shifted,
            Some(p) => b.or(p, shifted)?,
        });
    }
    Ok(packed.expect("three channels"))
}

/// [`pack_pixels`] undone: s32 `[B, H, W]` to u8 `[B, H, W, 3]`.
fn unpack_pixels(b: &mut Builder, packed: Value) -> Result<Value> {
    let plane = b.array_shape("warp", packed)?.dims().to_vec();
    let dims = [plane[0], plane[1], plane[2], 3];
    let packed = b.broadcast_in_dim(packed, &dims, &[0, 1, 2])?;
    let channel = b.iota_of(ElementType::S32, &dims, 3)?;
    let eight = b.full(&ArrayShape::new(ElementType::S32, &dims), 8.0)?;
    let bits = b.mul(channel, eight)?;
    let shifted = b.shift_right_logical(packed, bits)?;
    let byte = b.full(&ArrayShape::new(ElementType::S32, &dims), 255.0)?;
    let value = b.and(shifted, byte)?;
    b.convert(value, ElementType::U8)
}
