//! `effnetv2 eval`: top-1/top-5 of a run's EMA weights.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use effnetv2::data::tfrecord::Layout;
use effnetv2::hlo::Literal;
use effnetv2::model::Model;
use effnetv2::program::context::Context;
use effnetv2::step::graphs::{eval_step, port};
use effnetv2::storage::Location;
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::{CheckpointMeta, RunConfig};
use effnetv2::trainer::evaluate::{evaluate, EvalSet};
use effnetv2::trainer::input::{DataSpec, InputPipeline};
use effnetv2::trainer::recipe::Recipe;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (its newest checkpoint is used) or one checkpoint directory, local or
    /// `gs://bucket/prefix`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Evaluation data (default: the run's).
    #[arg(long)]
    data: Option<DataSpec>,
    /// The TFRecord layout of --data when its file names do not tell: `imagenet` or `tfds`.
    #[arg(long, requires = "data")]
    data_format: Option<Layout>,
    /// Model spec to evaluate with (default: the run's). It must have the run's variables; a
    /// different spec changes only what does not: e.g. the evaluation crop padding.
    #[arg(long)]
    model: Option<String>,
    /// Image size (default: the model's eval size).
    #[arg(long)]
    image_size: Option<usize>,
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Evaluate on at most this many images.
    #[arg(long)]
    limit: Option<usize>,
}

impl EvalArgs {
    pub fn run(self) -> Result<()> {
        let dir = checkpoint::find(Location::parse_path(&self.checkpoint)?)?;
        let meta: CheckpointMeta = checkpoint::metadata(&dir)?;
        let config: RunConfig = meta.config;
        let model = Model::new(config.spec(self.model.as_ref().unwrap_or(&config.model))?)?;
        let image_size = self.image_size.unwrap_or(model.spec.image_size.eval);
        let ctx = Context::open(config.plugin, config.plugin_path.as_deref())?;
        let graph = eval_step(
            &model,
            self.batch as i64,
            image_size as i64,
            ctx.lowering(config.precision),
        )?;
        // The eval step's weight inputs are the EMA shadows, named as in the checkpoint.
        let weight_ports: Vec<_> = graph
            .signature
            .inputs()
            .iter()
            .filter(|p| p.name != port::IMAGES && p.name != port::CLASSES)
            .collect();
        let expected = weight_ports.iter().map(|p| (p.name.as_str(), &p.shape));
        let (weights, _): (Vec<Literal>, serde_json::Value) = checkpoint::load(&dir, expected)?;
        let buffers = weights
            .iter()
            .map(|w| ctx.upload(w))
            .collect::<Result<Vec<_>>>()?;
        let (exe, _) = ctx.compile(&graph)?;
        let data = match (self.data, self.data_format) {
            (Some(data), Some(layout)) => data.with_layout(layout).map_err(anyhow::Error::msg)?,
            (data, _) => data.unwrap_or(config.data),
        };
        let (_, source) = data.open()?;
        let set = EvalSet {
            source,
            batch: self.batch,
            image_size,
            workers: config.workers,
            limit: self.limit,
            settings: Recipe::for_run(config.recipe.as_deref(), &model.spec)?.augment,
            pipeline: InputPipeline::for_spec(&model.spec)?.with_augmentation(config.augmentation),
        };
        let named: Vec<_> = weight_ports
            .iter()
            .map(|p| p.name.as_str())
            .zip(&buffers)
            .collect();
        let accuracy = evaluate(&ctx, &exe, &named, &set)?;
        println!(
            "{dir}: step {}, {} images at {image_size}px: top-1 {:.2}%, top-5 {:.2}%",
            meta.step,
            accuracy.examples,
            100.0 * accuracy.top1,
            100.0 * accuracy.top5
        );
        Ok(())
    }
}
