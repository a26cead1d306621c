//! The progressive run end to end on the default CPU plugin, on a few steps of Fashion-MNIST:
//! stages switch graphs at the scheduled steps, a stopped and resumed run ends bit-identical to an
//! uninterrupted one (also with 4 steps per call), and a second run with the same config loads
//! every executable from the cache.

mod run_common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Discard, Metric};
use effnetv2::trainer::run::train;
use run_common::{final_state, short_run};

/// 40 steps of batch 32 over 4 stages (10 steps each).
fn config(out: &Path) -> RunConfig {
    short_run(out, 40, 4)
}

fn metrics(out: &Path) -> Vec<Metric> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn progressive_run_switches_stages_resumes_exactly_and_reuses_executables() {
    let root = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);

    // Uninterrupted.
    let full = root.path().join("full");
    let summary = train(&config(&full), false, &never, &mut Discard).unwrap();
    assert!(summary.completed);
    let sizes: Vec<usize> = summary.stages.iter().map(|s| s.image_size).collect();
    assert_eq!(sizes, [16, 20, 24, 28]);
    assert!(summary.final_top1 > 0.0 && summary.final_top1 <= 1.0);

    // Every step ran with the graph of its stage: steps 1-10 at 16 px, 11-20 at 20 px, ...
    let steps: Vec<(u64, usize)> = metrics(&full)
        .into_iter()
        .filter_map(|m| match m {
            Metric::Step(s) => Some((s.step, s.image_size)),
            _ => None,
        })
        .collect();
    assert_eq!(steps.len(), 40);
    for (step, size) in steps {
        assert_eq!(
            size,
            [16, 20, 24, 28][((step - 1) / 10) as usize],
            "step {step}"
        );
    }

    // Stopped in the middle of stage 1 (after a checkpoint), then resumed: the stage-1 state
    // crosses a process-like boundary (host and back) and every later stage starts from it.
    let split = root.path().join("split");
    let mut stopped = config(&split);
    stopped.stop_after = Some(15);
    assert!(
        !train(&stopped, false, &never, &mut Discard)
            .unwrap()
            .completed
    );
    let resumed = train(&config(&split), true, &never, &mut Discard).unwrap();
    assert!(resumed.completed);
    let (a, b) = (final_state(&full), final_state(&split));
    assert_eq!(a.len(), b.len());
    for ((_, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x.bytes(), y.bytes(), "state differs after resuming");
    }
    assert_eq!(summary.final_top1, resumed.final_top1);

    // Four steps per call, stopped and resumed in the middle: calls of 4, 4 and 2 per 10-step
    // stage, one of 1 before the stop at step 15; still bit-identical to one step per call.
    let looped = root.path().join("looped");
    let with_k = |stop_after| RunConfig {
        steps_per_call: 4,
        stop_after,
        ..config(&looped)
    };
    train(&with_k(Some(15)), false, &never, &mut Discard).unwrap();
    let resumed = train(&with_k(None), true, &never, &mut Discard).unwrap();
    for ((name, x), (_, y)) in a.iter().zip(&final_state(&looped)) {
        assert_eq!(x.bytes(), y.bytes(), "{name} differs with 4 steps per call");
    }
    assert_eq!(summary.final_top1, resumed.final_top1);
    let logged: Vec<u64> = metrics(&looped)
        .into_iter()
        .filter_map(|m| match m {
            Metric::Step(s) => Some(s.step),
            _ => None,
        })
        .collect();
    assert_eq!(logged, (1..=40).collect::<Vec<_>>(), "one record per step");

    // Same config again: nothing is compiled, every executable comes from the cache.
    let again = root.path().join("again");
    train(&config(&again), false, &never, &mut Discard).unwrap();
    let reasons: Vec<String> = metrics(&again)
        .into_iter()
        .filter_map(|m| match m {
            Metric::Compile(c) => Some(c.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 5, "4 train steps and the eval step");
    assert!(reasons.iter().all(|r| r == "CacheHit"), "{reasons:?}");
}

#[test]
fn resuming_with_another_batch_size_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let mut c = config(root.path());
    c.stop_after = Some(2);
    train(&c, false, &never, &mut Discard).unwrap();
    let mut other = config(root.path());
    other.batch = 16;
    let err = train(&other, true, &never, &mut Discard).unwrap_err();
    assert!(format!("{err:#}").contains("--batch"), "{err:#}");
    let err = train(&config(root.path()), false, &never, &mut Discard).unwrap_err();
    assert!(format!("{err:#}").contains("--resume"), "{err:#}");
}

/// `effnetv2 eval` on a run's checkpoint: with the run's spec, or another spec of the same
/// variables; a spec whose variables have other shapes is refused by name, before anything runs.
#[test]
fn eval_command_accepts_a_matching_spec_and_names_a_mismatched_tensor() {
    let root = tempfile::tempdir().unwrap();
    let mut c = config(root.path());
    c.stop_after = Some(2);
    train(&c, false, &AtomicBool::new(false), &mut Discard).unwrap();
    let eval = |model: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_effnetv2"))
            .args(["eval", "--batch", "100", "--limit", "100", "--model", model])
            .arg("--checkpoint")
            .arg(root.path())
            .output()
            .unwrap()
    };

    let out = eval("tiny");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("step 2, 100 images at 28px: top-1"),
        "{stdout}"
    );

    let mut wider: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("graphs/efficientnetv2-tiny.json").unwrap())
            .unwrap();
    wider["head"]["feature_size"] = 320.into();
    let wider_path = root.path().join("wider.json");
    std::fs::write(&wider_path, wider.to_string()).unwrap();
    let out = eval(wider_path.to_str().unwrap());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'ema/head/conv/kernel' has shape [1, 1, 64, 256]")
            && stderr.contains("expects [1, 1, 64, 320]"),
        "{stderr}"
    );
}

/// A folder data set of `count` images per class in `train/` and `val/` under `root`, each the
/// same `side` px square noise JPEG (hard links to one file): slow to decode (its entropy-coded
/// data is as large as JPEG makes it), for a loader that cannot keep up.
fn noise_folder(root: &Path, side: u32, count: usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let image = image::RgbImage::from_fn(side, side, |_, _| image::Rgb(rng.gen()));
    let original = root.join("noise.jpg");
    std::fs::create_dir_all(root).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(&original).unwrap());
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 95)
        .encode_image(&image)
        .unwrap();
    for split in ["train", "val"] {
        for class in ["a", "b"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..count {
                std::fs::hard_link(&original, dir.join(format!("{i}.jpg"))).unwrap();
            }
        }
    }
}

/// The share of each stretch the device waited for input, from `metrics.jsonl`: the stage
/// figures, and the time-weighted share of the step records. Every step and stage line carries
/// the documented fields.
fn infeed_figures(out: &Path) -> (Vec<f64>, f64) {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let (mut stages, mut waiting, mut wall) = (Vec::new(), 0.0, 0.0);
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let share = || {
            let share = value["infeed_bound"].as_f64().expect(line);
            assert!((0.0..=1.0).contains(&share), "{line}");
            share
        };
        match value["event"].as_str().unwrap() {
            "step" => {
                let seconds = value["wall_seconds"].as_f64().expect(line);
                assert!(seconds > 0.0, "{line}");
                waiting += share() * seconds;
                wall += seconds;
            }
            "stage" => stages.push(share()),
            _ => {}
        }
    }
    (stages, waiting / wall)
}

/// The infeed-bound figure: near 1 when the loader is far slower than the step (large noise
/// JPEGs, one worker, a tiny model at 28 px: about 0.95 here), near 0 (about 0.01) when it is far faster (Fashion-MNIST in
/// memory, two workers); in metrics.jsonl, the run summary and the report.
#[test]
fn the_infeed_bound_figure_is_high_for_a_slow_loader_and_low_for_a_fast_one() {
    let root = tempfile::tempdir().unwrap();
    let never = AtomicBool::new(false);
    let data = root.path().join("noise");
    noise_folder(&data, 1024, 8);
    let run = |out: &str, config: RunConfig| {
        let out = root.path().join(out);
        let summary = train(
            &RunConfig {
                out: out.clone(),
                ..config
            },
            false,
            &never,
            &mut Discard,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let (stages, steps) = infeed_figures(&out);
        assert_eq!(stages.len(), 1);
        assert!((summary.stages[0].infeed_bound - stages[0]).abs() < 1e-12);
        // The stage's wall time holds its calls' and the gaps between them; its waits are
        // theirs.
        assert!(stages[0] <= steps + 1e-9, "{stages:?} {steps}");
        (out, summary, steps)
    };
    let (slow_out, slow, slow_steps) = run(
        "slow",
        RunConfig {
            data: data.to_str().unwrap().parse().unwrap(),
            batch: 8,
            steps: Some(12),
            workers: 1,
            eval_batch: 8,
            eval_limit: Some(8),
            ..short_run(root.path(), 12, 1)
        },
    );
    let (_, fast, fast_steps) = run("fast", short_run(root.path(), 12, 1));
    let (slow_share, fast_share) = (slow.stages[0].infeed_bound, fast.stages[0].infeed_bound);
    eprintln!("infeed-bound: slow loader {slow_share:.3} (steps {slow_steps:.3}), fast {fast_share:.3} (steps {fast_steps:.3})");
    assert!(slow_share > 0.6, "slow loader: {slow_share}");
    assert!(fast_share < 0.3, "fast loader: {fast_share}");

    let table = effnetv2::report::run_summary::summary_table(&slow);
    let row = format!("{:.0}%", 100.0 * slow_share);
    assert!(table.contains("infeed") && table.contains(&row), "{table}");
    let report = effnetv2::report::plot::write_report(&slow_out, None).unwrap();
    let stage_row = report.summary.lines().nth(2).unwrap();
    assert_eq!(
        stage_row.split_whitespace().nth(5),
        Some(format!("{:.0}%", 100.0 * slow_steps).as_str()),
        "{}",
        report.summary
    );
}
