//! `effnetv2 bench --data DIR --target tpu:...`: the images/s a TPU slice's chips need at each
//! stage, from a `compile --json` result, set against the images/s per core measured on the
//! user's images, and the host cores that takes; and the errors a bad target or result file
//! gives before anything is measured.

use std::path::Path;
use std::process::{Command, Output};

fn effnetv2(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args(args)
        .output()
        .unwrap()
}

/// A data folder of one class with four small JPEGs.
fn photos(dir: &Path) -> String {
    let class = dir.join("photos");
    std::fs::create_dir_all(&class).unwrap();
    for k in 0..4u32 {
        let image = image::RgbImage::from_fn(64 + 8 * k, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, (k * 60) as u8])
        });
        image.save(class.join(format!("{k}.jpg"))).unwrap();
    }
    dir.to_str().unwrap().to_owned()
}

/// A `compile --json` document for `target` with the train steps of `tiny`'s four stages
/// (16, 20, 24 and 28 px) at `rates` images/s over all of the target's devices, and its eval
/// step, in the layout `effnetv2 compile --json` writes (checked against a real compile in
/// `tests/aot_tpu.rs`).
fn compile_result(target: &str, rates: [f64; 4]) -> String {
    let graph = |role: String, image_size: usize, rate: f64| {
        serde_json::json!({
            "graph": format!("train_step_{image_size}px_b128"),
            "role": serde_json::from_str::<serde_json::Value>(&role).unwrap(),
            "image_size": image_size, "batch": 128, "devices": 1, "instructions": 3906,
            "compile_seconds": 8.1,
            "memory": {"arguments": 1, "outputs": 1, "temporaries": 1, "aliased": 0,
                       "peak": 3, "capacity": 4, "fits": true},
            "flops": 1.0e9, "bytes_accessed": 1.0e9, "transcendentals": 1.0,
            "xla_optimal_seconds": null,
            "roofline": {"seconds": 0.01, "bound": "memory", "mfu": 0.05},
            "examples_per_second": rate, "serialized_bytes": 100,
        })
    };
    let mut graphs: Vec<serde_json::Value> = [16, 20, 24, 28]
        .iter()
        .zip(rates)
        .enumerate()
        .map(|(stage, (&size, rate))| {
            graph(
                format!(r#"{{"kind": "train", "stages": [{stage}]}}"#),
                size,
                rate,
            )
        })
        .collect();
    graphs.push(graph(r#"{"kind": "eval"}"#.to_owned(), 28, 9.0));
    serde_json::json!({"target": target, "topology": "", "devices": 1, "graphs": graphs})
        .to_string()
}

/// The figures of the target table's row at `px`: img/s/core, img/s/chip, img/s/host,
/// cores/host and the share of the host in percent.
fn row(stdout: &str, px: usize) -> [f64; 5] {
    let table = stdout
        .split_once("img/s/chip")
        .unwrap_or_else(|| panic!("no target table: {stdout}"))
        .1;
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&px.to_string()))
        .unwrap_or_else(|| panic!("no row at {px} px: {stdout}"));
    let figures: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter(|w| *w != "%")
        .map(|w| w.parse().unwrap_or_else(|_| panic!("{w} in {line}")))
        .collect();
    figures.try_into().unwrap()
}

#[test]
fn a_slices_need_comes_from_the_compile_result_and_the_cores_from_the_measured_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(&dir.path().join("data"));
    // Compiled for 4 v5e chips (a 2x2 slice): per chip a quarter of these.
    let rates = [400_000.0, 300_000.0, 200_000.0, 100_000.0];
    let costs = dir.path().join("costs.json");
    std::fs::write(&costs, compile_result("tpu:v5e:2x2", rates)).unwrap();
    let out = effnetv2(&[
        "bench",
        "--data",
        &data,
        "--model",
        "tiny",
        "--images",
        "8",
        "--batch",
        "8",
        "--target",
        "tpu:v5e:2x4",
        "--target-costs",
        costs.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(
            "target tpu:v5e:2x4: 1 x ct5lp-hightpu-8t (8 chips, 224 vCPUs = 112 physical cores"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("by the roofline of tpu:v5e:2x2"),
        "{stdout}"
    );
    for (stage, px) in [16, 20, 24, 28].into_iter().enumerate() {
        let [per_core, per_chip, per_host, cores, share] = row(&stdout, px);
        assert_eq!(per_chip, rates[stage] / 4.0, "{stdout}");
        assert_eq!(per_host, 8.0 * per_chip, "{stdout}");
        // The printed per-core rate is rounded to 0.1: the cores agree to that precision.
        assert!(per_core > 0.0, "{stdout}");
        let expected = per_host / per_core;
        assert!(
            (cores - expected).abs() <= 0.1 + expected * 0.05 / per_core,
            "stage {stage}: {cores} cores, expected {expected}: {stdout}"
        );
        assert!(
            (share - 100.0 * cores / 112.0).abs() <= 1.0,
            "stage {stage}: {share} %: {stdout}"
        );
    }
}

/// Runs `bench --data DIR ARGS`, expecting it to fail; returns its standard error.
fn bench_fails(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path());
    let out = effnetv2(&[&["bench", "--data", &data, "--model", "tiny"][..], args].concat());
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("img/s/core"),
        "refused before measuring: {out:?}"
    );
    stderr
}

#[test]
fn bad_targets_and_result_files_are_named_before_anything_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let v6e = write(
        "v6e.json",
        &compile_result("tpu:v6e", [1000.0, 900.0, 800.0, 700.0]),
    );
    let s_sizes = write(
        "other.json",
        &compile_result("tpu:v5e", [1000.0; 4]).replace("\"image_size\":16", "\"image_size\":128"),
    );
    let hlo = write(
        "hlo.json",
        r#"{"target": "tpu:v5e:1x1", "hlo": "x.pb", "compile_seconds": 1.0}"#,
    );
    for (args, expected) in [
        (
            &["--target", "tpu:v9"][..],
            "unknown TPU generation `v9` in target `tpu:v9`",
        ),
        (
            &["--target", "tpu:v5e:2x0"],
            "the slice shape `2x0` must be positive integers joined by `x`",
        ),
        (
            &["--target", "tpu:v4:2x2"],
            "the slice shape needs 3 numbers",
        ),
        (&["--target", "cuda:h100"], "not a TPU slice"),
        (
            &["--target", "tpu:v4"],
            "no TPU VM has 1 v4 chips; its hosts are ct4p-hightpu-4t (4 chips)",
        ),
        (
            &[
                "--target",
                "tpu:v5e:2x4",
                "--target-costs",
                "/nonexistent.json",
            ],
            "--target-costs /nonexistent.json: cannot read the file",
        ),
        (
            &["--target", "tpu:v5e:2x4", "--target-costs", &v6e],
            "the per-chip rates are for tpu:v6e:1x1, another chip",
        ),
        (
            &["--target", "tpu:v5e:2x4", "--target-costs", &s_sizes],
            "stages are at [16, 20, 24, 28] px (none at [128])",
        ),
        (
            &["--target", "tpu:v5e:2x4", "--target-costs", &hlo],
            "not the output of `effnetv2 compile --json` for a model's graphs",
        ),
        (
            &["--target-costs", &v6e],
            "the following required arguments were not provided",
        ),
    ] {
        let stderr = bench_fails(args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
