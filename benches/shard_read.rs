//! Reading TFRecord shards against reading zip shards of the same images, per thread: opening
//! (TFRecord opens read every record; zip opens read the central directory) and `Source::load`
//! (read, check, decode) over every image, in alternating turns, printed as ratios TFRecord / zip.
//! The files sit in the page cache, so this is the CPU cost per core, not the disk's speed.
//!
//! Run with `cargo bench --bench shard_read`. Fixtures come from PyPI wheels (see
//! `tests/data_support`), cached in the user cache.

#[path = "../tests/data_support/mod.rs"]
mod data_support;

use std::path::Path;
use std::time::{Duration, Instant};

use effnetv2::data::source::TRAIN_SPLIT;
use effnetv2::data::tfrecord::Layout;
use effnetv2::data::{
    pack_shards, pack_tfrecords, FileShare, ImageFolder, Source, TfRecordShards, ZipShards,
};
use effnetv2::storage::Location;

/// Turns per source; each turn loads every image for at least [`TURN`].
const TURNS: usize = 6;
const TURN: Duration = Duration::from_secs(1);

/// Images per second of `source.load` over all its images, for at least [`TURN`].
fn load_rate(source: &dyn Source) -> f64 {
    let start = Instant::now();
    let mut images = 0;
    while start.elapsed() < TURN {
        for index in 0..source.len() {
            std::hint::black_box(source.load(index).expect("fixture loads"));
        }
        images += source.len();
    }
    images as f64 / start.elapsed().as_secs_f64()
}

/// Opens per second of `open`, for at least [`TURN`].
fn open_rate(open: impl Fn()) -> f64 {
    let start = Instant::now();
    let mut opens = 0;
    while start.elapsed() < TURN {
        open();
        opens += 1;
    }
    opens as f64 / start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut pictures = data_support::files(&data_support::foolbox_data(), "imagenet_", ".jpg");
    let sklearn = data_support::sklearn_images();
    pictures.extend([sklearn.join("china.jpg"), sklearn.join("flower.jpg")]);
    let dir = tempfile::tempdir().expect("temporary folder");
    let class = dir.path().join("images/photos");
    std::fs::create_dir_all(&class).expect("class folder");
    for path in &pictures {
        std::fs::copy(path, class.join(path.file_name().expect("file name"))).expect("copy");
    }
    let folder = ImageFolder::open(dir.path().join("images")).expect("fixture folder");
    let zip_dir = dir.path().join("zip");
    let tfrecord_dir = dir.path().join("tfrecord");
    pack_shards(&folder, &zip_dir, 8, None).expect("zip shards");
    pack_tfrecords(&folder, &tfrecord_dir, 8, TRAIN_SPLIT, None).expect("TFRecord shards");
    let open_zip = |dir: &Path| ZipShards::open(dir).expect("zip shards open");
    let open_tfrecord = |dir: &Path| {
        let dir = Location::Local(dir.to_path_buf());
        TfRecordShards::open(&dir, Layout::ImagenetToGcs, TRAIN_SPLIT, FileShare::ALL)
            .expect("TFRecords open")
    };
    let (zip, tfrecord) = (open_zip(&zip_dir), open_tfrecord(&tfrecord_dir));
    println!(
        "{} images ({} KiB) in shards of 8; {TURNS} alternating turns of {TURN:?} each",
        folder.len(),
        pictures
            .iter()
            .map(|p| std::fs::metadata(p).expect("fixture").len())
            .sum::<u64>()
            >> 10
    );
    let (mut load_ratios, mut open_ratios) = (Vec::new(), Vec::new());
    for turn in 0..TURNS {
        let zip_load = load_rate(&zip);
        let tfrecord_load = load_rate(&tfrecord);
        let zip_open = open_rate(|| drop(open_zip(&zip_dir)));
        let tfrecord_open = open_rate(|| drop(open_tfrecord(&tfrecord_dir)));
        println!(
            "turn {turn}: load {tfrecord_load:7.1} vs {zip_load:7.1} img/s (TFRecord / zip {:.3}), \
             open {tfrecord_open:7.1} vs {zip_open:7.1} /s ({:.3})",
            tfrecord_load / zip_load,
            tfrecord_open / zip_open
        );
        load_ratios.push(tfrecord_load / zip_load);
        open_ratios.push(tfrecord_open / zip_open);
    }
    println!(
        "median TFRecord / zip: load {:.3}, open {:.3}",
        median(load_ratios),
        median(open_ratios)
    );
}
