//! Bilinear resizing with TensorFlow's `tf.image.resize(method="bilinear", antialias=False)`
//! semantics (half-pixel centres, no low-pass filter when shrinking).
//!
//! The `image` crate's resizers widen the filter when downscaling (antialiasing), which gives
//! visibly different pixels from the official pipeline, so this small kernel is written here.

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

/// Resizes the `crop` region of `image` to `size` x `size`; returns row-major RGB floats in
/// [0, 255] (not rounded, as TensorFlow returns them).
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
