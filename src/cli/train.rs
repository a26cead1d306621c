//! `effnetv2 train`: a progressive-learning training run.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use effnetv2::data::tfrecord::Layout;
use effnetv2::data::AugmentOn;
use effnetv2::model::{load_spec, ScheduleVariant};
use effnetv2::step::graphs::Precision;
use effnetv2::step::lr::Decay;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::input::DataSpec;
use effnetv2::trainer::recipe::{Augmentation, Recipe, TrainImageSize, TrainSettings};
use effnetv2::trainer::run::train;

use super::interrupt::interrupt_flag;
use super::plugin::PluginArgs;
use super::progress::Progress;

/// Defaults: the small variant on Fashion-MNIST with the CPU plugin, 4 progressive stages.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model spec: a built-in name (tiny, b0..b3, s, m, l, xl) or a JSON file.
    #[arg(long, default_value_t = RunConfig::default().model)]
    model: String,
    /// Training recipe: a built-in name (official, tiny, finetune, transfer, imagenet21k) or a
    /// JSON file; its settings replace the defaults below, and an option given here replaces
    /// the recipe's. Default: the model's own recipe if there is one, else official.
    #[arg(long)]
    recipe: Option<String>,
    /// Start from these weights instead of a random draw: a run or checkpoint directory
    /// (its EMA weights) or a timm `tf_efficientnetv2_*` safetensors file (local or
    /// `gs://...`). A classifier for another number of classes is drawn afresh.
    #[arg(long)]
    init: Option<PathBuf>,
    #[command(flatten)]
    plugin: PluginArgs,
    /// `fashion-mnist`, a directory with train/ and val/ (image folders or zip shards), or a
    /// directory or prefix of TFRecord shards (`train-00000-of-01024`, ... as imagenet_to_gcs.py
    /// writes them, or TFDS `imagenet2012-train.tfrecord-00000-of-01024`, ...), local or
    /// `gs://bucket/prefix` (TFRecords only; the hosts of a slice split them by file).
    #[arg(long, default_value = "fashion-mnist")]
    data: DataSpec,
    /// The TFRecord layout of --data when its file names do not tell: `imagenet`
    /// (imagenet_to_gcs.py) or `tfds` (TensorFlow Datasets).
    #[arg(long)]
    data_format: Option<Layout>,
    /// The global batch, split evenly over the devices [default: 128].
    #[arg(long)]
    batch: Option<usize>,
    /// Devices to train on, data-parallel (default: every TPU or GPU device; one CPU device).
    #[arg(long)]
    devices: Option<usize>,
    /// Batch-norm statistics over the global batch instead of each device's share.
    #[arg(long)]
    sync_bn: bool,
    /// Optimizer steps per executable call (K batches stacked, a `while` loop on the device);
    /// the trained weights do not depend on it. 8 saves host work per step (the main job trains
    /// 8% faster than with 1 on the CPU plugin).
    #[arg(long, default_value_t = RunConfig::default().steps_per_call)]
    steps_per_call: usize,
    /// Skip steps whose loss or update is not finite (NaN, infinite), counting them, instead of
    /// stopping the run at the first one.
    #[arg(long)]
    skip_nonfinite: bool,
    /// [default: 36]
    #[arg(long)]
    epochs: Option<f64>,
    /// Train at least this many steps whatever --epochs gives.
    #[arg(long)]
    min_steps: Option<u64>,
    /// Train exactly this many steps (instead of --epochs).
    #[arg(long)]
    steps: Option<u64>,
    /// Progressive stages (default: the spec's); 1 trains at the final size only.
    #[arg(long)]
    stages: Option<usize>,
    /// Train and evaluate at this size instead of the progressive sizes.
    #[arg(long)]
    image_size: Option<usize>,
    /// Training augmentation: `model` (the model's policy with the stages' mixup and cutmix),
    /// `crop_flip`, `flip_cutout`, or `none`: a debugging mode with no random draw at all (the
    /// whole image resized to the stage size, as evaluation sees it, and the examples in the
    /// data set's order every epoch), for deterministic runs and for feeding another framework
    /// the same batches [default: the recipe's, else model].
    #[arg(long, value_parser = parse_augmentation)]
    augment: Option<Augmentation>,
    /// Where RandAugment, the normalisation and mixup/CutMix run: `host` (the loader sends
    /// normalised f32 images) or `device` (the loader sends u8 images after crop, resize and
    /// flip with the drawn operations, 4x fewer bytes, and the train step applies them; not
    /// for AutoAugment (B0-B3) or flip_cutout) [default: the recipe's, else host].
    #[arg(long)]
    augment_on: Option<AugmentOn>,
    /// Progressive schedule: the official code's or the paper's.
    #[arg(long, default_value = "official", value_parser = parse_schedule)]
    schedule: ScheduleVariant,
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    #[arg(long, default_value_t = RunConfig::default().seed)]
    seed: u64,
    /// Base learning rate per 256 examples (the official recipe uses 0.016 for 350 epochs)
    /// [default: 0.064].
    #[arg(long)]
    lr: Option<f64>,
    /// [default: 0.5]
    #[arg(long)]
    warmup_epochs: Option<f64>,
    /// Learning-rate decay after warmup: exponential (0.97 every 2.4 epochs), cosine, linear or
    /// constant [default: cosine].
    #[arg(long, value_parser = parse_decay)]
    decay: Option<Decay>,
    /// [default: 0.1]
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// L2 coefficient on the kernels [default: 1e-5].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// [default: 0.9999]
    #[arg(long)]
    ema_decay: Option<f64>,
    /// Dropout before the classifier in every stage (default: the model spec's).
    #[arg(long)]
    dropout: Option<f64>,
    /// The last block's survival probability for stochastic depth (default: the spec's).
    #[arg(long)]
    survival_prob: Option<f64>,
    #[arg(long, default_value_t = RunConfig::default().eval_batch)]
    eval_batch: usize,
    /// Evaluate on at most this many test images.
    #[arg(long)]
    eval_limit: Option<usize>,
    /// Data-pipeline worker threads (default: all cores).
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long, default_value_t = RunConfig::default().checkpoint_every)]
    checkpoint_every: u64,
    #[arg(long, default_value_t = RunConfig::default().keep_checkpoints)]
    keep_checkpoints: usize,
    /// Stop after this many steps (writing a checkpoint first), as if interrupted.
    #[arg(long)]
    stop_after: Option<u64>,
    /// Run directory (config, metrics.jsonl, tensorboard/, checkpoints, summary): a local
    /// folder or `gs://bucket/prefix`.
    #[arg(long, default_value_os_t = RunConfig::default().out)]
    out: PathBuf,
    /// Continue the run in --out from its newest checkpoint.
    #[arg(long)]
    resume: bool,
    /// Break the lock of --out left by a trainer that is dead (a preempted VM) and start; a
    /// lock of a live trainer must not be broken, or both write the run.
    #[arg(long)]
    break_lock: bool,
}

pub(super) fn parse_schedule(s: &str) -> Result<ScheduleVariant, String> {
    match s {
        "official" => Ok(ScheduleVariant::Official),
        "paper" => Ok(ScheduleVariant::Paper),
        _ => Err(format!("unknown schedule '{s}': use 'official' or 'paper'")),
    }
}

pub(super) fn parse_precision(s: &str) -> Result<Precision, String> {
    match s {
        "f32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        _ => Err(format!("unknown precision '{s}': use 'f32' or 'bf16'")),
    }
}

fn parse_decay(s: &str) -> Result<Decay, String> {
    match s {
        "exponential" => Ok(Decay::Exponential {
            factor: 0.97,
            every_epochs: 2.4,
        }),
        "cosine" => Ok(Decay::Cosine),
        "linear" => Ok(Decay::Linear),
        "constant" => Ok(Decay::Constant),
        _ => Err(format!(
            "unknown decay '{s}': use exponential, cosine, linear or constant"
        )),
    }
}

fn parse_augmentation(s: &str) -> Result<Augmentation, String> {
    match s {
        "model" => Ok(Augmentation::Model),
        "crop_flip" => Ok(Augmentation::CropFlip),
        "flip_cutout" => Ok(Augmentation::FlipCutout),
        "none" => Ok(Augmentation::Off),
        _ => Err(format!(
            "unknown augmentation '{s}': use model, crop_flip, flip_cutout or none"
        )),
    }
}

impl TrainArgs {
    /// The settings given on the command line.
    fn settings(&self) -> TrainSettings {
        TrainSettings {
            epochs: self.epochs,
            min_steps: self.min_steps,
            steps: self.steps,
            batch: self.batch,
            lr_base: self.lr,
            warmup_epochs: self.warmup_epochs,
            decay: self.decay,
            label_smoothing: self.label_smoothing,
            weight_decay: self.weight_decay,
            ema_decay: self.ema_decay,
            dropout: self.dropout,
            survival_prob: self.survival_prob,
            stages: self.stages,
            image_size: self.image_size.map(TrainImageSize::Pixels),
            augmentation: self.augment,
            augment_on: self.augment_on,
        }
    }

    /// The run: the defaults ([`RunConfig::default`]), then the recipe's settings, then the
    /// options given.
    pub fn config(&self) -> Result<RunConfig> {
        let recipe = Recipe::for_run(self.recipe.as_deref(), &load_spec(&self.model)?)?;
        let defaults = RunConfig::default();
        let mut config = RunConfig {
            model: self.model.clone(),
            recipe: self.recipe.clone(),
            plugin: self.plugin.kind,
            plugin_path: self.plugin.path.clone(),
            data: match self.data_format {
                Some(layout) => self
                    .data
                    .clone()
                    .with_layout(layout)
                    .map_err(anyhow::Error::msg)?,
                None => self.data.clone(),
            },
            devices: self.devices,
            sync_batch_norm: self.sync_bn,
            steps_per_call: self.steps_per_call,
            skip_nonfinite: self.skip_nonfinite,
            schedule: self.schedule,
            precision: self.precision,
            seed: self.seed,
            init: self.init.clone(),
            eval_batch: self.eval_batch,
            workers: self.workers.unwrap_or(defaults.workers),
            checkpoint_every: self.checkpoint_every,
            keep_checkpoints: self.keep_checkpoints,
            stop_after: self.stop_after,
            eval_limit: self.eval_limit,
            out: self.out.clone(),
            break_lock: self.break_lock,
            ..defaults
        };
        config.apply(&self.settings().or(&recipe.train));
        Ok(config)
    }

    pub fn run(self) -> Result<()> {
        // Ctrl-C finishes the current step, writes a checkpoint and exits; a second Ctrl-C kills.
        let interrupted = interrupt_flag()?;
        let mut progress = Progress::new();
        let summary = train(&self.config()?, self.resume, &interrupted, &mut progress);
        progress.finish();
        let summary = summary?;
        println!("{}", effnetv2::report::run_summary::summary_table(&summary));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn config(args: &[&str]) -> RunConfig {
        let args = std::iter::once("train").chain(args.iter().copied());
        Command::try_parse_from(args)
            .unwrap()
            .train
            .config()
            .unwrap()
    }

    #[test]
    fn the_command_line_defaults_are_the_run_config_defaults() {
        let mut expected = RunConfig::default();
        let tiny = load_spec(&expected.model).unwrap();
        expected.apply(&Recipe::for_run(None, &tiny).unwrap().train);
        assert_eq!(config(&[]), expected);
    }

    #[test]
    fn options_override_the_recipe_which_overrides_the_defaults() {
        let plain = config(&[]);
        assert_eq!(
            (plain.epochs, plain.batch, plain.lr_base),
            (36.0, 128, 0.064)
        );
        assert_eq!(plain.augmentation, Augmentation::Model);
        let recipe = config(&["--recipe", "finetune"]);
        assert_eq!(
            (recipe.epochs, recipe.batch, recipe.lr_base),
            (15.0, 512, 0.0005)
        );
        assert_eq!(recipe.augmentation, Augmentation::FlipCutout);
        assert_eq!(recipe.objective.ema_decay, 0.9996);
        let given = config(&[
            "--recipe",
            "finetune",
            "--batch",
            "64",
            "--ema-decay",
            "0.99",
        ]);
        assert_eq!((given.batch, given.lr_base), (64, 0.0005));
        assert_eq!(given.objective.ema_decay, 0.99);
        let plain_images = config(&["--recipe", "finetune", "--augment", "none"]);
        assert_eq!(plain_images.augmentation, Augmentation::Off);
        let init = config(&["--init", "runs/source"]);
        assert_eq!(
            init.init.as_deref(),
            Some(std::path::Path::new("runs/source"))
        );
    }
}
