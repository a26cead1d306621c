//! Shared setup of the deviceless-compile tests: the graphs an accelerator runs.

use effnetv2::model::Backend;
use effnetv2::model::ScheduleVariant;
use effnetv2::program::graph_plan::GraphSelection;
use effnetv2::step::graphs::{InputMode, Objective, Precision};

/// A run's graphs at batch 128 per device in bf16, as a TPU or GPU runs them: the train step of
/// `stage` (`None`: every stage), data-parallel over `replicas` devices, and with `eval` the
/// eval step.
pub fn selection(stage: Option<usize>, eval: bool, replicas: i64) -> GraphSelection {
    GraphSelection {
        batch: 128,
        replicas,
        steps_per_call: 1,
        sync_batch_norm: false,
        skip_nonfinite: false,
        objective: Objective::OFFICIAL,
        eval_batch: 128,
        precision: Precision::Bf16,
        backend: Backend::Accelerator,
        schedule: ScheduleVariant::Official,
        stage,
        eval,
        input: InputMode::Normalised,
    }
}
