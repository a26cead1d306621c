//! Which graphs to compile for a model: one train step per distinct progressive-stage image
//! size and the eval step, each described well enough to build its module at any batch size.
//! A run plans them for its training; `dump`, `graphs`, `compile` and the search plan the same
//! graphs without a data set.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::model::graph::Lowering;
use crate::model::Backend;
use crate::model::{Model, ScheduleVariant};
use crate::step::graphs::{eval_step, train_step, InputMode, Objective, Precision, StepConfig};
use crate::step::signature::StepGraph;

/// Which graphs of a run to plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphSelection {
    /// Examples per train-step execution on each device.
    pub batch: i64,
    /// Devices a train step runs on, data-parallel (the eval step runs on one).
    pub replicas: i64,
    /// Optimizer steps per train-step execution (a `while` loop over stacked batches when > 1).
    pub steps_per_call: i64,
    /// Cross-replica batch-norm statistics in data-parallel train steps.
    pub sync_batch_norm: bool,
    /// Train steps that leave the state unchanged where a step is not finite.
    pub skip_nonfinite: bool,
    /// Label smoothing, weight decay and EMA decay of the train steps.
    pub objective: Objective,
    /// Examples per eval-step execution.
    pub eval_batch: i64,
    pub precision: Precision,
    pub backend: Backend,
    pub schedule: ScheduleVariant,
    /// Only the train step of this progressive stage (`None`: every stage).
    pub stage: Option<usize>,
    /// Also the eval step at the spec's eval image size.
    pub eval: bool,
    /// What the train steps' `images` input holds (the eval step always takes f32 images).
    pub input: InputMode,
}

/// What a planned graph computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GraphRole {
    /// A train step, used by these progressive stages (stages of equal size share a graph).
    Train {
        stages: Vec<usize>,
    },
    Eval,
}

/// One graph of the plan: enough to build its module at any batch size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedGraph {
    pub role: GraphRole,
    pub image_size: usize,
    /// Examples per execution on each device.
    pub batch: i64,
    /// Devices the graph runs on, data-parallel.
    pub replicas: i64,
    /// Optimizer steps per execution (1 for the eval step).
    pub steps_per_call: i64,
    #[serde(skip)]
    sync_batch_norm: bool,
    #[serde(skip)]
    skip_nonfinite: bool,
    #[serde(skip)]
    objective: Objective,
    #[serde(skip)]
    precision: Precision,
    #[serde(skip)]
    backend: Backend,
    #[serde(skip)]
    input: InputMode,
}

impl PlannedGraph {
    /// The same graph at another batch size (what a batch-size search compiles).
    pub fn with_batch(&self, batch: i64) -> PlannedGraph {
        PlannedGraph {
            batch,
            ..self.clone()
        }
    }

    /// The train step's configuration; `None` for the eval step.
    pub fn step_config(&self) -> Option<StepConfig> {
        matches!(self.role, GraphRole::Train { .. }).then(|| StepConfig {
            objective: self.objective,
            replicas: self.replicas,
            steps_per_call: self.steps_per_call,
            sync_batch_norm: self.sync_batch_norm,
            skip_nonfinite: self.skip_nonfinite,
            input: self.input,
            ..StepConfig::official(
                self.batch,
                self.image_size as i64,
                self.precision,
                self.backend,
            )
        })
    }

    /// Builds the graph and its signature.
    pub fn build(&self, model: &Model) -> Result<StepGraph> {
        Ok(match self.step_config() {
            Some(cfg) => train_step(model, &cfg)?,
            None => eval_step(
                model,
                self.batch,
                self.image_size as i64,
                Lowering {
                    compute: self.precision.compute_type(),
                    backend: self.backend,
                },
            )?,
        })
    }
}

/// The graphs `selection` asks for, train steps in stage order, then the eval step.
pub fn plan_graphs(model: &Model, selection: &GraphSelection) -> Result<Vec<PlannedGraph>> {
    if selection.replicas < 1 {
        bail!("{} devices: at least one is needed", selection.replicas);
    }
    if selection.steps_per_call < 1 {
        bail!(
            "{} steps per call: at least one is needed",
            selection.steps_per_call
        );
    }
    if selection.batch < 1 || selection.eval_batch < 1 {
        bail!(
            "batch {} and eval batch {}: batches must be positive",
            selection.batch,
            selection.eval_batch
        );
    }
    let spec = &model.spec;
    // Stage sizes do not depend on the run's length: any step count with one step per stage will do.
    let stages = spec.progressive_stages(selection.schedule, spec.progressive.stages as u64)?;
    let chosen = match selection.stage {
        None => stages.as_slice(),
        Some(n) if n < stages.len() => &stages[n..=n],
        Some(n) => bail!(
            "--stage {n}: model {} has {} progressive stages (0..={})",
            spec.name,
            stages.len(),
            stages.len() - 1
        ),
    };
    let graph = |role, image_size, batch, replicas, steps_per_call| PlannedGraph {
        role,
        image_size,
        batch,
        replicas,
        steps_per_call,
        sync_batch_norm: selection.sync_batch_norm,
        skip_nonfinite: selection.skip_nonfinite,
        objective: selection.objective,
        precision: selection.precision,
        backend: selection.backend,
        input: selection.input,
    };
    let mut graphs: Vec<PlannedGraph> = Vec::new();
    for stage in chosen {
        match graphs.iter_mut().find(|g| g.image_size == stage.image_size) {
            Some(PlannedGraph {
                role: GraphRole::Train { stages },
                ..
            }) => stages.push(stage.index),
            _ => graphs.push(graph(
                GraphRole::Train {
                    stages: vec![stage.index],
                },
                stage.image_size,
                selection.batch,
                selection.replicas,
                selection.steps_per_call,
            )),
        }
    }
    if selection.eval {
        graphs.push(graph(
            GraphRole::Eval,
            spec.image_size.eval,
            selection.eval_batch,
            1,
            1,
        ));
    }
    Ok(graphs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::load_spec;

    fn selection(stage: Option<usize>, eval: bool) -> GraphSelection {
        GraphSelection {
            batch: 8,
            replicas: 1,
            steps_per_call: 1,
            sync_batch_norm: false,
            skip_nonfinite: false,
            objective: Objective::OFFICIAL,
            eval_batch: 8,
            precision: Precision::F32,
            backend: Backend::Accelerator,
            schedule: ScheduleVariant::Official,
            stage,
            eval,
            input: InputMode::Normalised,
        }
    }

    #[test]
    fn one_train_graph_per_stage_size_then_eval() {
        let model = Model::new(load_spec("tiny").unwrap()).unwrap();
        let graphs = plan_graphs(&model, &selection(None, true)).unwrap();
        let sizes: Vec<usize> = graphs.iter().map(|g| g.image_size).collect();
        assert_eq!(sizes, [16, 20, 24, 28, model.spec.image_size.eval]);
        assert_eq!(graphs[0].role, GraphRole::Train { stages: vec![0] });
        assert_eq!(graphs[4].role, GraphRole::Eval);
        assert!(graphs[4].step_config().is_none());
        let cfg = graphs[1].with_batch(32).step_config().unwrap();
        assert_eq!((cfg.batch, cfg.image_size), (32, 20));
    }

    #[test]
    fn a_stage_out_of_range_names_the_stage_count() {
        let model = Model::new(load_spec("tiny").unwrap()).unwrap();
        let only = plan_graphs(&model, &selection(Some(3), false)).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].image_size, 28);
        let err = plan_graphs(&model, &selection(Some(4), false)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--stage 4: model efficientnetv2-tiny has 4 progressive stages (0..=3)"
        );
    }
}
