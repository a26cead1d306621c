//! Stage 2: `color::blend` towards a degenerate image: a flat level (`Brightness`, `Contrast`),
//! the greyscale image (`Color`) or the smoothed image (`Sharpness`); factor 1 is the identity.
//!
//! Every degenerate image is a u8 image, chosen per example in u8 and widened to f32 only inside
//! the blend's own expression, and the greyscale and the smoothing read the u8 input directly:
//! on a TPU an f32 copy of an image is four times the bytes of the u8 one, and every f32 image
//! XLA writes between fusions costs the step more than the arithmetic of the whole stage.

use super::leading;
use crate::data::transform::randaugment::encoded::Degenerate;
use crate::hlo::ComparisonDirection::Eq;
use crate::hlo::{error::Result, ArrayShape, Builder, ElementType, Value};

/// `degenerate + factor * (image - degenerate)`, clipped to [0, 255] and truncated to u8, with
/// each example's degenerate image of `kind` (s32 `[B]`, [`Degenerate::code`]), flat `level`
/// (f32 `[B]` of a u8 level) and `factor` (f32 `[B]`). Clipping always is the host's rule: an
/// interpolation (factor in (0, 1)) cannot leave the range, and factors 0 and 1 give the
/// degenerate and the image exactly.
pub(super) fn apply(
    b: &mut Builder,
    images: Value,
    kind: Value,
    level: Value,
    factor: Value,
) -> Result<Value> {
    let dims = b.array_shape("blend", images)?.dims().to_vec();
    let level = b.convert(level, ElementType::U8)?;
    let flat = leading(b, level, &dims)?;
    let grey = greyscale(b, images)?;
    let smooth = smoothed(b, images)?;
    let kind = leading(b, kind, &dims)?;
    let mut degenerate = flat;
    for (code, candidate) in [(Degenerate::Grey, grey), (Degenerate::Smooth, smooth)] {
        let code = b.full(
            &ArrayShape::new(ElementType::S32, &dims),
            code.code() as f64,
        )?;
        let chosen = b.compare(Eq, kind, code)?;
        degenerate = b.select(chosen, candidate, degenerate)?;
    }
    let image = b.convert(images, ElementType::F32)?;
    let degenerate = b.convert(degenerate, ElementType::F32)?;
    let factor = leading(b, factor, &dims)?;
    let towards = b.sub(image, degenerate)?;
    let scaled = b.mul(factor, towards)?;
    let value = b.add(degenerate, scaled)?;
    to_u8(b, value)
}

/// f32 values clipped to [0, 255] and truncated to u8 (the host's `clamp(..) as u8`).
fn to_u8(b: &mut Builder, value: Value) -> Result<Value> {
    let dims = b.array_shape("blend", value)?.dims().to_vec();
    let zero = b.full(&ArrayShape::new(ElementType::F32, &dims), 0.0)?;
    let top = b.full(&ArrayShape::new(ElementType::F32, &dims), 255.0)?;
    let clipped = b.clamp(zero, value, top)?;
    b.convert(clipped, ElementType::U8)
}

/// `color::grey_level` of every pixel in all three channels:
/// `(r * (1/255) * 0.2989 + g * (1/255) * 0.5870 + b * (1/255) * 0.1140) * 255.5`, truncated.
fn greyscale(b: &mut Builder, images: Value) -> Result<Value> {
    let dims = b.array_shape("greyscale", images)?.dims().to_vec();
    let plane = [dims[0], dims[1], dims[2]];
    let f32s =
        |b: &mut Builder, v: f32| b.full(&ArrayShape::new(ElementType::F32, &plane), v as f64);
    let scale = f32s(b, 1.0f32 / 255.0)?;
    let mut grey = None;
    for (c, weight) in [0.2989f32, 0.5870, 0.1140].into_iter().enumerate() {
        let c = c as i64;
        let channel = b.slice(
            images,
            &[0, 0, 0, c],
            &[plane[0], plane[1], plane[2], c + 1],
            &[1; 4],
        )?;
        let channel = b.reshape(channel, &plane)?;
        let channel = b.convert(channel, ElementType::F32)?;
        let scaled = b.mul(channel, scale)?;
        let weight = f32s(b, weight)?;
        let term = b.mul(scaled, weight)?;
        grey = Some(match grey {
            None => term,
            Some(sum) => b.add(sum, term)?,
        });
    }
    let grey = grey.expect("three channels");
    let widen = f32s(b, 255.5)?;
    let grey = b.mul(grey, widen)?;
    let grey = to_u8(b, grey)?;
    b.broadcast_in_dim(grey, &dims, &[0, 1, 2])
}

/// `color::sharpness`' smoothed image: the 3x3 kernel `[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`
/// (f32 weights `k / 13`) summed row by row in the host's order over the interior, truncated;
/// the one-pixel border (and images narrower or lower than 3 pixels) kept. The nine windows are
/// slices of the u8 input, each widened on its own.
fn smoothed(b: &mut Builder, images: Value) -> Result<Value> {
    let dims = b.array_shape("sharpness", images)?.dims().to_vec();
    let (h, w) = (dims[1], dims[2]);
    if h < 3 || w < 3 {
        return Ok(images);
    }
    let inner = [dims[0], h - 2, w - 2, 3];
    let side = b.full(
        &ArrayShape::new(ElementType::F32, &inner),
        (1.0f32 / 13.0) as f64,
    )?;
    let centre = b.full(
        &ArrayShape::new(ElementType::F32, &inner),
        (5.0f32 / 13.0) as f64,
    )?;
    let mut sum = None;
    for dy in 0..3 {
        for dx in 0..3 {
            let window = b.slice(
                images,
                &[0, dy, dx, 0],
                &[dims[0], dy + h - 2, dx + w - 2, 3],
                &[1; 4],
            )?;
            let window = b.convert(window, ElementType::F32)?;
            let weight = if (dy, dx) == (1, 1) { centre } else { side };
            let term = b.mul(window, weight)?;
            sum = Some(match sum {
                None => term,
                Some(s) => b.add(s, term)?,
            });
        }
    }
    let interior = to_u8(b, sum.expect("nine terms"))?;
    // The border: the interior padded back to full size, then the original outside it.
    let zero = b.scalar(0u8)?;
    let pad = |d: i64| crate::hlo::op::PadDim {
        low: d,
        high: d,
        interior: 0,
    };
    let padded = b.pad(interior, zero, &[pad(0), pad(1), pad(1), pad(0)])?;
    let row = b.iota_of(ElementType::S32, &dims, 1)?;
    let col = b.iota_of(ElementType::S32, &dims, 2)?;
    let in_rows = interior_mask(b, row, h)?;
    let in_cols = interior_mask(b, col, w)?;
    let inside = b.and(in_rows, in_cols)?;
    b.select(inside, padded, images)
}

/// Where `0 < index < size - 1`.
fn interior_mask(b: &mut Builder, index: Value, size: i64) -> Result<Value> {
    use crate::hlo::ComparisonDirection::{Gt, Lt};
    let dims = b.array_shape("sharpness", index)?.dims().to_vec();
    let zero = b.full(&ArrayShape::new(ElementType::S32, &dims), 0.0)?;
    let last = b.full(&ArrayShape::new(ElementType::S32, &dims), (size - 1) as f64)?;
    let after_first = b.compare(Gt, index, zero)?;
    let before_last = b.compare(Lt, index, last)?;
    b.and(after_first, before_last)
}
