//! Per-example image transforms of the official preprocessing (spec 6.1): the standard pipeline
//! of S/M/L/XL and the legacy one of B0–B3.

pub mod autoaugment;
pub mod crop;
pub mod randaugment;
mod resize;
mod settings;

pub use crop::{eval_crop, legacy_eval_crop, legacy_random_crop, random_crop, CropBox};
pub use randaugment::RandAugment;
pub use resize::{resize_bicubic, resize_bilinear};
pub use settings::AugmentSettings;

use image::RgbImage;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::decode::LoadedImage;
use crate::data::error::{DataError, Result};

/// Which official preprocessing crops and resizes the images. The model's spec decides: the
/// official code sends B0–B3 (`augname = effnetv1_autoaug`) through `preprocess_legacy.py`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocessing {
    /// `preprocessing.py` (S/M/L/XL): training crop of 5–100 % of the area ([`random_crop`]),
    /// bilinear resize; evaluation centre crop below 320 px, the whole image from there on.
    Standard,
    /// `preprocess_legacy.py` (B0–B3): training crop of 8–100 % of the area with a centre-crop
    /// fallback ([`legacy_random_crop`]), bicubic resize ([`resize_bicubic`]); evaluation centre
    /// crop at every size.
    Legacy,
    /// `preprocess_for_finetune` (the official fine-tuning recipes, `augname='ft'`): the whole
    /// image resized bilinearly, no crop; in training a random flip and then a cutout of half
    /// the side filled with uniform noise in [0, 1) after normalisation. No policy runs.
    Finetune,
    /// No random draw at all (`--augment none`, a debugging mode): the whole image resized
    /// bilinearly to the size, in training exactly as in evaluation; no crop, flip, cutout or
    /// policy. Runs that must see the same inputs (two of ours, or ours and another
    /// framework's) use it.
    Deterministic,
}

impl Preprocessing {
    /// The pipeline's resize of the `crop` region of `image` to `size` x `size`, mirrored left to
    /// right when `mirror` is set, one row at a time into `sink(row_index, row)`.
    fn resize_rows(
        self,
        image: &RgbImage,
        crop: CropBox,
        size: usize,
        mirror: bool,
        sink: impl FnMut(usize, &[f32]),
    ) {
        match self {
            Preprocessing::Standard | Preprocessing::Finetune | Preprocessing::Deterministic => {
                resize::bilinear_rows(image, crop, size, mirror, sink)
            }
            Preprocessing::Legacy => resize::bicubic_rows(image, crop, size, mirror, sink),
        }
    }

    /// [`Self::resize_rows`] normalised into `out` (row-major `[size, size, 3]`).
    fn resize_normalised(
        self,
        image: &RgbImage,
        crop: CropBox,
        size: usize,
        mirror: bool,
        normalization: &Normalization,
        out: &mut [f32],
    ) {
        self.resize_rows(image, crop, size, mirror, |i, row| {
            normalization.write(row, &mut out[i * row.len()..][..row.len()])
        });
    }

    /// [`Self::resize_rows`] clipped to [0, 255] and truncated to `u8`, as the official code
    /// casts the resized image before the augmentation policy.
    fn resize_quantized(
        self,
        image: &RgbImage,
        crop: CropBox,
        size: usize,
        mirror: bool,
    ) -> RgbImage {
        let mut quantized = vec![0u8; size * size * 3];
        self.resize_rows(image, crop, size, mirror, |i, row| {
            for (q, v) in quantized[i * row.len()..][..row.len()].iter_mut().zip(row) {
                *q = v.clamp(0.0, 255.0) as u8;
            }
        });
        RgbImage::from_raw(size as u32, size as u32, quantized).expect("size * size * 3 values")
    }

    /// The pipeline's evaluation crop.
    fn eval_crop(self, width: u32, height: u32, image_size: usize, padding: f64) -> CropBox {
        match self {
            Preprocessing::Standard => eval_crop(width, height, image_size, padding),
            Preprocessing::Legacy => legacy_eval_crop(width, height, image_size, padding),
            Preprocessing::Finetune | Preprocessing::Deterministic => CropBox::whole(width, height),
        }
    }
}

/// The augmentation policy run on the `u8` image after crop, resize and flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// RandAugment with `layers` layers at the stage's magnitude (official: 2 layers, S/M/L/XL).
    /// `layers == 0` turns augmentation off, and then no `u8` rounding happens either, as in the
    /// official code without `augname`.
    RandAugment { layers: usize },
    /// AutoAugment policy v0 (official for B0–B3), whose levels are fixed per step: the stage's
    /// magnitude is not used.
    AutoAugmentV0,
}

/// Per-channel normalisation of pixel values on the 0–255 scale: `(x - mean[c]) / std[c]`, the
/// last step of both pipelines. The model's spec holds the values (`input.mean`, `input.std`); it
/// is applied here and nowhere else (the graph takes normalised inputs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The standard pipeline's `(x - 128) / 128`, into [-1, 1).
    pub const CENTRED: Normalization = Normalization {
        mean: [128.0; 3],
        std: [128.0; 3],
    };

    /// The legacy pipeline's ImageNet statistics: `255 * [0.485, 0.456, 0.406]` and
    /// `255 * [0.229, 0.224, 0.225]`.
    pub const IMAGENET: Normalization = Normalization {
        mean: [123.675, 116.28, 103.53],
        std: [58.395, 57.12, 57.375],
    };

    /// Checks for finite means and finite positive deviations.
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::Config(format!(
                "normalisation mean {m} is not finite"
            )));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::Config(format!(
                "normalisation std {s} is not a finite positive number"
            )));
        }
        Ok(())
    }

    /// Writes the normalised `pixels` (row-major RGB) into `out`.
    pub fn write<T: Copy + Into<f32>>(&self, pixels: &[T], out: &mut [f32]) {
        for (o, v) in out.chunks_exact_mut(3).zip(pixels.chunks_exact(3)) {
            for c in 0..3 {
                o[c] = (v[c].into() - self.mean[c]) / self.std[c];
            }
        }
    }
}

/// The training transform of one progressive-learning stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainTransform {
    /// Output side in pixels.
    pub image_size: usize,
    pub preprocessing: Preprocessing,
    pub policy: Policy,
    /// RandAugment magnitude (float, used directly in the level formulas).
    pub magnitude: f32,
    /// Crop-area floor and pixel constants (official by default).
    pub settings: AugmentSettings,
    pub normalization: Normalization,
}

impl TrainTransform {
    /// The pipeline's random crop, resize to `image_size`, random horizontal flip, clip and
    /// truncate to `u8`, the policy, then the normalisation into `out` (row-major
    /// `[size, size, 3]`). [`Preprocessing::Deterministic`] draws nothing from `rng`: it is the
    /// evaluation transform.
    ///
    /// # Panics
    /// If `out.len() != image_size * image_size * 3` (a caller bug, not bad data).
    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng, out: &mut [f32]) {
        let (crop, mirror) = self.crop_and_flip(image.dimensions(), rng);
        self.apply_cropped(image, crop, mirror, rng, out);
    }

    /// [`Self::apply`] to an image not yet decoded: the crop is drawn from the header's
    /// dimensions and only the rows down to its bottom are decoded, which gives the same output
    /// from the same draws. So a JPEG damaged only below the crop window is used for this draw,
    /// where decoding it whole would fail; an image that fails to decode is an error.
    pub fn apply_loaded(
        &self,
        image: LoadedImage,
        rng: &mut impl Rng,
        out: &mut [f32],
    ) -> Result<()> {
        let (image, crop, mirror) = self.decode_crop(image, rng)?;
        self.apply_cropped(&image, crop, mirror, rng, out);
        Ok(())
    }

    /// The first draws of [`Self::apply_loaded`] and [`Self::draw_loaded`], the crop and the
    /// flip, from the header's dimensions, and the image decoded down to the crop's bottom.
    pub(crate) fn decode_crop(
        &self,
        image: LoadedImage,
        rng: &mut impl Rng,
    ) -> Result<(RgbImage, CropBox, bool)> {
        let (crop, mirror) = self.crop_and_flip(image.dimensions()?, rng);
        let image = image.decode_top(crop.y + crop.height)?;
        Ok((image, crop, mirror))
    }

    /// [`Self::apply`] after its first draws, the `crop` of `image` and whether to `mirror` it.
    fn apply_cropped(
        &self,
        image: &RgbImage,
        crop: CropBox,
        mirror: bool,
        rng: &mut impl Rng,
        out: &mut [f32],
    ) {
        let size = self.image_size;
        assert_eq!(
            out.len(),
            size * size * 3,
            "output buffer of the train transform"
        );
        let deterministic = self.preprocessing == Preprocessing::Deterministic;
        let resize_normalised = |out: &mut [f32]| {
            self.preprocessing.resize_normalised(
                image,
                crop,
                size,
                mirror,
                &self.normalization,
                out,
            )
        };
        if deterministic {
            resize_normalised(out);
            return;
        }
        if self.preprocessing == Preprocessing::Finetune {
            resize_normalised(out);
            noise_cutout(out, size, rng);
            return;
        }
        if self.policy == (Policy::RandAugment { layers: 0 }) {
            resize_normalised(out);
            return;
        }
        let quantized = self
            .preprocessing
            .resize_quantized(image, crop, size, mirror);
        let augmented = match self.policy {
            Policy::RandAugment { layers } => RandAugment {
                layers,
                magnitude: self.magnitude,
            }
            .apply(quantized, &self.settings, rng),
            Policy::AutoAugmentV0 => {
                autoaugment::autoaugment_v0(quantized, self.settings.pixel_consts(self.policy), rng)
            }
        };
        self.normalization.write(augmented.as_raw(), out);
    }
}

impl TrainTransform {
    /// The pipeline's random crop of an image of these dimensions and whether to mirror it: the first draws of an
    /// example's stream, whichever side augments it.
    fn crop_and_flip(&self, (width, height): (u32, u32), rng: &mut impl Rng) -> (CropBox, bool) {
        let area_min = self.settings.crop_area_min(self.preprocessing);
        let crop = match self.preprocessing {
            Preprocessing::Standard => random_crop(width, height, area_min, rng),
            Preprocessing::Legacy => legacy_random_crop(
                width,
                height,
                area_min,
                self.image_size,
                self.settings.eval_crop_padding,
                rng,
            ),
            Preprocessing::Finetune | Preprocessing::Deterministic => CropBox::whole(width, height),
        };
        let deterministic = self.preprocessing == Preprocessing::Deterministic;
        let mirror = !deterministic && rng.gen::<f32>() < 0.5;
        (crop, mirror)
    }

    /// Fails unless a step graph can apply this transform's policy ([`AugmentOn::check`]).
    pub fn check_device(&self) -> Result<()> {
        AugmentOn::Device.check(self.preprocessing, self.policy)
    }

    /// The host's part of [`AugmentOn::Device`]: the crop, resize and flip truncated to `u8`
    /// and the policy's RandAugment operations drawn but not applied, with exactly the draws of
    /// [`Self::apply`] from the same stream (the crop, the flip, then per layer the pick and
    /// its argument). With no policy (`layers == 0`) the image is still truncated to `u8`,
    /// where [`Self::apply`] keeps the resize's values: at most one grey level apart.
    ///
    /// # Panics
    /// If [`Self::check_device`] fails (a caller bug: the loader checks it once).
    pub fn draw(&self, image: &RgbImage, rng: &mut impl Rng) -> DrawnExample {
        let (crop, mirror) = self.crop_and_flip(image.dimensions(), rng);
        self.draw_cropped(image, crop, mirror, rng)
    }

    /// [`Self::draw`] from an image not yet decoded, as [`Self::apply_loaded`] is to
    /// [`Self::apply`]: only the rows down to the crop's bottom are decoded.
    ///
    /// # Panics
    /// If [`Self::check_device`] fails.
    pub fn draw_loaded(&self, image: LoadedImage, rng: &mut impl Rng) -> Result<DrawnExample> {
        let (image, crop, mirror) = self.decode_crop(image, rng)?;
        Ok(self.draw_cropped(&image, crop, mirror, rng))
    }

    /// [`Self::draw`] after its first draws, the `crop` of `image` and whether to `mirror` it.
    fn draw_cropped(
        &self,
        image: &RgbImage,
        crop: CropBox,
        mirror: bool,
        rng: &mut impl Rng,
    ) -> DrawnExample {
        let Policy::RandAugment { layers } = self.policy else {
            panic!("{:?} does not run on the device", self.policy);
        };
        assert!(
            self.preprocessing != Preprocessing::Finetune,
            "the fine-tuning transform does not run on the device"
        );
        let size = self.image_size;
        let image = self
            .preprocessing
            .resize_quantized(image, crop, size, mirror);
        let ops = if self.preprocessing == Preprocessing::Deterministic {
            Vec::new()
        } else {
            RandAugment {
                layers,
                magnitude: self.magnitude,
            }
            .draw(size as u32, size as u32, &self.settings, rng)
        };
        DrawnExample { image, ops }
    }
}

/// Where the augmentation policy, the normalisation and mixup/CutMix of training images run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentOn {
    /// All on the host: batches of normalised `f32` images ([`TrainTransform::apply`]).
    #[default]
    Host,
    /// In the train step: the host sends `u8` images after the crop, resize and flip (4x fewer
    /// bytes than `f32`) with the drawn operations and mixing ([`TrainTransform::draw`]).
    Device,
}

impl AugmentOn {
    /// Fails unless `policy` after `preprocessing` can run here: on the host anything; on the
    /// device RandAugment's operations only, after the crop, resize and flip, with nothing
    /// after the normalisation.
    pub fn check(self, preprocessing: Preprocessing, policy: Policy) -> Result<()> {
        let refused = match (self, preprocessing, policy) {
            (AugmentOn::Host, _, _) => return Ok(()),
            (_, _, Policy::AutoAugmentV0) => "AutoAugment v0 (the B0-B3 policy)",
            (_, Preprocessing::Finetune, _) => {
                "the fine-tuning transform (flip and noise cutout, augmentation flip_cutout)"
            }
            _ => return Ok(()),
        };
        Err(DataError::Config(format!(
            "augmentation on the device (--augment-on device) cannot run {refused}: only \
             RandAugment runs in the step graph; use --augment-on host"
        )))
    }
}

impl std::fmt::Display for AugmentOn {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            AugmentOn::Host => "host",
            AugmentOn::Device => "device",
        })
    }
}

impl std::str::FromStr for AugmentOn {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<AugmentOn, String> {
        match s {
            "host" => Ok(AugmentOn::Host),
            "device" => Ok(AugmentOn::Device),
            _ => Err(format!("unknown --augment-on '{s}': use host or device")),
        }
    }
}

/// One training example for [`AugmentOn::Device`]: its image after crop, resize and flip, and
/// the RandAugment operations drawn for it, in the order they apply.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnExample {
    pub image: RgbImage,
    pub ops: Vec<randaugment::Op>,
}

/// The evaluation transform: the pipeline's centre crop, its resize, then the normalisation,
/// without rounding to `u8` (bicubic values beyond [0, 255] are kept, as in the official code).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalTransform {
    /// Output side in pixels.
    pub image_size: usize,
    pub preprocessing: Preprocessing,
    /// The centre crop keeps `size / (size + crop_padding)` of the short side (official 32).
    pub crop_padding: f64,
    pub normalization: Normalization,
}

impl EvalTransform {
    /// Transforms `image` into `out` (row-major `[size, size, 3]`).
    ///
    /// # Panics
    /// If `out.len() != image_size * image_size * 3`.
    pub fn apply(&self, image: &RgbImage, out: &mut [f32]) {
        let size = self.image_size;
        assert_eq!(
            out.len(),
            size * size * 3,
            "output buffer of the eval transform"
        );
        let crop =
            self.preprocessing
                .eval_crop(image.width(), image.height(), size, self.crop_padding);
        self.preprocessing
            .resize_normalised(image, crop, size, false, &self.normalization, out);
    }
}

/// The fine-tuning cutout (`autoaugment.cutout(image, pad_size=size // 4, replace=noise)`): a
/// square of side `2 * (size / 4)` around a uniform centre, clipped to the image, each value
/// replaced by uniform noise in [0, 1) (on the normalised scale, as the official code draws it).
fn noise_cutout(out: &mut [f32], size: usize, rng: &mut impl Rng) {
    let pad = (size / 4) as u32;
    let (cx, cy) = (rng.gen_range(0..size as u32), rng.gen_range(0..size as u32));
    let (xs, ys) = randaugment::geometric::cutout_box(size as u32, size as u32, pad, cx, cy);
    for y in ys {
        for x in xs.clone() {
            let at = (y as usize * size + x as usize) * 3;
            for value in &mut out[at..at + 3] {
                *value = rng.gen::<f32>();
            }
        }
    }
}
