//! Fine-tuning: a run started with `--init` from another run's checkpoint, on classes that run
//! never saw (its classifier drawn afresh for the new class count), reaches the source run's
//! accuracy in fewer steps than a run from scratch.

mod run_common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Event, EventSink};
use effnetv2::trainer::input::DataSpec;
use effnetv2::trainer::recipe::TrainImageSize;
use effnetv2::trainer::run::{train, RunSummary};
use run_common::short_run;

/// `root/{train,val}/<class name>/<i>.png` from Fashion-MNIST's images of `classes`: the first
/// `train` and `val` images of each class from its train and test sets.
fn fashion_mnist_folders(root: &Path, classes: &[usize], train: usize, val: usize) {
    let (train_set, test_set) = DataSpec::FashionMnist.open().unwrap();
    for (split, source, per_class) in [("train", &train_set, train), ("val", &test_set, val)] {
        for &class in classes {
            let dir = root
                .join(split)
                .join(source.class_names()[class].replace('/', "-"));
            std::fs::create_dir_all(&dir).unwrap();
            let picked = (0..source.len()).filter(|&i| source.label(i) == class);
            for (n, index) in picked.take(per_class).enumerate() {
                let image = source.load(index).unwrap();
                image::DynamicImage::ImageRgb8(image)
                    .to_luma8()
                    .save(dir.join(format!("{n}.png")))
                    .unwrap();
            }
        }
    }
}

#[derive(Default)]
struct Notes(Vec<(usize, Option<(usize, usize)>)>);

impl EventSink for Notes {
    fn emit(&mut self, event: &Event) -> anyhow::Result<()> {
        if let Event::Initialised {
            loaded, new_head, ..
        } = event
        {
            self.0.push((*loaded, *new_head));
        }
        Ok(())
    }
}

fn run(config: &RunConfig) -> (RunSummary, Notes) {
    let mut notes = Notes::default();
    let summary = train(config, false, &AtomicBool::new(false), &mut notes)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.completed);
    (summary, notes)
}

/// Top-1 after each quarter of the run (four stages of one size, each evaluated).
fn quarters(summary: &RunSummary) -> Vec<f64> {
    summary.stages.iter().map(|s| s.top1).collect()
}

#[test]
fn a_run_initialised_from_another_reaches_its_accuracy_in_fewer_steps() {
    let root = tempfile::tempdir().unwrap();
    let (source_data, target_data) = (root.path().join("source"), root.path().join("target"));
    // Source: T-shirt, trouser, pullover, dress, coat, sandal; target: shirt, sneaker, bag,
    // ankle boot.
    fashion_mnist_folders(&source_data, &[0, 1, 2, 3, 4, 5], 500, 100);
    fashion_mnist_folders(&target_data, &[6, 7, 8, 9], 500, 100);
    // Four stages at one size: an evaluation after every quarter of the run.
    let on = |data: &Path, out: &str, steps: u64| RunConfig {
        data: DataSpec::Folder(data.to_path_buf()),
        steps: Some(steps),
        stages: Some(4),
        image_size: Some(TrainImageSize::Pixels(28)),
        eval_limit: None,
        ..short_run(&root.path().join(out), steps, 4)
    };
    let (source, _) = run(&on(&source_data, "source", 200));
    let (scratch, _) = run(&on(&target_data, "scratch", 200));
    let (finetuned, notes) = run(&RunConfig {
        init: Some(root.path().join("source")),
        ..on(&target_data, "finetune", 200)
    });
    let (scratch, finetuned) = (quarters(&scratch), quarters(&finetuned));
    eprintln!(
        "source (6 classes, 200 steps): {:.2}%; target (4 classes) top-1 after 50/100/150/200 \
         steps: from scratch {scratch:.4?}, fine-tuned {finetuned:.4?}",
        source.final_top1 * 100.0
    );
    let (loaded, new_head) = notes.0[0];
    assert_eq!(
        new_head,
        Some((6, 4)),
        "the classifier is drawn for 4 classes"
    );
    assert!(loaded > 100, "{loaded} variables loaded");
    // Steps to the source run's accuracy: the first quarter that reaches it.
    let first_at = |top1s: &[f64]| top1s.iter().position(|&t| t >= source.final_top1);
    let (finetuned_at, scratch_at) = (first_at(&finetuned), first_at(&scratch));
    assert!(
        finetuned_at.is_some_and(|f| scratch_at.is_none_or(|s| f < s)),
        "fine-tuned {finetuned:?}, from scratch {scratch:?}: the fine-tuned run does not reach \
         the source's {} sooner",
        source.final_top1
    );
}
