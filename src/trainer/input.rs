//! Which data a run trains and evaluates on, and turning batches into device inputs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::recipe::Augmentation;
use crate::data::source::{TRAIN_SPLIT, VALIDATION_SPLIT};
use crate::data::tfrecord::Layout;
use crate::data::{
    detect_layout, tfrecord_class_names, AugmentSettings, Batch, DataError, FashionMnist,
    FileShare, ImageFolder, LoaderConfig, Normalization, Policy, Preprocessing, Shard, Source,
    Split, Stage, TfRecordShards, ZipShards, RANDAUGMENT_LAYERS,
};
use crate::hlo::Literal;
use crate::model::{AugmentPolicy, ModelSpec, ProgressiveStage};
use crate::step::graphs::port;
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
        }
    }
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
/// them).
pub fn train_feeds(call: &Call, replicas: usize) -> Result<Vec<Vec<(&'static str, Literal)>>> {
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
    let share = n / replicas;
    let classes = batches[0].num_classes;
    let slot = |i: usize| batches.get(i).unwrap_or(&batches[0]);
    let lead: &[usize] = if slots > 1 { &[slots] } else { &[] };
    let literal = |dims: &[usize], data: Vec<f32>| {
        let dims: Vec<i64> = lead.iter().chain(dims).map(|&d| d as i64).collect();
        Literal::from_vec(&dims, &data).map_err(anyhow::Error::msg)
    };
    // Replica `r`'s rows of one batch's per-example array.
    let rows = |data: &[f32], r: usize| {
        let per_example = data.len() / n;
        data[per_example * share * r..per_example * share * (r + 1)].to_vec()
    };
    let stacked = |part: fn(&Batch) -> &[f32], r: usize| -> Vec<f32> {
        (0..slots).flat_map(|i| rows(part(slot(i)), r)).collect()
    };
    let mut rates = call.learning_rates.to_vec();
    rates.resize(slots, call.learning_rates[0]);
    (0..replicas)
        .map(|r| {
            let class_rows: Vec<i32> = (0..slots)
                .flat_map(|i| slot(i).labels[share * r..share * (r + 1)].to_vec())
                .collect();
            let class_dims: Vec<i64> = lead.iter().chain(&[share]).map(|&d| d as i64).collect();
            let mut feed = vec![
                (
                    port::IMAGES,
                    literal(&[share, h, w, c], stacked(|b| &b.images, r))?,
                ),
                (
                    port::LABELS,
                    literal(&[share, classes], stacked(|b| &b.soft_labels, r))?,
                ),
                (
                    port::CLASSES,
                    Literal::from_vec(&class_dims, &class_rows).map_err(anyhow::Error::msg)?,
                ),
                (port::LEARNING_RATE, literal(&[], rates.clone())?),
                (port::DROPOUT_RATE, Literal::scalar(call.dropout)),
            ];
            if slots > 1 {
                feed.push((port::STEPS, Literal::scalar(batches.len() as i32)));
            }
            Ok(feed)
        })
        .collect()
}

/// The eval step's inputs by name for one batch padded to `size` examples (padding has class
/// -1 and never counts as correct).
pub fn eval_feeds(batch: &Batch, size: usize) -> Result<Vec<(&'static str, Literal)>> {
    let [n, h, w, c] = batch.image_dims();
    let per_image = h * w * c;
    let mut images = batch.images.clone();
    images.resize(size * per_image, 0.0);
    let mut classes = batch.labels.clone();
    classes.resize(size, -1);
    debug_assert!(n <= size);
    let images = Literal::from_vec(&[size as i64, h as i64, w as i64, c as i64], &images)
        .map_err(anyhow::Error::msg)?;
    let classes = Literal::from_vec(&[size as i64], &classes).map_err(anyhow::Error::msg)?;
    Ok(vec![(port::IMAGES, images), (port::CLASSES, classes)])
}
