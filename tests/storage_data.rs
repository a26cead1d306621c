//! Training data and weights in a bucket, against a real Cloud Storage JSON API server on
//! loopback (`gcp-storage-emulator`, see `storage_common`): TFRecord shards packed by
//! `effnetv2 data pack --format tfrecord` and uploaded train a `tiny` run to the very losses the
//! same run reads from the local shards (also when stopped and resumed); a damaged object is skipped and counted with its URL
//! named; a missing bucket and a prefix without TFRecords are refused naming what is wrong;
//! weights exported to a bucket as a timm state dict are the bytes of a local export, and
//! imported from there (or taken by `train --init`) give the state a local file gives.
//!
//! One test function: `STORAGE_EMULATOR_HOST` is process-wide, and the emulator is started once.

mod data_support;
mod run_common;
mod storage_common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use effnetv2::data::tfrecord::Layout;
use effnetv2::data::{FileShare, Source, TfRecordShards};
use effnetv2::storage::{Location, Store};
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Discard, Metric};
use effnetv2::trainer::input::DataSpec;
use effnetv2::trainer::pretrained::WeightCopy;
use effnetv2::trainer::run::train;
use effnetv2::weights::transfer::{export_timm, import_timm};

/// An image folder of 20 fixture pictures in two classes.
fn image_folder(root: &Path) {
    let pictures = data_support::files(&data_support::foolbox_data(), "fashionMNIST_", ".png");
    assert!(pictures.len() >= 20, "{} fixture pictures", pictures.len());
    for (i, picture) in pictures.iter().take(20).enumerate() {
        let class = root.join(format!("c{}", i % 2));
        std::fs::create_dir_all(&class).unwrap();
        std::fs::copy(picture, class.join(picture.file_name().unwrap())).unwrap();
    }
}

/// Both splits of `images` as TFRecord shards of 8 in `out`, by the command users run.
fn pack(images: &Path, out: &Path) {
    for split in ["train", "validation"] {
        let output = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
            .args(["data", "pack", "--format", "tfrecord"])
            .args(["--images-per-shard", "8", "--split", split])
            .arg(images)
            .arg(out)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
}

/// Uploads every file of `dir` under `store`, each changed by `change` (name, bytes) first.
fn upload(dir: &Path, store: &Store, change: impl Fn(&str, &mut Vec<u8>)) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut bytes = std::fs::read(&path).unwrap();
        change(&name, &mut bytes);
        store.write(&name, &mut &bytes[..]).unwrap();
        names.push(name);
    }
    names.sort();
    names
}

/// The files of the checkpoints of the run at `out` but their metadata (which names `out`), by
/// name.
fn tensor_files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let store = Store::open(&Location::Local(out.join("checkpoints"))).unwrap();
    store
        .list("")
        .unwrap()
        .into_iter()
        .filter(|name| !name.ends_with(".json"))
        .map(|name| {
            let mut bytes = Vec::new();
            store.read(&name).unwrap().read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// The training losses a run wrote to its metrics.jsonl, by step.
fn losses(out: &Path) -> Vec<(u64, f32)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|line| match serde_json::from_str(line).unwrap() {
            Metric::Step(r) => Some((r.step, r.loss)),
            _ => None,
        })
        .collect()
}

/// A short `tiny` run on `data` (5 steps: one epoch of 20 images at batch 4), writing to `out`.
fn config(data: &str, out: &Path) -> RunConfig {
    RunConfig {
        data: data.parse().unwrap_or_else(|e| panic!("{data}: {e}")),
        batch: 4,
        epochs: 1.0,
        stages: Some(1),
        eval_batch: 10,
        eval_limit: None,
        ..run_common::short_run(out, 5, 1)
    }
}

/// Trains [`config`]; its losses.
fn run(data: &str, out: &Path) -> Vec<(u64, f32)> {
    let config = config(data, out);
    let never = AtomicBool::new(false);
    let summary = train(&config, false, &never, &mut Discard).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.completed);
    losses(out)
}

#[test]
fn tfrecords_in_a_bucket_train_as_local_ones_and_damage_is_named() {
    let emulator = storage_common::start_and_use();
    emulator.create_bucket("data");
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("images");
    image_folder(&images);
    let shards = root.path().join("shards");
    pack(&images, &shards);

    // The same run from the bucket and from local disk: the same losses, bit for bit.
    let bucket = Store::open(&Location::parse("gs://data/imagenet").unwrap()).unwrap();
    let uploaded = upload(&shards, &bucket, |_, _| {});
    assert_eq!(
        uploaded.len(),
        7,
        "3 + 3 shards and labels.txt: {uploaded:?}"
    );
    let from_bucket = run("gs://data/imagenet", &root.path().join("run-gs"));
    let from_disk = run(shards.to_str().unwrap(), &root.path().join("run-local"));
    assert_eq!(from_bucket.len(), 5);
    assert_eq!(from_bucket, from_disk);
    // Stopped after 2 steps and resumed from the checkpoint's data cursor: the same 5 losses.
    let resumed_out = root.path().join("run-gs-resumed");
    let stopped = RunConfig {
        stop_after: Some(2),
        ..config("gs://data/imagenet", &resumed_out)
    };
    let never = AtomicBool::new(false);
    train(&stopped, false, &never, &mut Discard).unwrap_or_else(|e| panic!("{e:#}"));
    let whole = config("gs://data/imagenet", &resumed_out);
    train(&whole, true, &never, &mut Discard).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(losses(&resumed_out), from_bucket);
    // Weights to and from a bucket: the export is the bytes of a local one, and importing it
    // gives the state a local import gives.
    let run_dir = root.path().join("run-gs");
    let weights = "gs://data/weights/model.safetensors";
    let local_weights = root.path().join("model.safetensors");
    export_timm(&run_dir, Path::new(weights), WeightCopy::Ema).unwrap();
    export_timm(&run_dir, &local_weights, WeightCopy::Ema).unwrap();
    let mut exported = Vec::new();
    let weights_store = Store::open(&Location::parse("gs://data/weights").unwrap()).unwrap();
    weights_store
        .read("model.safetensors")
        .unwrap()
        .read_to_end(&mut exported)
        .unwrap();
    assert_eq!(exported, std::fs::read(&local_weights).unwrap());
    let data = shards.to_str().unwrap();
    let (import_gs, import_disk) = (root.path().join("import-gs"), root.path().join("import"));
    import_timm(Path::new(weights), &config(data, &import_gs), &mut Discard).unwrap();
    import_timm(&local_weights, &config(data, &import_disk), &mut Discard).unwrap();
    let (a, b) = (tensor_files(&import_gs), tensor_files(&import_disk));
    let bytes: usize = a.iter().map(|(_, data)| data.len()).sum();
    assert!(
        bytes > 100_000,
        "{bytes} bytes of tensors in {} files",
        a.len()
    );
    assert!(a == b, "the imports differ");
    // `train --init gs://.../model.safetensors` starts where the local file starts.
    let init_run = |init: &Path, out: &str| {
        let config = RunConfig {
            init: Some(init.to_path_buf()),
            stop_after: Some(2),
            ..config(data, &root.path().join(out))
        };
        let never = AtomicBool::new(false);
        train(&config, false, &never, &mut Discard).unwrap_or_else(|e| panic!("{e:#}"));
        losses(&root.path().join(out))
    };
    let (gs_init, local_init) = (
        init_run(Path::new(weights), "init-gs"),
        init_run(&local_weights, "init"),
    );
    assert_eq!(gs_init.len(), 2);
    assert_eq!(gs_init, local_init);
    assert_ne!(gs_init[0], from_disk[0], "the init changed the start");
    let message = export_timm(&run_dir, Path::new("gs://data/weights/"), WeightCopy::Ema)
        .unwrap_err()
        .to_string();
    assert!(message.contains("not a file"), "{message}");

    // A prefix of the shard names, as for local files.
    let data: DataSpec = "gs://data/imagenet/train-".parse().unwrap();
    assert_eq!(data.class_names().unwrap(), ["c0", "c1"]);

    // A damaged object: the length of the second record of the second training shard is
    // spoiled, so the rest of that shard cannot be framed; it is one skipped example, named by
    // its URL, and every other record reads.
    let damaged = Store::open(&Location::parse("gs://data/damaged").unwrap()).unwrap();
    upload(&shards, &damaged, |name, bytes| {
        if name == "train-00001-of-00003" {
            let second = 12 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + 4;
            bytes[second] ^= 0x01;
        }
    });
    let location = Location::parse("gs://data/damaged").unwrap();
    let source =
        TfRecordShards::open(&location, Layout::ImagenetToGcs, "train", FileShare::ALL).unwrap();
    assert_eq!(
        source.len(),
        8 + 2 + 4,
        "8, then 1 record and the damage, then 4"
    );
    let failures: Vec<String> = (0..source.len())
        .filter_map(|i| source.load(i).err().map(|e| e.to_string()))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("gs://data/damaged/train-00001-of-00003, record 1"),
        "{failures:?}"
    );
    // The host split reads objects as it reads files.
    let second_host = FileShare { host: 1, hosts: 2 };
    let share = TfRecordShards::open(&location, Layout::ImagenetToGcs, "train", second_host);
    assert_eq!(
        share.unwrap().shard_names(),
        ["gs://data/damaged/train-00001-of-00003"]
    );

    // A missing bucket stops at once, naming it and the credentials; a prefix without
    // TFRecords is told apart from image folders, which are read locally only.
    let message = "gs://no-such-bucket/imagenet"
        .parse::<DataSpec>()
        .unwrap_err();
    assert!(
        message.contains("bucket `no-such-bucket` does not exist")
            && message.contains("emulator at http://127.0.0.1"),
        "{message}"
    );
    let message = "gs://data/nothing-here".parse::<DataSpec>().unwrap_err();
    assert!(
        message.contains("must hold TFRecord shards") && message.contains("gs://data/"),
        "{message}"
    );
}
