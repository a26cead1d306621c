//! Which data a run trains and evaluates on, and turning batches into device inputs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::recipe::Augmentation;
use crate::data::source::{TRAIN_SPLIT, VALIDATION_SPLIT};
use crate::data::tfrecord::Layout;
use crate::data::transform::randaugment::encoded::EncodedLayers;
use crate::data::{
    detect_layout, tfrecord_class_names, AugmentOn, AugmentSettings, Batch, DataError,
    DeviceImages, FashionMnist, FileShare, ImageFolder, LoaderConfig, Normalization, Policy,
    Preprocessing, Shard, Source, Split, Stage, TfRecordShards, ZipShards, RANDAUGMENT_LAYERS,
};
use crate::hlo::{Literal, NativeType};
use crate::model::{AugmentPolicy, ModelSpec, ProgressiveStage};
use crate::step::graphs::{port, DeviceAugment, InputMode};
use crate::storage::Location;

/// The input pipeline a model's spec asks for, in the data layer's terms (which knows nothing of
/// model specs): its `augment` picks the official pipeline and policy, and its `input.mean` /
/// `input.std` are the normalisation, applied by the loader and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputPipeline {
    pub preprocessing: Preprocessing,
    pub policy: Policy,
    pub normalization: Normalization,
    /// Training visits the examples in a fresh seeded order each epoch (else in the data
    /// set's order: [`Augmentation::Off`]).
    pub shuffle: bool,
}

impl std::fmt::Display for InputPipeline {
    /// `legacy B0-B3 preprocessing (bicubic), AutoAugment v0, (x - mean) / std with mean [..]
    /// std [..]`.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let preprocessing = match self.preprocessing {
            Preprocessing::Standard => "standard S/M/L/XL preprocessing (bilinear)",
            Preprocessing::Legacy => "legacy B0-B3 preprocessing (bicubic)",
            Preprocessing::Finetune => {
                "fine-tuning preprocessing (whole image, flip, noise cutout)"
            }
            Preprocessing::Deterministic => "no random draw (whole image, bilinear)",
        };
        let Normalization { mean, std } = self.normalization;
        write!(f, "{preprocessing}, ")?;
        match self.policy {
            Policy::RandAugment { layers: 0 } => write!(f, "no augmentation policy")?,
            Policy::RandAugment { layers } => write!(f, "RandAugment with {layers} layers")?,
            Policy::AutoAugmentV0 => write!(f, "AutoAugment v0")?,
        }
        write!(f, ", (x - mean) / std with mean {mean:?} std {std:?}")?;
        if !self.shuffle {
            write!(f, ", examples in the data set's order")?;
        }
        Ok(())
    }
}

impl InputPipeline {
    /// `randaugment`: the standard S/M/L/XL pipeline with 2-layer RandAugment;
    /// `autoaugment_v0`: the legacy B0–B3 pipeline (`effnetv1_autoaug`) with AutoAugment v0.
    /// Fails unless the spec has three input channels (the loader produces RGB).
    pub fn for_spec(spec: &ModelSpec) -> Result<InputPipeline> {
        let (preprocessing, policy) = match spec.augment {
            AugmentPolicy::Randaugment => (
                Preprocessing::Standard,
                Policy::RandAugment {
                    layers: RANDAUGMENT_LAYERS,
                },
            ),
            AugmentPolicy::AutoaugmentV0 => (Preprocessing::Legacy, Policy::AutoAugmentV0),
        };
        let rgb = |values: &[f64], field: &str| -> Result<[f32; 3]> {
            match values {
                &[r, g, b] => Ok([r as f32, g as f32, b as f32]),
                _ => anyhow::bail!(
                    "model {}: {field} has {} values, but the data pipeline produces RGB images \
                     (3 channels)",
                    spec.name,
                    values.len()
                ),
            }
        };
        Ok(InputPipeline {
            preprocessing,
            policy,
            normalization: Normalization {
                mean: rgb(&spec.input.mean, "input.mean")?,
                std: rgb(&spec.input.std, "input.std")?,
            },
            shuffle: true,
        })
    }
}

impl InputPipeline {
    /// This pipeline under a recipe's `augmentation`: crop-and-flip drops the policy;
    /// flip-and-cutout is the fine-tuning preprocessing (no crop, no policy); off draws nothing
    /// (the deterministic preprocessing, no policy, no shuffle).
    pub fn with_augmentation(self, augmentation: Augmentation) -> InputPipeline {
        let off = Policy::RandAugment { layers: 0 };
        match augmentation {
            Augmentation::Model => self,
            Augmentation::CropFlip => InputPipeline {
                policy: off,
                ..self
            },
            Augmentation::FlipCutout => InputPipeline {
                preprocessing: Preprocessing::Finetune,
                policy: off,
                ..self
            },
            Augmentation::Off => InputPipeline {
                preprocessing: Preprocessing::Deterministic,
                policy: off,
                shuffle: false,
                ..self
            },
        }
    }
}

impl InputPipeline {
    /// A training loader's settings for this pipeline, starting at `stage`: the whole batch,
    /// the incomplete last batch of an epoch dropped (every batch the compiled size), two
    /// batches prefetched and the official augmentation constants. Callers that need another
    /// shard, queue or constants change those fields (struct update syntax); the pipeline's
    /// own fields come only from here.
    pub fn loader_config(
        &self,
        batch: usize,
        stage: Stage,
        seed: u64,
        workers: usize,
    ) -> LoaderConfig {
        LoaderConfig {
            batch,
            shard: Shard::WHOLE,
            image_size: stage.image_size,
            magnitude: stage.magnitude,
            preprocessing: self.preprocessing,
            policy: self.policy,
            normalization: self.normalization,
            mixup: stage.mixup,
            cutmix: stage.cutmix,
            seed,
            workers,
            queue_depth: 2,
            drop_last: true,
            shuffle: self.shuffle,
            settings: AugmentSettings::default(),
            augment_on: AugmentOn::Host,
        }
    }
}

impl InputPipeline {
    /// What the train steps of a run with this pipeline take, augmented `on` the host or the
    /// device; `mixes`: whether some stage of the run mixes (its steps then take mixing arrays
    /// in every stage). Fails for a policy the device cannot run, naming the option.
    pub fn step_input(&self, on: AugmentOn, mixes: bool) -> Result<InputMode> {
        on.check(self.preprocessing, self.policy)?;
        Ok(match (on, self.policy) {
            (AugmentOn::Device, Policy::RandAugment { layers }) => InputMode::DeviceAugment(
                DeviceAugment::new(layers as i64, mixes, self.normalization),
            ),
            _ => InputMode::Normalised,
        })
    }
}

/// Whether any of `stages` mixes (mixup or CutMix): its device-augmenting train steps then
/// take mixing arrays.
pub fn any_mixing(stages: &[ProgressiveStage]) -> bool {
    stages
        .iter()
        .any(|s| s.mixup_alpha > 0.0 || s.cutmix_alpha > 0.0)
}

/// The loader's settings for a progressive stage (a stage without RandAugment has magnitude
/// 0, which the loader's policy ignores).
pub fn loader_stage(stage: &ProgressiveStage) -> Stage {
    Stage {
        image_size: stage.image_size,
        magnitude: stage.randaug_magnitude.unwrap_or(0.0) as f32,
        mixup: stage.mixup_alpha as f32,
        cutmix: stage.cutmix_alpha as f32,
    }
}

/// A training data set: Fashion-MNIST (installed on first use), an ImageNet-style layout with
/// `train/` and `val/` class folders, as folders or as zip shards, or TFRecord shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum DataSpec {
    FashionMnist,
    Folder(PathBuf),
    Shards(PathBuf),
    TfRecord(TfRecordData),
}

/// TFRecord shards: `train` and `validation` splits under a folder or file-name prefix, local
/// or `gs://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TfRecordData {
    /// Stored as the text the user gave (the field kept its name from when only local paths
    /// were read, so older run configs still load).
    #[serde(rename = "path", with = "location_text")]
    pub location: Location,
    /// `None` when the file names fit both layouts and `--data-format` did not choose.
    pub layout: Option<Layout>,
}

impl TfRecordData {
    fn layout(&self) -> Result<Layout> {
        self.layout.with_context(|| {
            format!(
                "{} holds training shards of both TFRecord layouts: choose one with --data-format",
                self.location
            )
        })
    }
}

/// A [`Location`] in a run config as its text (`gs://...` or a path).
mod location_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::storage::Location;

    pub fn serialize<S: Serializer>(location: &Location, to: S) -> Result<S::Ok, S::Error> {
        to.collect_str(location)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Location, D::Error> {
        let text = String::deserialize(from)?;
        Location::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for DataSpec {
    type Err = String;

    /// `fashion-mnist`, a directory with `train/` and `val/` image folders, a directory with
    /// `train/` and `val/` zip-shard directories (detected by their `.zip` files), or a
    /// directory or prefix of TFRecord shards (their layout detected from their names).
    fn from_str(s: &str) -> Result<DataSpec, String> {
        if s == "fashion-mnist" {
            return Ok(DataSpec::FashionMnist);
        }
        let location = Location::parse(s).map_err(|e| format!("--data {s}: {e}"))?;
        if let Location::Gcs(_) = location {
            return match detect_layout(&location) {
                Ok(layout) => Ok(DataSpec::TfRecord(TfRecordData { location, layout })),
                Err(e @ DataError::Storage(_)) => Err(format!("--data {s}: {e}")),
                Err(e) => Err(format!(
                    "--data {s}: a gs:// location must hold TFRecord shards (image folders and \
                     zip shards are read from local disk only): {e}"
                )),
            };
        }
        let path = PathBuf::from(s);
        let train = path.join("train");
        if !train.is_dir() {
            return match detect_layout(&location) {
                Ok(layout) => Ok(DataSpec::TfRecord(TfRecordData { location, layout })),
                Err(e) => Err(format!(
                    "--data {s}: expected 'fashion-mnist', a directory containing train/ and val/, \
                     or TFRecord shards ({e})"
                )),
            };
        }
        let has_zip = std::fs::read_dir(&train)
            .map_err(|e| format!("--data {s}: {e}"))?
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "zip"));
        Ok(if has_zip {
            DataSpec::Shards(path)
        } else {
            DataSpec::Folder(path)
        })
    }
}

impl DataSpec {
    /// This data read as TFRecord shards in `layout` (`--data-format`): fails unless the data
    /// is a path that is not a folder layout.
    pub fn with_layout(self, layout: Layout) -> Result<DataSpec, String> {
        match self {
            DataSpec::TfRecord(data) => Ok(DataSpec::TfRecord(TfRecordData {
                layout: Some(layout),
                ..data
            })),
            other => Err(format!(
                "--data-format applies to TFRecord shards, but --data is {other:?}"
            )),
        }
    }

    /// Whether each host of a multi-host run reads only its own files of the training data
    /// ([`DataSpec::open_share`]): TFRecord shards. The other sources are read by every host,
    /// each taking its replicas' parts of every batch.
    pub fn splits_by_file(&self) -> bool {
        matches!(self, DataSpec::TfRecord(_))
    }

    /// Opens the training and evaluation sources.
    pub fn open(&self) -> Result<(Arc<dyn Source>, Arc<dyn Source>)> {
        self.open_share(FileShare::ALL)
    }

    /// Opens the training source as one host's `share` of the files (TFRecord shards only, see
    /// [`DataSpec::splits_by_file`]; the others ignore it), and the whole evaluation source.
    pub fn open_share(&self, share: FileShare) -> Result<(Arc<dyn Source>, Arc<dyn Source>)> {
        Ok(match self {
            DataSpec::FashionMnist => (
                Arc::new(
                    FashionMnist::load(Split::Train).context("loading Fashion-MNIST (train)")?,
                ),
                Arc::new(FashionMnist::load(Split::Test).context("loading Fashion-MNIST (test)")?),
            ),
            DataSpec::Folder(root) => (
                Arc::new(ImageFolder::open(root.join("train"))?),
                Arc::new(ImageFolder::open(root.join("val"))?),
            ),
            DataSpec::Shards(root) => (
                Arc::new(ZipShards::open(root.join("train"))?),
                Arc::new(ZipShards::open(root.join("val"))?),
            ),
            DataSpec::TfRecord(data) => {
                let (location, layout) = (&data.location, data.layout()?);
                let opening = || format!("opening the TFRecord shards at {location}");
                let train = TfRecordShards::open(location, layout, TRAIN_SPLIT, share)
                    .with_context(opening)?;
                let classes = train.class_names().to_vec();
                let val =
                    TfRecordShards::open_with_classes(location, layout, VALIDATION_SPLIT, classes)
                        .with_context(opening)?;
                (Arc::new(train), Arc::new(val))
            }
        })
    }
}

impl DataSpec {
    /// The class names of the data set in class-index order, read from its layout without
    /// scanning its images: Fashion-MNIST's ten, a folder's class folders under `train/` (as
    /// [`ImageFolder`] orders them), the shards' `train/labels.txt`. A run's labels are these
    /// names: its config stores where the data is, not the names themselves. TFRecord shards
    /// name their classes in a labels file beside them, or else in their records (a scan).
    pub fn class_names(&self) -> Result<Vec<String>> {
        Ok(match self {
            DataSpec::FashionMnist => crate::data::source::FASHION_MNIST_CLASSES
                .iter()
                .map(|&c| c.to_owned())
                .collect(),
            DataSpec::Folder(root) => ImageFolder::class_folders(&root.join("train"))?,
            DataSpec::Shards(root) => crate::data::source::read_labels(
                &root.join("train").join(crate::data::source::LABELS_FILE),
            )?,
            DataSpec::TfRecord(data) => tfrecord_class_names(&data.location, data.layout()?)?,
        })
    }
}

/// What one train-step call trains on: up to `slots` consecutive batches (the graph's steps per
/// call) with their learning rates.
pub struct Call<'b> {
    pub batches: &'b [Batch],
    pub learning_rates: &'b [f32],
    pub dropout: f32,
    /// The graph's K: its batch inputs have a leading dimension of K when K > 1.
    pub slots: usize,
}

/// The train step's inputs by name for each of `replicas` local replicas: replica `r` gets the
/// `r`-th of equal consecutive shares of every batch. With K > 1 the batches are stacked into K
/// slots (unused ones repeat the first batch and the `steps` input tells the graph to skip
/// them). Batches of device inputs ([`crate::data::BatchImages::Device`]) feed `u8` images, the encoded
/// RandAugment layers (when there are any) and, when the step `mixes`, the mixing arrays
/// ([`crate::data::DeviceMix`]).
pub fn train_feeds(
    call: &Call,
    replicas: usize,
    mixes: bool,
) -> Result<Vec<Vec<(&'static str, Literal)>>> {
    let (batches, slots) = (call.batches, call.slots);
    anyhow::ensure!(
        !batches.is_empty() && batches.len() <= slots && call.learning_rates.len() == batches.len(),
        "{} batches with {} learning rates for a call of {slots} steps",
        batches.len(),
        call.learning_rates.len()
    );
    let [n, h, w, c] = batches[0].image_dims();
    anyhow::ensure!(
        replicas > 0 && n % replicas == 0,
        "a batch of {n} does not split evenly over {replicas} replicas"
    );
    let on_device = batches[0].images.device().is_some();
    anyhow::ensure!(
        batches
            .iter()
            .all(|b| b.images.device().is_some() == on_device),
        "a call's batches mix normalised images and device inputs"
    );
    let stack = Stack {
        batches,
        slots,
        n,
        share: n / replicas,
    };
    let share = stack.share;
    let classes = batches[0].num_classes;
    let mut rates = call.learning_rates.to_vec();
    rates.resize(slots, call.learning_rates[0]);
    let layers = if on_device {
        device(&batches[0]).augment.layers
    } else {
        0
    };
    if on_device && !mixes {
        anyhow::ensure!(
            batches.iter().all(|b| device(b).mix.is_identity()),
            "the batches mix images but the train step was built without mixing"
        );
    }
    (0..replicas)
        .map(|r| {
            let mut feed = vec![
                (
                    port::IMAGES,
                    if on_device {
                        stack.rows(r, None, &[h, w, c], |b| &device(b).pixels)?
                    } else {
                        stack.rows(r, None, &[h, w, c], |b| {
                            b.images.normalised().unwrap_or_default()
                        })?
                    },
                ),
                (
                    port::LABELS,
                    stack.rows(r, None, &[classes], |b| &b.soft_labels)?,
                ),
                (port::CLASSES, stack.rows(r, None, &[], |b| &b.labels)?),
                (port::LEARNING_RATE, stack.literal(&[], &rates)?),
                (port::DROPOUT_RATE, Literal::scalar(call.dropout)),
            ];
            if slots > 1 {
                feed.push((port::STEPS, Literal::scalar(batches.len() as i32)));
            }
            if layers > 0 {
                let l = Some(layers);
                feed.extend([
                    (
                        port::AUGMENT_TABLE,
                        stack.rows(r, l, &[3, 256], |b| &augment(b).table)?,
                    ),
                    (
                        port::AUGMENT_TABLE_SOURCE,
                        stack.rows(r, l, &[], |b| &augment(b).table_source)?,
                    ),
                    (
                        port::AUGMENT_BLEND_KIND,
                        stack.rows(r, l, &[], |b| &augment(b).blend_kind)?,
                    ),
                    (
                        port::AUGMENT_BLEND_LEVEL,
                        stack.rows(r, l, &[], |b| &augment(b).blend_level)?,
                    ),
                    (
                        port::AUGMENT_BLEND_FACTOR,
                        stack.rows(r, l, &[], |b| &augment(b).blend_factor)?,
                    ),
                    (
                        port::AUGMENT_WARP,
                        stack.rows(r, l, &[8], |b| &augment(b).warp)?,
                    ),
                    (
                        port::AUGMENT_CUTOUT,
                        stack.rows(r, l, &[4], |b| &augment(b).cutout)?,
                    ),
                ]);
            }
            if on_device && mixes {
                let partners = stack.rows(r, None, &[], |b| &device(b).mix.partner)?;
                anyhow::ensure!(
                    partners
                        .to_f64_vec()
                        .iter()
                        .all(|&p| p >= 0.0 && p < share as f64),
                    "a mixing partner lies outside its replica's share of {share} examples"
                );
                feed.extend([
                    (port::MIX_PARTNER, partners),
                    (
                        port::MIX_WEIGHT,
                        stack.rows(r, None, &[], |b| &device(b).mix.weight)?,
                    ),
                    (
                        port::MIX_PASTE,
                        stack.rows(r, None, &[4], |b| &device(b).mix.paste)?,
                    ),
                ]);
            }
            Ok(feed)
        })
        .collect()
}

/// The device inputs of a batch of a call whose batches all hold them (checked first).
fn device(batch: &Batch) -> &DeviceImages {
    batch
        .images
        .device()
        .expect("every batch of the call holds device inputs")
}

/// The encoded RandAugment layers of a batch of device inputs.
fn augment(batch: &Batch) -> &EncodedLayers {
    &device(batch).augment
}

/// The K slots of a train-step call: its batches, the first repeated in the unused slots.
struct Stack<'b> {
    batches: &'b [Batch],
    slots: usize,
    /// Examples per batch, and per replica.
    n: usize,
    share: usize,
}

impl Stack<'_> {
    fn slot(&self, i: usize) -> &Batch {
        self.batches.get(i).unwrap_or(&self.batches[0])
    }

    /// `values` as an array of `dims` after the K dimension (when K > 1).
    fn literal<T: NativeType>(&self, dims: &[usize], values: &[T]) -> Result<Literal> {
        let lead: &[usize] = if self.slots > 1 { &[self.slots] } else { &[] };
        let dims: Vec<i64> = lead.iter().chain(dims).map(|&d| d as i64).collect();
        Literal::from_vec(&dims, values).map_err(anyhow::Error::msg)
    }

    /// Replica `r`'s rows of a per-example array of every slot's batch (`part`), stacked:
    /// `[K?, blocks?, share, inner...]`. An array with `blocks` holds that many consecutive
    /// blocks of all `n` examples (the RandAugment layers), each cut to the replica's rows.
    fn rows<T: NativeType>(
        &self,
        r: usize,
        blocks: Option<usize>,
        inner: &[usize],
        part: impl Fn(&Batch) -> &[T],
    ) -> Result<Literal> {
        let per_example: usize = inner.iter().product();
        let outer = blocks.unwrap_or(1);
        let mut values = Vec::with_capacity(self.slots * outer * self.share * per_example);
        for i in 0..self.slots {
            let data = part(self.slot(i));
            anyhow::ensure!(
                data.len() == outer * self.n * per_example,
                "a batch array of {} values is not {outer} x {} examples x {per_example}",
                data.len(),
                self.n
            );
            for block in data.chunks_exact(self.n * per_example) {
                values.extend_from_slice(
                    &block[r * self.share * per_example..][..self.share * per_example],
                );
            }
        }
        let dims: Vec<usize> = blocks
            .iter()
            .copied()
            .chain([self.share])
            .chain(inner.iter().copied())
            .collect();
        self.literal(&dims, &values)
    }
}

/// The eval step's inputs by name for one batch padded to `size` examples (padding has class
/// -1 and never counts as correct).
pub fn eval_feeds(batch: &Batch, size: usize) -> Result<Vec<(&'static str, Literal)>> {
    let [n, h, w, c] = batch.image_dims();
    let per_image = h * w * c;
    let mut images = batch
        .images
        .normalised()
        .context("an evaluation batch holds normalised images")?
        .to_vec();
    images.resize(size * per_image, 0.0);
    let mut classes = batch.labels.clone();
    classes.resize(size, -1);
    debug_assert!(n <= size);
    let images = Literal::from_vec(&[size as i64, h as i64, w as i64, c as i64], &images)
        .map_err(anyhow::Error::msg)?;
    let classes = Literal::from_vec(&[size as i64], &classes).map_err(anyhow::Error::msg)?;
    Ok(vec![(port::IMAGES, images), (port::CLASSES, classes)])
}

#[cfg(test)]
mod feed_tests {
    use super::*;
    use crate::data::transform::randaugment::Op;
    use crate::data::{BatchImages, Cursor, DeviceMix};
    use crate::hlo::ElementType;

    const CLASSES: usize = 3;

    /// A batch of `n` 2 x 2 device inputs whose every value tells its example (`offset + i`)
    /// and whose mixing pairs examples within parts of `part`.
    fn device_batch(n: usize, part: usize, offset: usize) -> Batch {
        let pixels = (0..n * 12).map(|v| (offset + v / 12) as u8).collect();
        let ops = (0..n)
            .map(|i| {
                let pixels = (offset + i) as f32;
                vec![Op::Posterize { bits: 3 }, Op::TranslateX { pixels }]
            })
            .collect();
        let mut images = DeviceImages::new(pixels, ops, 2, 2);
        images.mix = DeviceMix {
            partner: (0..n).map(|i| (part - 1 - i % part) as i32).collect(),
            weight: (0..n).map(|i| (offset + i) as f32).collect(),
            paste: (0..n * 4).map(|v| (offset + v / 4) as i32).collect(),
        };
        Batch {
            images: BatchImages::Device(Box::new(images)),
            soft_labels: (0..n * CLASSES)
                .map(|v| (offset + v / CLASSES) as f32)
                .collect(),
            labels: (0..n).map(|i| (offset + i) as i32).collect(),
            indices: (0..n).collect(),
            image_size: 2,
            num_classes: CLASSES,
            epoch: 0,
            position: 0,
            skipped: Vec::new(),
            end_of_epoch: false,
            next: Cursor::default(),
        }
    }

    fn port<'f>(feed: &'f [(&str, Literal)], name: &str) -> &'f Literal {
        &feed.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn device_inputs_feed_each_replica_its_rows_of_every_array_stacked_over_the_slots() {
        let batches = [device_batch(4, 2, 0), device_batch(4, 2, 100)];
        let call = Call {
            batches: &batches,
            learning_rates: &[0.1, 0.2],
            dropout: 0.0,
            slots: 3,
        };
        let feeds = train_feeds(&call, 2, true).unwrap();
        let second = &feeds[1];
        // Replica 1 holds examples 2 and 3 of each batch; the unused third slot repeats the first.
        let examples = [2.0, 3.0, 102.0, 103.0, 2.0, 3.0];
        let images = port(second, port::IMAGES);
        assert_eq!(images.ty(), ElementType::U8);
        assert_eq!(images.shape().dims(), [3, 2, 2, 2, 3]);
        let per_example: Vec<f64> = images.to_f64_vec().chunks(12).map(|c| c[0]).collect();
        assert_eq!(per_example, examples);
        let table = port(second, port::AUGMENT_TABLE);
        assert_eq!(table.ty(), ElementType::U8);
        assert_eq!(table.shape().dims(), [3, 2, 2, 3, 256]);
        // Layer 0 is Posterize 3 bits (value 255 -> 224) for every example; layer 1 the identity.
        let values = table.to_f64_vec();
        let slot = |k: usize, layer: usize, example: usize| ((k * 2 + layer) * 2 + example) * 768;
        assert_eq!(values[slot(1, 0, 1) + 255], 224.0);
        assert_eq!(values[slot(1, 1, 1) + 255], 255.0);
        let warp = port(second, port::AUGMENT_WARP);
        assert_eq!(warp.shape().dims(), [3, 2, 2, 8]);
        // Layer 1's translation by the example's number is the warp's x offset.
        let offsets: Vec<f64> = warp
            .to_f64_vec()
            .chunks(8)
            .skip(2)
            .step_by(4)
            .map(|w| w[2])
            .collect();
        assert_eq!(offsets, [2.0, 102.0, 2.0]);
        for (name, ty, dims) in [
            (port::AUGMENT_TABLE_SOURCE, ElementType::S32, vec![3, 2, 2]),
            (port::AUGMENT_BLEND_KIND, ElementType::S32, vec![3, 2, 2]),
            (port::AUGMENT_BLEND_LEVEL, ElementType::F32, vec![3, 2, 2]),
            (port::AUGMENT_BLEND_FACTOR, ElementType::F32, vec![3, 2, 2]),
            (port::AUGMENT_CUTOUT, ElementType::S32, vec![3, 2, 2, 4]),
            (port::MIX_PARTNER, ElementType::S32, vec![3, 2]),
            (port::MIX_PASTE, ElementType::S32, vec![3, 2, 4]),
            (port::LABELS, ElementType::F32, vec![3, 2, CLASSES as i64]),
        ] {
            let literal = port(second, name);
            assert_eq!(
                (literal.ty(), literal.shape().dims()),
                (ty, &dims[..]),
                "{name}"
            );
        }
        assert_eq!(port(second, port::MIX_WEIGHT).to_f64_vec(), examples);
        assert_eq!(
            port(second, port::MIX_PARTNER).to_f64_vec(),
            [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(port(second, port::CLASSES).to_f64_vec(), examples);
        // A step built without mixing takes no mixing arrays (and refuses batches that mix).
        let plain = train_feeds(&call, 2, false).unwrap_err().to_string();
        assert!(plain.contains("built without mixing"), "{plain}");
    }

    #[test]
    fn a_partner_outside_its_replica_is_refused() {
        // Mixed over the whole batch of 4, fed to two replicas of 2.
        let batches = [device_batch(4, 4, 0)];
        let call = Call {
            batches: &batches,
            learning_rates: &[0.1],
            dropout: 0.0,
            slots: 1,
        };
        let error = train_feeds(&call, 2, true).unwrap_err().to_string();
        assert!(
            error.contains("outside its replica's share of 2"),
            "{error}"
        );
        assert_eq!(train_feeds(&call, 1, true).unwrap().len(), 1);
    }
}
