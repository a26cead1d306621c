//! How fast the input pipeline turns a source's images into training inputs: per core, split
//! into decoding, crop + resize (with flip and normalisation) and the augmentation policy, and
//! through the loader with several workers. The numbers feed `effnetv2 bench --data`.
//!
//! Every comparison is measured in alternating turns in the same run (the machine's load drifts,
//! so figures taken one after the other are not comparable): the three per-core variants take
//! turns on the same images, and so do the loaders with one and with N workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{DataError, Result};
use super::loader::{Loader, LoaderConfig, Stage};
use super::rng::{stream, Purpose};
use super::source::Source;
use super::transform::{Policy, TrainTransform};

/// Per-core cost of one training image at one stage, from turns alternating between decoding
/// only, decoding + crop/resize/flip/normalise, and the whole transform on the same images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageCost {
    pub stage: Stage,
    /// Seconds per image to read, draw the crop and decode down to its bottom, as the loader
    /// does ([`TrainTransform::apply_loaded`]).
    pub decode: f64,
    /// Seconds per image to crop, resize, flip and normalise (on top of decoding).
    pub crop_resize: f64,
    /// Seconds per image of the augmentation policy and its `u8` round trip (on top of the
    /// rest); zero when the pipeline has no policy.
    pub augment: f64,
    /// Seconds per image of the host's part of augmentation on the device (on top of decoding):
    /// crop, resize and flip to `u8` and the drawing of the operations
    /// ([`TrainTransform::draw`]); `None` when the policy cannot run on the device.
    pub device_host_part: Option<f64>,
    /// Images that failed to load (skipped, as the loader skips them).
    pub failed: usize,
}

impl StageCost {
    /// Images per second one core turns into training inputs.
    pub fn images_per_second(&self) -> f64 {
        1.0 / (self.decode + self.crop_resize + self.augment)
    }

    /// Images per second one core turns into the inputs of a step that augments on the device.
    pub fn device_images_per_second(&self) -> Option<f64> {
        self.device_host_part.map(|part| 1.0 / (self.decode + part))
    }
}

/// What one turn of the per-core measurement does with an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Decode,
    CropResize,
    Transform,
    /// The host's part of [`AugmentOn::Device`](super::transform::AugmentOn::Device).
    Draw,
}

/// Measures [`StageCost`] of `transform` (at `stage`'s size and magnitude) on `source`:
/// `turns` rounds, each running the variants (the three host ones, and the device mode's host
/// part where the policy runs on the device) in rotating order on the next
/// `images_per_turn` images of the source (cycled), on the calling thread, after one untimed
/// turn that brings the files into the page cache and warms the allocator.
pub fn stage_cost(
    source: &dyn Source,
    transform: TrainTransform,
    stage: Stage,
    turns: usize,
    images_per_turn: usize,
) -> Result<StageCost> {
    if source.is_empty() || turns == 0 || images_per_turn == 0 {
        return Err(DataError::Config(
            "the pipeline benchmark needs at least one image, turn and image per turn".into(),
        ));
    }
    let full = TrainTransform {
        image_size: stage.image_size,
        magnitude: stage.magnitude,
        ..transform
    };
    let no_policy = TrainTransform {
        policy: Policy::RandAugment { layers: 0 },
        ..full
    };
    let mut out = vec![0f32; stage.image_size * stage.image_size * 3];
    let mut seconds = [0f64; 4];
    let mut failed = 0;
    let mut next = 0;
    let on_device = full.check_device().is_ok();
    let works = if on_device {
        &[Work::Decode, Work::CropResize, Work::Transform, Work::Draw][..]
    } else {
        &[Work::Decode, Work::CropResize, Work::Transform][..]
    };
    for index in (0..images_per_turn).map(|i| i % source.len()) {
        let mut rng = stream(0, 0, index as u64, Purpose::Augment);
        // An unusable image is counted in the timed turns.
        let _ = source
            .read(index)
            .and_then(|image| full.apply_loaded(image, &mut rng, &mut out));
    }
    for turn in 0..turns {
        let first = next;
        for k in 0..works.len() {
            let k = (k + turn) % works.len();
            let start = Instant::now();
            for i in first..first + images_per_turn {
                let index = i % source.len();
                let mut rng = stream(0, turn as u64, index as u64, Purpose::Augment);
                let done = source.read(index).and_then(|image| match works[k] {
                    Work::Decode => full.decode_crop(image, &mut rng).map(|decoded| {
                        std::hint::black_box(decoded);
                    }),
                    Work::CropResize => no_policy.apply_loaded(image, &mut rng, &mut out),
                    Work::Transform => full.apply_loaded(image, &mut rng, &mut out),
                    Work::Draw => full.draw_loaded(image, &mut rng).map(|drawn| {
                        std::hint::black_box(drawn);
                    }),
                });
                failed += usize::from(done.is_err() && works[k] == Work::Decode);
                std::hint::black_box(&out);
            }
            seconds[k] += start.elapsed().as_secs_f64();
        }
        next = first + images_per_turn;
    }
    let per_image = seconds.map(|s| s / (turns * images_per_turn) as f64);
    let has_policy = transform.policy != no_policy.policy;
    Ok(StageCost {
        stage,
        decode: per_image[0],
        crop_resize: (per_image[1] - per_image[0]).max(0.0),
        augment: if has_policy {
            (per_image[2] - per_image[1]).max(0.0)
        } else {
            0.0
        },
        device_host_part: on_device.then(|| (per_image[3] - per_image[0]).max(0.0)),
        failed,
    })
}

/// Loader throughput with 1 and with N workers, measured in alternating turns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoaderRates {
    pub workers: usize,
    /// Images per second delivered with one worker.
    pub one: f64,
    /// Images per second delivered with `workers` workers.
    pub many: f64,
}

/// Measures the loader of `config` (its `workers` giving N) against the same loader with one
/// worker: `turns` rounds, each running both for `turn` after one warm-up batch.
pub fn loader_rates(
    source: Arc<dyn Source>,
    config: LoaderConfig,
    turns: usize,
    turn: Duration,
) -> Result<LoaderRates> {
    let mut images = [0usize; 2];
    let mut seconds = [0f64; 2];
    for round in 0..turns {
        for k in [round % 2, 1 - round % 2] {
            let workers = if k == 0 { 1 } else { config.workers };
            let mut loader = Loader::new(
                source.clone(),
                LoaderConfig {
                    workers,
                    seed: round as u64,
                    ..config
                },
            )?;
            next_batch(&mut loader)?;
            let start = Instant::now();
            while start.elapsed() < turn {
                images[k] += next_batch(&mut loader)?;
            }
            seconds[k] += start.elapsed().as_secs_f64();
        }
    }
    Ok(LoaderRates {
        workers: config.workers,
        one: images[0] as f64 / seconds[0],
        many: images[1] as f64 / seconds[1],
    })
}

/// The size of the loader's next batch (a training loader runs over epochs without end).
fn next_batch(loader: &mut Loader) -> Result<usize> {
    let batch = loader
        .next()
        .expect("a training loader runs over epochs without end")?;
    Ok(batch.len())
}

#[cfg(test)]
mod tests {
    use image::RgbImage;

    use super::*;
    use crate::data::decode::LoadedImage;
    use crate::data::transform::{AugmentSettings, Normalization, Preprocessing};

    /// Three images, the second of which fails to load.
    struct OneBroken;

    impl Source for OneBroken {
        fn len(&self) -> usize {
            3
        }
        fn class_names(&self) -> &[String] {
            &[]
        }
        fn label(&self, _: usize) -> usize {
            0
        }
        fn read(&self, index: usize) -> Result<LoadedImage> {
            match index {
                1 => Err(DataError::Truncated {
                    what: "broken.jpg".into(),
                }),
                _ => Ok(LoadedImage::Decoded(RgbImage::from_fn(40, 30, |x, y| {
                    image::Rgb([x as u8 * 6, y as u8 * 8, 90])
                }))),
            }
        }
    }

    fn transform(policy: Policy) -> TrainTransform {
        TrainTransform {
            image_size: 16,
            preprocessing: Preprocessing::Standard,
            policy,
            magnitude: 10.0,
            settings: AugmentSettings::default(),
            normalization: Normalization::CENTRED,
        }
    }

    const STAGE: Stage = Stage {
        image_size: 16,
        magnitude: 10.0,
        mixup: 0.0,
        cutmix: 0.0,
    };

    #[test]
    fn failed_images_are_counted_once_per_visit_and_no_policy_means_no_augment_cost() {
        // 4 turns of 2 images cycle over indices 0..8 % 3: index 1 is visited 3 times.
        let cost = stage_cost(
            &OneBroken,
            transform(Policy::RandAugment { layers: 0 }),
            STAGE,
            4,
            2,
        )
        .unwrap();
        assert_eq!(cost.failed, 3);
        assert_eq!(cost.augment, 0.0);
        assert!(cost.decode > 0.0 && cost.images_per_second().is_finite());
    }

    #[test]
    fn an_empty_measurement_is_refused() {
        let err =
            stage_cost(&OneBroken, transform(Policy::AutoAugmentV0), STAGE, 0, 2).unwrap_err();
        assert!(err.to_string().contains("at least one"), "{err}");
    }
}
