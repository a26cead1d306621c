//! Fuzzing of every file format the project reads (issue 15): JPEG/PNG through the image-folder
//! loader and its transforms, zip shards, TFRecord shards and their tf.train.Examples,
//! Fashion-MNIST IDX files, model-spec JSON, and checkpoints (safetensors plus metadata JSON). Each target starts from valid inputs made here
//! with the project's own writers and feeds mutated copies to the real entry points; see
//! `fuzz_support` for the driver. `EFFNETV2_FUZZ_INPUTS` sets the inputs per target
//! (`tools/fuzz.sh` runs 100,000 each).

mod fuzz_support;
mod run_common;

use std::io::{Cursor as IoCursor, Write};
use std::path::Path;

use effnetv2::data::tfrecord::{masked_crc, ImageExample, Layout};
use effnetv2::data::{
    pack_shards, pack_tfrecords, AugmentSettings, Cursor, EvalTransform, FashionMnist, FileShare,
    ImageFolder, Normalization, Policy, Preprocessing, Source, Split, TfRecordShards,
    TrainTransform, ZipShards,
};
use effnetv2::hlo::Literal;
use effnetv2::model::{load_spec, Model, ScheduleVariant};
use effnetv2::storage::Location;
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::CheckpointMeta;
use flate2::write::GzEncoder;
use flate2::Compression;
use fuzz_support::{fuzz, Target};
use image::{DynamicImage, ImageFormat, RgbImage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A `w`x`h` picture with gradients and an edge, so that every encoder has something to code.
fn picture(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let edge = if x > w / 2 { 200 } else { 30 };
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, edge])
    })
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = IoCursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encoding a seed");
    out.into_inner()
}

/// `image` as a 4:2:0 JPEG with one scan per component (`jpeg-encoder`'s optimised Huffman
/// tables), the layout `decode_rgb` gives to jpeg-decoder, in RGB or as CMYK.
fn separate_scan_jpeg(image: &RgbImage, cmyk: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_2_0);
    encoder.set_optimized_huffman_tables(true);
    let (width, height) = (image.width() as u16, image.height() as u16);
    let encoded = if cmyk {
        let pixels: Vec<u8> = image
            .pixels()
            .flat_map(|p| [p[0], p[1], p[2], 40])
            .collect();
        encoder.encode(&pixels, width, height, jpeg_encoder::ColorType::Cmyk)
    } else {
        encoder.encode(image.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
    };
    encoded.expect("encoding a seed");
    bytes
}

/// PNGs of every colour type the decoder converts (grey, grey+alpha, RGB, RGBA, 16-bit),
/// baseline JPEGs in colour and grey, and JPEGs with one scan per component (RGB, CMYK).
fn image_seeds() -> Vec<Vec<u8>> {
    let rgb = DynamicImage::ImageRgb8(picture(12, 9));
    vec![
        separate_scan_jpeg(&picture(33, 17), false),
        separate_scan_jpeg(&picture(33, 17), true),
        encode(rgb.clone(), ImageFormat::Png),
        encode(DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Png),
        encode(DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Png),
        encode(
            DynamicImage::ImageLumaA8(rgb.to_luma_alpha8()),
            ImageFormat::Png,
        ),
        encode(DynamicImage::ImageRgb16(rgb.to_rgb16()), ImageFormat::Png),
        encode(rgb.clone(), ImageFormat::Jpeg),
        encode(DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Jpeg),
        encode(DynamicImage::ImageRgb8(picture(33, 17)), ImageFormat::Jpeg),
    ]
}

/// Recomputes the CRC of every PNG chunk that fits in the bytes (the decoder rejects a chunk
/// whose CRC does not match, which would stop almost every mutation at the first chunk).
fn repair_png_crcs(parts: &mut [Vec<u8>]) {
    for bytes in parts {
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            continue;
        }
        let mut at = 8;
        while let Some(length) = bytes.get(at..at + 4) {
            let length = u32::from_be_bytes(length.try_into().unwrap()) as usize;
            let Some(end) = (at + 8).checked_add(length) else {
                break;
            };
            if end + 4 > bytes.len() {
                break;
            }
            let mut crc = flate2::Crc::new();
            crc.update(&bytes[at + 4..end]);
            bytes[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
            at = end + 4;
        }
    }
}

/// `error` as the message of a rejected input, after checking that it names the input (`dir` or
/// a file in it): every reader's errors must say which file is bad.
fn rejected(dir: &Path, error: impl std::fmt::Display) -> String {
    let error = error.to_string();
    assert!(
        error.contains(&dir.display().to_string()),
        "the error does not name the input: {error}"
    );
    error
}

/// One image in an image folder, loaded and transformed as the loader does for training and
/// evaluation, in both official pipelines.
fn load_image(dir: &Path) -> Result<(), String> {
    let folder = ImageFolder::open(dir).expect("the folder layout itself is valid");
    let image = folder.load(0).map_err(|e| rejected(dir, e))?;
    let size = 16;
    let mut out = vec![0.0; size * size * 3];
    for (preprocessing, policy) in [
        (Preprocessing::Standard, Policy::RandAugment { layers: 2 }),
        (Preprocessing::Legacy, Policy::AutoAugmentV0),
    ] {
        EvalTransform {
            image_size: size,
            preprocessing,
            crop_padding: 32.0,
            normalization: Normalization::IMAGENET,
        }
        .apply(&image, &mut out);
        let train = TrainTransform {
            image_size: size,
            preprocessing,
            policy,
            magnitude: 10.0,
            settings: AugmentSettings::default(),
            normalization: Normalization::IMAGENET,
        };
        train.apply(&image, &mut ChaCha8Rng::seed_from_u64(0), &mut out);
    }
    Ok(())
}

#[test]
fn images() {
    fuzz(&Target {
        name: "images",
        // One class folder with one image (any format: the decoder sniffs the bytes).
        parts: &["class/image.jpg"],
        seeds: image_seeds().into_iter().map(|image| vec![image]).collect(),
        repair: Some(repair_png_crcs),
        run: load_image,
    });
}

/// The shard file and the labels file of the zip target.
const SHARD_PARTS: &[&str] = &["shard-00000-of-00001.zip", "labels.txt"];

/// One shard of three images in two classes and its labels file, written by `pack_shards`.
fn shard_seed(images: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("images");
    for (i, (class, bytes)) in ["ants", "ants", "bees"].iter().zip(images).enumerate() {
        let ext = if bytes.starts_with(b"\x89PNG") {
            "png"
        } else {
            "jpg"
        };
        std::fs::create_dir_all(folder.join(class)).unwrap();
        std::fs::write(folder.join(class).join(format!("{i}.{ext}")), bytes).unwrap();
    }
    let out = root.path().join("shards");
    let shards = pack_shards(&ImageFolder::open(&folder).unwrap(), &out, 8, None).unwrap();
    assert_eq!(shards.len(), 1);
    SHARD_PARTS
        .iter()
        .map(|part| std::fs::read(out.join(part)).unwrap())
        .collect()
}

#[test]
fn zip_shards() {
    let images = image_seeds();
    fuzz(&Target {
        name: "zip_shards",
        parts: SHARD_PARTS,
        seeds: vec![
            shard_seed(&[images[0].clone(), images[5].clone(), images[2].clone()]),
            shard_seed(&[images[6].clone(), images[1].clone(), images[4].clone()]),
        ],
        repair: None,
        run: |dir| {
            let shards = ZipShards::open(dir).map_err(|e| rejected(dir, e))?;
            // Every example, as a training epoch would; an unreadable one rejects the input.
            for index in 0..shards.len() {
                shards.load(index).map_err(|e| rejected(dir, e))?;
            }
            Ok(())
        },
    });
}

/// The shard file and the labels file of the TFRecord target.
const TFRECORD_PARTS: &[&str] = &["train-00000-of-00001", "labels.txt"];

/// One TFRecord shard of three images in two classes and its labels file, written by
/// `pack_tfrecords`.
fn tfrecord_seed(images: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("images");
    for (i, (class, bytes)) in ["ants", "ants", "bees"].iter().zip(images).enumerate() {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        std::fs::write(folder.join(class).join(format!("{i}.png")), bytes).unwrap();
    }
    let out = root.path().join("shards");
    let folder = ImageFolder::open(&folder).unwrap();
    assert_eq!(
        pack_tfrecords(&folder, &out, 8, "train", None)
            .unwrap()
            .len(),
        1
    );
    TFRECORD_PARTS
        .iter()
        .map(|part| std::fs::read(out.join(part)).unwrap())
        .collect()
}

/// Recomputes the length and data CRCs of every record whose framing fits in the shard, so that
/// mutations reach the Example parser and the decoder behind the CRCs.
fn repair_tfrecord_crcs(parts: &mut [Vec<u8>]) {
    let bytes = &mut parts[0];
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let len_bytes: [u8; 8] = bytes[at..at + 8].try_into().unwrap();
        bytes[at + 8..at + 12].copy_from_slice(&masked_crc(&len_bytes).to_le_bytes());
        let Some(end) = usize::try_from(u64::from_le_bytes(len_bytes))
            .ok()
            .and_then(|len| (at + 12).checked_add(len))
            .filter(|end| end + 4 <= bytes.len())
        else {
            break;
        };
        let crc = masked_crc(&bytes[at + 12..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        at = end + 4;
    }
}

#[test]
fn tfrecord_shards() {
    let images = image_seeds();
    fuzz(&Target {
        name: "tfrecord_shards",
        parts: TFRECORD_PARTS,
        seeds: vec![
            tfrecord_seed(&[images[0].clone(), images[5].clone(), images[2].clone()]),
            tfrecord_seed(&[images[6].clone(), images[1].clone(), images[4].clone()]),
        ],
        repair: Some(repair_tfrecord_crcs),
        run: |dir| {
            let shards = TfRecordShards::open(
                &Location::Local(dir.to_path_buf()),
                Layout::ImagenetToGcs,
                "train",
                FileShare::ALL,
            )
            .map_err(|e| rejected(dir, e))?;
            // Every example, as a training epoch would: a damaged one is skipped, and its error
            // must name the shard.
            for index in 0..shards.len() {
                if let Err(e) = shards.load(index) {
                    rejected(dir, e);
                }
            }
            Ok(())
        },
    });
}

#[test]
fn tf_examples() {
    let image = ImageExample {
        encoded: image_seeds()[5].clone(),
        label: 7,
        synset: Some("n01440764".into()),
    };
    fuzz(&Target {
        name: "tf_examples",
        parts: &["example.pb"],
        seeds: [Layout::ImagenetToGcs, Layout::Tfds]
            .iter()
            .map(|layout| vec![layout.encode(&image, "JPEG", "x.jpg")])
            .collect(),
        repair: None,
        run: |dir| {
            let bytes = std::fs::read(dir.join("example.pb")).unwrap();
            let gcs = Layout::ImagenetToGcs.image(&bytes);
            let tfds = Layout::Tfds.image(&bytes);
            // Both parsers see every input; it is accepted when either layout reads it.
            gcs.or(tfds).map(|_| ())
        },
    });
}

/// The test split's file names, uncompressed: the target gzips them, so that mutations reach the
/// IDX reader instead of stopping at the gzip checksum.
const IDX_PARTS: &[&str] = &["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// IDX files of `labels.len()` 28x28 images: the big-endian header (magic, then each
/// dimension), then the bytes.
fn idx_seed(labels: &[u8]) -> Vec<Vec<u8>> {
    let mut images = [0x0803u32, labels.len() as u32, 28, 28]
        .iter()
        .flat_map(|word| word.to_be_bytes())
        .collect::<Vec<u8>>();
    images.extend((0..labels.len() * 28 * 28).map(|i| (i * 7 % 256) as u8));
    let mut label_file = [0x0801u32, labels.len() as u32]
        .iter()
        .flat_map(|word| word.to_be_bytes())
        .collect::<Vec<u8>>();
    label_file.extend_from_slice(labels);
    vec![images, label_file]
}

#[test]
fn fashion_mnist() {
    fuzz(&Target {
        name: "fashion_mnist",
        parts: IDX_PARTS,
        seeds: vec![idx_seed(&[9, 0, 3]), idx_seed(&[5])],
        repair: None,
        run: |dir| {
            for part in IDX_PARTS {
                let raw = std::fs::read(dir.join(part)).unwrap();
                let gz = std::fs::File::create(dir.join(format!("{part}.gz"))).unwrap();
                let mut encoder = GzEncoder::new(gz, Compression::fast());
                encoder.write_all(&raw).unwrap();
                encoder.finish().unwrap();
            }
            let split = FashionMnist::from_dir(dir, Split::Test).map_err(|e| rejected(dir, e))?;
            for index in 0..split.len() {
                assert!(split.label(index) < split.num_classes());
                split
                    .load(index)
                    .expect("a loaded split serves every image");
            }
            Ok(())
        },
    });
}

#[test]
fn model_specs() {
    let graphs = Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs");
    let mut files: Vec<_> = std::fs::read_dir(&graphs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    fuzz(&Target {
        name: "model_specs",
        parts: &["spec.json"],
        seeds: files
            .iter()
            .map(|path| vec![std::fs::read(path).unwrap()])
            .collect(),
        repair: None,
        // What `effnetv2 summary --model spec.json` does, plus the progressive stages a run plans.
        run: |dir| {
            let path = dir.join("spec.json");
            let model = load_spec(&path.display().to_string())
                .and_then(Model::new)
                .map_err(|e| rejected(dir, e))?;
            model.param_counts();
            model.summary(model.spec.image_size.eval);
            for variant in [ScheduleVariant::Official, ScheduleVariant::Paper] {
                if model.spec.stage_ranges(variant).is_ok() {
                    model.spec.progressive_stages(variant, 1000).unwrap();
                }
            }
            Ok(())
        },
    });
}

/// The tensors of the checkpoint seed: one of each element type a state holds.
fn checkpoint_tensors() -> Vec<(String, Literal)> {
    vec![
        (
            "params/w".into(),
            Literal::from_vec(&[2, 3], &[1f32, -2.0, 3.5, 0.0, 1e-3, 7.0]).unwrap(),
        ),
        ("step".into(), Literal::scalar(123i64)),
        (
            "rng".into(),
            Literal::from_vec(&[2], &[1u64, u64::MAX]).unwrap(),
        ),
        (
            "ema/w".into(),
            Literal::from_vec(&[3], &[half::bf16::from_f32(0.5); 3]).unwrap(),
        ),
        (
            "mask".into(),
            Literal::from_vec(&[2, 2], &[true, false, false, true]).unwrap(),
        ),
    ]
}

/// The checkpoint target's metadata: a real run configuration and loader cursor.
fn checkpoint_meta() -> CheckpointMeta {
    CheckpointMeta {
        step: 123,
        cursor: Cursor {
            epoch: 2,
            position: 96,
        },
        config: run_common::short_run(Path::new("runs/fuzz"), 200, 2),
    }
}

const CHECKPOINT_PARTS: &[&str] = &["state.safetensors", "meta.json"];

/// Rewrites the tensor checksums `meta.json` records when the tensors no longer match them, so
/// that mutated tensors reach the type and shape checks behind the checksum test. Inputs whose
/// tensors still match keep their metadata bytes as mutated.
fn repair_checkpoint_crcs(parts: &mut [Vec<u8>]) {
    let [tensors, meta] = parts else {
        unreachable!("a checkpoint input has two parts")
    };
    let Ok(st) = safetensors::SafeTensors::deserialize(tensors) else {
        return;
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(meta) else {
        return;
    };
    let Some(crcs) = value
        .get_mut("tensor_crc32")
        .and_then(|crcs| crcs.as_object_mut())
    else {
        return;
    };
    let mut changed = false;
    for (name, recorded) in crcs.iter_mut() {
        if let Ok(view) = st.tensor(name) {
            let mut crc = flate2::Crc::new();
            crc.update(view.data());
            if recorded.as_u64() != Some(u64::from(crc.sum())) {
                *recorded = crc.sum().into();
                changed = true;
            }
        }
    }
    if changed {
        *meta = serde_json::to_vec_pretty(&value).unwrap();
    }
}

#[test]
fn checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let saved = checkpoint::save(
        root.path(),
        123,
        &checkpoint_tensors(),
        &checkpoint_meta(),
        2,
    )
    .unwrap();
    fuzz(&Target {
        name: "checkpoints",
        parts: CHECKPOINT_PARTS,
        seeds: vec![CHECKPOINT_PARTS
            .iter()
            .map(|part| std::fs::read(saved.local_path().unwrap().join(part)).unwrap())
            .collect()],
        repair: Some(repair_checkpoint_crcs),
        // What resuming a run does: load by the state layout's names and shapes, then compare
        // the saved configuration with this run's.
        run: |dir| {
            let tensors = checkpoint_tensors();
            let expected = tensors.iter().map(|(name, l)| (name.as_str(), l.shape()));
            let (loaded, meta): (Vec<Literal>, CheckpointMeta) =
                checkpoint::load(dir, expected).map_err(|e| rejected(dir, format!("{e:#}")))?;
            assert_eq!(loaded.len(), tensors.len());
            // These errors name the setting that differs, not a file.
            checkpoint_meta()
                .config
                .check_resumable(&meta.config)
                .map_err(|e| format!("{e:#}"))
        },
    });
}
