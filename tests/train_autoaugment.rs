//! B0–B3 train and evaluate with their official pipeline: the spec's `autoaugment_v0` becomes the
//! legacy preprocessing with AutoAugment v0 and ImageNet normalisation in the loaders (whose
//! batches are exactly that transform), and B0 trains a few steps with it on Fashion-MNIST.

mod data_support;
mod run_common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use data_support::{files, foolbox_data};
use effnetv2::data::rng::{stream, Purpose};
use effnetv2::data::{
    decode_rgb, AugmentSettings, EvalConfig, EvalTransform, ImageFolder, Loader, Normalization,
    Policy, Preprocessing, Source, Stage, TrainTransform,
};
use effnetv2::model::load_spec;
use effnetv2::trainer::events::{Event, EventSink};
use effnetv2::trainer::input::InputPipeline;
use effnetv2::trainer::run::train;
use run_common::short_run;

#[test]
fn the_spec_policy_picks_the_official_pipeline_and_normalisation() {
    for model in ["b0", "b1", "b2", "b3"] {
        let pipeline = InputPipeline::for_spec(&load_spec(model).unwrap()).unwrap();
        assert_eq!(
            pipeline,
            InputPipeline {
                preprocessing: Preprocessing::Legacy,
                policy: Policy::AutoAugmentV0,
                normalization: Normalization::IMAGENET,
                shuffle: true,
            },
            "{model}"
        );
    }
    assert_eq!(
        InputPipeline::for_spec(&load_spec("b0").unwrap())
            .unwrap()
            .to_string(),
        "legacy B0-B3 preprocessing (bicubic), AutoAugment v0, (x - mean) / std with mean \
         [123.675, 116.28, 103.53] std [58.395, 57.12, 57.375]"
    );
    for model in ["s", "m", "l", "xl", "tiny"] {
        let pipeline = InputPipeline::for_spec(&load_spec(model).unwrap()).unwrap();
        assert_eq!(
            pipeline,
            InputPipeline {
                preprocessing: Preprocessing::Standard,
                policy: Policy::RandAugment { layers: 2 },
                normalization: Normalization::CENTRED,
                shuffle: true,
            },
            "{model}"
        );
    }
    // The loader makes RGB images: a spec with another channel count is refused by name.
    let mut grey = load_spec("b0").unwrap();
    grey.input.mean = vec![120.0];
    let message = InputPipeline::for_spec(&grey).unwrap_err().to_string();
    assert!(message.contains("input.mean has 1 values"), "{message}");
}

#[test]
fn b0_loaders_deliver_exactly_the_legacy_autoaugment_transforms() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("apple");
    std::fs::create_dir_all(&dir).unwrap();
    for path in files(&foolbox_data(), "imagenet_0", ".jpg")
        .into_iter()
        .take(6)
    {
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let folder = Arc::new(ImageFolder::open(root.path()).unwrap());
    let pipeline = InputPipeline::for_spec(&load_spec("b0").unwrap()).unwrap();
    let size = 40;
    let seed = 9;
    let stage = Stage {
        image_size: size,
        magnitude: 0.0,
        mixup: 0.0,
        cutmix: 0.0,
    };
    let mut loader =
        Loader::new(folder.clone(), pipeline.loader_config(3, stage, seed, 2)).unwrap();
    let transform = TrainTransform {
        image_size: size,
        preprocessing: Preprocessing::Legacy,
        policy: Policy::AutoAugmentV0,
        magnitude: 0.0,
        settings: AugmentSettings::default(),
        normalization: Normalization::IMAGENET,
    };
    let pixels = size * size * 3;
    let image = |i: usize| decode_rgb(&std::fs::read(folder.path(i)).unwrap(), "fixture").unwrap();
    for _ in 0..4 {
        let batch = loader.next().unwrap().unwrap();
        for (slot, &index) in batch.indices.iter().enumerate() {
            let mut want = vec![0f32; pixels];
            let mut rng = stream(seed, batch.epoch, index as u64, Purpose::Augment);
            transform.apply(&image(index), &mut rng, &mut want);
            assert_eq!(
                batch.images.normalised().unwrap()[slot * pixels..][..pixels],
                want[..],
                "epoch {}, example {index}",
                batch.epoch
            );
        }
    }
    let eval = Loader::eval(
        folder.clone(),
        EvalConfig {
            batch: 4,
            image_size: size,
            workers: 2,
            queue_depth: 1,
            preprocessing: pipeline.preprocessing,
            normalization: pipeline.normalization,
            settings: AugmentSettings::default(),
        },
    )
    .unwrap();
    let eval_transform = EvalTransform {
        image_size: size,
        preprocessing: Preprocessing::Legacy,
        crop_padding: 32.0,
        normalization: Normalization::IMAGENET,
    };
    for batch in eval {
        let batch = batch.unwrap();
        for (slot, &index) in batch.indices.iter().enumerate() {
            let mut want = vec![0f32; pixels];
            eval_transform.apply(&image(index), &mut want);
            assert_eq!(
                batch.images.normalised().unwrap()[slot * pixels..][..pixels],
                want[..]
            );
        }
    }
    assert_eq!(folder.len(), 6);
}

/// The built-in B0 spec at 32 px in one stage: the same network and pipeline, small enough
/// to compile and train in seconds on the CPU.
fn small_b0(path: &Path) {
    let mut spec: serde_json::Value =
        serde_json::from_str(include_str!("../graphs/efficientnetv2-b0.json")).unwrap();
    spec["image_size"] = serde_json::json!({"train": 32, "eval": 32});
    spec["progressive"]["official"]["image_size"] = serde_json::json!({"min": 32, "max": 32});
    std::fs::write(path, serde_json::to_string(&spec).unwrap()).unwrap();
}

#[derive(Default)]
struct Notes {
    pipelines: Vec<InputPipeline>,
    losses: Vec<f32>,
}

impl EventSink for Notes {
    fn emit(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::Pipeline(pipeline) => self.pipelines.push(*pipeline),
            Event::Step { record, .. } => self.losses.push(record.loss),
            _ => {}
        }
        Ok(())
    }
}

#[test]
fn b0_trains_a_few_steps_with_autoaugment() {
    let root = tempfile::tempdir().unwrap();
    let spec = root.path().join("b0-32px.json");
    small_b0(&spec);
    let mut config = short_run(&root.path().join("run"), 3, 1);
    config.model = spec.display().to_string();
    config.batch = 8;
    // Three steps of batch 8 over the 60000 Fashion-MNIST training images.
    config.epochs = 3.0 * 8.0 / 60000.0;
    config.eval_batch = 8;
    config.eval_limit = Some(16);
    let mut notes = Notes::default();
    let summary = train(&config, false, &AtomicBool::new(false), &mut notes).unwrap();
    assert!(summary.completed);
    assert_eq!(
        notes.pipelines,
        [InputPipeline {
            preprocessing: Preprocessing::Legacy,
            policy: Policy::AutoAugmentV0,
            normalization: Normalization::IMAGENET,
            shuffle: true,
        }]
    );
    assert_eq!(notes.losses.len(), 3);
    assert!(
        notes.losses.iter().all(|l| l.is_finite()),
        "{:?}",
        notes.losses
    );
    assert!((0.0..=1.0).contains(&summary.final_top1));
}
