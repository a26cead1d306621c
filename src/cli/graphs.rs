//! The graph-selection options `dump` and `compile` share: which model, batch, stages and
//! precision, planned with [`effnetv2::program::graph_plan`].

use anyhow::{Context as _, Result};
use clap::Args;
use effnetv2::data::AugmentOn;
use effnetv2::model::Backend;
use effnetv2::model::{load_spec, Model, ScheduleVariant};
use effnetv2::program::graph_plan::{plan_graphs, GraphSelection, PlannedGraph};
use effnetv2::step::graphs::{InputMode, Objective, Precision};
use effnetv2::trainer::input::{any_mixing, InputPipeline};

use super::train::{parse_precision, parse_schedule};

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Model spec: a built-in name (tiny, b0..b3, s, m, l, xl) or a JSON file.
    #[arg(long, default_value = "s")]
    pub model: String,
    /// Examples per execution on each device (data-parallel steps take this many per device).
    #[arg(long, default_value_t = 128)]
    pub batch: i64,
    /// Only this progressive stage (default: every stage).
    #[arg(long, conflicts_with = "all_stages")]
    pub stage: Option<usize>,
    /// Every progressive stage (the default when --stage is not given).
    #[arg(long)]
    pub all_stages: bool,
    /// Also the eval step at the eval image size.
    #[arg(long)]
    pub eval: bool,
    /// Progressive schedule: the official code's or the paper's.
    #[arg(long, default_value = "official", value_parser = parse_schedule)]
    pub schedule: ScheduleVariant,
    #[arg(long, default_value = "bf16", value_parser = parse_precision)]
    pub precision: Precision,
    /// Cross-replica batch-norm statistics in data-parallel train steps.
    #[arg(long)]
    pub sync_bn: bool,
    /// Train steps that skip non-finite updates (as `train --skip-nonfinite` runs them).
    #[arg(long)]
    pub skip_nonfinite: bool,
    /// Optimizer steps per train-step execution: a `while` loop over K stacked batches.
    #[arg(long, default_value_t = 1)]
    pub steps_per_call: i64,
    /// Where the train steps augment: `host` takes f32 images augmented on the host; `device`
    /// takes u8 images and applies RandAugment, normalisation and mixup/CutMix in the step.
    #[arg(long, default_value = "host")]
    pub augment_on: AugmentOn,
}

/// The train steps' input for `model` augmented `on` the host or the device: a device step
/// applies the model's RandAugment layers, and mixes when some stage of its schedule does (as
/// `train` builds it).
fn step_input(model: &Model, schedule: ScheduleVariant, on: AugmentOn) -> Result<InputMode> {
    let spec = &model.spec;
    let stages = spec.progressive_stages(schedule, spec.progressive.stages as u64)?;
    InputPipeline::for_spec(spec)?
        .step_input(on, any_mixing(&stages))
        .with_context(|| format!("model {}", spec.name))
}

impl GraphArgs {
    /// The model and its planned graphs lowered for `backend`, train steps data-parallel over
    /// `replicas` devices.
    pub fn plan(&self, backend: Backend, replicas: usize) -> Result<(Model, Vec<PlannedGraph>)> {
        let model = Model::new(load_spec(&self.model)?)?;
        let graphs = plan_graphs(
            &model,
            &GraphSelection {
                batch: self.batch,
                replicas: replicas as i64,
                steps_per_call: self.steps_per_call,
                sync_batch_norm: self.sync_bn,
                skip_nonfinite: self.skip_nonfinite,
                objective: Objective::OFFICIAL,
                eval_batch: self.batch,
                precision: self.precision,
                backend,
                schedule: self.schedule,
                stage: self.stage,
                eval: self.eval,
                input: step_input(&model, self.schedule, self.augment_on)?,
            },
        )?;
        Ok((model, graphs))
    }
}
