//! TFRecord input and TensorBoard output against independent implementations (issue 34): records
//! written by the PyPI `tfrecord` package read back identically in both ImageNet layouts, our
//! shards read by it (with every masked CRC-32C checked by the `crc32c` package), damaged and
//! truncated shards skipped with the shard and record named, and a short training run from
//! packed TFRecords whose TensorBoard event files TensorBoard's own reader reads with the scalars
//! of metrics.jsonl. The Python side is `tools/tfrecord_reference.py` in a pinned environment
//! installed into the user cache on first use.

mod data_support;
mod python_env;
mod run_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use effnetv2::data::tfrecord::Layout;
use effnetv2::data::{
    pack_tfrecords, AugmentOn, AugmentSettings, Batch, EvalConfig, FileShare, ImageFolder, Loader,
    LoaderConfig, Normalization, Policy, Preprocessing, Shard, Source, TfRecordShards,
};
use effnetv2::storage::Location;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Discard, Metric};
use effnetv2::trainer::input::{DataSpec, TfRecordData};
use effnetv2::trainer::run::train;
use python_env::venv_python;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A local folder as a data location.
fn local(dir: &Path) -> Location {
    Location::Local(dir.to_path_buf())
}

/// What the reference environment installs.
const REQUIREMENTS: [&str; 3] = [
    "tfrecord==1.14.6",
    "crc32c==2.9.post0",
    "tensorboard==2.21.0",
];

/// The reference environment's Python (created once).
fn python() -> PathBuf {
    venv_python("tfrecord-venv", &REQUIREMENTS)
}

/// Runs `tools/tfrecord_reference.py` with `args` and parses what it prints.
fn reference(args: &[&std::ffi::OsStr]) -> Value {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tfrecord_reference.py");
    let output = Command::new(python())
        .arg(tool)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// Pictures of the fixtures: the first `jpegs` ImageNet JPEGs and `pngs` Fashion-MNIST PNGs.
fn pictures(jpegs: usize, pngs: usize) -> Vec<PathBuf> {
    let dir = data_support::foolbox_data();
    let mut found = data_support::files(&dir, "imagenet_", ".jpg");
    found.truncate(jpegs);
    found.extend(
        data_support::files(&dir, "fashionMNIST_", ".png")
            .into_iter()
            .take(pngs),
    );
    found
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Picture `i` of 10 has class `i % 3`.
const CLASSES: usize = 3;

#[test]
fn records_written_by_the_tfrecord_package_are_read_identically_in_both_layouts() {
    let root = tempfile::tempdir().unwrap();
    let pictures = pictures(6, 4);
    let synset = |class: usize| format!("n0000000{class}");
    let mut shards = Vec::new();
    let mut expected: BTreeMap<(&str, &str), Vec<(PathBuf, usize)>> = BTreeMap::new();
    for (layout, dir_name) in [("imagenet", "gcs"), ("tfds", "tfds")] {
        let dir = root.path().join(dir_name);
        std::fs::create_dir_all(&dir).unwrap();
        // Train: two shards of 4 and 3; validation: one shard of 3.
        for (split, range, shard, of) in [
            ("train", 0..4, 0, 2),
            ("train", 4..7, 1, 2),
            ("validation", 7..10, 0, 1),
        ] {
            let name = match layout {
                "imagenet" => format!("{split}-{shard:05}-of-{of:05}"),
                _ => format!("imagenet2012-{split}.tfrecord-{shard:05}-of-{of:05}"),
            };
            let records: Vec<Value> = range
                .map(|i| {
                    let picture = &pictures[i];
                    let class = i % CLASSES;
                    expected
                        .entry((layout, split))
                        .or_default()
                        .push((picture.clone(), class));
                    let file = picture.file_name().unwrap().to_string_lossy().into_owned();
                    let features = match layout {
                        "imagenet" => json!({
                            "image/encoded": ["byte", picture],
                            "image/format": ["byte", {"text": "JPEG"}],
                            "image/class/label": ["int", class + 1],
                            "image/class/synset": ["byte", {"text": synset(class)}],
                            "image/filename": ["byte", {"text": file}],
                            "image/height": ["int", 28],
                        }),
                        _ => json!({
                            "image": ["byte", picture],
                            "label": ["int", class],
                            "file_name": ["byte", {"text": file}],
                        }),
                    };
                    json!({ "features": features })
                })
                .collect();
            shards.push(json!({"path": dir.join(name), "records": records}));
        }
    }
    let tfds_names = ["tench", "goldfish", "great white shark"].join("\n");
    std::fs::write(root.path().join("tfds/label.labels.txt"), tfds_names + "\n").unwrap();
    let spec = root.path().join("spec.json");
    std::fs::write(&spec, json!({ "shards": shards }).to_string()).unwrap();
    reference(&["write".as_ref(), spec.as_os_str()]);

    for (layout, dir_name, names) in [
        (
            Layout::ImagenetToGcs,
            "gcs",
            (0..CLASSES).map(synset).collect::<Vec<_>>(),
        ),
        (
            Layout::Tfds,
            "tfds",
            vec![
                "tench".into(),
                "goldfish".into(),
                "great white shark".into(),
            ],
        ),
    ] {
        let dir = root.path().join(dir_name);
        let data: DataSpec = dir.to_str().unwrap().parse().unwrap();
        assert_eq!(
            data,
            DataSpec::TfRecord(TfRecordData {
                location: local(&dir),
                layout: Some(layout),
            }),
            "the layout is detected from the file names"
        );
        assert_eq!(data.class_names().unwrap(), names);
        let key = if layout == Layout::Tfds {
            "tfds"
        } else {
            "imagenet"
        };
        let (train, val) = data.open().unwrap();
        for (split, source) in [("train", train), ("validation", val)] {
            let want = &expected[&(key, split)];
            assert_eq!(source.len(), want.len(), "{dir_name} {split}");
            assert_eq!(source.class_names(), &names[..]);
            for (index, (picture, class)) in want.iter().enumerate() {
                assert_eq!(source.label(index), *class, "{dir_name} {split} {index}");
                let decoded = source.load(index).unwrap();
                let direct = image::open(picture).unwrap().to_rgb8();
                assert_eq!(decoded, direct, "{dir_name} {split} {index}");
            }
        }
        let train = TfRecordShards::open(&local(&dir), layout, "train", FileShare::ALL).unwrap();
        for (index, (picture, _)) in expected[&(key, "train")].iter().enumerate() {
            let example = train.load_example(index).unwrap();
            assert_eq!(example.encoded, std::fs::read(picture).unwrap());
        }
    }
}

/// `root/c<k>/<file>` with picture `i` in class `i % 3`.
fn class_folder(root: &Path, pictures: &[PathBuf]) -> ImageFolder {
    for (i, picture) in pictures.iter().enumerate() {
        let dir = root.join(format!("c{}", i % CLASSES));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(picture, dir.join(picture.file_name().unwrap())).unwrap();
    }
    ImageFolder::open(root).unwrap()
}

#[test]
fn our_shards_are_read_by_the_tfrecord_package_with_their_crcs_checked() {
    let root = tempfile::tempdir().unwrap();
    let folder = class_folder(&root.path().join("images"), &pictures(5, 3));
    let out = root.path().join("shards");
    let paths = pack_tfrecords(&folder, &out, 3, "train", None).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "train-00000-of-00003",
            "train-00001-of-00003",
            "train-00002-of-00003"
        ]
    );
    let mut args: Vec<&std::ffi::OsStr> = vec!["read".as_ref()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let read = reference(&args);
    let records: Vec<&Value> = read
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|shard| shard.as_array().unwrap())
        .collect();
    assert_eq!(records.len(), folder.len());
    for (index, record) in records.iter().enumerate() {
        let bytes = std::fs::read(folder.path(index)).unwrap();
        let class = folder.label(index);
        let format = if folder.file_name(index).ends_with(".png") {
            "PNG"
        } else {
            "JPEG"
        };
        assert_eq!(
            record["image/encoded"],
            json!(sha256(&bytes)),
            "record {index}"
        );
        assert_eq!(
            record["image/class/label"],
            json!([class + 1]),
            "record {index}"
        );
        assert_eq!(record["image/class/synset"], json!(format!("c{class}")));
        assert_eq!(record["image/filename"], json!(folder.file_name(index)));
        assert_eq!(record["image/format"], json!(format));
    }
    assert_eq!(
        std::fs::read_to_string(out.join("labels.txt")).unwrap(),
        "c0\nc1\nc2\n"
    );
}

/// Offsets of the records of a shard, read from their length fields.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        offsets.push(at);
        at += 16 + u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    }
    offsets
}

#[test]
fn damaged_records_are_skipped_counted_and_named() {
    let root = tempfile::tempdir().unwrap();
    let folder = class_folder(&root.path().join("images"), &pictures(6, 3));
    let out = root.path().join("shards");
    let paths = pack_tfrecords(&folder, &out, 3, "train", None).unwrap();
    // Shard 0: a flipped bit in the payload of record 1. Shard 1: cut inside record 2.
    // Shard 2: a flipped bit in the length of record 1, which loses the rest of the shard.
    let mut first = std::fs::read(&paths[0]).unwrap();
    let at = record_offsets(&first)[1] + 12 + 100;
    first[at] ^= 0x04;
    std::fs::write(&paths[0], &first).unwrap();
    let second = std::fs::read(&paths[1]).unwrap();
    let cut = record_offsets(&second)[2] + 40;
    std::fs::write(&paths[1], &second[..cut]).unwrap();
    let mut third = std::fs::read(&paths[2]).unwrap();
    let at = record_offsets(&third)[1] + 3;
    third[at] ^= 0x01;
    std::fs::write(&paths[2], &third).unwrap();

    let source =
        TfRecordShards::open(&local(&out), Layout::ImagenetToGcs, "train", FileShare::ALL).unwrap();
    assert_eq!(
        source.len(),
        3 + 3 + 2,
        "the length damage hides record 2 of shard 2"
    );
    let errors: Vec<(usize, String)> = (0..source.len())
        .filter_map(|i| source.load(i).err().map(|e| (i, e.to_string())))
        .collect();
    let shard = |k: usize| paths[k].display().to_string();
    assert_eq!(
        errors,
        [
            (
                1,
                format!(
                    "TFRecord shard {}, record 1: the data does not match its CRC",
                    shard(0)
                )
            ),
            (
                5,
                format!(
                    "TFRecord shard {}, record 2: the file ends inside it (truncated)",
                    shard(1)
                )
            ),
            (
                7,
                format!(
                    "TFRecord shard {}, record 1: the length does not match its CRC (the rest \
                     of the file cannot be framed)",
                    shard(2)
                )
            ),
        ]
    );
    // Without labels.txt the open reads every record whole (for the synsets): same verdicts.
    std::fs::remove_file(out.join("labels.txt")).unwrap();
    let read_whole =
        TfRecordShards::open(&local(&out), Layout::ImagenetToGcs, "train", FileShare::ALL).unwrap();
    assert_eq!(read_whole.class_names(), ["c0", "c1", "c2"]);
    let again: Vec<(usize, String)> = (0..read_whole.len())
        .filter_map(|i| read_whole.load(i).err().map(|e| (i, e.to_string())))
        .collect();
    assert_eq!(again, errors);
    // The loader leaves them out of the epoch and counts them like corrupt images.
    let mut eval = Loader::eval(
        Arc::new(source),
        EvalConfig {
            batch: 4,
            image_size: 16,
            workers: 2,
            queue_depth: 1,
            preprocessing: Preprocessing::Standard,
            normalization: Normalization::CENTRED,
            settings: Default::default(),
        },
    )
    .unwrap();
    let delivered: usize = eval.by_ref().map(|b| b.unwrap().len()).sum();
    assert_eq!(delivered, 5);
    let report = eval.last_epoch_report().unwrap();
    let skipped: Vec<usize> = report.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, [1, 5, 7]);
}

#[test]
fn a_tiny_run_trains_from_packed_tfrecords_and_tensorboard_reads_its_curves() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("images");
    class_folder(&folder, &pictures(0, 20));
    let data = root.path().join("tfrecords");
    for split in ["train", "validation"] {
        let output = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
            .args([
                "data",
                "pack",
                "--format",
                "tfrecord",
                "--images-per-shard",
                "8",
            ])
            .args(["--split", split])
            .arg(&folder)
            .arg(&data)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let out = root.path().join("run");
    let config = RunConfig {
        data: data.to_str().unwrap().parse().unwrap(),
        batch: 4,
        epochs: 2.0,
        stages: Some(2),
        eval_batch: 10,
        eval_limit: None,
        ..run_common::short_run(&out, 10, 2)
    };
    // Stopped after a checkpoint in the first stage and resumed: the resumed part writes a new
    // event file (in the same process, likely the same second).
    let stopped = RunConfig {
        stop_after: Some(3),
        ..config.clone()
    };
    let never = AtomicBool::new(false);
    let first = train(&stopped, false, &never, &mut Discard).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!first.completed);
    let summary = train(&config, true, &never, &mut Discard).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.completed);
    assert_eq!(
        std::fs::read_dir(out.join("tensorboard")).unwrap().count(),
        2
    );

    let metrics: Vec<Metric> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut want: BTreeMap<&str, Vec<(u64, f32)>> = BTreeMap::new();
    let mut last_step = 0;
    for metric in &metrics {
        let mut put =
            |tag, step, value: f64| want.entry(tag).or_default().push((step, value as f32));
        match metric {
            Metric::Step(r) => {
                last_step = r.step;
                put("train/loss", r.step, r.loss as f64);
                put("train/accuracy", r.step, r.accuracy as f64);
                put("train/learning_rate", r.step, r.lr);
                put("train/images_per_sec", r.step, r.images_per_sec);
                put("train/infeed_bound", r.step, r.infeed_bound);
                put("train/image_size", r.step, r.image_size as f64);
            }
            Metric::Eval(r) => {
                put("eval/top1", r.step, r.top1);
                put("eval/top5", r.step, r.top5);
            }
            Metric::Stage(s) => {
                put("stage/image_size", last_step, s.image_size as f64);
                put("stage/randaug", last_step, s.randaug);
                put("stage/mixup", last_step, s.mixup);
                put("stage/cutmix", last_step, s.cutmix);
                put("stage/dropout", last_step, s.dropout);
                put("stage/infeed_bound", last_step, s.infeed_bound);
            }
            _ => {}
        }
    }
    assert_eq!(want["train/loss"].len(), 10);
    assert_eq!(want["stage/image_size"].len(), 2);
    assert_eq!(want["train/infeed_bound"].len(), 10);
    let read = reference(&["scalars".as_ref(), out.join("tensorboard").as_os_str()]);
    let got: BTreeMap<&str, Vec<(u64, f32)>> = read
        .as_object()
        .unwrap()
        .iter()
        .map(|(tag, points)| {
            let points = points
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap() as f32))
                .collect();
            (tag.as_str(), points)
        })
        .collect();
    assert_eq!(got, want);
}

/// A training loader over TFRecords resumed from a stored cursor (mid-epoch and across an epoch
/// boundary) delivers exactly the batches of the uninterrupted loader, and its shuffled epochs
/// differ and visit every record once.
#[test]
fn a_loader_over_tfrecords_resumes_exactly() {
    let root = tempfile::tempdir().unwrap();
    let folder = class_folder(&root.path().join("images"), &pictures(4, 8));
    let out = root.path().join("shards");
    pack_tfrecords(&folder, &out, 5, "train", None).unwrap();
    let source: Arc<dyn Source> = Arc::new(
        TfRecordShards::open(&local(&out), Layout::ImagenetToGcs, "train", FileShare::ALL).unwrap(),
    );
    let config = LoaderConfig {
        batch: 4,
        image_size: 24,
        magnitude: 10.0,
        preprocessing: Preprocessing::Standard,
        policy: Policy::RandAugment { layers: 2 },
        normalization: Normalization::CENTRED,
        mixup: 0.2,
        cutmix: 0.2,
        seed: 5,
        workers: 2,
        queue_depth: 2,
        drop_last: true,
        shuffle: true,
        settings: AugmentSettings::default(),
        shard: Shard::WHOLE,
        augment_on: AugmentOn::Host,
    };
    let take = |loader: &mut Loader, n: usize| -> Vec<Batch> {
        (0..n).map(|_| loader.next().unwrap().unwrap()).collect()
    };
    let full = take(&mut Loader::new(source.clone(), config).unwrap(), 7);
    let epoch = |e: u64| -> Vec<usize> {
        let mut seen: Vec<usize> = full[3 * e as usize..3 * (e as usize + 1)]
            .iter()
            .flat_map(|b| b.indices.clone())
            .collect();
        seen.sort_unstable();
        seen
    };
    assert_eq!(full[3].epoch, 1);
    assert_eq!(
        epoch(0),
        epoch(1),
        "drop_last keeps the same 12 of 12 records"
    );
    assert_ne!(
        full[0].indices, full[3].indices,
        "each epoch has its own order"
    );
    for stop in [2, 4] {
        let mut interrupted = Loader::new(source.clone(), config).unwrap();
        take(&mut interrupted, stop);
        let cursor = interrupted.cursor();
        drop(interrupted);
        let mut resumed = Loader::new(source.clone(), config).unwrap();
        resumed.resume(cursor).unwrap();
        for (a, b) in take(&mut resumed, 7 - stop).iter().zip(&full[stop..]) {
            assert_eq!(
                (a.epoch, a.position, &a.indices),
                (b.epoch, b.position, &b.indices)
            );
            assert_eq!(a.images, b.images);
            assert_eq!(a.soft_labels, b.soft_labels);
        }
    }
}

/// A record whose class is beyond the labels file's names is skipped, named, like damage.
#[test]
fn a_label_beyond_the_class_names_is_named() {
    let root = tempfile::tempdir().unwrap();
    let folder = class_folder(&root.path().join("images"), &pictures(3, 0));
    let out = root.path().join("shards");
    let paths = pack_tfrecords(&folder, &out, 8, "train", None).unwrap();
    std::fs::write(out.join("labels.txt"), "c0\nc1\n").unwrap();
    let source =
        TfRecordShards::open(&local(&out), Layout::ImagenetToGcs, "train", FileShare::ALL).unwrap();
    let errors: Vec<String> = (0..source.len())
        .filter_map(|i| source.load(i).err().map(|e| e.to_string()))
        .collect();
    assert_eq!(
        errors,
        [format!(
            "TFRecord shard {}, record 2: class 2 (counted from 0) is beyond the 2 class names",
            paths[0].display()
        )]
    );
}

/// A folder with shards of both layouts needs `--data-format`; a path without shards says what
/// was looked for.
#[test]
fn the_layout_is_chosen_when_names_fit_both() {
    let root = tempfile::tempdir().unwrap();
    let folder = class_folder(&root.path().join("images"), &pictures(3, 0));
    let out = root.path().join("shards");
    for split in ["train", "validation"] {
        let shard = pack_tfrecords(&folder, &out, 8, split, None)
            .unwrap()
            .remove(0);
        let tfds = format!("imagenet2012-{split}.tfrecord-00000-of-00001");
        std::fs::copy(&shard, out.join(tfds)).unwrap();
    }
    let data: DataSpec = out.to_str().unwrap().parse().unwrap();
    assert_eq!(
        data,
        DataSpec::TfRecord(TfRecordData {
            location: local(&out),
            layout: None
        })
    );
    let err = data.open().err().unwrap().to_string();
    assert!(
        err.contains("both TFRecord layouts: choose one with --data-format"),
        "{err}"
    );
    let tfds = data.with_layout(Layout::Tfds).unwrap();
    let (train, _) = tfds.open().unwrap();
    assert_eq!(train.len(), 3);
    // The copies hold imagenet_to_gcs Examples, which the TFDS layout names as unreadable.
    assert!(train
        .load(0)
        .unwrap_err()
        .to_string()
        .contains("no feature \"label\""));

    let missing = root.path().join("nothing-here");
    let err = missing.to_str().unwrap().parse::<DataSpec>().unwrap_err();
    assert!(err.contains("no TFRecord training shards"), "{err}");
    assert!(err.contains("train-00000-of-NNNNN"), "{err}");
}

/// Two (and three) simulated hosts of a multi-host run split the shards by file, as
/// `tf.data`'s `shard(num_hosts, host_index)` over file names: each opens only its shards, the
/// shares are disjoint and together all shards, every record is in exactly one. With uneven
/// shares (shards of 6, 6, 6 and 2 records) each host's loader, capped at the smallest host's
/// count as the run caps it, has the same number of steps per epoch, delivered from its own
/// records only.
#[test]
fn hosts_split_the_shards_by_file_with_equal_steps() {
    let root = tempfile::tempdir().unwrap();
    let folder = class_folder(&root.path().join("images"), &pictures(4, 16));
    let out = root.path().join("shards");
    let paths = pack_tfrecords(&folder, &out, 6, "train", None).unwrap();
    assert_eq!(paths.len(), 4);
    let open = |share| TfRecordShards::open(&local(&out), Layout::ImagenetToGcs, "train", share);
    let all = open(FileShare::ALL).unwrap();
    let record_digest =
        |shards: &TfRecordShards, i: usize| sha256(&shards.load_example(i).unwrap().encoded);
    let mut every: Vec<String> = (0..all.len()).map(|i| record_digest(&all, i)).collect();
    every.sort();
    for (hosts, counts) in [(2, vec![12, 8]), (3, vec![8, 6, 6])] {
        let shares: Vec<TfRecordShards> = (0..hosts)
            .map(|host| open(FileShare { host, hosts }).unwrap())
            .collect();
        let mut names: Vec<&str> = shares.iter().flat_map(|s| s.shard_names()).collect();
        names.sort();
        assert_eq!(names, all.shard_names(), "{hosts} hosts: every shard once");
        for (host, share) in shares.iter().enumerate() {
            let expected: Vec<&str> = all
                .shard_names()
                .into_iter()
                .skip(host)
                .step_by(hosts)
                .collect();
            assert_eq!(share.shard_names(), expected, "host {host} of {hosts}");
        }
        assert_eq!(
            shares.iter().map(|s| s.len()).collect::<Vec<_>>(),
            counts,
            "{hosts} hosts"
        );
        let mut seen: Vec<String> = shares
            .iter()
            .flat_map(|s| (0..s.len()).map(move |i| record_digest(s, i)))
            .collect();
        seen.sort();
        assert_eq!(seen, every, "{hosts} hosts: every record once");

        let smallest = *counts.iter().min().unwrap();
        let steps: Vec<usize> = shares
            .into_iter()
            .map(|share| {
                let source: Arc<dyn Source> = Arc::new(share);
                let mut loader = Loader::new(
                    source.clone(),
                    LoaderConfig {
                        batch: 2,
                        image_size: 16,
                        magnitude: 0.0,
                        preprocessing: Preprocessing::Standard,
                        policy: Policy::RandAugment { layers: 0 },
                        normalization: Normalization::CENTRED,
                        mixup: 0.0,
                        cutmix: 0.0,
                        seed: 3,
                        workers: 1,
                        queue_depth: 2,
                        drop_last: true,
                        shuffle: true,
                        settings: AugmentSettings::default(),
                        shard: Shard::WHOLE,
                        augment_on: AugmentOn::Host,
                    },
                )
                .unwrap();
                loader.cap_epoch(smallest).unwrap();
                let epoch: Vec<Batch> = loader
                    .by_ref()
                    .map(Result::unwrap)
                    .take_while(|b| b.epoch == 0)
                    .collect();
                assert!(epoch
                    .iter()
                    .all(|b| b.indices.iter().all(|&i| i < source.len())));
                loader.batches_per_epoch()
            })
            .collect();
        assert_eq!(steps, vec![smallest / 2; hosts], "{hosts} hosts");
    }
    let err = open(FileShare { host: 0, hosts: 5 })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("4 train shards cannot be split by file over 5 hosts"),
        "{err}"
    );
}
