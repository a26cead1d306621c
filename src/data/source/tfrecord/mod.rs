//! ImageNet as Cloud TPU users keep it: TFRecord shards of `tf.train.Example`s, in the layout of
//! `imagenet_to_gcs.py` or of TensorFlow Datasets' `imagenet2012` ([`Layout`]), on local disk or
//! in a bucket (`gs://bucket/prefix`); where the files are is [`place`]'s concern alone.
//!
//! Opening a split walks the record headers of its shards (in parallel; each shard read front
//! to back, a local file seeking past the data, an object streamed with read-ahead; every
//! length CRC checked) and keeps an index of where each record's data sits; a load reads one
//! record at its offset (`pread`, or one ranged request to the bucket), checks its data CRC,
//! parses its Example and notes its label. Only when the class names must come from the
//! records' synsets (no labels file) does the open read every record whole. The index makes
//! the shards a random-access [`Source`] like the others, so resumption from the data cursor
//! and the determinism of batches are the loader's, unchanged. A shuffled epoch visits the
//! records as TensorFlow's TPU input does (shards in a seeded order, a few read round-robin,
//! through a shuffle buffer), so that reads stay close together in a few files. The hosts of a
//! multi-host run can split the shards by file ([`FileShare`]), each opening only its own. A
//! damaged record stays in the index as an example whose load fails naming the shard and the
//! record, so the loader skips and counts it like a corrupt image; a shard cut short is read
//! up to the damage, and a shard that cannot be read at all (after the storage's retries) is
//! one such example naming it. A missing bucket or refused credentials stop the open.

mod files;
mod order;
mod pack;
mod place;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

pub use files::{detect_layout, TRAIN_SPLIT, VALIDATION_SPLIT};
pub use pack::pack_tfrecords;

use super::labels::{parse_labels, LABELS_FILE};
use super::Source;
use crate::data::decode::LoadedImage;
use crate::data::error::{DataError, Result};
use crate::data::rng::{stream, Purpose};
use crate::data::tfrecord::framing::{
    check_data, check_header, read_full, Damage, FOOTER_BYTES, HEADER_BYTES,
};
use crate::data::tfrecord::{ImageExample, Layout, RecordError, RecordReader};
use crate::storage::Location;
use files::{shard_files, where_, Prefix};
use order::{interleaved_order, INTERLEAVE, SHUFFLE_BUFFER};
use place::{spoils_one_shard, ShardFile};

/// The class-names file TensorFlow Datasets keeps beside `imagenet2012`'s shards.
pub const TFDS_LABELS_FILE: &str = "label.labels.txt";

/// Which of a split's shard files one host of a multi-host run reads: every `hosts`-th file
/// from the `host`-th on, as `tf.data`'s `shard(num_hosts, host_index)` over file names, so
/// that each host reads only its own files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileShare {
    pub host: usize,
    pub hosts: usize,
}

impl FileShare {
    /// Every file (one host).
    pub const ALL: FileShare = FileShare { host: 0, hosts: 1 };

    /// The shard numbers of `count` this share reads; fails when there are fewer shards than
    /// hosts (a host would have nothing to read) or the share is out of range.
    fn pick(self, count: usize, split: &str) -> Result<Vec<usize>> {
        if self.hosts == 0 || self.host >= self.hosts {
            return Err(DataError::Config(format!(
                "host {} of {} is out of range",
                self.host, self.hosts
            )));
        }
        if count < self.hosts {
            return Err(DataError::Layout(format!(
                "{count} {split} shards cannot be split by file over {} hosts: every host needs \
                 at least one (repack with more shards)",
                self.hosts
            )));
        }
        Ok((self.host..count).step_by(self.hosts).collect())
    }
}

/// The class names of a TFRecord data set, in class-index order: a `labels.txt` beside the
/// shards (written by [`pack_tfrecords`], or by hand), TFDS's `label.labels.txt`, or else the
/// synsets the training records carry (which takes a read of every training shard).
pub fn tfrecord_class_names(location: &Location, layout: Layout) -> Result<Vec<String>> {
    let prefix = Prefix::of(location)?;
    match class_file(&prefix, layout)? {
        Some(classes) => Ok(classes),
        None => Ok(
            TfRecordShards::open_with(&prefix, layout, TRAIN_SPLIT, None, FileShare::ALL)?.classes,
        ),
    }
}

/// The class names from a labels file beside the shards, if there is one.
fn class_file(prefix: &Prefix, layout: Layout) -> Result<Option<Vec<String>>> {
    let names: &[&str] = match layout {
        Layout::ImagenetToGcs => &[LABELS_FILE],
        Layout::Tfds => &[LABELS_FILE, TFDS_LABELS_FILE],
    };
    for name in names {
        if prefix.folder.has_file(name)? {
            let text = prefix.folder.read_text(name)?;
            return parse_labels(&text, &prefix.folder.describe_file(name)).map(Some);
        }
    }
    Ok(None)
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
#[derive(Default)]
struct ShardScan {
    entries: Vec<Entry>,
    synsets: BTreeMap<usize, String>,
}

/// One split of a TFRecord data set, indexed (see the module doc).
#[derive(Debug)]
pub struct TfRecordShards {
    layout: Layout,
    classes: Vec<String>,
    shards: Vec<ShardFile>,
    entries: Vec<Entry>,
    /// The indices of each shard's records (consecutive, in shard order).
    shard_ranges: Vec<Range<usize>>,
}

impl TfRecordShards {
    /// Opens `split` (`train` or `validation`) of the data set at `location` (a folder or a
    /// prefix of the shard names, local or `gs://`), this host's `share` of its files, with
    /// the class names of [`tfrecord_class_names`] (of all training shards, whatever the share).
    pub fn open(
        location: &Location,
        layout: Layout,
        split: &str,
        share: FileShare,
    ) -> Result<Self> {
        let prefix = Prefix::of(location)?;
        let classes = class_file(&prefix, layout)?;
        if classes.is_none() && layout == Layout::Tfds {
            return Err(DataError::Layout(format!(
                "TFDS records carry no class names: put {TFDS_LABELS_FILE} (one name per line, \
                 as TFDS writes it) or {LABELS_FILE} beside the shards in {}",
                prefix.folder.describe()
            )));
        }
        let classes = match classes {
            None if share != FileShare::ALL => {
                Some(Self::open_with(&prefix, layout, TRAIN_SPLIT, None, FileShare::ALL)?.classes)
            }
            classes => classes,
        };
        Self::open_with(&prefix, layout, split, classes, share)
    }

    /// Opens all of `split` with `classes` as the class names (those of the training split, so
    /// that evaluation counts the same classes).
    pub fn open_with_classes(
        location: &Location,
        layout: Layout,
        split: &str,
        classes: Vec<String>,
    ) -> Result<Self> {
        Self::open_with(
            &Prefix::of(location)?,
            layout,
            split,
            Some(classes),
            FileShare::ALL,
        )
    }

    fn open_with(
        prefix: &Prefix,
        layout: Layout,
        split: &str,
        classes: Option<Vec<String>>,
        share: FileShare,
    ) -> Result<Self> {
        let names = shard_files(prefix, layout, split)?;
        let picked = share.pick(names.len(), split)?;
        let mut shards: Vec<ShardFile> = picked
            .iter()
            .map(|&n| prefix.folder.open(&names[n]))
            .collect::<Result<_>>()?;
        let read_whole = classes.is_none();
        let scans: Vec<ShardScan> = shards
            .par_iter()
            .enumerate()
            .map(|(shard, file)| {
                let scan = match read_whole {
                    true => scan(shard, file, layout),
                    false => walk_headers(shard, file),
                };
                match scan {
                    Err(e) if spoils_one_shard(&e) => Ok(unreadable(shard, &e)),
                    scan => scan,
                }
            })
            .collect::<Result<_>>()?;
        let mut synsets: BTreeMap<usize, String> = BTreeMap::new();
        let mut entries = Vec::new();
        for (scan, file) in scans.into_iter().zip(&shards) {
            for (label, synset) in scan.synsets {
                let known = synsets.entry(label).or_insert_with(|| synset.clone());
                if *known != synset {
                    return Err(DataError::Layout(format!(
                        "{}: class {label} is synset {synset:?} here and {known:?} in an earlier shard",
                        file.what()
                    )));
                }
            }
            entries.extend(scan.entries);
        }
        let classes = match classes {
            Some(classes) => classes,
            None => classes_from_synsets(&synsets, prefix)?,
        };
        let mut shard_ranges = Vec::with_capacity(shards.len());
        for (shard, file) in shards.iter_mut().enumerate() {
            let start = shard_ranges.last().map_or(0, |r: &Range<usize>| r.end);
            let count = entries[start..]
                .iter()
                .take_while(|e| e.shard == shard)
                .count();
            shard_ranges.push(start..start + count);
            let records_end = entries[start..start + count]
                .iter()
                .filter_map(|e| match e.content {
                    Content::Image { offset, len, .. } => Some(offset + len + FOOTER_BYTES),
                    Content::Damaged(_) => None,
                })
                .max();
            file.set_records_end(records_end.unwrap_or(0));
        }
        Ok(TfRecordShards {
            layout,
            classes,
            shards,
            entries,
            shard_ranges,
        })
    }

    /// The shard files this source reads (paths or `gs://` URLs), in shard order.
    pub fn shard_names(&self) -> Vec<&str> {
        self.shards.iter().map(ShardFile::what).collect()
    }

    /// The labelled image of record `index`, read from its shard and checked (data CRC, the
    /// layout's features, a label within the class names). Notes the label in the index.
    pub fn load_example(&self, index: usize) -> Result<ImageExample> {
        let entry = &self.entries[index];
        let shard = &self.shards[entry.shard];
        let damaged = |reason: String| DataError::Record {
            shard: shard.path(),
            record: entry.record,
            reason,
        };
        let (offset, len, label) = match &entry.content {
            Content::Image { offset, len, label } => (*offset, *len, label),
            Content::Damaged(reason) => return Err(damaged(reason.clone())),
        };
        let mut bytes = vec![0u8; (len + FOOTER_BYTES) as usize];
        shard
            .read_record(&mut bytes, offset)
            .map_err(|e| DataError::io(shard.path(), e))?;
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

/// The index of a shard that could not be read at all: one damaged entry naming why, so that
/// the loader skips and counts it (and names the shard) instead of the whole run failing.
fn unreadable(shard: usize, error: &DataError) -> ShardScan {
    ShardScan {
        entries: vec![Entry {
            shard,
            record: 0,
            content: Content::Damaged(format!("the shard cannot be read: {error}")),
        }],
        synsets: BTreeMap::new(),
    }
}

/// Reads one shard from end to end into its part of the index.
fn scan(shard: usize, file: &ShardFile, layout: Layout) -> Result<ShardScan> {
    let mut entries = Vec::new();
    let mut synsets = BTreeMap::new();
    for read in RecordReader::new(BufReader::with_capacity(1 << 20, file.sequential()?)) {
        let (record, content) = match read {
            Ok(record) => {
                let content = match layout.image(&record.data) {
                    Ok(image) => {
                        if let Some(synset) = image.synset {
                            let known =
                                synsets.entry(image.label).or_insert_with(|| synset.clone());
                            if *known != synset {
                                return Err(DataError::Record {
                                    shard: file.path(),
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
            Err(RecordError::Io(e)) => return Err(DataError::io(file.path(), e)),
        };
        entries.push(Entry {
            shard,
            record,
            content,
        });
    }
    Ok(ShardScan { entries, synsets })
}

/// Indexes one shard from its record headers alone, read front to back: each header read and
/// its length CRC checked, the data passed over (a local file seeks past it; an object's stream
/// reads on). The data is checked when a record is loaded.
fn walk_headers(shard: usize, file: &ShardFile) -> Result<ShardScan> {
    let mut reader = file.sequential()?;
    let io = |e| DataError::io(file.path(), e);
    let mut entries = Vec::new();
    let mut offset = 0;
    loop {
        let record = entries.len();
        let mut header = [0u8; HEADER_BYTES as usize];
        let got = read_full(&mut reader, &mut header).map_err(io)?;
        if got == 0 {
            break;
        }
        let framed = if got < header.len() {
            Err(Damage::Truncated)
        } else {
            match check_header(&header) {
                Ok(len) if reader.skip(len + FOOTER_BYTES).map_err(io)? < len + FOOTER_BYTES => {
                    Err(Damage::Truncated)
                }
                framed => framed,
            }
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

    fn read(&self, index: usize) -> Result<LoadedImage> {
        let image = self.load_example(index)?;
        let entry = &self.entries[index];
        let what = format!(
            "{} record {}",
            self.shards[entry.shard].what(),
            entry.record
        );
        Ok(LoadedImage::Encoded {
            bytes: image.encoded,
            what,
        })
    }
}
