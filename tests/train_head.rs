//! A data set with another number of classes than the model spec trains without editing the
//! spec: the classifier follows the data, the run's config records it, and `eval` builds the
//! same head from the run.

mod run_common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Event, EventSink};
use effnetv2::trainer::input::DataSpec;
use effnetv2::trainer::run::train;
use image::{Rgb, RgbImage};
use run_common::short_run;

/// `root/{train,val}/class_<c>/<i>.png`: 3 classes of 32 x 32 images, each class a colour with noise.
fn three_class_folders(root: &Path) {
    for (split, per_class) in [("train", 24), ("val", 6)] {
        for class in 0..3u8 {
            let dir = root.join(split).join(format!("class_{class}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                let image = RgbImage::from_fn(32, 32, |x, y| {
                    let noise = ((x * 7 + y * 13 + i * 31) % 40) as u8;
                    let mut pixel = [noise; 3];
                    pixel[class as usize] = 200 + noise / 2;
                    Rgb(pixel)
                });
                image.save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

#[derive(Default)]
struct HeadNotes(Vec<(usize, usize)>);

impl EventSink for HeadNotes {
    fn emit(&mut self, event: &Event) -> anyhow::Result<()> {
        if let Event::HeadFollowsData { spec, data } = event {
            self.0.push((*spec, *data));
        }
        Ok(())
    }
}

#[test]
fn the_head_follows_a_data_set_with_another_class_count() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    three_class_folders(&data);
    let out = root.path().join("run");
    let config = RunConfig {
        data: DataSpec::Folder(data),
        batch: 8,
        epochs: 1.0,
        stages: Some(1),
        eval_batch: 6,
        eval_limit: None,
        ..short_run(&out, 9, 1)
    };
    let mut notes = HeadNotes::default();
    let summary = train(&config, false, &AtomicBool::new(false), &mut notes)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.completed);
    assert_eq!(notes.0, [(10, 3)], "tiny's spec has 10 classes");
    let saved: RunConfig =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved.num_classes, Some(3));

    let eval = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args(["eval", "--checkpoint"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&eval.stdout);
    assert!(eval.status.success(), "{eval:?}");
    assert!(stdout.contains("18 images"), "{stdout}");
}
