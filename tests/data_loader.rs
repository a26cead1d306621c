//! The prefetching loader: determinism across runs, worker counts and restarts, stage changes,
//! folder vs zip shards, unreadable images, evaluation order, and layout errors.

mod data_support;

use std::path::Path;
use std::sync::Arc;

use data_support::{files, foolbox_data, sklearn_images};
use effnetv2::data::{
    decode_rgb, pack_shards, AugmentOn, AugmentSettings, Batch, Cursor, EvalConfig, EvalTransform,
    ImageFolder, LoadedImage, Loader, LoaderConfig, Normalization, Policy, Preprocessing, Shard,
    Source, Stage, ZipShards,
};

/// A three-class folder of real fixtures: progressive JPEGs, colour PNGs and greyscale PNGs.
fn fixture_folder(root: &Path) {
    let data = foolbox_data();
    for (class, prefix, suffix, count) in [
        ("apple", "imagenet_0", ".jpg", 4),
        ("bird", "cifar10_", ".png", 5),
        ("coat", "fashionMNIST_", ".png", 5),
    ] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for path in files(&data, prefix, suffix).into_iter().take(count) {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
}

fn config() -> LoaderConfig {
    LoaderConfig {
        batch: 4,
        image_size: 32,
        magnitude: 10.0,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 2 },
        normalization: Normalization::CENTRED,
        mixup: 0.2,
        cutmix: 0.2,
        seed: 17,
        workers: 2,
        queue_depth: 2,
        drop_last: false,
        shuffle: true,
        settings: AugmentSettings::default(),
        shard: Shard::WHOLE,
        augment_on: AugmentOn::Host,
    }
}

fn take(loader: &mut Loader, n: usize) -> Vec<Batch> {
    (0..n)
        .map(|_| loader.next().expect("endless").expect("batch"))
        .collect()
}

/// Everything observable about two batch sequences is equal.
fn assert_same(a: &[Batch], b: &[Batch]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.epoch, x.position, x.next), (y.epoch, y.position, y.next));
        assert_eq!(x.indices, y.indices);
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.soft_labels, y.soft_labels);
        assert!(
            x.images == y.images,
            "images differ at epoch {} position {}",
            x.epoch,
            x.position
        );
    }
}

fn folder_source(root: &Path) -> Arc<dyn Source> {
    Arc::new(ImageFolder::open(root).unwrap())
}

#[test]
fn batches_do_not_depend_on_workers_or_runs() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let source = folder_source(dir.path());
    // 14 examples, batch 4: epochs of 4 batches (the last one has 2).
    let one = take(
        &mut Loader::new(
            source.clone(),
            LoaderConfig {
                workers: 1,
                ..config()
            },
        )
        .unwrap(),
        8,
    );
    let three = take(
        &mut Loader::new(
            source.clone(),
            LoaderConfig {
                workers: 3,
                queue_depth: 1,
                ..config()
            },
        )
        .unwrap(),
        8,
    );
    assert_same(&one, &three);
    let again = take(&mut Loader::new(source, config()).unwrap(), 8);
    assert_same(&one, &again);

    let sizes: Vec<usize> = one.iter().map(Batch::len).collect();
    assert_eq!(sizes, [4, 4, 4, 2, 4, 4, 4, 2]);
    assert!(one[3].end_of_epoch && one[4].epoch == 1);
    assert_eq!(one[0].image_dims(), [4, 32, 32, 3]);
    assert_eq!(one[0].soft_labels.len(), 4 * 3);
    // Each epoch visits every example once, in a different order.
    let order = |epoch: &[Batch]| {
        epoch
            .iter()
            .flat_map(|b| b.indices.clone())
            .collect::<Vec<_>>()
    };
    let (first, second) = (order(&one[..4]), order(&one[4..]));
    assert_ne!(first, second);
    for mut o in [first, second] {
        o.sort_unstable();
        assert_eq!(o, (0..14).collect::<Vec<_>>());
    }
    // Mixed labels still sum to one and stay in [0, 1]; images are in [-1, 1].
    for b in &one {
        for row in b.soft_labels.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(b
            .images
            .normalised()
            .unwrap()
            .iter()
            .all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn a_restart_mid_epoch_sees_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let source = folder_source(dir.path());
    let full = take(&mut Loader::new(source.clone(), config()).unwrap(), 6);

    let mut interrupted = Loader::new(source.clone(), config()).unwrap();
    take(&mut interrupted, 2);
    let saved = serde_json::to_string(&interrupted.cursor()).unwrap();
    drop(interrupted);

    let cursor: Cursor = serde_json::from_str(&saved).unwrap();
    assert_eq!(
        cursor,
        Cursor {
            epoch: 0,
            position: 8
        }
    );
    let mut resumed = Loader::new(source, config()).unwrap();
    resumed.resume(cursor).unwrap();
    assert_same(&take(&mut resumed, 4), &full[2..]);
}

#[test]
fn a_stage_change_takes_effect_with_the_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let source = folder_source(dir.path());
    let stage = Stage {
        image_size: 48,
        magnitude: 6.667,
        mixup: 0.0,
        cutmix: 0.0,
    };
    let mut loader = Loader::new(source.clone(), config()).unwrap();
    take(&mut loader, 1);
    loader.set_stage(stage).unwrap();
    assert_eq!(loader.stage(), Some(stage));
    let after = take(&mut loader, 2);
    assert!(after.iter().all(
        |b| b.image_size == 48 && b.images.normalised().unwrap().len() == b.len() * 48 * 48 * 3
    ));
    // No mixing in the new stage: labels are one-hot again.
    assert!(after[0].soft_labels.iter().all(|&v| v == 0.0 || v == 1.0));
    // The same as a loader configured with that stage from the start, resumed at the same place.
    let mut fresh = Loader::new(
        source,
        LoaderConfig {
            image_size: 48,
            magnitude: 6.667,
            mixup: 0.0,
            cutmix: 0.0,
            ..config()
        },
    )
    .unwrap();
    fresh
        .resume(Cursor {
            epoch: 0,
            position: 4,
        })
        .unwrap();
    assert_same(&take(&mut fresh, 2), &after);
}

#[test]
fn zip_shards_yield_the_same_batches_as_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (images, shards) = (dir.path().join("images"), dir.path().join("shards"));
    fixture_folder(&images);
    let folder = ImageFolder::open(&images).unwrap();
    let written = pack_shards(&folder, &shards, 5, None).unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(
        std::fs::read_to_string(shards.join("labels.txt")).unwrap(),
        "apple\nbird\ncoat\n"
    );
    let zipped = ZipShards::open(&shards).unwrap();
    assert_eq!(zipped.len(), folder.len());
    assert_eq!(zipped.class_names(), folder.class_names());
    let from_folder = take(&mut Loader::new(Arc::new(folder), config()).unwrap(), 5);
    let from_zip = take(&mut Loader::new(Arc::new(zipped), config()).unwrap(), 5);
    assert_same(&from_folder, &from_zip);
}

#[test]
fn unreadable_images_are_skipped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let jpeg = std::fs::read(dir.path().join("apple/imagenet_00_243.jpg")).unwrap();
    std::fs::write(
        dir.path().join("apple/truncated.jpg"),
        &jpeg[..jpeg.len() / 3],
    )
    .unwrap();
    std::fs::write(dir.path().join("bird/garbage.png"), b"not an image at all").unwrap();
    let source = folder_source(dir.path());
    assert_eq!(source.len(), 16);

    let mut train = Loader::new(
        source.clone(),
        LoaderConfig {
            drop_last: true,
            ..config()
        },
    )
    .unwrap();
    let epoch = take(&mut train, 4);
    assert!(
        epoch.iter().all(|b| b.len() == 4),
        "training batches keep their size"
    );
    let report = train.last_epoch_report().expect("epoch 0 ended");
    assert_eq!(report.epoch, 0);
    let mut reasons: Vec<&str> = report.skipped.iter().map(|s| s.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.contains("truncated.jpg") && r.contains("truncated")));
    assert!(reasons.iter().any(|r| r.contains("garbage.png")));
    assert!(train.skipped_this_epoch().is_empty());

    let eval = Loader::eval(
        source,
        EvalConfig {
            batch: 5,
            image_size: 24,
            workers: 2,
            queue_depth: 2,
            preprocessing: Preprocessing::Standard,
            normalization: Normalization::CENTRED,
            settings: Default::default(),
        },
    )
    .unwrap();
    let batches: Vec<Batch> = eval.map(Result::unwrap).collect();
    assert_eq!(
        batches.iter().map(Batch::len).sum::<usize>(),
        14,
        "evaluation drops the two"
    );
    assert_eq!(batches.iter().map(|b| b.skipped.len()).sum::<usize>(), 2);
}

/// Joins the batches of several shards, in shard order, into the batches they are parts of.
fn join(shards: &[Vec<Batch>]) -> Vec<Batch> {
    (0..shards[0].len())
        .map(|i| {
            let mut whole = shards[0][i].clone();
            for part in &shards[1..] {
                let part = &part[i];
                assert_eq!(
                    (part.epoch, part.position, part.next),
                    (whole.epoch, whole.position, whole.next)
                );
                whole
                    .images
                    .normalised_mut()
                    .unwrap()
                    .extend_from_slice(part.images.normalised().unwrap());
                whole.soft_labels.extend_from_slice(&part.soft_labels);
                whole.labels.extend_from_slice(&part.labels);
                whole.indices.extend_from_slice(&part.indices);
                whole.skipped.extend(part.skipped.iter().cloned());
            }
            whole
        })
        .collect()
}

#[test]
fn hosts_reading_their_shards_together_read_the_whole_batches() {
    // 16 examples with an unreadable one, batch 16 in 4 replica shares of 4, each share mixed
    // (two mixup, two CutMix examples) and repaired on its own: two hosts of two replicas each
    // read exactly what one host with all four reads, over three epochs.
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    std::fs::write(dir.path().join("bird/garbage.png"), b"not an image at all").unwrap();
    std::fs::copy(
        dir.path().join("apple/imagenet_00_243.jpg"),
        dir.path().join("apple/copy.jpg"),
    )
    .unwrap();
    let source = folder_source(dir.path());
    assert_eq!(source.len(), 16);
    let sharded = |shard| {
        let config = LoaderConfig {
            batch: 16,
            shard,
            drop_last: true,
            ..config()
        };
        take(&mut Loader::new(source.clone(), config).unwrap(), 3)
    };
    let whole = sharded(Shard::all(4));
    assert!(whole.iter().all(|b| b.len() == 16));
    assert_eq!(whole.iter().map(|b| b.skipped.len()).sum::<usize>(), 3);
    assert!(
        whole
            .iter()
            .any(|b| b.soft_labels.iter().any(|&p| p > 0.0 && p < 1.0)),
        "mixing is active"
    );
    let hosts: Vec<Vec<Batch>> = (0..2)
        .map(|host| {
            sharded(Shard {
                groups: 4,
                first: 2 * host,
                len: 2,
            })
        })
        .collect();
    assert!(hosts.iter().flatten().all(|b| b.len() == 8));
    assert_same(&join(&hosts), &whole);
    assert_eq!(
        join(&hosts).iter().map(|b| b.skipped.len()).sum::<usize>(),
        3
    );

    // Mixing within each share differs from mixing the batch as one group.
    let one_group = sharded(Shard::WHOLE);
    assert_eq!(one_group[0].indices, whole[0].indices);
    assert!(one_group[0].images != whole[0].images);

    let uneven = Loader::new(
        source.clone(),
        LoaderConfig {
            batch: 6,
            shard: Shard::all(4),
            drop_last: true,
            ..config()
        },
    );
    let message = uneven.err().expect("6 does not split in 4").to_string();
    assert!(message.contains("equal parts"), "{message}");
    let not_dropping = Loader::new(
        source,
        LoaderConfig {
            batch: 16,
            shard: Shard::all(4),
            ..config()
        },
    );
    let message = not_dropping.err().expect("needs drop_last").to_string();
    assert!(message.contains("drop_last"), "{message}");
}

/// A source that hands over every image of `0` decoded whole: the route before the training
/// transform decoded only down to its crop's bottom.
struct DecodedWhole(Arc<dyn Source>);

impl Source for DecodedWhole {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn class_names(&self) -> &[String] {
        self.0.class_names()
    }

    fn label(&self, index: usize) -> usize {
        self.0.label(index)
    }

    fn read(&self, index: usize) -> effnetv2::data::Result<LoadedImage> {
        self.0.load(index).map(LoadedImage::Decoded)
    }
}

#[test]
fn decoding_down_to_the_crop_gives_the_batches_of_whole_decoding() {
    // Baseline 4:2:0 photos (decoded only down to the crop's bottom) in copies, so that each
    // is cropped differently, progressive JPEGs (decoded whole and cut) and a truncated JPEG.
    let dir = tempfile::tempdir().unwrap();
    for (class, photo) in [("china", "china.jpg"), ("flower", "flower.jpg")] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for copy in 0..4 {
            let to = dir.path().join(class).join(format!("{copy}.jpg"));
            std::fs::copy(sklearn_images().join(photo), to).unwrap();
        }
    }
    let progressive = dir.path().join("imagenet");
    std::fs::create_dir_all(&progressive).unwrap();
    for path in files(&foolbox_data(), "imagenet_0", ".jpg")
        .into_iter()
        .take(3)
    {
        std::fs::copy(&path, progressive.join(path.file_name().unwrap())).unwrap();
    }
    let china = std::fs::read(sklearn_images().join("china.jpg")).unwrap();
    std::fs::write(progressive.join("cut.jpg"), &china[..china.len() / 2]).unwrap();
    let source = folder_source(dir.path());
    for augment_on in [AugmentOn::Host, AugmentOn::Device] {
        let config = LoaderConfig {
            batch: 6,
            image_size: 48,
            augment_on,
            ..config()
        };
        let batches = |source: Arc<dyn Source>| take(&mut Loader::new(source, config).unwrap(), 4);
        let cropped = batches(source.clone());
        let whole = batches(Arc::new(DecodedWhole(source.clone())));
        assert_same(&cropped, &whole);
        let skipped: Vec<_> = cropped.iter().flat_map(|b| b.skipped.clone()).collect();
        assert_eq!(skipped.len(), 2, "{augment_on}: {skipped:?}");
        assert!(
            skipped.iter().all(|s| s.reason.contains("cut.jpg")),
            "{skipped:?}"
        );
    }
}

#[test]
fn evaluation_is_one_ordered_pass_of_the_eval_transform() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    let folder = ImageFolder::open(dir.path()).unwrap();
    let expected_first = {
        let image = decode_rgb(&std::fs::read(folder.path(0)).unwrap(), "first").unwrap();
        let mut out = vec![0f32; 40 * 40 * 3];
        EvalTransform {
            image_size: 40,
            preprocessing: Preprocessing::Standard,
            crop_padding: 32.0,
            normalization: Normalization::CENTRED,
        }
        .apply(&image, &mut out);
        out
    };
    let labels: Vec<i32> = (0..folder.len()).map(|i| folder.label(i) as i32).collect();
    let eval = Loader::eval(
        Arc::new(folder),
        EvalConfig {
            batch: 4,
            image_size: 40,
            workers: 2,
            queue_depth: 1,
            preprocessing: Preprocessing::Standard,
            normalization: Normalization::CENTRED,
            settings: Default::default(),
        },
    )
    .unwrap();
    let batches: Vec<Batch> = eval.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 4);
    assert!(batches[3].end_of_epoch);
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(indices, (0..14).collect::<Vec<_>>());
    assert_eq!(
        batches
            .iter()
            .flat_map(|b| b.labels.clone())
            .collect::<Vec<_>>(),
        labels
    );
    assert_eq!(
        batches[0].images.normalised().unwrap()[..40 * 40 * 3],
        expected_first[..]
    );
}

#[test]
fn layout_and_option_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    fixture_folder(dir.path());
    std::fs::create_dir(dir.path().join("dog")).unwrap();
    let message = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("dog") && message.contains("contains no images"),
        "{message}"
    );

    std::fs::write(dir.path().join("dog/readme.txt"), "notes").unwrap();
    let message = ImageFolder::open(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("readme.txt") && message.contains("extension"),
        "{message}"
    );

    std::fs::remove_dir_all(dir.path().join("dog")).unwrap();
    let source = folder_source(dir.path());
    for (bad, needle) in [
        (
            LoaderConfig {
                batch: 0,
                ..config()
            },
            "batch",
        ),
        (
            LoaderConfig {
                workers: 0,
                ..config()
            },
            "workers",
        ),
        (
            LoaderConfig {
                magnitude: -1.0,
                ..config()
            },
            "magnitude",
        ),
        (
            LoaderConfig {
                cutmix: f32::INFINITY,
                ..config()
            },
            "cutmix",
        ),
        (
            LoaderConfig {
                batch: 20,
                drop_last: true,
                ..config()
            },
            "drop_last",
        ),
        (
            LoaderConfig {
                settings: AugmentSettings {
                    crop_area_min: Some(0.0),
                    ..AugmentSettings::default()
                },
                ..config()
            },
            "crop_area_min",
        ),
    ] {
        let message = Loader::new(source.clone(), bad)
            .err()
            .expect("rejected")
            .to_string();
        assert!(message.contains(needle), "{message}");
    }
    let mut loader = Loader::new(source, config()).unwrap();
    let message = loader
        .resume(Cursor {
            epoch: 0,
            position: 14,
        })
        .unwrap_err()
        .to_string();
    assert!(message.contains("position 14"), "{message}");
}
