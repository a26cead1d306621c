//! What defines a training run (written to `config.json` in the run directory) and which of it a
//! resumed run must keep.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::data::DataSpec;
use crate::data::Cursor;
use crate::model::{load_spec, Model, ModelSpec, ScheduleVariant};
use crate::runtime::provision::PluginKind;
use crate::train::lr::Decay;
use crate::train::step::Precision;

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
    pub out: PathBuf,
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

impl RunConfig {
    /// The model spec `name` as this run uses it: with the run's stage and class counts.
    pub fn spec(&self, name: &str) -> Result<ModelSpec> {
        let mut spec = load_spec(name)?;
        if let Some(n) = self.stages {
            spec.progressive.stages = n;
        }
        if let Some(n) = self.num_classes {
            spec.num_classes = n;
        }
        Ok(spec)
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
            ("--devices", self.devices.map(|d| d as u64)),
            ("--stages", self.stages.map(|s| s as u64)),
            ("--stop-after", self.stop_after),
            ("--eval-limit", self.eval_limit.map(|l| l as u64)),
        ] {
            if let Some(value) = value {
                at_least_one(option, value)?;
            }
        }
        if let Some(devices) = self.devices.filter(|&d| self.batch % d != 0) {
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
