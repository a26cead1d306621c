//! ImageNet as Cloud TPU users keep it: TFRecord shards of `tf.train.Example`s, in the layout of
//! `imagenet_to_gcs.py` or of TensorFlow Datasets' `imagenet2012` ([`Layout`]).
//!
//! Opening a split walks the record headers of its shards (in parallel; one small read per
//! record, every length CRC checked) and keeps an index of where each record's data sits; a load
//! reads one record at its offset, checks its data CRC, parses its Example and notes its label.
//! Only when the class names must come from the records' synsets (no labels file) does the open
//! read every record whole. The index makes the shards a random-access
//! [`Source`] like the others, so host sharding, resumption from the data cursor and the
//! determinism of batches are the loader's, unchanged. A shuffled epoch visits the records as
//! TensorFlow's TPU input does (shards in a seeded order, a few read round-robin, through a
//! shuffle buffer), so that reads stay close together in a few files. A damaged record stays in
//! the index as an example whose load fails naming the shard and the record, so the loader skips
//! and counts it like a corrupt image; a shard cut short is read up to the damage.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;

use super::labels::{read_labels, write_labels, LABELS_FILE};
use super::{ImageFolder, Source};
use crate::data::decode::decode_rgb;
use crate::data::error::{DataError, Result};
use crate::data::rng::{stream, Purpose};
use crate::data::tfrecord::framing::{
    check_data, check_header, Damage, FOOTER_BYTES, HEADER_BYTES,
};
use crate::data::tfrecord::{ImageExample, Layout, RecordError, RecordReader, RecordWriter};

/// The class-names file TensorFlow Datasets keeps beside `imagenet2012`'s shards.
pub const TFDS_LABELS_FILE: &str = "label.labels.txt";

/// Shards a shuffled epoch reads at the same time (the `cycle_length` of the `interleave` in the
/// official TPU ImageNet input).
const INTERLEAVE: usize = 16;
/// Examples in the shuffle buffer of a shuffled epoch.
const SHUFFLE_BUFFER: usize = 8192;

/// The split names both layouts use in their file names.
pub const TRAIN_SPLIT: &str = "train";
pub const VALIDATION_SPLIT: &str = "validation";

/// Where a data set's shards are: `dir` and the start of their file names.
#[derive(Clone, Debug)]
struct Prefix {
    dir: PathBuf,
    stem: String,
}

impl Prefix {
    /// A directory means every file in it; anything else is a directory plus a file-name prefix.
    fn of(path: &Path) -> Prefix {
        if path.is_dir() {
            return Prefix {
                dir: path.to_path_buf(),
                stem: String::new(),
            };
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Prefix { dir, stem }
    }
}

/// `NNNNN-of-MMMMM` as (index, count).
fn numbering(s: &str) -> Option<(usize, usize)> {
    let (index, count) = s.split_once("-of-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(index) && digits(count)).then(|| Some((index.parse().ok()?, count.parse().ok()?)))?
}

/// The shard numbering of file `name` if it belongs to `split` in `layout`.
fn shard_of(name: &str, layout: Layout, split: &str) -> Option<(usize, usize)> {
    match layout {
        Layout::ImagenetToGcs => numbering(name.strip_prefix(split)?.strip_prefix('-')?),
        Layout::Tfds => {
            let (head, tail) = name.rsplit_once(".tfrecord-")?;
            let dataset = head.strip_suffix(split)?;
            (dataset.is_empty() || dataset.ends_with('-'))
                .then(|| numbering(tail))
                .flatten()
        }
    }
}

/// The shard files of `split` in `layout`, in shard order. Fails when none is found or when the
/// numbering has a gap (a shard missing from a copy is otherwise silent data loss).
fn shard_files(prefix: &Prefix, layout: Layout, split: &str) -> Result<Vec<PathBuf>> {
    let found = matching(prefix, layout, split)?;
    let Some(&(_, count, _)) = found.first() else {
        return Err(DataError::Layout(format!(
            "no {split} shards in {} {}",
            where_(prefix),
            expected_names(layout, split)
        )));
    };
    let mut by_index: BTreeMap<usize, PathBuf> = BTreeMap::new();
    for (index, of, path) in found {
        if of != count || index >= count {
            return Err(DataError::Layout(format!(
                "{} does not fit the numbering of {count} {split} shards",
                path.display()
            )));
        }
        by_index.insert(index, path);
    }
    if let Some(missing) = (0..count).find(|i| !by_index.contains_key(i)) {
        return Err(DataError::Layout(format!(
            "{split} shard {missing} of {count} is missing from {}",
            where_(prefix)
        )));
    }
    Ok(by_index.into_values().collect())
}

/// Files of `split` in `layout` under `prefix` as (index, count, path).
fn matching(prefix: &Prefix, layout: Layout, split: &str) -> Result<Vec<(usize, usize, PathBuf)>> {
    let dir = &prefix.dir;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some((index, count)) = name
            .strip_prefix(&prefix.stem)
            .filter(|_| !name.starts_with('.'))
            .and_then(|_| shard_of(&name, layout, split))
        {
            found.push((index, count, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn where_(prefix: &Prefix) -> String {
    if prefix.stem.is_empty() {
        prefix.dir.display().to_string()
    } else {
        format!(
            "{} (files starting with {:?})",
            prefix.dir.display(),
            prefix.stem
        )
    }
}

fn expected_names(layout: Layout, split: &str) -> String {
    match layout {
        Layout::ImagenetToGcs => {
            format!("(expected {split}-00000-of-NNNNN ..., imagenet_to_gcs.py)")
        }
        Layout::Tfds => format!("(expected NAME-{split}.tfrecord-00000-of-NNNNN ..., TFDS)"),
    }
}

/// The layout of the TFRecord data set at `path` (a directory or a prefix), from the names of
/// its training shards: `None` when shards of both layouts are there (`--data-format` then
/// chooses). Fails when neither layout matches, naming what was looked for.
pub fn detect_layout(path: &Path) -> Result<Option<Layout>> {
    let prefix = Prefix::of(path);
    let mut found = Vec::new();
    for layout in [Layout::ImagenetToGcs, Layout::Tfds] {
        if !matching(&prefix, layout, TRAIN_SPLIT)?.is_empty() {
            found.push(layout);
        }
    }
    match found[..] {
        [layout] => Ok(Some(layout)),
        [] => Err(DataError::Layout(format!(
            "no TFRecord training shards in {} {} {}",
            where_(&prefix),
            expected_names(Layout::ImagenetToGcs, TRAIN_SPLIT),
            expected_names(Layout::Tfds, TRAIN_SPLIT)
        ))),
        _ => Ok(None),
    }
}

/// The class names of a TFRecord data set, in class-index order: a `labels.txt` beside the
/// shards (written by [`pack_tfrecords`], or by hand), TFDS's `label.labels.txt`, or else the
/// synsets the training records carry (which takes a read of the training shards).
pub fn tfrecord_class_names(path: &Path, layout: Layout) -> Result<Vec<String>> {
    match class_file(&Prefix::of(path), layout) {
        Some(file) => read_labels(&file),
        None => Ok(TfRecordShards::open(path, layout, TRAIN_SPLIT)?.classes),
    }
}

fn class_file(prefix: &Prefix, layout: Layout) -> Option<PathBuf> {
    let names: &[&str] = match layout {
        Layout::ImagenetToGcs => &[LABELS_FILE],
        Layout::Tfds => &[LABELS_FILE, TFDS_LABELS_FILE],
    };
    names
        .iter()
        .map(|name| prefix.dir.join(name))
        .find(|path| path.is_file())
}

/// A label the index does not know yet (the record was not read whole).
const UNREAD: usize = usize::MAX;

/// What the index knows of one record.
#[derive(Debug)]
enum Content {
    /// A well-framed record: its data's offset and length in the shard, and its label once the
    /// record was read ([`UNREAD`] before).
    Image {
        offset: u64,
        len: u64,
        label: AtomicUsize,
    },
    /// A record that cannot be used, and why.
    Damaged(String),
}

#[derive(Debug)]
struct Entry {
    shard: usize,
    record: usize,
    content: Content,
}

/// One shard's part of the index and the synsets its records name, by label.
struct ShardScan {
    entries: Vec<Entry>,
    synsets: BTreeMap<usize, String>,
}

/// An open shard, read at offsets (`pread`), so that workers share it without a lock.
#[derive(Debug)]
struct Shard {
    path: PathBuf,
    file: File,
}

/// One split of a TFRecord data set, indexed (see the module doc).
#[derive(Debug)]
pub struct TfRecordShards {
    layout: Layout,
    classes: Vec<String>,
    shards: Vec<Shard>,
    entries: Vec<Entry>,
    /// The indices of each shard's records (consecutive, in shard order).
    shard_ranges: Vec<Range<usize>>,
}

impl TfRecordShards {
    /// Opens `split` (`train` or `validation`) of the data set at `path` (a directory or a
    /// prefix of the shard names), with the class names of [`tfrecord_class_names`].
    pub fn open(path: &Path, layout: Layout, split: &str) -> Result<Self> {
        let prefix = Prefix::of(path);
        let classes = class_file(&prefix, layout)
            .map(|file| read_labels(&file))
            .transpose()?;
        if classes.is_none() && layout == Layout::Tfds {
            return Err(DataError::Layout(format!(
                "TFDS records carry no class names: put {TFDS_LABELS_FILE} (one name per line, \
                 as TFDS writes it) or {LABELS_FILE} beside the shards in {}",
                prefix.dir.display()
            )));
        }
        Self::open_with(&prefix, layout, split, classes)
    }

    /// Opens `split` with `classes` as the class names (those of the training split, so that
    /// evaluation counts the same classes).
    pub fn open_with_classes(
        path: &Path,
        layout: Layout,
        split: &str,
        classes: Vec<String>,
    ) -> Result<Self> {
        Self::open_with(&Prefix::of(path), layout, split, Some(classes))
    }

    fn open_with(
        prefix: &Prefix,
        layout: Layout,
        split: &str,
        classes: Option<Vec<String>>,
    ) -> Result<Self> {
        let paths = shard_files(prefix, layout, split)?;
        let read_whole = classes.is_none();
        let scans: Vec<ShardScan> = paths
            .par_iter()
            .enumerate()
            .map(|(shard, path)| match read_whole {
                true => scan(shard, path, layout),
                false => walk_headers(shard, path),
            })
            .collect::<Result<_>>()?;
        let mut synsets: BTreeMap<usize, String> = BTreeMap::new();
        let mut entries = Vec::new();
        for (scan, path) in scans.into_iter().zip(&paths) {
            for (label, synset) in scan.synsets {
                let known = synsets.entry(label).or_insert_with(|| synset.clone());
                if *known != synset {
                    return Err(DataError::Layout(format!(
                        "{}: class {label} is synset {synset:?} here and {known:?} in an earlier shard",
                        path.display()
                    )));
                }
            }
            entries.extend(scan.entries);
        }
        let classes = match classes {
            Some(classes) => classes,
            None => classes_from_synsets(&synsets, prefix)?,
        };
        let mut shard_ranges = Vec::with_capacity(paths.len());
        for shard in 0..paths.len() {
            let start = shard_ranges.last().map_or(0, |r: &Range<usize>| r.end);
            let count = entries[start..]
                .iter()
                .take_while(|e| e.shard == shard)
                .count();
            shard_ranges.push(start..start + count);
        }
        let shards = paths
            .into_iter()
            .map(|path| {
                let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
                Ok(Shard { path, file })
            })
            .collect::<Result<_>>()?;
        Ok(TfRecordShards {
            layout,
            classes,
            shards,
            entries,
            shard_ranges,
        })
    }

    /// The labelled image of record `index`, read from its shard and checked (data CRC, the
    /// layout's features, a label within the class names). Notes the label in the index.
    pub fn load_example(&self, index: usize) -> Result<ImageExample> {
        let entry = &self.entries[index];
        let shard = &self.shards[entry.shard];
        let damaged = |reason: String| DataError::Record {
            shard: shard.path.clone(),
            record: entry.record,
            reason,
        };
        let (offset, len, label) = match &entry.content {
            Content::Image { offset, len, label } => (*offset, *len, label),
            Content::Damaged(reason) => return Err(damaged(reason.clone())),
        };
        let mut bytes = vec![0u8; (len + FOOTER_BYTES) as usize];
        shard
            .file
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| DataError::io(&shard.path, e))?;
        let data = check_data(&bytes).map_err(|d| damaged(d.to_string()))?;
        let image = self.layout.image(data).map_err(damaged)?;
        if image.label >= self.classes.len() {
            return Err(damaged(format!(
                "class {} (counted from 0) is beyond the {} class names",
                image.label,
                self.classes.len()
            )));
        }
        label.store(image.label, Ordering::Relaxed);
        Ok(image)
    }
}

/// Reads one shard from end to end into its part of the index.
fn scan(shard: usize, path: &Path, layout: Layout) -> Result<ShardScan> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut entries = Vec::new();
    let mut synsets = BTreeMap::new();
    for read in RecordReader::new(BufReader::with_capacity(1 << 20, file)) {
        let (record, content) = match read {
            Ok(record) => {
                let content = match layout.image(&record.data) {
                    Ok(image) => {
                        if let Some(synset) = image.synset {
                            let known =
                                synsets.entry(image.label).or_insert_with(|| synset.clone());
                            if *known != synset {
                                return Err(DataError::Record {
                                    shard: path.to_path_buf(),
                                    record: record.index,
                                    reason: format!(
                                        "class {} is synset {synset:?} here and {known:?} earlier",
                                        image.label
                                    ),
                                });
                            }
                        }
                        Content::Image {
                            offset: record.offset + HEADER_BYTES,
                            len: record.data.len() as u64,
                            label: AtomicUsize::new(image.label),
                        }
                    }
                    Err(reason) => Content::Damaged(reason),
                };
                (record.index, content)
            }
            Err(RecordError::Damaged { record, damage }) => {
                (record, Content::Damaged(damage.to_string()))
            }
            Err(RecordError::Io(e)) => return Err(DataError::io(path, e)),
        };
        entries.push(Entry {
            shard,
            record,
            content,
        });
    }
    Ok(ShardScan { entries, synsets })
}

/// Indexes one shard from its record headers alone: one read of a header per record, the
/// length CRC checked; the data is checked when a record is loaded.
fn walk_headers(shard: usize, path: &Path) -> Result<ShardScan> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let size = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < size {
        let record = entries.len();
        let mut header = [0u8; HEADER_BYTES as usize];
        let framed = if size - offset < HEADER_BYTES {
            Err(Damage::Truncated)
        } else {
            file.read_exact_at(&mut header, offset)
                .map_err(|e| DataError::io(path, e))?;
            check_header(&header).and_then(|len| {
                let end = offset + HEADER_BYTES + len + FOOTER_BYTES;
                if end > size {
                    Err(Damage::Truncated)
                } else {
                    Ok(len)
                }
            })
        };
        let len = match framed {
            Ok(len) => len,
            Err(damage) => {
                // The framing is lost: nothing after this record can be found.
                entries.push(Entry {
                    shard,
                    record,
                    content: Content::Damaged(damage.to_string()),
                });
                break;
            }
        };
        entries.push(Entry {
            shard,
            record,
            content: Content::Image {
                offset: offset + HEADER_BYTES,
                len,
                label: AtomicUsize::new(UNREAD),
            },
        });
        offset += HEADER_BYTES + len + FOOTER_BYTES;
    }
    Ok(ShardScan {
        entries,
        synsets: BTreeMap::new(),
    })
}

/// Class names from the synsets of the records: label `k` is named by its records' synset.
fn classes_from_synsets(synsets: &BTreeMap<usize, String>, prefix: &Prefix) -> Result<Vec<String>> {
    let count = synsets.keys().next_back().map_or(0, |last| last + 1);
    let missing = (0..count).find(|k| !synsets.contains_key(k));
    match (count, missing) {
        (0, _) => Err(DataError::Layout(format!(
            "no readable record in the shards of {}",
            where_(prefix)
        ))),
        (_, Some(k)) => Err(DataError::Layout(format!(
            "class {k} has no record in the shards of {}, so its name is unknown: put a {LABELS_FILE} \
             (one class name per line) beside the shards",
            where_(prefix)
        ))),
        _ => Ok(synsets.values().cloned().collect()),
    }
}

impl Source for TfRecordShards {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn class_names(&self) -> &[String] {
        &self.classes
    }

    /// The label noted when the record was read; a record not read yet is read now. The loader
    /// asks only for records it has loaded. A damaged record has no label: its load fails, so
    /// the loader never asks for it (class 0 is returned all the same).
    fn label(&self, index: usize) -> usize {
        match &self.entries[index].content {
            Content::Image { label, .. } => match label.load(Ordering::Relaxed) {
                UNREAD => self.load_example(index).map_or(0, |image| image.label),
                known => known,
            },
            Content::Damaged(_) => 0,
        }
    }

    /// Unshuffled: the records in shard order. Shuffled: see [`interleaved_order`].
    fn epoch_order(&self, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
        if !shuffle {
            return (0..self.len()).collect();
        }
        let mut rng = stream(seed, epoch, 0, Purpose::Shuffle);
        interleaved_order(&self.shard_ranges, INTERLEAVE, SHUFFLE_BUFFER, &mut rng)
    }

    fn load(&self, index: usize) -> Result<RgbImage> {
        let image = self.load_example(index)?;
        let entry = &self.entries[index];
        let what = format!(
            "{} record {}",
            self.shards[entry.shard].path.display(),
            entry.record
        );
        decode_rgb(&image.encoded, &what)
    }
}

/// The order of a shuffled epoch over shards holding `shards` (index ranges), as
/// `tf.data` reads TFRecords for TPU training: the shards in a random order, `interleave` of them
/// read round-robin (a finished one replaced by the next), every record passing through a
/// shuffle buffer of `buffer` examples that emits a random one of those it holds. Every choice
/// comes from `rng`, so the order is a pure function of its seed.
fn interleaved_order(
    shards: &[Range<usize>],
    interleave: usize,
    buffer: usize,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let mut files = shards.to_vec();
    files.shuffle(rng);
    let mut pending = files.into_iter();
    let mut active: Vec<Range<usize>> = pending.by_ref().take(interleave.max(1)).collect();
    let total = shards.iter().map(ExactSizeIterator::len).sum();
    let mut order = Vec::with_capacity(total);
    let mut held = Vec::with_capacity(buffer.min(total));
    let mut turn = 0;
    while !active.is_empty() {
        turn %= active.len();
        let Some(index) = active[turn].next() else {
            match pending.next() {
                Some(next) => active[turn] = next,
                None => drop(active.remove(turn)),
            }
            continue;
        };
        turn += 1;
        if held.len() < buffer.max(1) {
            held.push(index);
        } else {
            let slot = rng.gen_range(0..held.len());
            order.push(std::mem::replace(&mut held[slot], index));
        }
    }
    held.shuffle(rng);
    order.extend(held);
    order
}

/// Writes every image of `folder` as `split` shards in the `imagenet_to_gcs.py` layout
/// (`{split}-NNNNN-of-MMMMM`, `image/encoded`, `image/class/label` counted from 1,
/// `image/class/synset` = the class folder's name), `images_per_shard` per shard, in index
/// order, and `labels.txt` (the class folders) beside them. A shard is written under a temporary
/// name and renamed when complete. Fails when `out_dir` already has a `labels.txt` with other
/// classes (the other split of another data set). Returns the shard paths.
pub fn pack_tfrecords(
    folder: &ImageFolder,
    out_dir: impl AsRef<Path>,
    images_per_shard: usize,
    split: &str,
) -> Result<Vec<PathBuf>> {
    if images_per_shard == 0 {
        return Err(DataError::Config(
            "images_per_shard must be at least 1".into(),
        ));
    }
    let out_dir = out_dir.as_ref();
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let labels = out_dir.join(LABELS_FILE);
    if labels.is_file() && read_labels(&labels)? != folder.class_names() {
        return Err(DataError::Layout(format!(
            "{} lists other classes than {}: pack each data set into its own folder",
            labels.display(),
            folder.root().display()
        )));
    }
    let count = folder.len().div_ceil(images_per_shard);
    let mut paths = Vec::with_capacity(count);
    for shard in 0..count {
        let path = out_dir.join(format!("{split}-{shard:05}-of-{count:05}"));
        let mut file =
            tempfile::NamedTempFile::new_in(out_dir).map_err(|e| DataError::io(out_dir, e))?;
        let mut writer = RecordWriter::new(BufWriter::new(file.as_file_mut()));
        let start = shard * images_per_shard;
        for index in start..folder.len().min(start + images_per_shard) {
            let image_path = folder.path(index);
            let encoded = std::fs::read(image_path).map_err(|e| DataError::io(image_path, e))?;
            let format = if encoded.starts_with(b"\x89PNG") {
                "PNG"
            } else {
                "JPEG"
            };
            let label = folder.label(index);
            let example = ImageExample {
                encoded,
                label,
                synset: Some(folder.class_names()[label].clone()),
            };
            let bytes = Layout::ImagenetToGcs.encode(&example, format, &folder.file_name(index));
            writer.write(&bytes).map_err(|e| DataError::io(&path, e))?;
        }
        writer.flush().map_err(|e| DataError::io(&path, e))?;
        drop(writer);
        file.as_file()
            .sync_all()
            .map_err(|e| DataError::io(&path, e))?;
        file.persist(&path)
            .map_err(|e| DataError::io(&path, e.error))?;
        paths.push(path);
    }
    write_labels(&labels, folder.class_names())?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn order(shards: &[Range<usize>], interleave: usize, buffer: usize, seed: u64) -> Vec<usize> {
        interleaved_order(
            shards,
            interleave,
            buffer,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
    }

    #[test]
    fn a_shuffled_epoch_is_a_seeded_permutation() {
        let shards = [0..40, 40..45, 45..45, 45..100];
        let first = order(&shards, 2, 8, 1);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(first, order(&shards, 2, 8, 1));
        assert_ne!(first, order(&shards, 2, 8, 2));
    }

    /// Without a buffer the order is the interleave itself: each shard read front to back, two
    /// shards at a time in turns, the next shard taking a finished one's turn.
    #[test]
    fn shards_are_read_in_turns_front_to_back() {
        let shards = [0..3, 3..5, 5..6];
        for seed in 0..8 {
            let read = order(&shards, 2, 1, seed);
            for shard in &shards {
                let positions: Vec<usize> = shard.clone().collect();
                let seen: Vec<usize> = read.iter().copied().filter(|i| shard.contains(i)).collect();
                assert_eq!(seen, positions, "seed {seed}: {read:?}");
            }
            // The first two records come from two different shards.
            let shard_of = |i: usize| shards.iter().position(|s| s.contains(&i)).unwrap();
            assert_ne!(
                shard_of(read[0]),
                shard_of(read[1]),
                "seed {seed}: {read:?}"
            );
        }
    }

    #[test]
    fn shard_names_of_both_layouts_are_recognised() {
        let gcs = Layout::ImagenetToGcs;
        let tfds = Layout::Tfds;
        assert_eq!(
            shard_of("train-00003-of-01024", gcs, "train"),
            Some((3, 1024))
        );
        assert_eq!(
            shard_of("validation-00127-of-00128", gcs, "validation"),
            Some((127, 128))
        );
        assert_eq!(shard_of("validation-00127-of-00128", gcs, "train"), None);
        assert_eq!(shard_of("train-0000x-of-01024", gcs, "train"), None);
        assert_eq!(shard_of("train-00003-of-", gcs, "train"), None);
        assert_eq!(
            shard_of("imagenet2012-train.tfrecord-00000-of-01024", tfds, "train"),
            Some((0, 1024))
        );
        assert_eq!(
            shard_of(
                "imagenet2012-validation.tfrecord-00063-of-00064",
                tfds,
                "validation"
            ),
            Some((63, 64))
        );
        assert_eq!(
            shard_of(
                "imagenet2012-pretrain.tfrecord-00000-of-00001",
                tfds,
                "train"
            ),
            None
        );
        assert_eq!(shard_of("train-00000-of-00001", tfds, "train"), None);
    }
}
