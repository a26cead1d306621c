//! Stages 3 and 4: `geometric::projective` (nearest sampling, [`FILL`] outside) and the cutout
//! box.

use super::{column, leading, within};
use crate::data::transform::randaugment::geometric::FILL;
use crate::hlo::ComparisonDirection::{Ge, Le, Ne};
use crate::hlo::{error::Result, ArrayShape, Builder, ElementType, GatherDimensionNumbers, Value};

/// Each example's projective transform `warp` (f32 `[B, 8]`): output pixel (x, y) takes the
/// input pixel nearest to `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`,
/// `k = c0 x + c1 y + 1` (rounded half away from zero), or [`FILL`] where that is outside the
/// image or `k` is 0. The sampling is one gather of whole pixels from the flattened batch.
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
    let pixels = b.reshape(images, &[n * h * w, 3])?;
    let dn = GatherDimensionNumbers {
        offset_dims: vec![3],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 3,
    };
    let sampled = b.gather(pixels, pixel, &dn, &[1, 3])?;
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
