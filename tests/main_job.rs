//! A shortened main job: the default small variant trained on real Fashion-MNIST through 4
//! progressive stages on the default CPU plugin, evaluated on all 10,000 test images after each
//! stage, with 8 steps per call as `effnetv2 train` runs by default. One and a half epochs at
//! batch 32 must reach 75% top-1.

mod run_common;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use effnetv2::report::run_summary::summary_table;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::Discard;
use effnetv2::trainer::run::train;
use run_common::short_run;

#[test]
fn a_short_progressive_run_reaches_75_percent() {
    let out = tempfile::tempdir().unwrap();
    let config = RunConfig {
        epochs: 1.5,
        seed: 0,
        warmup_epochs: 0.1,
        checkpoint_every: 100_000,
        keep_checkpoints: 2,
        eval_limit: None,
        steps_per_call: 8,
        ..short_run(out.path(), 0, 4)
    };
    let start = Instant::now();
    let summary = train(&config, false, &AtomicBool::new(false), &mut Discard).unwrap();
    println!(
        "{}\nwall time {:.0} s",
        summary_table(&summary),
        start.elapsed().as_secs_f64()
    );
    assert_eq!(summary.stages.len(), 4);
    assert!(summary.stages.iter().all(|s| s.top1 > 0.0));
    assert!(
        summary.final_top1 >= 0.75,
        "top-1 {:.4} after 1.5 epochs",
        summary.final_top1
    );
}
