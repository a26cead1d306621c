//! `effnetv2 predict` on real JPEG and PNG fixtures (from PyPI wheels, see `data_support`) with a
//! checkpoint of known weights: the initial state of the small variant, written with the
//! library's checkpoint writer (nothing is trained). The predictions are checked against the
//! evaluation path (the data loader's preprocessing and the eval graph's own top-1/top-5
//! counts), against a softmax computed here, across batch sizes, through a timm file of the
//! same weights, and through the command line (table and JSON).

mod data_support;
mod run_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use data_support::{foolbox_data, sklearn_images};
use effnetv2::data::{AugmentSettings, EvalConfig, ImageFolder, Loader};
use effnetv2::hlo::Literal;
use effnetv2::model::load_spec;
use effnetv2::program::context::Context;
use effnetv2::runtime::Arg;
use effnetv2::step::graphs::{eval_step, port, Precision};
use effnetv2::step::state::StateLayout;
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::CheckpointMeta;
use effnetv2::trainer::init::initial_state;
use effnetv2::trainer::input::{eval_feeds, InputPipeline};
use effnetv2::trainer::pretrained::WeightCopy;
use effnetv2::weights::predict::{
    image_files, preprocess, Classifier, LoadOptions, NamesOrigin, Prediction, Predictor,
};
use effnetv2::weights::transfer::export_timm;
use run_common::short_run;

/// The good images, in the order a walk of the test folder finds them (sorted paths):
/// baseline and progressive JPEGs of several sizes, an RGB PNG and a greyscale PNG.
const GOOD: [&str; 6] = [
    "a/china.jpg",
    "a/fashionMNIST_00_9.png",
    "a/flower.jpg",
    "b/cifar10_00_3.png",
    "b/imagenet_00_243.jpg",
    "b/imagenet_01_559.jpg",
];

/// A run directory holding one checkpoint of the small variant at its initial state, with the
/// classifier scaled up so that the classes' probabilities are far apart.
/// The small variant's input pipeline (standard preprocessing, `(x - 128) / 128`).
fn tiny_pipeline() -> InputPipeline {
    InputPipeline::for_spec(&load_spec("tiny").unwrap()).unwrap()
}

fn checkpoint_of_known_weights(out: &Path) {
    let config = short_run(out, 10, 1);
    let model = config.model().unwrap();
    let layout = StateLayout::new(&model);
    let mut state = initial_state(&layout, 11);
    for (entry, tensor) in layout.entries().iter().zip(state.iter_mut()) {
        if entry.name.contains("head/dense/") {
            let scaled: Vec<f32> = tensor
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|v| v * 30.0)
                .collect();
            *tensor = Literal::from_vec(tensor.shape().dims(), &scaled).unwrap();
        }
    }
    let named = layout.named(state);
    let meta = CheckpointMeta {
        step: 0,
        cursor: Default::default(),
        config,
    };
    checkpoint::save(out.join("checkpoints"), 0, &named, &meta, 2).unwrap();
}

/// The test folder: the good images under `a/` and `b/`, plus a truncated JPEG, a text file
/// named like a JPEG, a text file and a hidden file.
fn image_folder(root: &Path) {
    let sources = [
        sklearn_images().join("china.jpg"),
        foolbox_data().join("fashionMNIST_00_9.png"),
        sklearn_images().join("flower.jpg"),
        foolbox_data().join("cifar10_00_3.png"),
        foolbox_data().join("imagenet_00_243.jpg"),
        foolbox_data().join("imagenet_01_559.jpg"),
    ];
    for (name, source) in GOOD.iter().zip(&sources) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(source, path).unwrap();
    }
    let china = std::fs::read(&sources[0]).unwrap();
    std::fs::write(root.join("b/corrupt.jpg"), &china[..china.len() / 2]).unwrap();
    std::fs::write(root.join("b/text.jpg"), "not an image\n").unwrap();
    std::fs::write(root.join("a/notes.txt"), "a note\n").unwrap();
    std::fs::write(root.join("a/.hidden.jpg"), "ignored").unwrap();
}

/// The softmax computed independently of the library: log-sum-exp in f64.
fn reference_probabilities(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let log_sum = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    logits.iter().map(|&l| (l as f64 - log_sum).exp()).collect()
}

fn check_probabilities(p: &Prediction, top: usize) {
    assert_eq!(p.top.len(), top, "{}", p.file.display());
    let reference = reference_probabilities(&p.logits);
    let total: f64 = reference.iter().sum();
    assert!((total - 1.0).abs() < 1e-12, "{total}");
    for pair in p.top.windows(2) {
        assert!(pair[0].probability >= pair[1].probability, "{p:?}");
    }
    for c in &p.top {
        assert!(
            (c.probability - reference[c.class]).abs() < 1e-12,
            "{}: class {} {} vs {}",
            p.file.display(),
            c.class,
            c.probability,
            reference[c.class]
        );
    }
    // Nothing outside the top is more probable than its last entry.
    let last = p.top.last().unwrap().probability;
    let inside: Vec<usize> = p.top.iter().map(|c| c.class).collect();
    for (class, &q) in reference.iter().enumerate() {
        assert!(inside.contains(&class) || q <= last, "{p:?}");
    }
    // Well apart: top-1 is not decided by rounding.
    assert!(p.top[0].probability > p.top[1].probability * 1.01, "{p:?}");
}

fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// The eval graph on the data loader's batches of `folder` (one class folder holding the
/// images) with the class of each example set by `class_of`: its top-1 and top-5 counts.
fn eval_counts(
    ctx: &Context,
    run: &Path,
    folder: &Path,
    image_size: usize,
    crop_padding: f64,
    class_of: impl Fn(&Path) -> i32,
) -> (i64, i64, usize) {
    let model = short_run(run, 10, 1).model().unwrap();
    let batch = 4;
    let graph = eval_step(
        &model,
        batch as i64,
        image_size as i64,
        ctx.lowering(Precision::F32),
    )
    .unwrap();
    let ports: Vec<_> = graph
        .signature
        .inputs()
        .iter()
        .filter(|p| p.name != port::IMAGES && p.name != port::CLASSES)
        .collect();
    let dir = checkpoint::find(run).unwrap();
    let (weights, _): (Vec<Literal>, serde_json::Value) =
        checkpoint::load(&dir, ports.iter().map(|p| (p.name.as_str(), &p.shape))).unwrap();
    let weights = ctx
        .upload_named(ports.iter().map(|p| p.name.as_str()).zip(weights))
        .unwrap();
    let (exe, _) = ctx.compile(&graph).unwrap();
    let source = Arc::new(ImageFolder::open(folder).unwrap());
    let loader = Loader::eval(
        source.clone(),
        EvalConfig {
            batch,
            image_size,
            workers: 2,
            queue_depth: 2,
            preprocessing: tiny_pipeline().preprocessing,
            normalization: tiny_pipeline().normalization,
            settings: AugmentSettings {
                eval_crop_padding: crop_padding,
                ..AugmentSettings::default()
            },
        },
    )
    .unwrap();
    let (mut top1, mut top5, mut seen) = (0, 0, 0);
    for batch_data in loader {
        let mut batch_data = batch_data.unwrap();
        assert!(batch_data.skipped.is_empty());
        batch_data.labels = batch_data
            .indices
            .iter()
            .map(|&i| class_of(source.path(i)))
            .collect();
        let feeds = ctx
            .upload_named(eval_feeds(&batch_data, batch).unwrap())
            .unwrap();
        let args = weights
            .iter()
            .chain(&feeds)
            .map(|(n, b)| (*n, Arg::Borrowed(b)));
        let mut out = exe.run(args).unwrap();
        let mut count =
            |name: &str| out.take(name).unwrap().to_literal().unwrap().to_f64_vec()[0] as i64;
        top1 += count(port::TOP1);
        top5 += count(port::TOP5);
        seen += batch_data.len();
    }
    (top1, top5, seen)
}

#[test]
fn predict_classifies_real_images_and_skips_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    checkpoint_of_known_weights(&run);
    let images = dir.path().join("images");
    image_folder(&images);

    let classifier = Classifier::load(&run, &LoadOptions::default()).unwrap();
    assert_eq!(classifier.transform.image_size, 28);
    assert_eq!(
        classifier.transform.crop_padding, 2.0,
        "the tiny recipe's eval crop"
    );
    assert_eq!(
        classifier.names_origin,
        NamesOrigin::RunData(effnetv2::trainer::input::DataSpec::FashionMnist)
    );
    let ctx = Context::open(classifier.plugin().0, None).unwrap();
    let mut predictor = Predictor::new(&ctx, classifier.clone()).unwrap();

    // A folder: the good images in sorted order, every bad file named with its reason.
    let result = predictor
        .predict(std::slice::from_ref(&images), 4, 5)
        .unwrap();
    let files: Vec<PathBuf> = result.predictions.iter().map(|p| p.file.clone()).collect();
    let expected: Vec<PathBuf> = GOOD.iter().map(|g| images.join(g)).collect();
    assert_eq!(files, expected);
    let skipped: Vec<(String, &str)> = result
        .skipped
        .iter()
        .map(|s| {
            let name = s.file.strip_prefix(&images).unwrap().display().to_string();
            (name, s.reason.as_str())
        })
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0].0, "a/notes.txt");
    assert_eq!(skipped[0].1, "not a .jpg, .jpeg or .png file");
    assert_eq!(skipped[1].0, "b/corrupt.jpg");
    assert!(skipped[1].1.contains("is truncated"), "{}", skipped[1].1);
    assert_eq!(skipped[2].0, "b/text.jpg");
    assert!(
        skipped[2].1.contains("cannot decode image text.jpg"),
        "{}",
        skipped[2].1
    );

    let fashion = effnetv2::data::source::FASHION_MNIST_CLASSES;
    for p in &result.predictions {
        check_probabilities(p, 5);
        for c in &p.top {
            assert_eq!(c.name, fashion[c.class]);
        }
    }
    let top1: Vec<usize> = result.predictions.iter().map(|p| p.top[0].class).collect();
    eprintln!("top-1 classes: {top1:?}");

    // The preprocessing is the data loader's, and the eval graph agrees on every top-1 and
    // top-5: with each image's class set to our top-1 all count as correct at top-1; set to our
    // second class, none does at top-1 and all do at top-5; set to the least probable class,
    // none at top-5.
    let flat = dir.path().join("flat");
    std::fs::create_dir_all(flat.join("x")).unwrap();
    for (good, p) in GOOD.iter().zip(&result.predictions) {
        let name = good.replace('/', "_");
        std::fs::copy(images.join(good), flat.join("x").join(&name)).unwrap();
        assert_eq!(
            preprocess(&flat.join("x").join(&name), &classifier.transform).unwrap(),
            preprocess(&p.file, &classifier.transform).unwrap()
        );
    }
    let source = ImageFolder::open(flat.join("x").parent().unwrap()).unwrap();
    let batch = effnetv2::data::Loader::eval(
        Arc::new(source),
        EvalConfig {
            batch: 6,
            image_size: 28,
            workers: 1,
            queue_depth: 1,
            preprocessing: tiny_pipeline().preprocessing,
            normalization: tiny_pipeline().normalization,
            settings: AugmentSettings {
                eval_crop_padding: 2.0,
                ..AugmentSettings::default()
            },
        },
    )
    .unwrap()
    .next()
    .unwrap()
    .unwrap();
    let ours: Vec<f32> = result
        .predictions
        .iter()
        .flat_map(|p| preprocess(&p.file, &classifier.transform).unwrap())
        .collect();
    assert_eq!(
        batch.images.normalised().unwrap(),
        ours,
        "the loader's eval preprocessing"
    );

    let by_name = |path: &Path| -> &Prediction {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replacen('_', "/", 1);
        &result.predictions[GOOD.iter().position(|g| *g == name).unwrap()]
    };
    let n = GOOD.len();
    let counts = |rank: Option<usize>| {
        eval_counts(&ctx, &run, &flat, 28, 2.0, |path| {
            let p = by_name(path);
            match rank {
                Some(r) => p.top[r].class as i32,
                None => {
                    let probabilities = reference_probabilities(&p.logits);
                    (0..probabilities.len())
                        .min_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]))
                        .unwrap() as i32
                }
            }
        })
    };
    assert_eq!(counts(Some(0)), (n as i64, n as i64, n));
    assert_eq!(counts(Some(1)), (0, n as i64, n));
    assert_eq!(counts(None), (0, 0, n));

    // Batch padding changes nothing: one image per batch, and the whole set in one.
    for batch in [1, 16] {
        let again = predictor
            .predict(std::slice::from_ref(&images), batch, 5)
            .unwrap();
        assert_eq!(again.skipped, result.skipped);
        for (a, b) in again.predictions.iter().zip(&result.predictions) {
            assert_eq!(a.file, b.file);
            let d = relative_difference(&a.logits, &b.logits);
            assert!(d < 1e-5, "batch {batch}: {}: {d:e}", a.file.display());
            let classes = |p: &Prediction| p.top.iter().map(|c| c.class).collect::<Vec<_>>();
            assert_eq!(classes(a), classes(b));
        }
    }

    // Files as given, in the order given; a missing one is named.
    let given = [
        expected[2].clone(),
        images.join("missing.jpg"),
        expected[0].clone(),
    ];
    let result2 = predictor.predict(&given, 4, 3).unwrap();
    let files: Vec<&PathBuf> = result2.predictions.iter().map(|p| &p.file).collect();
    assert_eq!(files, [&expected[2], &expected[0]]);
    assert_eq!(result2.skipped.len(), 1);
    assert_eq!(result2.skipped[0].reason, "no such file or directory");
    for (a, b) in result2.predictions[0]
        .top
        .iter()
        .zip(&result.predictions[2].top)
    {
        assert_eq!((a.class, &a.name), (b.class, &b.name));
        assert!((a.probability - b.probability).abs() < 1e-6);
    }
    assert_eq!(result2.predictions[0].top.len(), 3);

    // Nothing left is an error naming what was skipped.
    let e = predictor
        .predict(
            &[images.join("b/text.jpg"), images.join("a/notes.txt")],
            4,
            5,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("no image to classify: 2 inputs skipped"),
        "{e}"
    );
    assert!(e.contains("text.jpg (cannot decode image text.jpg"), "{e}");

    // The trained variables are another copy of the weights: at the initial state the same.
    let trained = Classifier::load(
        &run,
        &LoadOptions {
            trained: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut trained = Predictor::new(&ctx, trained).unwrap();
    let same = trained.predict(&[expected[0].clone()], 1, 5).unwrap();
    let d = relative_difference(&same.predictions[0].logits, &result.predictions[0].logits);
    assert!(d < 1e-5, "{d:e}");

    // The same weights as a timm file, read as the architecture `--model tiny`.
    let timm = dir.path().join("tiny.safetensors");
    export_timm(&run, &timm, WeightCopy::Ema).unwrap();
    let from_timm = Classifier::load(
        &timm,
        &LoadOptions {
            model: Some("tiny".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        from_timm.names_origin,
        NamesOrigin::Numbered { reason: None },
        "a timm file of 10 classes has no names"
    );
    assert_eq!(from_timm.transform.crop_padding, 2.0, "the tiny recipe");
    let mut from_timm = Predictor::new(&ctx, from_timm).unwrap();
    let via_timm = from_timm
        .predict(std::slice::from_ref(&images), 4, 5)
        .unwrap();
    for (a, b) in via_timm.predictions.iter().zip(&result.predictions) {
        assert_eq!(a.logits, b.logits, "{}", a.file.display());
        assert_eq!(a.top[0].name, format!("class {}", b.top[0].class));
    }
}

#[test]
fn options_that_cannot_work_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    checkpoint_of_known_weights(&run);
    let error = |options: LoadOptions, path: &Path| {
        format!("{:#}", Classifier::load(path, &options).unwrap_err())
    };
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "cat\ndog\nbird\n").unwrap();
    let e = error(
        LoadOptions {
            labels: Some(labels.clone()),
            ..Default::default()
        },
        &run,
    );
    assert!(
        e.contains("labels.txt: 3 class names for a model with 10 classes"),
        "{e}"
    );
    let e = error(
        LoadOptions {
            model: Some("s".into()),
            ..Default::default()
        },
        &run,
    );
    assert!(e.contains("is a run of efficientnetv2-tiny"), "{e}");
    let timm = dir.path().join("tiny.safetensors");
    export_timm(&run, &timm, WeightCopy::Ema).unwrap();
    let e = error(LoadOptions::default(), &timm);
    assert!(e.contains("pass --model"), "{e}");
    let e = error(LoadOptions::default(), &dir.path().join("nothing"));
    assert!(e.contains("no such run directory"), "{e}");
    // A labels file with the right count names the classes.
    let ten: String = (0..10).map(|i| format!("kind {i}\n")).collect();
    std::fs::write(&labels, ten).unwrap();
    let named = Classifier::load(
        &run,
        &LoadOptions {
            labels: Some(labels.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(named.names[7], "kind 7");
    // Directories are walked in sorted order, hidden entries left out.
    std::fs::create_dir_all(dir.path().join("w/b")).unwrap();
    for f in ["w/b/2.PNG", "w/a.jpeg", "w/.x.jpg", "w/c.txt"] {
        std::fs::write(dir.path().join(f), "").unwrap();
    }
    let found: Vec<String> = image_files(&[dir.path().join("w")])
        .into_iter()
        .map(|f| match f {
            Ok(p) => p.strip_prefix(dir.path()).unwrap().display().to_string(),
            Err(s) => format!(
                "skip {}",
                s.file.strip_prefix(dir.path()).unwrap().display()
            ),
        })
        .collect();
    assert_eq!(found, ["w/a.jpeg", "w/b/2.PNG", "skip w/c.txt"]);
}

fn effnetv2(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_command_prints_a_table_or_json_and_warns_of_skipped_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    checkpoint_of_known_weights(&run);
    let images = dir.path().join("images");
    image_folder(&images);
    let (run_arg, images_arg) = (run.to_str().unwrap(), images.to_str().unwrap());

    let out = effnetv2(&[
        "predict",
        "--checkpoint",
        run_arg,
        "--json",
        "--top",
        "3",
        "--batch",
        "4",
        images_arg,
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "effnetv2: warning: skipped {}: image corrupt.jpg is truncated",
            images.join("b/corrupt.jpg").display()
        )),
        "{stderr}"
    );
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let predictions = document["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), GOOD.len());
    let skipped = document["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 3);
    assert_eq!(
        skipped[0]["file"],
        images.join("a/notes.txt").to_str().unwrap()
    );
    assert_eq!(skipped[0]["reason"], "not a .jpg, .jpeg or .png file");

    // The same numbers as the library.
    let classifier = Classifier::load(&run, &LoadOptions::default()).unwrap();
    let ctx = Context::open(classifier.plugin().0, None).unwrap();
    let library = Predictor::new(&ctx, classifier)
        .unwrap()
        .predict(std::slice::from_ref(&images), 4, 3)
        .unwrap();
    for (json, ours) in predictions.iter().zip(&library.predictions) {
        assert_eq!(json["file"], ours.file.to_str().unwrap());
        let top = json["predictions"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        for (j, c) in top.iter().zip(&ours.top) {
            assert_eq!(j["class"], c.class);
            assert_eq!(j["name"], c.name.as_str());
            // serde_json reads floats back to within an ulp.
            let read = j["probability"].as_f64().unwrap();
            assert!(
                (read - c.probability).abs() <= 1e-15 * c.probability,
                "{read}"
            );
        }
    }

    // The table: a header, then each image with its ranked classes.
    let out = effnetv2(&[
        "predict",
        "--checkpoint",
        run_arg,
        images.join("a/flower.jpg").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "efficientnetv2-tiny (10 classes, 28 px, class names of the run's data set):"
    );
    assert_eq!(lines[1], images.join("a/flower.jpg").to_str().unwrap());
    assert_eq!(lines.len(), 7, "{table}");
    let flower = &library.predictions[2];
    let first = format!(
        "   1. {:>7.3}%  {}  {}",
        100.0 * flower.top[0].probability,
        flower.top[0].class,
        flower.top[0].name
    );
    assert_eq!(lines[2], first);

    // Errors: a wrong labels file, nothing to classify.
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "one\ntwo\n").unwrap();
    let out = effnetv2(&[
        "predict",
        "--checkpoint",
        run_arg,
        "--labels",
        labels.to_str().unwrap(),
        images_arg,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 class names for a model with 10 classes"),
        "{stderr}"
    );
    let out = effnetv2(&[
        "predict",
        "--checkpoint",
        run_arg,
        images.join("b/text.jpg").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no image to classify: 1 input skipped"),
        "{stderr}"
    );
}
