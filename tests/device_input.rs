//! The host side of augmentation on the device (`--augment-on device`): the loader's `u8` images,
//! drawn RandAugment operations and mixing arrays are the host path's draws, so applying them on
//! the host gives the host-mode batch bit for bit; policies a step cannot run are refused.

mod data_support;

use std::path::Path;
use std::sync::Arc;

use data_support::{files, foolbox_data};
use effnetv2::data::mix::CutBox;
use effnetv2::data::transform::randaugment::encoded::{EncodedLayers, EncodedOp};
use effnetv2::data::{
    AugmentOn, AugmentSettings, Batch, DeviceImages, ImageFolder, Loader, LoaderConfig, MixPlan,
    Normalization, Policy, Preprocessing, Shard, Source,
};
use image::RgbImage;

/// A two-class folder of real photos and small PNGs, with one unreadable file.
fn fixture_folder(root: &Path) {
    let data = foolbox_data();
    for (class, prefix, suffix, count) in [
        ("apple", "imagenet_0", ".jpg", 5),
        ("bird", "cifar10_", ".png", 6),
    ] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for path in files(&data, prefix, suffix).into_iter().take(count) {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(root.join("bird").join("broken.png"), b"not a png").unwrap();
}

fn config(augment_on: AugmentOn) -> LoaderConfig {
    LoaderConfig {
        batch: 8,
        shard: Shard::all(2),
        image_size: 24,
        magnitude: 10.0,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 2 },
        normalization: Normalization {
            mean: [120.0, 110.5, 100.25],
            std: [60.0, 57.5, 58.0],
        },
        mixup: 0.3,
        cutmix: 0.4,
        seed: 23,
        workers: 2,
        queue_depth: 2,
        drop_last: true,
        shuffle: true,
        // Small-image constants, so that translations and cutouts stay inside 24 px.
        settings: AugmentSettings {
            translate_const: Some(8.0),
            cutout_const: Some(5.0),
            ..AugmentSettings::default()
        },
        augment_on,
    }
}

fn batches(source: &Arc<dyn Source>, config: LoaderConfig, n: usize) -> Vec<Batch> {
    let mut loader = Loader::new(source.clone(), config).unwrap();
    (0..n).map(|_| loader.next().unwrap().unwrap()).collect()
}

/// What the step does with a device batch, done on the host: each example's operations
/// ([`effnetv2::data::transform::randaugment::Op::apply`]), the normalisation, then each
/// part's mixing arrays as a [`MixPlan`].
fn apply_on_host(
    device: &DeviceImages,
    size: usize,
    parts: usize,
    norm: Normalization,
) -> Vec<f32> {
    let pixels = size * size * 3;
    let mut images = Vec::new();
    for (raw, ops) in device.pixels.chunks(pixels).zip(&device.ops) {
        let mut image = RgbImage::from_raw(size as u32, size as u32, raw.to_vec()).unwrap();
        for op in ops {
            image = op.apply(&image);
        }
        for v in image.as_raw().chunks(3) {
            for (c, &value) in v.iter().enumerate() {
                images.push((f32::from(value) - norm.mean[c]) / norm.std[c]);
            }
        }
    }
    let n = device.ops.len();
    let group = n / parts;
    for (part, images) in images.chunks_mut(group * pixels).enumerate() {
        let rows = part * group..(part + 1) * group;
        let plan = MixPlan {
            size,
            partner: device.mix.partner[rows.clone()]
                .iter()
                .map(|&p| p as usize)
                .collect(),
            weight: device.mix.weight[rows.clone()].to_vec(),
            paste: rows
                .clone()
                .map(|i| {
                    let [x0, x1, y0, y1] = std::array::from_fn(|k| device.mix.paste[i * 4 + k]);
                    CutBox {
                        x0: x0 as usize,
                        x1: x1 as usize,
                        y0: y0 as usize,
                        y1: y1 as usize,
                    }
                })
                .collect(),
            label_weights: vec![(1.0, 0.0); group],
        };
        plan.mix_images(images);
    }
    images
}

#[test]
fn device_batches_applied_on_the_host_are_the_host_batches() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let source: Arc<dyn Source> = Arc::new(ImageFolder::open(dir.path()).unwrap());
    let host = batches(&source, config(AugmentOn::Host), 4);
    let device = batches(&source, config(AugmentOn::Device), 4);
    let norm = config(AugmentOn::Host).normalization;
    let mut repaired = 0;
    let mut mixed = [false; 2];
    for (h, d) in host.iter().zip(&device) {
        assert_eq!(
            (h.epoch, h.position, &h.indices),
            (d.epoch, d.position, &d.indices)
        );
        assert_eq!(h.labels, d.labels);
        assert!(
            h.soft_labels == d.soft_labels,
            "labels are mixed on the host alike"
        );
        assert_eq!(h.skipped, d.skipped);
        repaired += d.skipped.len();
        let inputs = d.images.device().expect("device inputs");
        assert_eq!(inputs.pixels.len(), d.len() * 24 * 24 * 3);
        assert!(inputs.ops.iter().all(|ops| ops.len() == 2));
        // Both parts mix within themselves: partners index their own part of 4.
        assert!(inputs.mix.partner.iter().all(|&p| (0..4).contains(&p)));
        mixed[0] |= inputs.mix.weight.iter().any(|&w| w != 1.0);
        mixed[1] |= inputs
            .mix
            .paste
            .chunks(4)
            .any(|b| b[0] < b[1] && b[2] < b[3]);
        let want = h.images.normalised().expect("host images");
        let got = apply_on_host(inputs, 24, 2, norm);
        assert!(got == want, "batch at {} differs", d.position);
        // The stage parameters encode the drawn operations at their row-major slots.
        let mut encoded = EncodedLayers::identity(2, d.len());
        for (example, ops) in inputs.ops.iter().enumerate() {
            for (layer, op) in ops.iter().enumerate() {
                encoded.set(layer, example, &EncodedOp::of(op, 24, 24));
            }
        }
        assert_eq!(inputs.augment, encoded);
    }
    assert!(repaired > 0, "the unreadable file was met and repaired");
    assert_eq!(mixed, [true, true], "mixup and CutMix both drawn");
}

#[test]
fn a_stage_without_mixing_sends_arrays_that_mix_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let source: Arc<dyn Source> = Arc::new(ImageFolder::open(dir.path()).unwrap());
    let plain = LoaderConfig {
        mixup: 0.0,
        cutmix: 0.0,
        ..config(AugmentOn::Device)
    };
    for batch in batches(&source, plain, 2) {
        let inputs = batch.images.device().unwrap();
        assert!(inputs.mix.is_identity());
        assert_eq!(inputs.mix.partner, [0, 1, 2, 3, 4, 5, 6, 7]);
        let one_hot = batch.soft_labels.iter().all(|&v| v == 0.0 || v == 1.0);
        assert!(one_hot);
    }
}

#[test]
fn policies_a_step_cannot_run_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let source: Arc<dyn Source> = Arc::new(ImageFolder::open(dir.path()).unwrap());
    for (preprocessing, policy, named) in [
        (
            Preprocessing::Legacy,
            Policy::AutoAugmentV0,
            "AutoAugment v0",
        ),
        (
            Preprocessing::Finetune,
            Policy::RandAugment { layers: 0 },
            "fine-tuning transform",
        ),
    ] {
        let refused = LoaderConfig {
            preprocessing,
            policy,
            ..config(AugmentOn::Device)
        };
        let error = Loader::new(source.clone(), refused)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("--augment-on device") && error.contains(named),
            "{error}"
        );
        let on_host = LoaderConfig {
            augment_on: AugmentOn::Host,
            ..refused
        };
        assert!(Loader::new(source.clone(), on_host).is_ok());
    }
}
