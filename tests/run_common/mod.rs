//! Shared setup of the training-run tests: a short run of the small variant on Fashion-MNIST with
//! the default CPU plugin, and the final state a run leaves in its checkpoints.
#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;

use effnetv2::hlo::Literal;
use effnetv2::model::{load_spec, Model};
use effnetv2::step::state::StateLayout;
use effnetv2::storage::Location;
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::RunConfig;

/// `steps` steps of the small variant at global batch 32 over `stages` stages, writing to `out`;
/// tests override what they vary.
pub fn short_run(out: &Path, steps: u64, stages: usize) -> RunConfig {
    RunConfig {
        batch: 32,
        steps_per_call: 1,
        epochs: steps as f64 / 1875.0,
        stages: Some(stages),
        seed: 3,
        warmup_epochs: 0.005,
        eval_batch: 100,
        workers: 2,
        checkpoint_every: 1000,
        keep_checkpoints: 10,
        eval_limit: Some(200),
        out: out.to_path_buf(),
        ..RunConfig::default()
    }
}

/// The state tensors of the newest checkpoint of the run `out` (local or in a bucket), with
/// their names, in layout order.
pub fn final_state(out: impl Into<Location>) -> Vec<(String, Literal)> {
    let model = Model::new(load_spec("tiny").unwrap()).unwrap();
    let layout = StateLayout::new(&model);
    let expected = layout.entries().iter().map(|e| (e.name.as_str(), &e.shape));
    let dir = checkpoint::latest(out.into().join("checkpoints"))
        .unwrap()
        .expect("a final checkpoint");
    let tensors = checkpoint::load::<serde_json::Value>(&dir, expected)
        .unwrap()
        .0;
    layout.named(tensors)
}
