//! The two resizers of the official preprocessing, with TensorFlow's semantics:
//! - bilinear, `tf.image.resize(method="bilinear", antialias=False)` (S/M/L/XL): half-pixel
//!   centres, no low-pass filter when shrinking;
//! - bicubic, TF1's `tf.image.resize_bicubic(align_corners=False, half_pixel_centers=False)`
//!   (B0–B3, `preprocess_legacy.py` calls it through `tensorflow.compat.v1`): the legacy kernel,
//!   which samples output pixel `i` at input coordinate `i * in / out` (no half-pixel shift),
//!   uses the cubic with `a = -0.75` read from a 1024-entry table, and repeats the edge pixel
//!   for taps outside the image.
//!
//! The `image` crate's resizers widen the filter when downscaling (antialiasing) and use other
//! cubic coefficients, which gives visibly different pixels from the official pipeline, so these
//! small kernels are written here.
//!
//! Both run one output row at a time and hand each row to a sink, so that the transform fuses
//! the horizontal flip (the column taps are reversed), the `u8` truncation or the normalisation
//! into the resize without a second pass over a float image. Each kernel is split into a pass
//! along rows and one along columns in TensorFlow's order of operations, so the values are
//! bit-identical to the direct formula (a test compares them), while the pass over contiguous
//! rows vectorises and source rows shared by consecutive output rows are interpolated once.

use image::RgbImage;

use super::crop::CropBox;

/// Source taps of one output coordinate.
#[derive(Clone, Copy)]
struct Taps {
    lower: usize,
    upper: usize,
    lerp: f32,
}

/// Taps for `out_len` outputs sampling `in_len` inputs starting at `offset`.
fn taps(in_len: u32, out_len: usize, offset: u32) -> Vec<Taps> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|i| {
            let pos = (i as f32 + 0.5) * scale - 0.5;
            let floor = pos.floor();
            let lower = (floor.max(0.0) as usize).min(in_len as usize - 1);
            let upper = (pos.ceil().max(0.0) as usize).min(in_len as usize - 1);
            Taps {
                lower: lower + offset as usize,
                upper: upper + offset as usize,
                lerp: pos - floor,
            }
        })
        .collect()
}

/// Resizes the `crop` region of `image` to `size` x `size` bilinearly; returns row-major RGB
/// floats in [0, 255] (not rounded, as TensorFlow returns them).
pub fn resize_bilinear(image: &RgbImage, crop: CropBox, size: usize) -> Vec<f32> {
    collect_rows(size, |sink| bilinear_rows(image, crop, size, false, sink))
}

/// The rows of [`resize_bilinear`], mirrored left to right when `mirror` is set, handed to
/// `sink(row_index, row)` in order. Each output value is `top + (bottom - top) * y_lerp` of the
/// two horizontally interpolated source rows, TensorFlow's formula and order.
pub(super) fn bilinear_rows(
    image: &RgbImage,
    crop: CropBox,
    size: usize,
    mirror: bool,
    mut sink: impl FnMut(usize, &[f32]),
) {
    let mut xs = taps(crop.width, size, crop.x);
    if mirror {
        xs.reverse();
    }
    let ys = taps(crop.height, size, crop.y);
    let stride = image.width() as usize * 3;
    let source_row = |y: usize| &image.as_raw()[y * stride..][..stride];
    // The interpolated source rows above and below the current output row, and their indices.
    let (mut top, mut bottom, mut row) = (
        vec![0f32; size * 3],
        vec![0f32; size * 3],
        vec![0f32; size * 3],
    );
    let (mut top_at, mut bottom_at) = (None, None);
    for (i, y) in ys.iter().enumerate() {
        if top_at != Some(y.lower) {
            if bottom_at == Some(y.lower) {
                std::mem::swap(&mut top, &mut bottom);
                std::mem::swap(&mut top_at, &mut bottom_at);
            } else {
                interpolate_row(source_row(y.lower), &xs, &mut top);
                top_at = Some(y.lower);
            }
        }
        if bottom_at != Some(y.upper) {
            if top_at == Some(y.upper) {
                bottom.copy_from_slice(&top);
            } else {
                interpolate_row(source_row(y.upper), &xs, &mut bottom);
            }
            bottom_at = Some(y.upper);
        }
        for ((o, t), b) in row.iter_mut().zip(&top).zip(&bottom) {
            *o = t + (b - t) * y.lerp;
        }
        sink(i, &row);
    }
}

/// One source row interpolated at the column taps `xs`: `left + (right - left) * x_lerp`.
fn interpolate_row(source: &[u8], xs: &[Taps], out: &mut [f32]) {
    for (x, out_pixel) in xs.iter().zip(out.chunks_exact_mut(3)) {
        let left = &source[x.lower * 3..][..3];
        let right = &source[x.upper * 3..][..3];
        for ((o, &l), &r) in out_pixel.iter_mut().zip(left).zip(right) {
            let l = f32::from(l);
            *o = l + (f32::from(r) - l) * x.lerp;
        }
    }
}

/// The `size` x `size` RGB image whose rows `produce` hands to its sink.
fn collect_rows(size: usize, produce: impl FnOnce(&mut dyn FnMut(usize, &[f32]))) -> Vec<f32> {
    let mut out = vec![0f32; size * size * 3];
    produce(&mut |i, row| out[i * row.len()..][..row.len()].copy_from_slice(row));
    out
}

/// Entries of TensorFlow's bicubic weight table over one pixel (`kTableSize`).
const CUBIC_TABLE_SIZE: usize = 1024;
/// The cubic convolution parameter of TensorFlow's legacy bicubic kernel.
const LEGACY_CUBIC_A: f64 = -0.75;

/// The legacy cubic weights at distances `t` (`[2 * i]`) and `1 + t` (`[2 * i + 1]`) for
/// `t = i / 1024`, computed in f64 and stored as f32 as TensorFlow builds its table.
fn cubic_table() -> &'static [f32; 2 * (CUBIC_TABLE_SIZE + 1)] {
    static TABLE: std::sync::OnceLock<[f32; 2 * (CUBIC_TABLE_SIZE + 1)]> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let a = LEGACY_CUBIC_A;
        let mut table = [0f32; 2 * (CUBIC_TABLE_SIZE + 1)];
        for i in 0..=CUBIC_TABLE_SIZE {
            let t = i as f64 / CUBIC_TABLE_SIZE as f64;
            table[2 * i] = (((a + 2.0) * t - (a + 3.0)) * t * t + 1.0) as f32;
            let t = t + 1.0;
            table[2 * i + 1] = (((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a) as f32;
        }
        table
    })
}

/// The four source taps of one output coordinate of the bicubic resize.
#[derive(Clone, Copy)]
struct CubicTaps {
    index: [usize; 4],
    weight: [f32; 4],
}

/// Bicubic taps for `out_len` outputs sampling `in_len` inputs starting at `offset`: output `i`
/// sits at input `i * in_len / out_len` (f32, as TensorFlow's `LegacyScaler`), its fractional
/// part is rounded to the table (ties to even, `lrintf`), and taps outside `[0, in_len)` read the
/// edge pixel with their weight unchanged.
fn cubic_taps(in_len: u32, out_len: usize, offset: u32) -> Vec<CubicTaps> {
    let table = cubic_table();
    let scale = in_len as f32 / out_len as f32;
    let last = i64::from(in_len) - 1;
    (0..out_len)
        .map(|i| {
            let pos = i as f32 * scale;
            let floor = pos.floor();
            // The fraction is below 1, so `at` is at most CUBIC_TABLE_SIZE.
            let at = ((pos - floor) * CUBIC_TABLE_SIZE as f32).round_ties_even() as usize;
            let base = floor as i64;
            let index = [base - 1, base, base + 1, base + 2]
                .map(|k| k.clamp(0, last) as usize + offset as usize);
            let mirror = CUBIC_TABLE_SIZE - at;
            CubicTaps {
                index,
                weight: [
                    table[2 * at + 1],
                    table[2 * at],
                    table[2 * mirror],
                    table[2 * mirror + 1],
                ],
            }
        })
        .collect()
}

/// `w0 v0 + w1 v1 + w2 v2 + w3 v3`, summed left to right in f32 like TensorFlow's
/// `Interpolate1D`.
fn cubic(weight: &[f32; 4], values: [f32; 4]) -> f32 {
    values[0] * weight[0] + values[1] * weight[1] + values[2] * weight[2] + values[3] * weight[3]
}

/// Resizes the `crop` region of `image` to `size` x `size` with TensorFlow's legacy bicubic
/// kernel (see the module documentation); returns row-major RGB floats, not rounded and not
/// clipped: the cubic overshoots [0, 255] near sharp edges, as TensorFlow's does.
pub fn resize_bicubic(image: &RgbImage, crop: CropBox, size: usize) -> Vec<f32> {
    collect_rows(size, |sink| bicubic_rows(image, crop, size, false, sink))
}

/// The rows of [`resize_bicubic`], mirrored left to right when `mirror` is set, handed to
/// `sink(row_index, row)` in order. Each output is the column interpolation of the four rows,
/// then the row interpolation of those four values, TensorFlow's order of operations; the
/// column interpolation is done once per crop column and output row.
pub(super) fn bicubic_rows(
    image: &RgbImage,
    crop: CropBox,
    size: usize,
    mirror: bool,
    mut sink: impl FnMut(usize, &[f32]),
) {
    let mut xs = cubic_taps(crop.width, size, crop.x);
    if mirror {
        xs.reverse();
    }
    let ys = cubic_taps(crop.height, size, crop.y);
    let stride = image.width() as usize * 3;
    let src = image.as_raw();
    // The column interpolations of the crop's columns (the only ones the taps read).
    let first = crop.x as usize * 3;
    let mut columns = vec![0f32; crop.width as usize * 3];
    let mut row = vec![0f32; size * 3];
    for (i, y) in ys.iter().enumerate() {
        let rows = y.index.map(|r| &src[r * stride + first..][..columns.len()]);
        for (j, value) in columns.iter_mut().enumerate() {
            *value = cubic(&y.weight, rows.map(|row| f32::from(row[j])));
        }
        for (x, out_pixel) in xs.iter().zip(row.chunks_exact_mut(3)) {
            for (c, o) in out_pixel.iter_mut().enumerate() {
                *o = cubic(&x.weight, x.index.map(|col| columns[col * 3 + c - first]));
            }
        }
        sink(i, &row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscaling_a_two_pixel_row_matches_hand_computed_taps() {
        // 2x1 -> 4x4 (columns): scale 0.5, positions -0.25, 0.25, 0.75, 1.25.
        // Values 0 and 100: taps (0,0), (0,1,0.25), (0,1,0.75), (1,1) -> 0, 25, 75, 100.
        let image = RgbImage::from_fn(2, 1, |x, _| image::Rgb([(x * 100) as u8; 3]));
        let out = resize_bilinear(&image, CropBox::whole(2, 1), 4);
        let first_row: Vec<f32> = out[..12].iter().step_by(3).copied().collect();
        assert_eq!(first_row, vec![0.0, 25.0, 75.0, 100.0]);
    }

    #[test]
    fn halving_averages_pixel_pairs_and_respects_the_crop_offset() {
        // 4 -> 2: positions 0.5 and 2.5, i.e. the mean of pixels (0,1) and (2,3) of the crop.
        let image = RgbImage::from_fn(6, 6, |x, y| image::Rgb([(10 * x + y) as u8; 3]));
        let crop = CropBox {
            x: 1,
            y: 2,
            width: 4,
            height: 4,
        };
        let out = resize_bilinear(&image, crop, 2);
        // Output (0,0): x in {1,2}, y in {2,3} -> mean of 12, 13, 22, 23 = 17.5.
        assert_eq!(out[0], 17.5);
        // Output (1,1): x in {3,4}, y in {4,5} -> mean of 34, 35, 44, 45 = 39.5.
        assert_eq!(out[9], 39.5);
    }
}
