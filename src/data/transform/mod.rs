//! Per-example image transforms of the official S/M/L/XL preprocessing (spec 6.1).

pub mod crop;
pub mod randaugment;
mod resize;
mod settings;

pub use crop::{eval_crop, random_crop, CropBox};
pub use randaugment::RandAugment;
pub use resize::resize_bilinear;
pub use settings::AugmentSettings;

use image::RgbImage;
use rand::Rng;

/// Maps a pixel value in [0, 255] to the network's input range [-1, 1): `(x - 128) / 128`.
pub fn normalize(value: f32) -> f32 {
    (value - 128.0) / 128.0
}

/// The training transform of one progressive-learning stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainTransform {
    /// Output side in pixels.
    pub image_size: usize,
    /// RandAugment policy; `layers == 0` turns it off (then no `u8` rounding happens either, as
    /// in the official code without `augname`).
    pub randaugment: RandAugment,
    /// Crop-area floor and RandAugment pixel constants (official by default).
    pub settings: AugmentSettings,
}

impl TrainTransform {
    /// Random crop, bilinear resize to `image_size`, random horizontal flip, clip and truncate to
    /// `u8`, RandAugment, then `(x - 128) / 128` into `out` (row-major `[size, size, 3]`).
    ///
    /// # Panics
    /// If `out.len() != image_size * image_size * 3` (a caller bug, not bad data).
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng, out: &mut [f32]) {
        let size = self.image_size;
        assert_eq!(
            out.len(),
            size * size * 3,
            "output buffer of the train transform"
        );
        let crop = random_crop(
            image.width(),
            image.height(),
            self.settings.crop_area_min,
            rng,
        );
        let mut pixels = resize_bilinear(image, crop, size);
        if rng.gen::<f32>() < 0.5 {
            flip_rows(&mut pixels, size);
        }
        if self.randaugment.layers == 0 {
            for (o, v) in out.iter_mut().zip(&pixels) {
                *o = normalize(*v);
            }
            return;
        }
        let quantized: Vec<u8> = pixels.iter().map(|v| v.clamp(0.0, 255.0) as u8).collect();
        let quantized = RgbImage::from_raw(size as u32, size as u32, quantized)
            .expect("resize produced size * size * 3 values");
        let augmented = self.randaugment.apply(quantized, &self.settings, rng);
        for (o, &v) in out.iter_mut().zip(augmented.as_raw()) {
            *o = normalize(f32::from(v));
        }
    }
}

/// The evaluation transform: centre crop (below 320 px) or whole image, bilinear resize, then
/// `(x - 128) / 128` into `out` without rounding to `u8`.
///
/// # Panics
/// If `out.len() != image_size * image_size * 3`.
pub fn eval_transform(image: &RgbImage, image_size: usize, crop_padding: f64, out: &mut [f32]) {
    assert_eq!(
        out.len(),
        image_size * image_size * 3,
        "output buffer of the eval transform"
    );
    let crop = eval_crop(image.width(), image.height(), image_size, crop_padding);
    for (o, v) in out.iter_mut().zip(resize_bilinear(image, crop, image_size)) {
        *o = normalize(v);
    }
}

/// Mirrors a row-major `[size, size, 3]` image left to right.
fn flip_rows(pixels: &mut [f32], size: usize) {
    for row in pixels.chunks_exact_mut(size * 3) {
        for x in 0..size / 2 {
            for c in 0..3 {
                row.swap(x * 3 + c, (size - 1 - x) * 3 + c);
            }
        }
    }
}
