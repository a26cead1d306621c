//! `data pack --max-side N`: large JPEGs are stored smaller, everything else byte for byte, with
//! labels and order unchanged, in zip and TFRecord shards alike.
//!
//! The reference for the resized pixels is Lanczos-3 resampling written out here from its
//! definition (separable, antialiased: the kernel widens by the reduction factor, centres at
//! half pixels, weights normalised), in f64 on the original's decoded pixels. The packed image
//! differs from it by the JPEG re-encoding at quality 90 with 4:2:0 chroma, which dominates,
//! and by the resampler's f32 arithmetic and rounding (under one level), which a test of the
//! resampling alone checks tightly; the tolerances are stated at their constants.

mod data_support;

use std::io::Read;
use std::path::Path;

use data_support::{files, foolbox_data, sklearn_images};
use effnetv2::data::source::shrink_jpeg;
use effnetv2::data::tfrecord::Layout;
use effnetv2::data::{
    decode_rgb, pack_shards, pack_tfrecords, FileShare, ImageFolder, MaxSide, Source,
    TfRecordShards, ZipShards,
};
use effnetv2::storage::Location;
use image::RgbImage;

fn lanczos3(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else if x.abs() < 3.0 {
        let px = std::f64::consts::PI * x;
        3.0 * px.sin() * (px / 3.0).sin() / (px * px)
    } else {
        0.0
    }
}

/// Weights of output pixel `i` of `out` over an axis of `len` input pixels: (first tap, weights).
fn taps(i: usize, len: usize, out: usize) -> (usize, Vec<f64>) {
    let scale = len as f64 / out as f64;
    let stretch = scale.max(1.0);
    let centre = (i as f64 + 0.5) * scale;
    let first = (centre - 3.0 * stretch).floor().max(0.0) as usize;
    let last = ((centre + 3.0 * stretch).ceil() as usize).min(len);
    let weights: Vec<f64> = (first..last)
        .map(|j| lanczos3((j as f64 + 0.5 - centre) / stretch))
        .collect();
    let sum: f64 = weights.iter().sum();
    (first, weights.into_iter().map(|w| w / sum).collect())
}

/// `image` resampled to `width` x `height` by the definition above, as f64 RGB values.
fn reference_resize(image: &RgbImage, width: usize, height: usize) -> Vec<[f64; 3]> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut rows = vec![[0f64; 3]; width * h];
    for y in 0..h {
        for x in 0..width {
            let (first, weights) = taps(x, w, width);
            for (k, weight) in weights.iter().enumerate() {
                let p = image.get_pixel((first + k) as u32, y as u32);
                for c in 0..3 {
                    rows[y * width + x][c] += weight * f64::from(p[c]);
                }
            }
        }
    }
    let mut out = vec![[0f64; 3]; width * height];
    for y in 0..height {
        let (first, weights) = taps(y, h, height);
        for x in 0..width {
            for (k, weight) in weights.iter().enumerate() {
                for c in 0..3 {
                    out[y * width + x][c] += weight * rows[(first + k) * width + x][c];
                }
            }
        }
    }
    out
}

/// Mean absolute difference and PSNR of `image` against `reference` (clamped to 0-255).
fn difference(image: &RgbImage, reference: &[[f64; 3]]) -> (f64, f64) {
    let (mut abs, mut squares) = (0f64, 0f64);
    for (p, r) in image.pixels().zip(reference) {
        for c in 0..3 {
            let d = f64::from(p[c]) - r[c].clamp(0.0, 255.0);
            abs += d.abs();
            squares += d * d;
        }
    }
    let n = reference.len() as f64 * 3.0;
    (abs / n, 10.0 * (255.0 * 255.0 / (squares / n)).log10())
}

fn decode(bytes: &[u8]) -> RgbImage {
    decode_rgb(bytes, "packed image").unwrap()
}

/// Two classes: `large` with the two 640x427 scikit-learn photos, `small` with a 512x512
/// foolbox JPEG, a PNG, and a truncated JPEG (which the loader skips and counts).
fn image_folder(root: &Path) -> ImageFolder {
    let sklearn = sklearn_images();
    let foolbox = foolbox_data();
    let large = root.join("large");
    let small = root.join("small");
    std::fs::create_dir_all(&large).unwrap();
    std::fs::create_dir_all(&small).unwrap();
    for name in ["china.jpg", "flower.jpg"] {
        std::fs::copy(sklearn.join(name), large.join(name)).unwrap();
    }
    let jpeg = &files(&foolbox, "imagenet_00", ".jpg")[0];
    std::fs::copy(jpeg, small.join("a_square.jpg")).unwrap();
    let png = &files(&foolbox, "cifar10_00", ".png")[0];
    std::fs::copy(png, small.join("b_cifar.png")).unwrap();
    let whole = std::fs::read(sklearn.join("china.jpg")).unwrap();
    std::fs::write(small.join("c_truncated.jpg"), &whole[..whole.len() / 2]).unwrap();
    ImageFolder::open(root).unwrap()
}

/// The stored bytes of every zip entry, in shard and entry order, with its name.
fn zip_entries(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut entries = Vec::new();
    for shard in files(dir, "shard-", ".zip") {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(shard).unwrap()).unwrap();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            entries.push((entry.name().to_owned(), bytes));
        }
    }
    entries
}

const BOUND: u32 = 512;
/// Tolerances of the resampling alone: f32 arithmetic and rounding to u8 (measured: mean 0.23
/// levels, 59 dB on the photos below).
const RESAMPLE_MEAN: f64 = 0.5;
const RESAMPLE_PSNR: f64 = 50.0;
/// Tolerances of the stored image, dominated by the re-encoding at quality 90 with 4:2:0
/// chroma (measured: mean 3.3 levels, 33.6 dB on the detailed `china.jpg`; independently, a
/// 450x400 window of it packed at 256 px, decoded by Pillow, differs from Pillow's own Lanczos
/// resize of the window by 2.4-3.7 levels per channel).
const JPEG_MEAN: f64 = 4.0;
const JPEG_PSNR: f64 = 32.0;

#[test]
fn shrinking_equals_lanczos3_by_definition_within_rounding() {
    let sklearn = sklearn_images();
    for name in ["china.jpg", "flower.jpg"] {
        let image = decode(&std::fs::read(sklearn.join(name)).unwrap());
        for (bound, size) in [(512, (512, 342)), (300, (300, 200)), (100, (100, 67))] {
            let small = MaxSide::new(bound).unwrap().shrink(&image);
            assert_eq!(small.dimensions(), size, "{name} at {bound}");
            let reference = reference_resize(&image, size.0 as usize, size.1 as usize);
            let (mean, psnr) = difference(&small, &reference);
            assert!(
                mean < RESAMPLE_MEAN && psnr > RESAMPLE_PSNR,
                "{name} at {bound}: mean {mean:.3}, PSNR {psnr:.1} dB"
            );
        }
    }
}

#[test]
fn zip_pack_stores_large_jpegs_at_the_bound_close_to_lanczos_and_the_rest_byte_identical() {
    let root = tempfile::tempdir().unwrap();
    let folder = image_folder(&root.path().join("images"));
    let out = root.path().join("zip");
    let max_side = MaxSide::new(BOUND).unwrap();
    assert_eq!(
        pack_shards(&folder, &out, 2, Some(max_side)).unwrap().len(),
        3
    );

    let entries = zip_entries(&out);
    assert_eq!(entries.len(), folder.len());
    for (index, (name, bytes)) in entries.iter().enumerate() {
        let class = &folder.class_names()[folder.label(index)];
        assert_eq!(name, &format!("{class}/{}", folder.file_name(index)));
        let original = std::fs::read(folder.path(index)).unwrap();
        if class == "small" {
            assert_eq!(bytes, &original, "{name} must be stored as it is");
            continue;
        }
        let packed = decode(bytes);
        // 640x427 -> 512 x 341.6, rounded.
        assert_eq!(packed.dimensions(), (512, 342), "{name}");
        let (mean, psnr) = difference(&packed, &reference_resize(&decode(&original), 512, 342));
        assert!(
            mean < JPEG_MEAN && psnr > JPEG_PSNR,
            "{name}: mean {mean:.3}, PSNR {psnr:.1} dB"
        );
        assert!(bytes.len() < original.len(), "{name}: smaller file");
    }
    let shards = ZipShards::open(&out).unwrap();
    assert_eq!(shards.class_names(), folder.class_names());
    let labels: Vec<usize> = (0..shards.len()).map(|i| shards.label(i)).collect();
    let expected: Vec<usize> = (0..folder.len()).map(|i| folder.label(i)).collect();
    assert_eq!(labels, expected);
    assert!(
        shards.load(folder.len() - 1).is_err(),
        "the truncated JPEG still fails"
    );
}

#[test]
fn tfrecord_pack_stores_the_same_images_as_the_zip_pack_with_labels_and_order_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let folder = image_folder(&root.path().join("images"));
    let max_side = Some(MaxSide::new(BOUND).unwrap());
    let zip = root.path().join("zip");
    pack_shards(&folder, &zip, 8, max_side).unwrap();
    let records = root.path().join("tfrecord");
    pack_tfrecords(&folder, &records, 2, "train", max_side).unwrap();

    let zip = ZipShards::open(&zip).unwrap();
    let records = TfRecordShards::open(
        &Location::Local(records.clone()),
        Layout::ImagenetToGcs,
        "train",
        FileShare::ALL,
    )
    .unwrap();
    assert_eq!(records.len(), folder.len());
    assert_eq!(records.class_names(), folder.class_names());
    for index in 0..folder.len() {
        assert_eq!(
            records.label(index),
            folder.label(index),
            "label of {index}"
        );
        match (zip.load(index), records.load(index)) {
            (Ok(a), Ok(b)) => assert!(a == b, "pixels of {index}"),
            (Err(_), Err(_)) => assert_eq!(folder.file_name(index), "c_truncated.jpg"),
            (a, b) => panic!("example {index}: zip {:?}, TFRecord {:?}", a.err(), b.err()),
        }
    }
    assert_eq!(records.load(0).unwrap().dimensions(), (512, 342));
}

#[test]
fn the_bound_is_validated_with_a_clear_message() {
    for bad in ["0", "31", "65536", "-5", "big", ""] {
        let err = bad.parse::<MaxSide>().unwrap_err().to_string();
        assert!(err.contains("--max-side"), "{bad}: {err}");
    }
    assert_eq!("32".parse::<MaxSide>().unwrap().pixels(), 32);
    assert_eq!("65535".parse::<MaxSide>().unwrap().pixels(), 65535);
}

#[test]
fn the_longer_side_goes_to_the_bound_and_the_aspect_is_kept() {
    let bound = MaxSide::new(256).unwrap();
    assert_eq!(bound.fit(640, 427), (256, 171)); // 170.8
    assert_eq!(bound.fit(427, 640), (171, 256));
    assert_eq!(bound.fit(256, 100), (256, 100));
    assert_eq!(bound.fit(200, 100), (200, 100));
    assert_eq!(bound.fit(10_000, 10), (256, 1)); // 0.256 rounds up to one row
}

#[test]
fn files_that_are_not_decodable_jpegs_are_kept_as_they_are() {
    let bound = MaxSide::new(32).unwrap();
    for bytes in [
        b"\x89PNG\r\n\x1a\n....".to_vec(),
        vec![0xFF, 0xD8, 0xFF, 0x00],
    ] {
        assert_eq!(shrink_jpeg(bytes.clone(), bound, "x").unwrap(), bytes);
    }
}

#[test]
fn the_cli_refuses_a_bad_bound_before_writing_anything() {
    let root = tempfile::tempdir().unwrap();
    let folder = image_folder(&root.path().join("images"));
    let out = root.path().join("out");
    for bad in ["0", "16", "100000", "wide"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_effnetv2"))
            .args(["data", "pack", "--max-side", bad])
            .arg(folder.root())
            .arg(&out)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{bad}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--max-side"), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
    }
    assert!(!out.exists(), "nothing is written for a refused pack");
}
