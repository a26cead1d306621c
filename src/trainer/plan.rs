//! What a run will do, computed once before it starts: the progressive stages with their step
//! ranges, the learning-rate schedule and the graphs to compile (see [`plan_graphs`]).

use anyhow::{bail, Result};

use super::config::RunConfig;
use super::recipe::Augmentation;
use crate::model::ProgressiveStage;
use crate::model::{Backend, Model};
use crate::program::graph_plan::{plan_graphs, GraphRole, GraphSelection, PlannedGraph};
use crate::step::lr::{scaled_lr, LrSchedule};

/// A training run's plan.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub stages: Vec<ProgressiveStage>,
    pub steps_per_epoch: u64,
    pub total_steps: u64,
    pub lr: LrSchedule,
    /// The train graphs in stage order, then the eval graph.
    pub graphs: Vec<PlannedGraph>,
}

impl RunPlan {
    /// Plans `config` for `model` over `train_examples` examples on `replicas` devices, its
    /// graphs lowered for `backend`.
    pub fn new(
        config: &RunConfig,
        model: &Model,
        train_examples: usize,
        backend: Backend,
        replicas: usize,
    ) -> Result<RunPlan> {
        config.validate()?;
        if replicas == 0 || config.batch % replicas != 0 {
            bail!(
                "--batch {} does not split evenly over {replicas} devices",
                config.batch
            );
        }
        let steps_per_epoch = (train_examples / config.batch) as u64;
        if steps_per_epoch == 0 {
            bail!(
                "--batch {} is larger than the {train_examples} training examples",
                config.batch
            );
        }
        let total_steps = config.total_steps(steps_per_epoch, model.spec.progressive.stages);
        let mut stages = model
            .spec
            .progressive_stages(config.schedule, total_steps)?;
        if config.augmentation != Augmentation::Model {
            // Crop-and-flip and fine-tuning augmentation neither RandAugment nor mix.
            for stage in &mut stages {
                stage.randaug_magnitude = None;
                stage.mixup_alpha = 0.0;
                stage.cutmix_alpha = 0.0;
            }
        }
        let lr = LrSchedule {
            peak: scaled_lr(config.lr_base, config.batch as u64),
            steps_per_epoch: steps_per_epoch as f64,
            warmup_epochs: config.warmup_epochs,
            total_steps,
            decay: config.decay,
            min_lr: 0.0,
        };
        let graphs = plan_graphs(
            model,
            &GraphSelection {
                batch: (config.batch / replicas) as i64,
                replicas: replicas as i64,
                steps_per_call: config.steps_per_call as i64,
                sync_batch_norm: config.sync_batch_norm,
                skip_nonfinite: config.skip_nonfinite,
                objective: config.objective,
                eval_batch: config.eval_batch as i64,
                precision: config.precision,
                backend,
                schedule: config.schedule,
                stage: None,
                eval: true,
            },
        )?;
        Ok(RunPlan {
            stages,
            steps_per_epoch,
            total_steps,
            lr,
            graphs,
        })
    }

    /// The train graph of the stages at `image_size`.
    pub fn train_graph(&self, image_size: usize) -> &PlannedGraph {
        self.graphs
            .iter()
            .find(|g| matches!(g.role, GraphRole::Train { .. }) && g.image_size == image_size)
            .expect("the plan has a train graph for every stage size")
    }

    /// The eval graph.
    pub fn eval_graph(&self) -> &PlannedGraph {
        self.graphs
            .iter()
            .find(|g| g.role == GraphRole::Eval)
            .expect("a run plan has an eval graph")
    }
}
