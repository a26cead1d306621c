//! Pixel-value operations of RandAugment, reproducing the official TensorFlow arithmetic
//! (`autoaugment.py`): f32 maths, truncating casts to `u8`, and its quirks (see each function).

use std::num::NonZeroU64;

use image::RgbImage;

/// Maps every channel value through `f`.
fn map_values(image: &RgbImage, f: impl Fn(u8) -> u8) -> RgbImage {
    let (w, h) = image.dimensions();
    RgbImage::from_raw(w, h, image.as_raw().iter().map(|&v| f(v)).collect())
        .expect("same dimensions as the input")
}

/// An image of the same size whose buffer is `pixels`.
fn with_pixels(like: &RgbImage, pixels: Vec<u8>) -> RgbImage {
    RgbImage::from_raw(like.width(), like.height(), pixels).expect("same dimensions as the input")
}

/// `degenerate + factor * (image - degenerate)`. As in the official `blend`, the result is clipped
/// to [0, 255] only when extrapolating (`factor` outside (0, 1)); interpolated values cannot leave
/// the range anyway. The cast to `u8` truncates.
pub fn blend(degenerate: &RgbImage, image: &RgbImage, factor: f32) -> RgbImage {
    if factor == 0.0 {
        return degenerate.clone();
    }
    if factor == 1.0 {
        return image.clone();
    }
    let mixed = degenerate
        .as_raw()
        .iter()
        .zip(image.as_raw())
        .map(|(&d, &i)| {
            let d = f32::from(d);
            let value = d + factor * (f32::from(i) - d);
            if factor > 0.0 && factor < 1.0 {
                value as u8
            } else {
                value.clamp(0.0, 255.0) as u8
            }
        })
        .collect();
    with_pixels(image, mixed)
}

/// `tf.image.rgb_to_grayscale` on `u8`: channels scaled to [0, 1], weighted by
/// (0.2989, 0.5870, 0.1140), then converted back with TensorFlow's `* 255.5` and truncation.
pub fn grey_level(r: u8, g: u8, b: u8) -> u8 {
    let scale = 1.0f32 / 255.0;
    let grey = f32::from(r) * scale * 0.2989
        + f32::from(g) * scale * 0.5870
        + f32::from(b) * scale * 0.1140;
    (grey * 255.5) as u8
}

/// The image converted to grey and back to three equal channels.
fn greyscale(image: &RgbImage) -> RgbImage {
    let mut out = image.clone();
    for pixel in out.pixels_mut() {
        let [r, g, b] = pixel.0;
        pixel.0 = [grey_level(r, g, b); 3];
    }
    out
}

/// Blend towards the greyscale image (saturation).
pub fn color(image: &RgbImage, factor: f32) -> RgbImage {
    blend(&greyscale(image), image, factor)
}

/// Blend towards a flat grey. Quirk kept: the official code takes the "mean" as
/// `sum(histogram) / 256`, i.e. the *pixel count* / 256 (clipped to 255), not the mean intensity.
pub fn contrast(image: &RgbImage, factor: f32) -> RgbImage {
    let pixel_count = (image.width() * image.height()) as f32;
    let level = (pixel_count / 256.0).clamp(0.0, 255.0) as u8;
    let flat = map_values(image, |_| level);
    blend(&flat, image, factor)
}

/// Blend towards black.
pub fn brightness(image: &RgbImage, factor: f32) -> RgbImage {
    let black = map_values(image, |_| 0);
    blend(&black, image, factor)
}

/// Blend towards a smoothed image: PIL's SMOOTH kernel `[[1,1,1],[1,5,1],[1,1,1]] / 13` over the
/// interior (one-pixel border kept), truncated to `u8` as the official depthwise convolution does
/// (PIL rounds instead). Weights are the f32 values of k/13, summed row by row; TensorFlow's
/// accumulation order inside its convolution is not specified, so a value whose exact result is
/// an integer may, rarely, differ by one there.
pub fn sharpness(image: &RgbImage, factor: f32) -> RgbImage {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let src = image.as_raw();
    let mut smooth = src.clone();
    if w >= 3 && h >= 3 {
        let side = 1.0f32 / 13.0;
        let centre = 5.0f32 / 13.0;
        let stride = w * 3;
        for y in 1..h - 1 {
            let above = &src[(y - 1) * stride..][..stride];
            let row = &src[y * stride..][..stride];
            let below = &src[(y + 1) * stride..][..stride];
            let out = &mut smooth[y * stride..][..stride];
            for (i, o) in out.iter_mut().enumerate().take(stride - 3).skip(3) {
                let v = |r: &[u8], j: usize| f32::from(r[j]);
                let sum = v(above, i - 3) * side
                    + v(above, i) * side
                    + v(above, i + 3) * side
                    + v(row, i - 3) * side
                    + v(row, i) * centre
                    + v(row, i + 3) * side
                    + v(below, i - 3) * side
                    + v(below, i) * side
                    + v(below, i + 3) * side;
                *o = sum.clamp(0.0, 255.0) as u8;
            }
        }
    }
    blend(&with_pixels(image, smooth), image, factor)
}

/// Per-channel histogram equalisation with the official lookup table: `step = (count - count of
/// the highest present value) // 255`, `lut[v] = (cumsum[v - 1] + step // 2) // step`, `lut[0] =
/// 0`; a channel with `step == 0` is left unchanged.
pub fn equalize(image: &RgbImage) -> RgbImage {
    let mut histograms = [[0u64; 256]; 3];
    for pixel in image.as_raw().chunks_exact(3) {
        for (histogram, &v) in histograms.iter_mut().zip(pixel) {
            histogram[usize::from(v)] += 1;
        }
    }
    let luts = histograms.map(|histogram| {
        let total: u64 = histogram.iter().sum();
        let last = histogram
            .iter()
            .rev()
            .find(|&&n| n > 0)
            .copied()
            .unwrap_or(0);
        let Some(step) = NonZeroU64::new((total - last) / 255) else {
            return std::array::from_fn(|v| v as u8);
        };
        let mut lut = [0u8; 256];
        let mut cumulative = 0u64;
        for v in 1..256 {
            cumulative += histogram[v - 1];
            lut[v] = ((cumulative + step.get() / 2) / step).min(255) as u8;
        }
        lut
    });
    map_channels(image, &luts)
}

/// Per-channel stretch of [min, max] to [0, 255] in f32 (`v * scale + offset`, truncated); a flat
/// channel is left unchanged.
pub fn autocontrast(image: &RgbImage) -> RgbImage {
    let (mut lo, mut hi) = ([u8::MAX; 3], [u8::MIN; 3]);
    for pixel in image.as_raw().chunks_exact(3) {
        for c in 0..3 {
            lo[c] = lo[c].min(pixel[c]);
            hi[c] = hi[c].max(pixel[c]);
        }
    }
    let luts: [[u8; 256]; 3] = std::array::from_fn(|c| {
        let (lo, hi) = (f32::from(lo[c]), f32::from(hi[c]));
        if hi <= lo {
            return std::array::from_fn(|v| v as u8);
        }
        let scale = 255.0 / (hi - lo);
        let offset = -lo * scale;
        std::array::from_fn(|v| (v as f32 * scale + offset).clamp(0.0, 255.0) as u8)
    });
    map_channels(image, &luts)
}

/// Maps channel `c` of every pixel through `luts[c]`.
fn map_channels(image: &RgbImage, luts: &[[u8; 256]; 3]) -> RgbImage {
    let mut out = image.as_raw().clone();
    for pixel in out.chunks_exact_mut(3) {
        for (v, lut) in pixel.iter_mut().zip(luts) {
            *v = lut[usize::from(*v)];
        }
    }
    with_pixels(image, out)
}

/// `255 - v`.
pub fn invert(image: &RgbImage) -> RgbImage {
    map_values(image, |v| 255 - v)
}

/// Keeps the top `bits` bits of every value: `(v >> (8 - bits)) << (8 - bits)`. TensorFlow's
/// CPU shift kernels clamp the shift to the type's width minus one, so `bits == 0` (a shift of
/// 8) keeps the top bit, as `bits == 1` does; AutoAugment's `('Posterize', 0.8, 2)` gives
/// `int(2 / 10 * 4) = 0` bits, and so do RandAugment magnitudes below 2.5.
pub fn posterize(image: &RgbImage, bits: u32) -> RgbImage {
    let shift = 8u32.saturating_sub(bits).min(7);
    let mask = 0xffu8 << shift;
    map_values(image, |v| v & mask)
}

/// Inverts values at or above `threshold` (a threshold above 255 inverts nothing).
pub fn solarize(image: &RgbImage, threshold: u32) -> RgbImage {
    map_values(
        image,
        |v| if u32::from(v) < threshold { v } else { 255 - v },
    )
}

/// Adds `addition` (clipped to [0, 255]) to values below `threshold`, leaves the others.
pub fn solarize_add(image: &RgbImage, addition: i32, threshold: u32) -> RgbImage {
    map_values(image, |v| {
        if u32::from(v) < threshold {
            (i32::from(v) + addition).clamp(0, 255) as u8
        } else {
            v
        }
    })
}
