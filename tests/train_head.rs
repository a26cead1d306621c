//! A data set with another number of classes than the model spec trains without editing the
//! spec: the classifier follows the data, the run's config records it, and `eval` builds the
//! same head from the run.

mod run_common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use effnetv2::hlo::Literal;
use effnetv2::model::{load_spec, Model};
use effnetv2::step::state::{Role, StateLayout};
use effnetv2::trainer::checkpoint;
use effnetv2::trainer::config::RunConfig;
use effnetv2::trainer::events::{Event, EventSink};
use effnetv2::trainer::init::initial_state;
use effnetv2::trainer::input::DataSpec;
use effnetv2::trainer::run::train;
use effnetv2::trainer::timm_file::write_state_dict;
use effnetv2::weights::transfer::import_timm;
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

/// What a run or an import said about its head: `HeadFollowsData` as (spec, data) classes, and
/// `Initialised` as (variables loaded, (pretrained, run) classes of a fresh head).
#[derive(Default)]
struct HeadNotes {
    follows_data: Vec<(usize, usize)>,
    initialised: Vec<(usize, Option<(usize, usize)>)>,
}

impl EventSink for HeadNotes {
    fn emit(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::HeadFollowsData { spec, data } => self.follows_data.push((*spec, *data)),
            Event::Initialised {
                loaded, new_head, ..
            } => self.initialised.push((*loaded, *new_head)),
            _ => {}
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
    assert_eq!(notes.follows_data, [(10, 3)], "tiny's spec has 10 classes");
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

/// A timm state dict of the small variant with a `classes`-output classifier, drawn from `seed`;
/// returns its variables by our names.
fn timm_file(path: &Path, classes: usize, seed: u64) -> HashMap<String, Vec<f32>> {
    let mut spec = load_spec("tiny").unwrap();
    spec.num_classes = classes;
    let model = Model::new(spec).unwrap();
    let layout = StateLayout::new(&model);
    let values: HashMap<String, Vec<f32>> = layout
        .entries()
        .iter()
        .zip(initial_state(&layout, seed))
        .filter_map(|(e, t)| match &e.role {
            Role::Variable(p) => Some((p.name.clone(), t.to_vec::<f32>().unwrap())),
            _ => None,
        })
        .collect();
    let state_dict = model.to_timm(|p| &values[&p.name]);
    write_state_dict(path, &state_dict, &model.timm_bn_counters()).unwrap();
    values
}

/// `import --from timm` follows the data's class count as `train --init` does: a 1000-class
/// file imported for 10-class data gets a classifier drawn afresh (and says so), keeps every
/// other tensor, and `train --resume` with the same options trains on from it; a file with the
/// data's head (3 classes where the spec has 10) keeps every tensor.
#[test]
fn an_imported_1000_class_file_resumes_on_a_10_class_data_set() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("tf_efficientnetv2_tiny.safetensors");
    let values = timm_file(&file, 1000, 21);
    let out = root.path().join("run");
    let config = short_run(&out, 4, 1);
    let mut notes = HeadNotes::default();
    let imported = import_timm(&file, &config, &mut notes).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        notes.follows_data,
        [],
        "tiny's spec has Fashion-MNIST's 10 classes"
    );
    let [(loaded, new_head)] = notes.initialised[..] else {
        panic!("{:?}", notes.initialised)
    };
    assert_eq!(new_head, Some((1000, 10)));
    assert_eq!(
        loaded,
        values.len() - 2,
        "all but the classifier's kernel and bias"
    );
    let model = config.model().unwrap();
    let layout = StateLayout::new(&model);
    let expected = layout.entries().iter().map(|e| (e.name.as_str(), &e.shape));
    let (tensors, _): (Vec<Literal>, serde_json::Value) =
        checkpoint::load(&imported, expected).unwrap();
    for (entry, tensor) in layout.entries().iter().zip(&tensors) {
        if let Some(name) = entry.name.strip_prefix("ema/") {
            let value = tensor.to_vec::<f32>().unwrap();
            if Model::is_classifier(name) {
                assert_eq!(value.len(), values[name].len() / 100, "{name}");
            } else {
                assert_eq!(value, values[name], "{name}");
            }
        }
    }

    let summary = train(&config, true, &AtomicBool::new(false), &mut notes)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.completed);
    assert_eq!(notes.initialised.len(), 1, "resuming loads the checkpoint");

    let three = root.path().join("three");
    three_class_folders(&three);
    let file = root.path().join("three_classes.safetensors");
    timm_file(&file, 3, 22);
    let config = RunConfig {
        data: DataSpec::Folder(three),
        out: root.path().join("run3"),
        ..short_run(&out, 4, 1)
    };
    let mut notes = HeadNotes::default();
    import_timm(&file, &config, &mut notes).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(notes.follows_data, [(10, 3)]);
    assert_eq!(notes.initialised, [(values.len(), None)]);
}
