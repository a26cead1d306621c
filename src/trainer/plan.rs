//! What a run will do, computed once before it starts: the progressive stages with their step
//! ranges, the learning-rate schedule and the graphs to compile (see [`plan_graphs`]).

use anyhow::{bail, Result};

use super::config::RunConfig;
use super::input::{any_mixing, InputPipeline};
use super::recipe::Augmentation;
use crate::model::ProgressiveStage;
use crate::model::{Backend, Model};
use crate::program::graph_plan::{plan_graphs, GraphRole, GraphSelection, PlannedGraph};
use crate::step::graphs::InputMode;
use crate::step::lr::{scaled_lr, steps_per_epoch, LrSchedule};

/// A training run's plan.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub stages: Vec<ProgressiveStage>,
    /// A float, as the official code counts it (see [`steps_per_epoch`]).
    pub steps_per_epoch: f64,
    pub total_steps: u64,
    pub lr: LrSchedule,
    /// The train graphs in stage order, then the eval graph.
    pub graphs: Vec<PlannedGraph>,
    /// Whether the train steps mix images on the device: augmentation on the device in a run
    /// with mixup or CutMix in some stage (the stages without take arrays that mix nothing).
    pub mixes_on_device: bool,
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
        if replicas == 0 || !config.batch.is_multiple_of(replicas) {
            bail!(
                "--batch {} does not split evenly over {replicas} devices",
                config.batch
            );
        }
        if config.batch > train_examples {
            bail!(
                "--batch {} is larger than the {train_examples} training examples",
                config.batch
            );
        }
        let steps_per_epoch = steps_per_epoch(train_examples as u64, config.batch as u64);
        let total_steps = config.total_steps(train_examples, model.spec.progressive.stages);
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
        let input = InputPipeline::for_spec(&model.spec)?
            .with_augmentation(config.augmentation)
            .step_input(config.augment_on, any_mixing(&stages))?;
        let lr = LrSchedule {
            peak: scaled_lr(config.lr_base, config.batch as u64),
            steps_per_epoch,
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
                input,
            },
        )?;
        Ok(RunPlan {
            stages,
            steps_per_epoch,
            total_steps,
            lr,
            graphs,
            mixes_on_device: matches!(input, InputMode::DeviceAugment(d) if d.mixing),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The full-scale oracle (spec 3.2): the official recipe over ImageNet's 1,256,144 training
    /// images at batch 4096 for 350 epochs warms up for 1,533 steps, decays every 736.02 steps
    /// and stops after 107,336, as the official `main.py` counts them from a float steps per
    /// epoch (an integer 306 would give 1,530, 734.4 and 107,100).
    #[test]
    fn the_full_scale_imagenet_run_plans_the_official_schedule() {
        let config: RunConfig = serde_json::from_value(serde_json::json!({
            "model": "s", "plugin": "cpu", "plugin_path": null, "data": {"kind": "fashion_mnist"},
            "batch": 4096, "epochs": 350.0, "stages": null, "schedule": "official",
            "precision": "f32", "seed": 0, "lr_base": 0.016, "warmup_epochs": 5.0,
            "decay": {"kind": "exponential", "factor": 0.97, "every_epochs": 2.4},
            "eval_batch": 8, "workers": 1, "checkpoint_every": 10, "keep_checkpoints": 2,
            "stop_after": null, "eval_limit": null, "out": "unused"
        }))
        .unwrap();
        let model = config.model().unwrap();
        let plan = RunPlan::new(&config, &model, 1_256_144, Backend::Accelerator, 1).unwrap();
        assert_eq!(plan.steps_per_epoch, 306.67578125);
        assert_eq!(plan.lr.warmup_steps(), 1533);
        assert!((plan.lr.decay_steps().unwrap() - 736.021875).abs() < 1e-9);
        assert_eq!(plan.total_steps, 107_336);
        assert_eq!(plan.lr, LrSchedule::official(4096, 1_256_144, 350.0));
        let ends: Vec<u64> = plan.stages.iter().map(|s| s.steps.end).collect();
        assert_eq!(ends, [26_834, 53_668, 80_502, 107_336]);
    }
}
