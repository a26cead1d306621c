//! Geometric operations of RandAugment: TensorFlow's projective image transform with nearest
//! sampling, and cutout. Pixels that fall outside the source image become [`FILL`] grey, which is
//! what the official wrap/unwrap alpha-channel trick produces with nearest sampling.

use image::RgbImage;

/// Fill value for uncovered pixels and the cutout square.
pub const FILL: u8 = 128;

/// Applies the projective transform `[a0, a1, a2, b0, b1, b2, c0, c1]`, which maps an *output*
/// pixel (x, y) to the input point `((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)` with
/// `k = c0 x + c1 y + 1`, sampled at the nearest pixel (rounding half away from zero).
pub fn projective(image: &RgbImage, t: Transform) -> RgbImage {
    let (w, h) = image.dimensions();
    let src = image.as_raw();
    let mut out = vec![FILL; src.len()];
    let mut at = 0;
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32, y as f32);
            let k = t[6] * xf + t[7] * yf + 1.0;
            if k != 0.0 {
                let in_x = round_half_away((t[0] * xf + t[1] * yf + t[2]) / k);
                let in_y = round_half_away((t[3] * xf + t[4] * yf + t[5]) / k);
                if (0..w as i32).contains(&in_x) && (0..h as i32).contains(&in_y) {
                    let from = (in_y as usize * w as usize + in_x as usize) * 3;
                    out[at..at + 3].copy_from_slice(&src[from..from + 3]);
                }
            }
            at += 3;
        }
    }
    RgbImage::from_raw(w, h, out).expect("same dimensions as the input")
}

/// C's `std::round` (half away from zero) to an integer, saturating far outside the `i32` range.
/// Written with a truncating cast because `f32::round` is a library call on baseline x86-64,
/// which made it the bottleneck of the geometric ops.
fn round_half_away(v: f32) -> i32 {
    let whole = v as i32;
    let fraction = v - whole as f32;
    if fraction >= 0.5 {
        whole.saturating_add(1)
    } else if fraction <= -0.5 {
        whole.saturating_sub(1)
    } else {
        whole
    }
}

/// A projective transform `[a0, a1, a2, b0, b1, b2, c0, c1]` as [`projective`] takes it.
pub type Transform = [f32; 8];

/// Coefficients rounded to multiples of `2^-GRID_BITS`.
///
/// Then, for images up to 1024 pixels a side, every product and sum of [`projective`]'s
/// coordinate formulas is exact in f32, so no rounding happens before the final one to a pixel:
/// every backend picks the same source pixel whether or not it fuses a multiply and an add into
/// one rounding (XLA's CPU backend does, in the device-side warp), and a coordinate that would
/// land a rounding error away from a half-pixel cannot round differently on the host and on
/// the device. Moving a coefficient by at most `2^-13` moves a source point by at most 0.06
/// pixels on a 300-pixel image.
const GRID_BITS: i32 = 12;

/// `t` with every coefficient on the [`GRID_BITS`] grid.
fn on_grid(t: Transform) -> Transform {
    let scale = (2.0f32).powi(GRID_BITS);
    t.map(|c| (c * scale).round() / scale)
}

/// The transform that samples every output pixel from itself.
pub const IDENTITY: Transform = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];

/// Counter-clockwise rotation by `degrees` about the centre of a `width` x `height` image
/// (`tfa.image.rotate`), its coefficients [`on_grid`] like every constructor's here.
pub fn rotation(width: u32, height: u32, degrees: f32) -> Transform {
    let radians = (f64::from(degrees) * std::f64::consts::PI / 180.0) as f32;
    let (cos, sin) = (radians.cos(), radians.sin());
    let (w1, h1) = ((width - 1) as f32, (height - 1) as f32);
    let x_offset = (w1 - (cos * w1 - sin * h1)) / 2.0;
    let y_offset = (h1 - (sin * w1 + cos * h1)) / 2.0;
    on_grid([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])
}

/// Output (x, y) samples input (x + level * y, y).
pub fn shearing_x(level: f32) -> Transform {
    on_grid([1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
}

/// Output (x, y) samples input (x, level * x + y).
pub fn shearing_y(level: f32) -> Transform {
    on_grid([1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0])
}

/// Output (x, y) samples input (x + pixels, y): content moves left by `pixels`.
pub fn translation_x(pixels: f32) -> Transform {
    on_grid([1.0, 0.0, pixels, 0.0, 1.0, 0.0, 0.0, 0.0])
}

/// Output (x, y) samples input (x, y + pixels): content moves up by `pixels`.
pub fn translation_y(pixels: f32) -> Transform {
    on_grid([1.0, 0.0, 0.0, 0.0, 1.0, pixels, 0.0, 0.0])
}

/// Fills rows `[cy - pad, cy + pad)` x columns `[cx - pad, cx + pad)` (clipped) with [`FILL`].
pub fn cutout(image: &RgbImage, pad: u32, center_x: u32, center_y: u32) -> RgbImage {
    let mut out = image.clone();
    let (w, h) = image.dimensions();
    let (xs, ys) = cutout_box(w, h, pad, center_x, center_y);
    for y in ys {
        for x in xs.clone() {
            out.put_pixel(x, y, image::Rgb([FILL; 3]));
        }
    }
    out
}

/// The columns and rows a cutout of `pad` around (`center_x`, `center_y`) covers in a `w` x `h`
/// image: `[c - pad, c + pad)` clipped to the image.
pub fn cutout_box(
    w: u32,
    h: u32,
    pad: u32,
    center_x: u32,
    center_y: u32,
) -> (std::ops::Range<u32>, std::ops::Range<u32>) {
    (
        center_x.saturating_sub(pad)..(center_x + pad).min(w),
        center_y.saturating_sub(pad)..(center_y + pad).min(h),
    )
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn rounding_matches_round_half_away_from_zero() {
        for v in [
            0.0f32,
            0.49999997,
            0.5,
            1.5,
            2.5,
            -0.5,
            -0.49999997,
            -1.5,
            -2.5,
            7.3,
            -7.7,
            1e9,
        ] {
            assert_eq!(round_half_away(v), v.round() as i32, "{v}");
        }
        assert!(round_half_away(f32::NAN) == 0 && round_half_away(f32::INFINITY) == i32::MAX);
    }
}
