//! Bad options and specs stop `effnetv2 train` with an error that names them, before any data
//! is read or anything is compiled or allocated.

use std::path::Path;
use std::process::Command;

/// Runs `effnetv2 train ARGS --out DIR`, expecting it to fail; returns its standard error.
fn train_fails(args: &[&str], out: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .arg("train")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_numeric_options_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (&["--batch", "0"][..], "--batch 0: must be at least 1"),
        (&["--eval-batch", "0"], "--eval-batch 0: must be at least 1"),
        (&["--epochs", "0"], "--epochs 0: must be a positive number"),
        (
            &["--epochs", "NaN"],
            "--epochs NaN: must be a positive number",
        ),
        (&["--lr=-1"], "--lr -1: must be a positive number"),
        (&["--warmup-epochs=-0.5"], "--warmup-epochs -0.5"),
        (&["--steps-per-call", "0"], "--steps-per-call 0"),
        (
            &["--steps-per-call", "100000"],
            "--steps-per-call 100000: at most 256",
        ),
        (&["--checkpoint-every", "0"], "--checkpoint-every 0"),
        (
            &["--keep-checkpoints", "1"],
            "--keep-checkpoints 1: at least 2",
        ),
        (&["--devices", "0"], "--devices 0"),
        (
            &["--devices", "3"],
            "--batch 128 does not split evenly over --devices 3",
        ),
        (&["--stages", "0"], "--stages 0"),
        (&["--workers", "0"], "--workers 0"),
    ] {
        let stderr = train_fails(args, &dir.path().join("run"));
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("run").exists(),
        "nothing is written for a refused run"
    );
}

#[test]
fn a_spec_too_large_for_this_machine_names_its_largest_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("graphs/efficientnetv2-tiny.json"),
    )
    .unwrap();
    let mut spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Within every bound, but 1x1 convolutions map 65,536 channels to 65,536:
    // 4.3 billion weights, each with two optimizer slots and an EMA shadow.
    let last = spec["stages"].as_array().unwrap().len() - 1;
    spec["stages"][last]["out"] = 65536.into();
    spec["stages"][last]["expand_ratio"] = 1.into();
    spec["head"]["feature_size"] = 65536.into();
    let path = dir.path().join("huge.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let stderr = train_fails(
        &["--model", path.to_str().unwrap()],
        &dir.path().join("run"),
    );
    assert!(
        stderr.contains("GiB of host memory for its training state")
            && stderr.contains("with dimensions [1, 1, 65536, 65536]")
            && stderr.contains("more than this machine's"),
        "{stderr}"
    );
}

#[test]
fn a_bucket_without_usable_credentials_says_which_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    std::fs::write(&key, r#"{"type": "not a key"}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args(["report", "gs://some-bucket/run"])
        .env_remove("STORAGE_EMULATOR_HOST")
        .env("GOOGLE_APPLICATION_CREDENTIALS", &key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no usable Cloud Storage credentials for bucket `some-bucket`")
            && stderr.contains(&format!("the key file {}", key.display()))
            && stderr.contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{stderr}"
    );
}

#[test]
fn device_augmentation_is_planned_for_randaugment_models_only() {
    let dir = tempfile::tempdir().unwrap();
    let dump = |model: &str| {
        Command::new(env!("CARGO_BIN_EXE_effnetv2"))
            .args([
                "dump",
                "--model",
                model,
                "--stage",
                "0",
                "--augment-on",
                "device",
            ])
            .arg("--out")
            .arg(dir.path().join(model))
            .output()
            .unwrap()
    };
    let refused = dump("b0");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        stderr.contains("model efficientnetv2-b0")
            && stderr.contains("(--augment-on device) cannot run AutoAugment v0"),
        "{stderr}"
    );
    let planned = dump("tiny");
    assert!(planned.status.success(), "{planned:?}");
    let text =
        std::fs::read_to_string(dir.path().join("tiny/train_step_16px_b128.hlo.txt")).unwrap();
    for port in ["%images.", "%augment_table.", "%augment_warp."] {
        assert!(text.contains(port), "{port} is an input");
    }
    // tiny's schedule never mixes: its steps take no mixing arrays, as `train` builds them.
    assert!(!text.contains("%mix_partner."));
    assert!(text.contains("u8[128,16,16,3]{3,2,1,0} parameter"));
}
