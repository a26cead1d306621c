//! `effnetv2 search` end to end on Fashion-MNIST with a tiny proxy: three candidates and the
//! backbone are scored, candidates over the space's step limit are rejected untrained and
//! replaced, a kill after the first candidates loses nothing (the search resumes where it
//! stopped, re-running none of them), the best candidate's spec trains, and a second search
//! reuses the first one's proxy accuracies instead of training again.

mod run_common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use effnetv2::search::results::{self, Outcome};
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::Discard;
use effnetv2::trainer::run::train;
use run_common::short_run;

/// A space around `tiny` whose candidates train 9 steps of batch 32 at 16 px. Expansion 32 in
/// the first stage makes a step several times the backbone's (expansion 1), over the limit.
const SPACE: &str = r#"{
  "name": "test",
  "backbone": "tiny",
  "max_step_ratio": 4,
  "stages": [
    {"block": ["fused"], "kernel": [3], "expand_ratio": [1, 32], "repeats": {"min": 1, "max": 1}},
    {"block": ["fused", "mbconv"], "kernel": [3, 5], "expand_ratio": [1, 4], "repeats": {"min": 1, "max": 2}},
    {"block": ["fused", "mbconv"], "kernel": [3, 5], "expand_ratio": [4, 6], "repeats": {"min": 1, "max": 2}},
    {"block": ["mbconv"], "kernel": [3], "expand_ratio": [4, 6], "repeats": {"min": 1, "max": 2}}
  ],
  "reward": {"step_time": -0.07, "params": -0.05},
  "proxy": {"epochs": 0.005, "batch": 32, "image_size": 16, "eval_limit": 200, "lr_base": 0.064}
}"#;

fn search(space: &Path, out: &Path) -> Child {
    search_command(space, out, "2").spawn().unwrap()
}

fn search_command(space: &Path, out: &Path, seed: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_effnetv2"));
    command
        .args(["search", "--budget", "3", "--workers", "2", "--seed", seed])
        .arg("--space")
        .arg(space)
        .arg("--out")
        .arg(out);
    command
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn a_search_scores_candidates_resumes_after_a_kill_and_its_best_spec_trains() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.json");
    std::fs::write(&space, SPACE).unwrap();
    let out = dir.path().join("search");
    let log = out.join("candidates.jsonl");

    // Kill the search once the backbone and one candidate are recorded.
    let mut child = search(&space, &out);
    let started = Instant::now();
    while lines(&log) < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the search ended early"
        );
        assert!(started.elapsed() < Duration::from_secs(900), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = results::read(&log).unwrap();
    assert!(before.len() >= 2);

    let status = search(&space, &out).wait().unwrap();
    assert!(status.success());
    let records = results::read(&log).unwrap();
    let indices: Vec<usize> = records.iter().map(|r| r.index).collect();
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "every candidate once, none re-run: {indices:?}"
    );
    assert_eq!(
        records[..before.len()],
        before[..],
        "the recorded ones are kept as they were"
    );
    let backbone = records[0].score().unwrap();
    let mut rejected = 0;
    for record in &records {
        let expansion = record.candidate.stages[0].expand_ratio;
        match &record.outcome {
            Outcome::Scored(score) => {
                assert_eq!(expansion, 1, "{record:?}");
                assert!((0.0..=1.0).contains(&score.accuracy), "{record:?}");
                assert!(score.step_seconds > 0.0 && score.params > 0, "{record:?}");
                // Timed beside the backbone (the backbone itself alone).
                let reference = score.backbone_step_seconds.unwrap();
                let expected = if record.index == 0 {
                    assert_eq!(reference, score.step_seconds);
                    score.accuracy
                } else {
                    score.accuracy
                        * (score.step_seconds / reference).powf(-0.07)
                        * (score.params as f64 / backbone.params as f64).powf(-0.05)
                };
                assert!((score.reward - expected).abs() < 1e-12, "{record:?}");
            }
            Outcome::Rejected {
                step_seconds,
                limit_seconds,
            } => {
                assert_eq!(expansion, 32, "{record:?}");
                assert!(step_seconds > limit_seconds, "{record:?}");
                assert!(!out.join("runs").join(&record.name).exists(), "trained");
                rejected += 1;
            }
            Outcome::Failed { .. } => panic!("{record:?}"),
        }
    }
    assert!(
        rejected > 0,
        "seed 2 draws expansion 32 second: {indices:?}"
    );
    assert_eq!(records.len() - rejected, 4, "the budget counts scored ones");
    // The candidates differ from each other and from the backbone.
    for (i, a) in records.iter().enumerate() {
        for b in &records[i + 1..] {
            assert_ne!(a.candidate, b.candidate);
        }
    }
    for file in [
        "pareto.png",
        "pareto.svg",
        "best-1.json",
        "best-2.json",
        "best-3.json",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }

    // The best candidate's spec trains.
    let run = dir.path().join("best-run");
    let config = RunConfig {
        model: out.join("best-1.json").display().to_string(),
        batch: 16,
        eval_limit: Some(32),
        ..short_run(&run, 3, 1)
    };
    let summary = train(&config, false, &AtomicBool::new(false), &mut Discard)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.completed);

    // A second search with the same backbone, proxy recipe and settings takes the accuracies
    // and trains nothing, though its space weighs the reward otherwise.
    let reweighed = dir.path().join("reweighed.json");
    std::fs::write(
        &reweighed,
        SPACE.replace(r#""params": -0.05"#, r#""params": -0.1"#),
    )
    .unwrap();
    let rescored = dir.path().join("rescored");
    let status = search_command(&reweighed, &rescored, "2")
        .arg("--reuse")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let again = results::read(&rescored.join("candidates.jsonl")).unwrap();
    assert_eq!(again.len(), records.len());
    for (first, second) in records.iter().zip(&again) {
        assert_eq!(first.candidate, second.candidate);
        let Some(score) = first.score() else {
            assert!(matches!(second.outcome, Outcome::Rejected { .. }));
            continue;
        };
        assert_eq!(second.accuracy_from.as_deref(), Some(out.as_path()));
        assert_eq!(score.accuracy, second.score().unwrap().accuracy);
    }
    assert!(!rescored.join("runs").exists(), "no proxy run trained");
    // A space whose proxy recipe differs trained its candidates otherwise.
    let other_recipe = dir.path().join("other-recipe.json");
    std::fs::write(&other_recipe, SPACE.replace("0.064", "0.1")).unwrap();
    assert_refused(
        search_command(&other_recipe, &dir.path().join("other-recipe"), "2")
            .arg("--reuse")
            .arg(&out),
        "proxy recipe differs",
    );

    // Step times from another source would not compare with the recorded ones.
    assert_refused(
        search_command(&space, &out, "2").args(["--target", "tpu:v5e"]),
        "another step_time.json",
    );

    // Another seed trains other candidates, so its accuracies cannot be reused.
    assert_refused(
        search_command(&space, &dir.path().join("other"), "3")
            .arg("--reuse")
            .arg(&out),
        "proxy.json differs",
    );
}

/// Runs `command`, which must fail with an error containing `needle`.
fn assert_refused(command: &mut Command, needle: &str) {
    let output = command.output().unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains(needle), "{message}");
}
