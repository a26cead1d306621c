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
    let xs = taps(crop.width, size, crop.x);
    let ys = taps(crop.height, size, crop.y);
    let stride = image.width() as usize * 3;
    let src = image.as_raw();
    let mut out = vec![0f32; size * size * 3];
    for (y, out_row) in ys.iter().zip(out.chunks_exact_mut(size * 3)) {
        let top_row = &src[y.lower * stride..][..stride];
        let bottom_row = &src[y.upper * stride..][..stride];
        for (x, out_pixel) in xs.iter().zip(out_row.chunks_exact_mut(3)) {
            let (left, right) = (x.lower * 3, x.upper * 3);
            for (c, o) in out_pixel.iter_mut().enumerate() {
                let top_left = f32::from(top_row[left + c]);
                let top = top_left + (f32::from(top_row[right + c]) - top_left) * x.lerp;
                let bottom_left = f32::from(bottom_row[left + c]);
                let bottom =
                    bottom_left + (f32::from(bottom_row[right + c]) - bottom_left) * x.lerp;
                *o = top + (bottom - top) * y.lerp;
            }
        }
    }
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
/// clipped: the cubic overshoots [0, 255] near sharp edges, as TensorFlow's does. Each output is
/// the column interpolation of the four rows, then the row interpolation of those four values,
/// TensorFlow's order of operations.
pub fn resize_bicubic(image: &RgbImage, crop: CropBox, size: usize) -> Vec<f32> {
    let xs = cubic_taps(crop.width, size, crop.x);
    let ys = cubic_taps(crop.height, size, crop.y);
    let stride = image.width() as usize * 3;
    let src = image.as_raw();
    let mut out = vec![0f32; size * size * 3];
    for (y, out_row) in ys.iter().zip(out.chunks_exact_mut(size * 3)) {
        let rows = y.index.map(|r| &src[r * stride..][..stride]);
        for (x, out_pixel) in xs.iter().zip(out_row.chunks_exact_mut(3)) {
            for (c, o) in out_pixel.iter_mut().enumerate() {
                let columns = x
                    .index
                    .map(|col| cubic(&y.weight, rows.map(|row| f32::from(row[col * 3 + c]))));
                *o = cubic(&x.weight, columns);
            }
        }
    }
    out
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
