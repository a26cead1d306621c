//! `effnetv2 report` on a synthetic run: 4 progressive stages, a resumed step range logged
//! twice and a line cut short by a crash.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use effnetv2::report::plot::{write_report, PLOT_SIZE};
use effnetv2::trainer::events::{CompileRecord, EvalRecord, Metric, StepRecord};

const STAGE_STEPS: u64 = 100;
const IMAGE_SIZES: [usize; 4] = [128, 160, 192, 224];
/// The run was interrupted after this step and resumed from the checkpoint at `RESUMED_FROM`.
const INTERRUPTED_AT: u64 = 250;
const RESUMED_FROM: u64 = 220;

/// Images/s logged for every step of a stage (the records the resumed run replaced log 1.0).
fn images_per_sec(stage: usize) -> f64 {
    1000.0 / (stage + 1) as f64
}

/// The share of its wall time each step of a stage waited for input, and the step's wall time
/// (a stage's figure is their time-weighted mean: here the share itself).
fn infeed_bound(stage: usize) -> f64 {
    [0.03, 0.17, 0.57, 0.93][stage]
}
const STEP_SECONDS: f64 = 0.05;

fn top1(stage: usize) -> f64 {
    0.5 + 0.1 * stage as f64
}

fn step_line(step: u64, images_per_sec: f64) -> String {
    let stage = ((step - 1) / STAGE_STEPS) as usize;
    let t = step as f64;
    let metric = Metric::Step(StepRecord {
        step,
        stage,
        image_size: IMAGE_SIZES[stage],
        loss: (2.0 * (-t / 150.0).exp() + 0.4 + 0.2 * (t * 1.7).sin()) as f32,
        accuracy: (0.9 - 0.8 * (-t / 120.0).exp() + 0.05 * (t * 2.3).cos()) as f32,
        lr: 0.1 * (t / 40.0).min(1.0) * (0.5 + 0.5 * (std::f64::consts::PI * t / 400.0).cos()),
        images_per_sec,
        infeed_bound: infeed_bound(stage),
        wall_seconds: STEP_SECONDS,
    });
    serde_json::to_string(&metric).unwrap()
}

fn compile_line(stage: usize, reason: &str) -> String {
    let metric = Metric::Compile(CompileRecord {
        stage,
        module: format!("train_step_{}px_b128", IMAGE_SIZES[stage]),
        reason: reason.to_string(),
        seconds: 12.5,
        instructions: 4000,
    });
    serde_json::to_string(&metric).unwrap()
}

/// The log of a 400-step run interrupted at step 250 and resumed from step 220.
fn synthetic_log() -> String {
    let mut log = String::new();
    let steps = |log: &mut String, range: std::ops::RangeInclusive<u64>, replaced: bool| {
        for step in range {
            let stage = ((step - 1) / STAGE_STEPS) as usize;
            if step % STAGE_STEPS == 1 {
                writeln!(log, "{}", compile_line(stage, "CacheMiss")).unwrap();
            }
            let ips = if replaced { 1.0 } else { images_per_sec(stage) };
            writeln!(log, "{}", step_line(step, ips)).unwrap();
            if step % STAGE_STEPS == 0 {
                let eval = Metric::Eval(EvalRecord {
                    step,
                    stage,
                    image_size: 224,
                    top1: top1(stage),
                    top5: 0.9,
                    images: 10_000,
                });
                writeln!(log, "{}", serde_json::to_string(&eval).unwrap()).unwrap();
            }
        }
    };
    steps(&mut log, 1..=RESUMED_FROM, false);
    steps(&mut log, RESUMED_FROM + 1..=INTERRUPTED_AT, true);
    // The write the crash cut short.
    log.push_str("{\"event\":\"step\",\"step\":251,\"sta\n");
    writeln!(log, "{}", compile_line(2, "CacheHit")).unwrap();
    steps(&mut log, RESUMED_FROM + 1..=4 * STAGE_STEPS, false);
    log
}

fn check_png(path: &Path) {
    let image = image::open(path)
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()))
        .to_rgb8();
    assert_eq!(image.dimensions(), PLOT_SIZE);
    let colours: HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    assert!(
        colours.len() > 100,
        "only {} distinct colours",
        colours.len()
    );
    let inked = image.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64
        / image.pixels().len() as f64;
    assert!(
        (0.02..0.6).contains(&inked),
        "{:.1}% of the pixels are not white",
        100.0 * inked
    );
}

fn check_svg(path: &Path) {
    let svg = fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
    for (stage, size) in IMAGE_SIZES.iter().enumerate() {
        let label = format!(">\nstage {stage}: {size}px\n</text>");
        // Once per panel.
        assert_eq!(svg.matches(&label).count(), 5, "{label}");
    }
}

#[test]
fn the_command_plots_and_summarises_a_resumed_run() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("metrics.jsonl"), synthetic_log()).unwrap();
    let stem = dir.path().join("plots/curves");
    fs::create_dir(dir.path().join("plots")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .arg("report")
        .arg(dir.path())
        .arg("--out")
        .arg(&stem)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "400 steps in 4 stages");
    assert_eq!(
        lines[1],
        format!(
            "{} records repeated by a resumed run: the later ones are used",
            INTERRUPTED_AT - RESUMED_FROM
        )
    );
    for (stage, size) in IMAGE_SIZES.iter().enumerate() {
        let first = stage as u64 * STAGE_STEPS + 1;
        let row = format!(
            "{stage} {size}px {STAGE_STEPS} {first}-{} {:.0} {:.0}% {:.2}% 90.00%",
            first + STAGE_STEPS - 1,
            images_per_sec(stage),
            100.0 * infeed_bound(stage),
            100.0 * top1(stage)
        );
        assert!(
            lines
                .iter()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == row),
            "no row '{row}' in\n{stdout}"
        );
    }
    // Stage 2 was compiled, then loaded from the cache after the resumption.
    assert!(stdout.contains("compiled train_step_192px_b128 in 12.5 s (CacheMiss)\n       compiled train_step_192px_b128 in 12.5 s (CacheHit)"), "{stdout}");
    let bad = synthetic_log()
        .lines()
        .position(|l| l.ends_with("\"sta"))
        .unwrap()
        + 1;
    assert!(
        stdout.contains(&format!("1 unreadable log lines left out (line {bad}:")),
        "{stdout}"
    );
    assert!(stdout.contains("final accuracy (evaluation after step 400 of stage 3, 10000 images at 224px): top-1 80.00%, top-5 90.00%\n"), "{stdout}");

    check_png(&dir.path().join("plots/curves.png"));
    let svg = dir.path().join("plots/curves.svg");
    check_svg(&svg);
    // The input-wait panel labels each stage's share.
    let svg = fs::read_to_string(svg).unwrap();
    for stage in 0..IMAGE_SIZES.len() {
        let label = format!(">\n{:.0}%\n</text>", 100.0 * infeed_bound(stage));
        assert!(svg.contains(&label), "no label {label:?} in the SVG");
    }
}

#[test]
fn the_report_defaults_to_the_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("metrics.jsonl"), synthetic_log()).unwrap();
    let report = write_report(dir.path(), None).unwrap();
    let (png, svg) = (dir.path().join("report.png"), dir.path().join("report.svg"));
    assert_eq!(report.png, png.display().to_string());
    assert_eq!(report.svg, svg.display().to_string());
    check_png(&png);
    check_svg(&svg);
}

#[test]
fn a_run_directory_without_metrics_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics.jsonl"), "{stderr}");
}
