//! Throughput of the input pipeline on real JPEGs: images per second per worker thread for
//! decoding alone and for decode + the full training transform at 128, 224 and 300 px, in both
//! official pipelines (standard: random crop, bilinear resize, flip, RandAugment with 2 layers at
//! magnitude 10, normalisation; legacy B0–B3: legacy crop, bicubic resize, flip, AutoAugment v0,
//! normalisation), and the prefetching loader's rate with 1 and 2 workers.
//!
//! Run with `cargo bench --bench data_pipeline`. Fixtures come from PyPI wheels (see
//! `tests/data_support`), cached in the user cache.

#[path = "../tests/data_support/mod.rs"]
mod data_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::{
    decode_rgb, AugmentOn, AugmentSettings, ImageFolder, Loader, LoaderConfig, Normalization,
    Policy, Preprocessing, Shard, TrainTransform,
};

/// Minimum measuring time per figure.
const MEASURE: Duration = Duration::from_secs(3);
const SIZES: [usize; 3] = [128, 224, 300];
const MAGNITUDE: f32 = 10.0;

/// Runs `work(i)` for i = 0, 1, ... until `MEASURE` has passed; returns calls per second.
fn rate(mut work: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < MEASURE {
        work(calls);
        calls += 1;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

fn report(name: &str, files: &[Vec<u8>]) {
    let decode = rate(|i| {
        std::hint::black_box(decode_rgb(&files[i % files.len()], name).expect("fixture decodes"));
    });
    println!("{name}: decode only {decode:8.1} img/s per thread");
    let pipelines = [
        (
            "standard + RandAugment",
            Preprocessing::Standard,
            Policy::RandAugment { layers: 2 },
            Normalization::CENTRED,
        ),
        (
            "legacy + AutoAugment",
            Preprocessing::Legacy,
            Policy::AutoAugmentV0,
            Normalization::IMAGENET,
        ),
    ];
    for (pipeline, preprocessing, policy, normalization) in pipelines {
        for size in SIZES {
            let transform = TrainTransform {
                image_size: size,
                preprocessing,
                policy,
                magnitude: MAGNITUDE,
                settings: AugmentSettings::default(),
                normalization,
            };
            let mut out = vec![0f32; size * size * 3];
            let full = rate(|i| {
                let image = decode_rgb(&files[i % files.len()], name).expect("fixture decodes");
                transform.apply(
                    &image,
                    &mut stream(0, 0, i as u64, Purpose::Augment),
                    &mut out,
                );
                std::hint::black_box(&out);
            });
            println!(
                "{name}: decode + {pipeline} @{size:3} px {full:8.1} img/s per thread \
                 ({:.2}x the time of decoding alone)",
                decode / full
            );
        }
    }
}

/// Loader images per second over an image folder of the fixtures, 224 px, batch 32.
fn loader_rate(root: &std::path::Path, workers: usize) -> f64 {
    let source = Arc::new(ImageFolder::open(root).expect("fixture folder"));
    let config = LoaderConfig {
        batch: 32,
        image_size: 224,
        magnitude: MAGNITUDE,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 2 },
        normalization: Normalization::CENTRED,
        mixup: 0.2,
        cutmix: 0.2,
        seed: 0,
        workers,
        queue_depth: 2,
        drop_last: false,
        shuffle: true,
        settings: AugmentSettings::default(),
        shard: Shard::WHOLE,
        augment_on: AugmentOn::Host,
    };
    let mut loader = Loader::new(source, config).expect("loader");
    loader.next().expect("batch").expect("batch"); // warm-up
    let start = Instant::now();
    let mut images = 0;
    while start.elapsed() < MEASURE {
        images += loader.next().expect("endless").expect("batch").len();
    }
    images as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let progressive: Vec<PathBuf> =
        data_support::files(&data_support::foolbox_data(), "imagenet_", ".jpg");
    let sklearn = data_support::sklearn_images();
    let baseline = vec![sklearn.join("china.jpg"), sklearn.join("flower.jpg")];
    let read = |paths: &[PathBuf]| -> Vec<Vec<u8>> {
        paths
            .iter()
            .map(|p| std::fs::read(p).expect("fixture"))
            .collect()
    };
    report("progressive JPEG (foolbox, 512x512)", &read(&progressive));
    report("baseline JPEG (scikit-learn, 640x427)", &read(&baseline));

    let dir = tempfile::tempdir().expect("temporary folder");
    let class = dir.path().join("photos");
    std::fs::create_dir(&class).expect("class folder");
    for path in progressive.iter().chain(&baseline) {
        std::fs::copy(path, class.join(path.file_name().expect("file name")))
            .expect("copy fixture");
    }
    let one = loader_rate(dir.path(), 1);
    let two = loader_rate(dir.path(), 2);
    println!(
        "loader @224 px, batch 32, mixup+cutmix: 1 worker {one:.1} img/s, 2 workers {two:.1} img/s"
    );
}
