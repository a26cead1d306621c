//! `effnetv2 eval`: top-1/top-5 of a run's EMA weights.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use effnetv2::hlo::Literal;
use effnetv2::model::graph::Lowering;
use effnetv2::model::{load_spec, Model};
use effnetv2::runtime::CompileOptions;
use effnetv2::train::state::{Role, StateLayout};
use effnetv2::train::step::eval_step_module;
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::data::DataSpec;
use effnetv2::trainer::executables::ExecutableCache;
use effnetv2::trainer::run::{
    depthwise_for, evaluate, open_client, CheckpointMeta, EvalSet, RunConfig,
};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run directory (its newest checkpoint is used) or one checkpoint directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Evaluation data (default: the run's).
    #[arg(long)]
    data: Option<DataSpec>,
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
        let dir = if self.checkpoint.join("meta.json").exists() {
            self.checkpoint.clone()
        } else {
            checkpoint::latest(&self.checkpoint.join("checkpoints"))?.with_context(|| {
                format!(
                    "{} holds no checkpoint (expected a run directory or a ckpt-* directory)",
                    self.checkpoint.display()
                )
            })?
        };
        let meta: CheckpointMeta =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)
                .with_context(|| format!("reading {}", dir.join("meta.json").display()))?;
        let config: RunConfig = meta.config;
        let model = Model::new(load_spec(self.model.as_ref().unwrap_or(&config.model))?)?;
        // The EMA shadows, in the model's parameter order (the eval graph's parameters).
        let layout = StateLayout::new(&model);
        let ema = layout
            .entries()
            .iter()
            .filter(|e| matches!(e.role, Role::Ema(_)))
            .map(|e| (e.name.as_str(), &e.shape));
        let (weights, _): (Vec<Literal>, serde_json::Value) = checkpoint::load(&dir, ema)?;

        let client = open_client(config.plugin, config.plugin_path.as_deref())?;
        let device = client
            .addressable_devices()
            .first()
            .context("the plugin exposes no device")?;
        let buffers = weights
            .iter()
            .map(|w| client.buffer_from_literal(w, device))
            .collect::<Result<Vec<_>, _>>()?;
        let image_size = self.image_size.unwrap_or(model.spec.image_size.eval);
        let lowering = Lowering {
            compute: config.precision.compute_type(),
            depthwise: depthwise_for(&client),
        };
        let module = eval_step_module(&model, self.batch as i64, image_size as i64, lowering)?;
        let cache = ExecutableCache::new(Some(effnetv2::data::cache_dir()?.join("executables")));
        let (exe, _) = cache.get(&client, &module, &CompileOptions::default())?;
        let (_, source) = self.data.unwrap_or(config.data).open()?;
        let set = EvalSet {
            source,
            batch: self.batch,
            image_size,
            workers: config.workers,
            limit: self.limit,
            settings: model.spec.augment_settings,
        };
        let refs: Vec<_> = buffers.iter().collect();
        let (top1, top5, n) = evaluate(&client, device, &exe, &refs, &set)?;
        println!(
            "{}: step {}, {n} images at {image_size}px: top-1 {:.2}%, top-5 {:.2}%",
            dir.display(),
            meta.step,
            100.0 * top1,
            100.0 * top5
        );
        Ok(())
    }
}
