//! What defines a training run (written to `config.json` in the run directory) and which of it a
//! resumed run must keep.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::input::DataSpec;
use super::recipe::{Augmentation, NamedImageSize, TrainImageSize, TrainSettings};
use crate::data::{AugmentOn, Cursor};
use crate::model::{load_spec, MinMax, Model, ModelSpec, ScheduleVariant};
use crate::runtime::provision::PluginKind;
use crate::step::graphs::{Objective, Precision};
use crate::step::lr::{epoch_steps, Decay};

/// Everything that defines a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// A built-in spec name (`tiny`, `s`, ...) or a path to a spec JSON file.
    pub model: String,
    /// A training recipe: built-in name or JSON file (`None`: the model's own recipe if there is
    /// one, else `official`).
    #[serde(default)]
    pub recipe: Option<String>,
    pub plugin: PluginKind,
    /// An explicit plugin library (otherwise found or installed by kind).
    pub plugin_path: Option<PathBuf>,
    pub data: DataSpec,
    /// The global batch, split evenly over the devices.
    pub batch: usize,
    /// Devices to train on, data-parallel (`None`: every device of an accelerator, one CPU
    /// device). A run may resume on another count.
    #[serde(default)]
    pub devices: Option<usize>,
    /// Batch-norm statistics over the global batch (all replicas) instead of per replica.
    #[serde(default)]
    pub sync_batch_norm: bool,
    /// Optimizer steps per train-step call (K): a `while` loop over K stacked batches. The
    /// weights do not depend on it, so a run may resume with another K.
    #[serde(default = "one_step_per_call")]
    pub steps_per_call: usize,
    /// Skip (and count) steps whose loss or update is not finite instead of stopping the run.
    #[serde(default)]
    pub skip_nonfinite: bool,
    pub epochs: f64,
    /// Train at least this many steps whatever the epochs give (the official `min_steps`).
    #[serde(default)]
    pub min_steps: Option<u64>,
    /// Train exactly this many steps (then `epochs` and `min_steps` do not count).
    #[serde(default)]
    pub steps: Option<u64>,
    /// Number of progressive stages (`None`: the spec's).
    pub stages: Option<usize>,
    /// Classifier outputs (`None`: the spec's). A run on data with another number of classes
    /// sets it to the data's, so that the head follows the data and `eval` builds the same head.
    #[serde(default)]
    pub num_classes: Option<usize>,
    pub schedule: ScheduleVariant,
    pub precision: Precision,
    pub seed: u64,
    /// Base learning rate for batch 256 (scaled linearly with the batch size).
    pub lr_base: f64,
    pub warmup_epochs: f64,
    pub decay: Decay,
    /// Label smoothing, weight decay and EMA decay.
    #[serde(default)]
    pub objective: Objective,
    /// Dropout before the classifier in every stage (`None`: the spec's and its schedule).
    #[serde(default)]
    pub dropout: Option<f64>,
    /// The last block's survival probability (`None`: the spec's).
    #[serde(default)]
    pub survival_prob: Option<f64>,
    /// Train (and for a pixel count, evaluate) at one size instead of the progressive sizes.
    #[serde(default)]
    pub image_size: Option<TrainImageSize>,
    #[serde(default)]
    pub augmentation: Augmentation,
    /// Where RandAugment, the normalisation and mixup/CutMix run: the host, or the train step
    /// (the host then sends `u8` images and the drawn parameters).
    #[serde(default)]
    pub augment_on: AugmentOn,
    /// The weights the run started from (a run or checkpoint directory, or a timm file);
    /// `None`: drawn from the seed.
    #[serde(default)]
    pub init: Option<PathBuf>,
    pub eval_batch: usize,
    pub workers: usize,
    /// Write a checkpoint every this many steps (and at the end of every stage).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
    /// Stop (after writing a checkpoint) once this many steps are done: a deliberate interruption,
    /// used to test resumption.
    pub stop_after: Option<u64>,
    /// Evaluate on at most this many test images (`None`: all).
    pub eval_limit: Option<usize>,
    /// The run directory: a local folder or `gs://bucket/prefix`.
    pub out: PathBuf,
    /// Break the run directory's lock left by a trainer that is gone (a preempted VM) instead of
    /// refusing to start. Not saved: it concerns this invocation only.
    #[serde(skip)]
    pub break_lock: bool,
}

fn one_step_per_call() -> usize {
    1
}

/// Steps per call above this are refused: each call's batches are stacked on the host and on
/// the device, so K is bounded by memory long before it stops saving host work.
pub const MAX_STEPS_PER_CALL: usize = 256;

/// Fewer checkpoints than this are refused: resuming falls back to the previous checkpoint when
/// the newest one is damaged, so one more must always be on disk.
pub const MIN_KEPT_CHECKPOINTS: usize = 2;

/// The `effnetv2 train` defaults, held here once: the command line takes its defaults from (or
/// checks them against) this, and tests and proxy runs change only what they need with
/// `RunConfig { batch: 8, ..RunConfig::default() }`. The training settings are the main job's
/// short run (`tiny` on Fashion-MNIST with the CPU plugin, 36 epochs at batch 128); a recipe
/// or an option replaces them through [`RunConfig::apply`].
impl Default for RunConfig {
    fn default() -> RunConfig {
        RunConfig {
            model: "tiny".into(),
            recipe: None,
            plugin: PluginKind::DEFAULT,
            plugin_path: None,
            data: DataSpec::FashionMnist,
            batch: 128,
            devices: None,
            sync_batch_norm: false,
            steps_per_call: 8,
            skip_nonfinite: false,
            epochs: 36.0,
            min_steps: None,
            steps: None,
            stages: None,
            num_classes: None,
            schedule: ScheduleVariant::Official,
            precision: Precision::F32,
            seed: 0,
            lr_base: 0.064,
            warmup_epochs: 0.5,
            decay: Decay::Cosine,
            objective: Objective::OFFICIAL,
            dropout: None,
            survival_prob: None,
            image_size: None,
            augmentation: Augmentation::Model,
            augment_on: AugmentOn::Host,
            init: None,
            eval_batch: 500,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            checkpoint_every: 500,
            keep_checkpoints: 3,
            stop_after: None,
            eval_limit: None,
            break_lock: false,
            out: PathBuf::from("runs/latest"),
        }
    }
}

impl RunConfig {
    /// The model spec `name` as this run uses it: with the run's stage and class counts, and
    /// the dropout, survival probability and image size its recipe or options set.
    pub fn spec(&self, name: &str) -> Result<ModelSpec> {
        let mut spec = load_spec(name)?;
        if let Some(n) = self.stages {
            spec.progressive.stages = n;
        }
        if let Some(n) = self.num_classes {
            spec.num_classes = n;
        }
        let mut ranges: Vec<_> = std::iter::once(&mut spec.progressive.official)
            .chain(spec.progressive.paper.as_mut())
            .collect();
        if let Some(dropout) = self.dropout {
            spec.dropout = dropout;
            for r in &mut ranges {
                r.dropout = None;
            }
        }
        if let Some(size) = self.image_size {
            let size = match size {
                TrainImageSize::Named(NamedImageSize::Eval) => spec.image_size.eval,
                TrainImageSize::Pixels(n) => {
                    spec.image_size.eval = n;
                    n
                }
            };
            spec.image_size.train = size;
            for r in &mut ranges {
                r.image_size = MinMax {
                    min: size,
                    max: size,
                };
            }
        }
        if let Some(survival) = self.survival_prob {
            spec.survival_prob = survival;
        }
        spec.validate()
            .map_err(|e| e.at(&format!("model {name} with this run's settings")))?;
        Ok(spec)
    }

    /// Sets every setting `settings` gives.
    pub fn apply(&mut self, settings: &TrainSettings) {
        let TrainSettings {
            epochs,
            min_steps,
            steps,
            batch,
            lr_base,
            warmup_epochs,
            decay,
            label_smoothing,
            weight_decay,
            ema_decay,
            dropout,
            survival_prob,
            stages,
            image_size,
            augmentation,
            augment_on,
        } = settings.clone();
        self.epochs = epochs.unwrap_or(self.epochs);
        self.min_steps = min_steps.or(self.min_steps);
        self.steps = steps.or(self.steps);
        self.batch = batch.unwrap_or(self.batch);
        self.lr_base = lr_base.unwrap_or(self.lr_base);
        self.warmup_epochs = warmup_epochs.unwrap_or(self.warmup_epochs);
        self.decay = decay.unwrap_or(self.decay);
        let objective = &mut self.objective;
        objective.label_smoothing = label_smoothing.unwrap_or(objective.label_smoothing);
        objective.weight_decay = weight_decay.unwrap_or(objective.weight_decay);
        objective.ema_decay = ema_decay.unwrap_or(objective.ema_decay);
        self.dropout = dropout.or(self.dropout);
        self.survival_prob = survival_prob.or(self.survival_prob);
        self.stages = stages.or(self.stages);
        self.image_size = image_size.or(self.image_size);
        self.augmentation = augmentation.unwrap_or(self.augmentation);
        self.augment_on = augment_on.unwrap_or(self.augment_on);
    }

    /// The run's length in steps over `train_examples` examples: `steps` if set, else the
    /// epochs' steps as the official code counts them ([`epoch_steps`]) but at least
    /// `min_steps` and one per progressive stage.
    pub fn total_steps(&self, train_examples: usize, stages: usize) -> u64 {
        self.steps.unwrap_or_else(|| {
            epoch_steps(self.epochs, train_examples as u64, self.batch as u64)
                .max(self.min_steps.unwrap_or(0))
                .max(stages as u64)
        })
    }

    /// The run's model.
    pub fn model(&self) -> Result<Model> {
        Ok(Model::new(self.spec(&self.model)?)?)
    }

    /// This run with a head of `classes` outputs where the spec's differs: the head follows
    /// the data.
    pub fn with_classes(&self, classes: usize) -> Result<RunConfig> {
        let mut config = self.clone();
        config.num_classes = None;
        let spec_classes = config.spec(&config.model)?.num_classes;
        config.num_classes = (classes != spec_classes).then_some(classes);
        Ok(config)
    }

    /// Checks every numeric option before anything is opened, allocated or compiled; the error
    /// names the command-line option.
    pub fn validate(&self) -> Result<()> {
        let at_least_one = |option: &str, value: u64| -> Result<()> {
            if value == 0 {
                bail!("{option} 0: must be at least 1");
            }
            Ok(())
        };
        let positive = |option: &str, value: f64| -> Result<()> {
            if !(value.is_finite() && value > 0.0) {
                bail!("{option} {value}: must be a positive number");
            }
            Ok(())
        };
        at_least_one("--batch", self.batch as u64)?;
        at_least_one("--eval-batch", self.eval_batch as u64)?;
        at_least_one("--workers", self.workers as u64)?;
        at_least_one("--checkpoint-every", self.checkpoint_every)?;
        at_least_one("--steps-per-call", self.steps_per_call as u64)?;
        if self.steps_per_call > MAX_STEPS_PER_CALL {
            bail!(
                "--steps-per-call {}: at most {MAX_STEPS_PER_CALL} (each call's batches are stacked in memory)",
                self.steps_per_call
            );
        }
        for (option, value) in [
            ("--min-steps", self.min_steps),
            ("--steps", self.steps),
            ("--devices", self.devices.map(|d| d as u64)),
            ("--stages", self.stages.map(|s| s as u64)),
            ("--stop-after", self.stop_after),
            ("--eval-limit", self.eval_limit.map(|l| l as u64)),
        ] {
            if let Some(value) = value {
                at_least_one(option, value)?;
            }
        }
        if let Some(devices) = self.devices.filter(|&d| !self.batch.is_multiple_of(d)) {
            bail!(
                "--batch {} does not split evenly over --devices {devices}",
                self.batch
            );
        }
        if self.keep_checkpoints < MIN_KEPT_CHECKPOINTS {
            bail!(
                "--keep-checkpoints {}: at least {MIN_KEPT_CHECKPOINTS}, so that a damaged newest \
                 checkpoint leaves an older one to resume from",
                self.keep_checkpoints
            );
        }
        positive("--epochs", self.epochs)?;
        positive("--lr", self.lr_base)?;
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            bail!(
                "--warmup-epochs {}: must be zero or a positive number",
                self.warmup_epochs
            );
        }
        let fraction = |option: &str, value: f64, top_inclusive: bool| -> Result<()> {
            let below_top = value < 1.0 || (top_inclusive && value == 1.0);
            if !(value.is_finite() && value >= 0.0 && below_top) {
                let top = if top_inclusive { "]" } else { ")" };
                bail!("{option} {value}: must be in [0, 1{top}");
            }
            Ok(())
        };
        fraction("--label-smoothing", self.objective.label_smoothing, false)?;
        fraction("--ema-decay", self.objective.ema_decay, false)?;
        if let Some(dropout) = self.dropout {
            fraction("--dropout", dropout, false)?;
        }
        if let Some(survival) = self.survival_prob {
            if !(survival.is_finite() && survival > 0.0 && survival <= 1.0) {
                bail!("--survival-prob {survival}: must be in (0, 1]");
            }
        }
        if !(self.objective.weight_decay.is_finite() && self.objective.weight_decay >= 0.0) {
            bail!(
                "--weight-decay {}: must be zero or a positive number",
                self.objective.weight_decay
            );
        }
        if let Some(TrainImageSize::Pixels(0)) = self.image_size {
            bail!("--image-size 0: must be at least 1");
        }
        Ok(())
    }

    /// A run may only resume with the settings that shaped its state and data order.
    pub fn check_resumable(&self, saved: &RunConfig) -> Result<()> {
        let differs = |what: &str, a: String, b: String| -> Result<()> {
            if a != b {
                bail!(
                    "cannot resume: the checkpoint was written with {what} {a}, this run asks for {b}"
                );
            }
            Ok(())
        };
        differs("--model", saved.model.clone(), self.model.clone())?;
        differs(
            "--recipe",
            format!("{:?}", saved.recipe),
            format!("{:?}", self.recipe),
        )?;
        differs("--batch", saved.batch.to_string(), self.batch.to_string())?;
        differs("--seed", saved.seed.to_string(), self.seed.to_string())?;
        differs(
            "--epochs",
            saved.epochs.to_string(),
            self.epochs.to_string(),
        )?;
        differs(
            "--stages",
            format!("{:?}", saved.stages),
            format!("{:?}", self.stages),
        )?;
        for (option, saved, asked) in [
            ("--steps", saved.steps, self.steps),
            ("--min-steps", saved.min_steps, self.min_steps),
        ] {
            differs(option, format!("{saved:?}"), format!("{asked:?}"))?;
        }
        differs(
            "--image-size",
            format!("{:?}", saved.image_size),
            format!("{:?}", self.image_size),
        )?;
        differs(
            "--augment-on",
            saved.augment_on.to_string(),
            self.augment_on.to_string(),
        )?;
        differs(
            "--data",
            format!("{:?}", saved.data),
            format!("{:?}", self.data),
        )
    }
}

impl RunConfig {
    /// A digest of every setting the hosts of a multi-host run must share: all but the
    /// host-local ones (output directory, plugin file, data workers).
    pub fn shared_fingerprint(&self) -> Result<i64> {
        let mut value = serde_json::to_value(self)?;
        if let Some(fields) = value.as_object_mut() {
            for local in ["out", "plugin_path", "workers"] {
                fields.remove(local);
            }
        }
        let digest = Sha256::digest(value.to_string().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Ok(i64::from_le_bytes(first))
    }
}

/// Checkpoint metadata: where the run stands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub step: u64,
    pub cursor: Cursor,
    pub config: RunConfig,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::recipe::Recipe;

    fn config(model: &str) -> RunConfig {
        let mut config: RunConfig = serde_json::from_value(serde_json::json!({
            "model": model, "plugin": "cpu", "plugin_path": null, "data": {"kind": "fashion_mnist"},
            "batch": 32, "epochs": 1.0, "stages": null, "schedule": "official",
            "precision": "f32", "seed": 0, "lr_base": 0.1, "warmup_epochs": 0.0,
            "decay": {"kind": "cosine"}, "eval_batch": 8, "workers": 1,
            "checkpoint_every": 10, "keep_checkpoints": 2, "stop_after": null,
            "eval_limit": null, "out": "unused"
        }))
        .unwrap();
        config.validate().unwrap();
        config.apply(&TrainSettings::default());
        config
    }

    #[test]
    fn a_fine_tuning_recipe_trains_one_stage_at_the_eval_size() {
        let mut run = config("s");
        run.apply(&Recipe::load("finetune").unwrap().train);
        run.validate().unwrap();
        let spec = run.spec("s").unwrap();
        assert_eq!((spec.dropout, spec.survival_prob), (1e-6, 0.8));
        let stages = spec
            .progressive_stages(ScheduleVariant::Official, 100)
            .unwrap();
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0].image_size, 384, "S evaluates at 384 px");
        assert_eq!(stages[0].dropout, 1e-6);
        assert_eq!(run.objective.ema_decay, 0.9996);
        // 15 epochs of 10 steps are fewer than min_steps.
        assert_eq!(run.total_steps(10 * 512, 1), 10_000);
        assert_eq!(run.total_steps(1000 * 512, 1), 15_000);
        // Epochs count whole steps of the float steps per epoch: 15 * 1000.5.
        assert_eq!(run.total_steps(1000 * 512 + 256, 1), 15_007);
    }

    #[test]
    fn a_pixel_size_sets_training_and_evaluation_and_steps_override_epochs() {
        let mut run = config("tiny");
        run.apply(&Recipe::load("imagenet21k").unwrap().train);
        let spec = run.spec("tiny").unwrap();
        assert_eq!((spec.image_size.train, spec.image_size.eval), (224, 224));
        assert_eq!(run.objective.label_smoothing, 0.0);
        run.apply(&TrainSettings {
            steps: Some(7),
            ..TrainSettings::default()
        });
        assert_eq!(run.total_steps(1000 * 32, 4), 7);
    }

    #[test]
    fn out_of_range_settings_name_their_option() {
        for (settings, needle) in [
            (
                TrainSettings {
                    label_smoothing: Some(1.0),
                    ..TrainSettings::default()
                },
                "--label-smoothing 1: must be in [0, 1)",
            ),
            (
                TrainSettings {
                    ema_decay: Some(-0.1),
                    ..TrainSettings::default()
                },
                "--ema-decay -0.1: must be in [0, 1)",
            ),
            (
                TrainSettings {
                    survival_prob: Some(0.0),
                    ..TrainSettings::default()
                },
                "--survival-prob 0: must be in (0, 1]",
            ),
            (
                TrainSettings {
                    weight_decay: Some(f64::NAN),
                    ..TrainSettings::default()
                },
                "--weight-decay NaN",
            ),
            (
                TrainSettings {
                    steps: Some(0),
                    ..TrainSettings::default()
                },
                "--steps 0: must be at least 1",
            ),
            (
                TrainSettings {
                    image_size: Some(TrainImageSize::Pixels(0)),
                    ..TrainSettings::default()
                },
                "--image-size 0",
            ),
        ] {
            let mut run = config("tiny");
            run.apply(&settings);
            let error = run.validate().unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
