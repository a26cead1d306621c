//! Crop boxes: the random training crop of `tf.image.sample_distorted_bounding_box` and the
//! evaluation centre crop of the official preprocessing (spec 6.1).

use rand::Rng;

/// Official range of the crop area as a fraction of the image area (`preprocessing.py`); the
/// lower end is the default of [`AugmentSettings::crop_area_min`](super::AugmentSettings) for the
/// standard pipeline.
pub const AREA_RANGE: (f32, f32) = (0.05, 1.0);
/// Range of the crop aspect ratio (width / height); TensorFlow's default `(0.75, 1.33)`.
pub const ASPECT_RANGE: (f32, f32) = (0.75, 1.33);
/// Attempts before falling back to the whole image.
pub const MAX_ATTEMPTS: usize = 100;
/// Evaluation crops keep `size / (size + CROP_PADDING)` of the short side.
pub const CROP_PADDING: usize = 32;
/// From this evaluation size on, the whole image is resized without cropping.
pub const FULL_RESIZE_FROM: usize = 320;

/// Smallest crop area of the legacy B0–B3 crop (`preprocess_legacy.py`), as a fraction of the
/// image; the default of [`AugmentSettings::crop_area_min`](super::AugmentSettings) there.
pub const LEGACY_AREA_MIN: f32 = 0.08;
/// Aspect-ratio range of the legacy crop: `(3/4, 4/3)`.
pub const LEGACY_ASPECT_RANGE: (f32, f32) = (3.0 / 4.0, 4.0 / 3.0);
/// Attempts of the legacy crop before its centre-crop fallback.
pub const LEGACY_MAX_ATTEMPTS: usize = 10;
/// The legacy crop passes the whole image as its one bounding box and asks a crop to cover at
/// least this fraction of it (`min_object_covered=0.1`), so crops of 8–10 % of the image are
/// drawn and then rejected, using up an attempt.
pub const LEGACY_MIN_OBJECT_COVERED: f32 = 0.1;

/// The constraints of one `tf.image.sample_distorted_bounding_box` call whose only bounding box
/// is the whole image.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CropSampler {
    area_min: f32,
    aspect: (f32, f32),
    max_attempts: usize,
    min_object_covered: f32,
}

/// A rectangle of whole pixels inside an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl CropBox {
    /// The whole `width` x `height` image.
    pub fn whole(width: u32, height: u32) -> Self {
        CropBox {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

/// Draws a training crop of a `width` x `height` image the way TensorFlow's
/// `sample_distorted_bounding_box(area_range=(area_min, 1), min_object_covered=0)` does in the
/// standard pipeline (the official `area_min` is [`AREA_RANGE`]`.0`): per attempt an aspect ratio
/// is drawn uniformly, then a height uniformly between the heights that give the minimum and
/// maximum area at that ratio (so the area is *not* uniform), then a uniform position. When all
/// [`MAX_ATTEMPTS`] fail the whole image is used, which is TensorFlow's fallback.
pub fn random_crop(width: u32, height: u32, area_min: f32, rng: &mut impl Rng) -> CropBox {
    let sampler = CropSampler {
        area_min,
        aspect: ASPECT_RANGE,
        max_attempts: MAX_ATTEMPTS,
        min_object_covered: 0.0,
    };
    sampler
        .sample(width, height, rng)
        .unwrap_or(CropBox::whole(width, height))
}

/// The training crop of the legacy B0–B3 pipeline (`preprocess_legacy._decode_and_random_crop`):
/// the same sampling as [`random_crop`] with [`LEGACY_ASPECT_RANGE`], [`LEGACY_MAX_ATTEMPTS`] and
/// [`LEGACY_MIN_OBJECT_COVERED`] (official `area_min` [`LEGACY_AREA_MIN`]). When no attempt
/// succeeds, or the crop drawn is the whole image, the official code takes the evaluation centre
/// crop for `image_size` instead ([`legacy_eval_crop`]).
pub fn legacy_random_crop(
    width: u32,
    height: u32,
    area_min: f32,
    image_size: usize,
    crop_padding: f64,
    rng: &mut impl Rng,
) -> CropBox {
    let sampler = CropSampler {
        area_min,
        aspect: LEGACY_ASPECT_RANGE,
        max_attempts: LEGACY_MAX_ATTEMPTS,
        min_object_covered: LEGACY_MIN_OBJECT_COVERED,
    };
    let whole = CropBox::whole(width, height);
    match sampler.sample(width, height, rng) {
        Some(crop) if crop != whole => crop,
        _ => legacy_eval_crop(width, height, image_size, crop_padding),
    }
}

impl CropSampler {
    /// A crop satisfying the constraints, or `None` when all attempts fail.
    fn sample(&self, width: u32, height: u32, rng: &mut impl Rng) -> Option<CropBox> {
        let image_area = width as f32 * height as f32;
        let (low, high) = self.aspect;
        (0..self.max_attempts).find_map(|_| {
            let aspect = rng.gen::<f32>() * (high - low) + low;
            try_crop(width as i32, height as i32, aspect, self.area_min, rng).filter(|crop| {
                // TensorFlow's `SatisfiesOverlapConstraints` with the whole image as the box.
                let area = crop.width as f32 * crop.height as f32;
                area >= 1.0 && area / image_area >= self.min_object_covered
            })
        })
    }
}

/// C's `lrintf` under the default rounding mode: to nearest, ties to even.
fn lrint(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// One attempt of TensorFlow's `GenerateRandomCrop`, with its rounding repairs.
fn try_crop(
    width: i32,
    height: i32,
    aspect: f32,
    area_min: f32,
    rng: &mut impl Rng,
) -> Option<CropBox> {
    let min_area = area_min * width as f32 * height as f32;
    let max_area = AREA_RANGE.1 * width as f32 * height as f32;
    let mut crop_h = lrint((min_area / aspect).sqrt());
    let mut max_h = lrint((max_area / aspect).sqrt());
    if lrint(max_h as f32 * aspect) > width {
        // The tallest crop whose rounded width still fits.
        const EPS: f64 = 0.000_000_1;
        max_h = ((f64::from(width) + 0.5 - EPS) / f64::from(aspect)) as i32;
        if lrint(max_h as f32 * aspect) > width {
            max_h -= 1;
        }
    }
    max_h = max_h.min(height);
    crop_h = crop_h.min(max_h);
    if crop_h < max_h {
        crop_h += rng.gen_range(0..=max_h - crop_h);
    }
    let mut crop_w = lrint(crop_h as f32 * aspect);
    let mut area = (crop_w * crop_h) as f32;
    if area < min_area {
        crop_h += 1;
        crop_w = lrint(crop_h as f32 * aspect);
        area = (crop_w * crop_h) as f32;
    }
    if area > max_area {
        crop_h -= 1;
        crop_w = lrint(crop_h as f32 * aspect);
        area = (crop_w * crop_h) as f32;
    }
    if area < min_area
        || area > max_area
        || crop_w > width
        || crop_h > height
        || crop_w <= 0
        || crop_h <= 0
    {
        return None;
    }
    let y = if crop_h < height {
        rng.gen_range(0..height - crop_h)
    } else {
        0
    };
    let x = if crop_w < width {
        rng.gen_range(0..width - crop_w)
    } else {
        0
    };
    Some(CropBox {
        x: x as u32,
        y: y as u32,
        width: crop_w as u32,
        height: crop_h as u32,
    })
}

/// The evaluation crop for `image_size` of the standard pipeline: below [`FULL_RESIZE_FROM`] the
/// centre crop of [`legacy_eval_crop`]; from there on the whole image (its aspect ratio is then
/// not kept by the resize).
pub fn eval_crop(width: u32, height: u32, image_size: usize, crop_padding: f64) -> CropBox {
    if image_size >= FULL_RESIZE_FROM {
        return CropBox::whole(width, height);
    }
    legacy_eval_crop(width, height, image_size, crop_padding)
}

/// A centred square of side `int(size / (size + crop_padding) * min(width, height))` (at least
/// one pixel), offset by `(free + 1) // 2`: the legacy evaluation crop at every size, and the
/// standard one below [`FULL_RESIZE_FROM`].
pub fn legacy_eval_crop(width: u32, height: u32, image_size: usize, crop_padding: f64) -> CropBox {
    let ratio = (image_size as f64 / (image_size as f64 + crop_padding)) as f32;
    let side = ((ratio * width.min(height) as f32) as u32).max(1);
    CropBox {
        x: (width - side).div_ceil(2),
        y: (height - side).div_ceil(2),
        width: side,
        height: side,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_crop_matches_hand_computed_boxes() {
        // 224 / 256 * 427 = 373.625 -> 373; offsets ((640 - 373) + 1) // 2 = 134, (54 + 1) // 2 = 27.
        assert_eq!(
            eval_crop(640, 427, 224, CROP_PADDING as f64),
            CropBox {
                x: 134,
                y: 27,
                width: 373,
                height: 373
            }
        );
        assert_eq!(eval_crop(640, 427, 384, 32.0), CropBox::whole(640, 427));
        assert_eq!(eval_crop(640, 427, 320, 32.0), CropBox::whole(640, 427));
        // A scaled padding for 28 px images keeps 28/32 of the side.
        assert_eq!(eval_crop(28, 28, 28, 4.0).width, 24);
    }

    #[test]
    fn tiny_images_fall_back_to_the_whole_image() {
        // A 1x1 image allows only the 1x1 crop (area 1 >= 0.05, aspect 1).
        let mut rng = crate::data::rng::stream(0, 0, 0, crate::data::rng::Purpose::Augment);
        assert_eq!(
            random_crop(1, 1, AREA_RANGE.0, &mut rng),
            CropBox::whole(1, 1)
        );
        // 1 pixel tall and 100 wide: no ratio in [0.75, 1.33] fits, so the whole image is used.
        assert_eq!(
            random_crop(100, 1, AREA_RANGE.0, &mut rng),
            CropBox::whole(100, 1)
        );
    }
}
