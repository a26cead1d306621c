//! Classifying image files with pretrained weights (`effnetv2 predict`): a checkpoint of ours or
//! a timm state dict, the official evaluation transform, batched inference through the predict
//! graph, and the top classes of each image with softmax probabilities.
//!
//! Nothing here prints: files that cannot be read or decoded come back as [`Skipped`] values
//! next to the predictions, and where the class names come from as a [`NamesOrigin`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context as _, Result};
use rayon::prelude::*;

use crate::data::source::{has_image_extension, read_labels};
use crate::data::{decode_rgb, EvalTransform};
use crate::hlo::Literal;
use crate::model::{load_spec, Model};
use crate::program::context::{Context, StepExecutable};
use crate::runtime::provision::PluginKind;
use crate::runtime::{Arg, Buffer};
use crate::step::graphs::{port, predict_step, Precision};
use crate::step::state::Namespace;
use crate::storage::Location;
use crate::trainer::checkpoint;
use crate::trainer::config::{CheckpointMeta, RunConfig};
use crate::trainer::input::{DataSpec, InputPipeline};
use crate::trainer::pretrained::{Pretrained, WeightCopy, WeightSource};
use crate::trainer::recipe::{Augmentation, Recipe};

/// The ImageNet-1k class names in class-index order, as timm names them (made by
/// `tools/imagenet_labels.py` from timm's synset lists).
const IMAGENET_1K: &str = include_str!("../../graphs/labels/imagenet-1k.txt");

/// The state namespace of the weights the predict graph takes.
const WEIGHTS: Namespace = Namespace::Ema;

/// What [`Classifier::load`] reads besides the weights themselves.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The architecture of a timm file (`b0`, `s`, ... or a spec file); for a checkpoint, which
    /// brings its own, it may only name the run's.
    pub model: Option<String>,
    /// The trained variables instead of their moving averages (checkpoints only).
    pub trained: bool,
    /// The side of the square the images are resized to (default: the spec's eval size).
    pub image_size: Option<usize>,
    /// A labels file: one class name per line, as many lines as the head has classes.
    pub labels: Option<PathBuf>,
}

/// Where the class names came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamesOrigin {
    /// A labels file given by the user.
    LabelsFile(PathBuf),
    /// The data set the checkpoint's run trained on.
    RunData(DataSpec),
    /// The ImageNet-1k names built into the binary (a 1000-class head with no other names).
    ImageNet1k,
    /// None known: "class 0", "class 1", ...; `reason` says why, when names were looked for
    /// and not found.
    Numbered { reason: Option<String> },
}

/// Pretrained weights ready to classify: their spec, the class names and the eval transform.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub weights: Pretrained,
    /// The run the weights come from (a checkpoint of ours), if any.
    pub run: Option<RunConfig>,
    /// One name per class of the head.
    pub names: Vec<String>,
    pub names_origin: NamesOrigin,
    /// The model's eval transform (its pipeline and normalisation, the crop padding of the
    /// run's recipe or the official one) at the size to classify at.
    pub transform: EvalTransform,
}

impl Classifier {
    /// Reads the weights at `path` (a run or checkpoint directory, or a timm
    /// `tf_efficientnetv2_*` safetensors file) with what classifying with them needs.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Classifier> {
        let (weights, run) = match WeightSource::at(path)? {
            WeightSource::Checkpoint(dir) => {
                let run = run_config(&dir)?;
                let copy = if options.trained {
                    WeightCopy::Trained
                } else {
                    WeightCopy::Ema
                };
                let weights = Pretrained::from_checkpoint(&dir, copy)?;
                if let Some(model) = &options.model {
                    let asked = load_spec(model)?.name;
                    ensure!(
                        asked == weights.spec.name,
                        "--model {model}: the checkpoint {dir} is a run of {} (a checkpoint \
                         brings its own model; --model names the architecture of a timm file)",
                        weights.spec.name
                    );
                }
                (weights, Some(run))
            }
            WeightSource::Timm(file) => {
                ensure!(
                    !options.trained,
                    "--trained picks a checkpoint's trained variables; the timm file {} holds \
                     one set of weights",
                    file.display()
                );
                let Some(model) = &options.model else {
                    bail!(
                        "{}: a timm state dict does not say which architecture it is: pass \
                         --model (b0, b1, b2, b3, s, m, l or xl for tf_efficientnetv2_*)",
                        file.display()
                    );
                };
                (Pretrained::from_timm(&file, &load_spec(model)?)?, None)
            }
        };
        let spec = &weights.spec;
        ensure!(
            spec.input.channels == 3,
            "{} takes {}-channel images; predict reads RGB images",
            spec.name,
            spec.input.channels
        );
        let image_size = options.image_size.unwrap_or(spec.image_size.eval);
        ensure!(image_size > 0, "--image-size 0: must be at least 1");
        let recipe = Recipe::for_run(run.as_ref().and_then(|r| r.recipe.as_deref()), spec)?;
        let (names, names_origin) = class_names(
            spec.num_classes,
            options.labels.as_deref(),
            run.as_ref().map(|r| &r.data),
        )?;
        let augmentation = run.as_ref().map_or(Augmentation::Model, |r| r.augmentation);
        let pipeline = InputPipeline::for_spec(spec)?.with_augmentation(augmentation);
        Ok(Classifier {
            run,
            names,
            names_origin,
            transform: EvalTransform {
                image_size,
                preprocessing: pipeline.preprocessing,
                crop_padding: recipe.augment.eval_crop_padding,
                normalization: pipeline.normalization,
            },
            weights,
        })
    }

    /// The plugin to run on when none is asked for: the run's, or the default one.
    pub fn plugin(&self) -> (PluginKind, Option<&Path>) {
        match &self.run {
            Some(run) => (run.plugin, run.plugin_path.as_deref()),
            None => (PluginKind::DEFAULT, None),
        }
    }

    /// The number of classes of the head.
    pub fn classes(&self) -> usize {
        self.weights.spec.num_classes
    }
}

/// The config of the run a checkpoint (or a run directory's newest) belongs to.
fn run_config(path: &Location) -> Result<RunConfig> {
    let meta: CheckpointMeta = checkpoint::metadata(checkpoint::find(path)?)?;
    Ok(meta.config)
}

/// The names of `classes` classes: from `labels` (its count must match), else the run's data
/// set (when it can still be read and has as many classes), else ImageNet-1k's for a
/// 1000-class head, else numbered.
fn class_names(
    classes: usize,
    labels: Option<&Path>,
    data: Option<&DataSpec>,
) -> Result<(Vec<String>, NamesOrigin)> {
    if let Some(file) = labels {
        let names = read_labels(file)?;
        ensure!(
            names.len() == classes,
            "--labels {}: {} class names for a model with {classes} classes (one name per line, \
             line i naming class i)",
            file.display(),
            names.len()
        );
        return Ok((names, NamesOrigin::LabelsFile(file.to_path_buf())));
    }
    let mut reason = None;
    if let Some(data) = data {
        match data.class_names() {
            Ok(names) if names.len() == classes => {
                return Ok((names, NamesOrigin::RunData(data.clone())))
            }
            Ok(names) => {
                reason = Some(format!(
                    "the run's data set ({}) has {} classes now, the model {classes}",
                    describe(data),
                    names.len()
                ))
            }
            Err(e) => {
                reason = Some(format!(
                    "the class names of the run's data set ({}) cannot be read: {e:#}",
                    describe(data)
                ))
            }
        }
    }
    // Also for a run whose data does not fit its head: a timm ImageNet checkpoint imported as
    // a run keeps `import`'s data set, which is not what the head classifies.
    if classes == 1000 {
        let names = IMAGENET_1K.lines().map(str::to_owned).collect();
        return Ok((names, NamesOrigin::ImageNet1k));
    }
    let names = (0..classes).map(|c| format!("class {c}")).collect();
    Ok((names, NamesOrigin::Numbered { reason }))
}

fn describe(data: &DataSpec) -> String {
    match data {
        DataSpec::FashionMnist => "fashion-mnist".into(),
        DataSpec::Folder(p) | DataSpec::Shards(p) => p.display().to_string(),
        DataSpec::TfRecord(data) => data.location.to_string(),
    }
}

/// One class of an image's top K.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassProbability {
    pub class: usize,
    pub name: String,
    pub probability: f64,
}

/// The top classes of one image, most probable first.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub file: PathBuf,
    pub top: Vec<ClassProbability>,
    /// The network's output for the image, every class.
    pub logits: Vec<f32>,
}

/// An input that was not classified, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

/// What [`Predictor::predict`] returns: the classified images in input order, and the skipped
/// files in input order.
#[derive(Clone, Debug, Default)]
pub struct Predictions {
    pub predictions: Vec<Prediction>,
    pub skipped: Vec<Skipped>,
}

/// The softmax of `logits`, in f64 and stable: the largest logit is subtracted first.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .map(|&l| f64::from(l))
        .fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|&l| (f64::from(l) - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// The `k` most probable classes of `probabilities`, most probable first (ties: lower class
/// first).
pub fn top_k(probabilities: &[f64], k: usize, names: &[String]) -> Vec<ClassProbability> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|class| ClassProbability {
            class,
            name: names[class].clone(),
            probability: probabilities[class],
        })
        .collect()
}

/// The image files `inputs` name, in order: files as given, directories walked recursively in
/// sorted order for `.jpg`, `.jpeg` and `.png` files (hidden entries left out). Anything else
/// found in a directory, and paths that do not exist, come back as skipped (`Err`) in place.
pub fn image_files(inputs: &[PathBuf]) -> Vec<Result<PathBuf, Skipped>> {
    let mut found = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut found);
        } else if input.exists() {
            found.push(Ok(input.clone()));
        } else {
            found.push(Err(Skipped {
                file: input.clone(),
                reason: "no such file or directory".into(),
            }));
        }
    }
    found
}

fn walk(dir: &Path, found: &mut Vec<Result<PathBuf, Skipped>>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.push(Err(Skipped {
                file: dir.to_path_buf(),
                reason: format!("cannot list the directory: {e}"),
            }));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, found);
        } else if has_image_extension(&path.file_name().unwrap_or_default().to_string_lossy()) {
            found.push(Ok(path));
        } else {
            found.push(Err(Skipped {
                file: path,
                reason: "not a .jpg, .jpeg or .png file".into(),
            }));
        }
    }
}

/// Reads, decodes (to RGB, within the data loader's size limits) and transforms one image: the
/// eval transform's `[size, size, 3]` values.
pub fn preprocess(file: &Path, transform: &EvalTransform) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read it: {e}"))?;
    let name = file
        .file_name()
        .unwrap_or(file.as_os_str())
        .to_string_lossy();
    let image = decode_rgb(&bytes, &name).map_err(|e| e.to_string())?;
    let size = transform.image_size;
    let mut out = vec![0.0; size * size * 3];
    transform.apply(&image, &mut out);
    Ok(out)
}

/// A classifier's weights on a device and its compiled predict graphs, one per (batch, image
/// size).
pub struct Predictor<'c> {
    ctx: &'c Context,
    classifier: Classifier,
    model: Model,
    /// The predict graph's weight inputs on the device, by port name.
    weights: HashMap<String, Buffer>,
    executables: HashMap<(usize, usize), StepExecutable>,
}

impl<'c> Predictor<'c> {
    pub fn new(ctx: &'c Context, classifier: Classifier) -> Result<Predictor<'c>> {
        let model = Model::new(classifier.weights.spec.clone())?;
        Ok(Predictor {
            ctx,
            classifier,
            model,
            weights: HashMap::new(),
            executables: HashMap::new(),
        })
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The predict graph for `batch` images, compiled, with its weights uploaded.
    fn executable(&mut self, batch: usize) -> Result<&StepExecutable> {
        let size = self.classifier.transform.image_size;
        if !self.executables.contains_key(&(batch, size)) {
            let graph = predict_step(
                &self.model,
                batch as i64,
                size as i64,
                self.ctx.lowering(Precision::F32),
            )?;
            for input in graph.signature.inputs() {
                if input.name == port::IMAGES || self.weights.contains_key(&input.name) {
                    continue;
                }
                let value = WEIGHTS
                    .variable(&input.name)
                    .and_then(|name| self.classifier.weights.get(name))
                    .with_context(|| format!("the weights have no `{}`", input.name))?;
                ensure!(
                    value.shape() == &input.shape,
                    "`{}` is {:?} in the weights, the predict graph takes {:?}",
                    input.name,
                    value.shape(),
                    input.shape
                );
                let buffer = self.ctx.upload(value)?;
                self.weights.insert(input.name.clone(), buffer);
            }
            let (exe, _) = self.ctx.compile(&graph)?;
            self.executables.insert((batch, size), exe);
        }
        Ok(&self.executables[&(batch, size)])
    }

    /// Classifies the images `inputs` name (files and directories, see [`image_files`]) in
    /// batches of `batch` (the last one padded), returning the `top` most probable classes of
    /// each. Files that cannot be read or decoded are skipped; it is an error when none is
    /// left.
    pub fn predict(&mut self, inputs: &[PathBuf], batch: usize, top: usize) -> Result<Predictions> {
        ensure!(batch > 0, "--batch 0: must be at least 1");
        ensure!(top > 0, "--top 0: must be at least 1");
        ensure!(!inputs.is_empty(), "no image or directory given");
        let files = image_files(inputs);
        let candidates = files.iter().filter(|f| f.is_ok()).count();
        let batch = batch.min(candidates).max(1);
        let transform = self.classifier.transform;
        let mut result = Predictions::default();
        let mut ready: Vec<(PathBuf, Vec<f32>)> = Vec::new();
        // Decode `batch` files at a time on the worker threads, run every full batch.
        for group in files.chunks(batch) {
            let decoded: Vec<Result<(PathBuf, Vec<f32>), Skipped>> = group
                .par_iter()
                .map(|file| {
                    let file = file.as_ref().map_err(Clone::clone)?;
                    preprocess(file, &transform)
                        .map(|pixels| (file.clone(), pixels))
                        .map_err(|reason| Skipped {
                            file: file.clone(),
                            reason,
                        })
                })
                .collect();
            for item in decoded {
                match item {
                    Ok(image) => ready.push(image),
                    Err(skipped) => result.skipped.push(skipped),
                }
            }
            while ready.len() >= batch {
                let rest = ready.split_off(batch);
                let full = std::mem::replace(&mut ready, rest);
                self.run_batch(full, batch, top, &mut result.predictions)?;
            }
        }
        if !ready.is_empty() {
            self.run_batch(
                std::mem::take(&mut ready),
                batch,
                top,
                &mut result.predictions,
            )?;
        }
        if result.predictions.is_empty() {
            let shown: Vec<String> = result
                .skipped
                .iter()
                .take(5)
                .map(|s| format!("{} ({})", s.file.display(), s.reason))
                .collect();
            bail!(
                "no image to classify: {} input{} skipped: {}{}",
                result.skipped.len(),
                if result.skipped.len() == 1 { "" } else { "s" },
                shown.join("; "),
                if result.skipped.len() > shown.len() {
                    format!("; and {} more", result.skipped.len() - shown.len())
                } else {
                    String::new()
                }
            );
        }
        Ok(result)
    }

    /// Runs the graph for `batch` on `images` (at most `batch`; zeros pad the rest) and appends
    /// their predictions.
    fn run_batch(
        &mut self,
        images: Vec<(PathBuf, Vec<f32>)>,
        batch: usize,
        top: usize,
        out: &mut Vec<Prediction>,
    ) -> Result<()> {
        let size = self.classifier.transform.image_size;
        let mut pixels = Vec::with_capacity(batch * size * size * 3);
        for (_, image) in &images {
            pixels.extend_from_slice(image);
        }
        pixels.resize(batch * size * size * 3, 0.0);
        let dims = [batch as i64, size as i64, size as i64, 3];
        let images_literal = Literal::from_vec(&dims, &pixels).map_err(anyhow::Error::msg)?;
        let feed = self.ctx.upload(&images_literal)?;
        self.executable(batch)?;
        let exe = &self.executables[&(batch, size)];
        let args = self
            .weights
            .iter()
            .map(|(name, b)| (name.as_str(), Arg::Borrowed(b)))
            .chain([(port::IMAGES, Arg::Borrowed(&feed))]);
        let mut outputs = exe.run(args)?;
        let logits: Vec<f32> = outputs
            .take(port::LOGITS)?
            .to_literal()?
            .to_vec()
            .map_err(anyhow::Error::msg)?;
        let classes = self.classifier.classes();
        let names = &self.classifier.names;
        let k = top.min(classes);
        for ((file, _), row) in images.into_iter().zip(logits.chunks_exact(classes)) {
            out.push(Prediction {
                file,
                top: top_k(&softmax(row), k, names),
                logits: row.to_vec(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_matches_the_definition() {
        // exp(1000) overflows f64: only the shifted form gives an answer.
        let p = softmax(&[1000.0, 999.0, 998.0]);
        let e = [1.0, (-1f64).exp(), (-2f64).exp()];
        let sum: f64 = e.iter().sum();
        for (got, want) in p.iter().zip(e.iter().map(|x| x / sum)) {
            assert!((got - want).abs() < 1e-15, "{got} {want}");
        }
        assert_eq!(softmax(&[-3.0; 4]), vec![0.25; 4]);
    }

    #[test]
    fn top_k_is_sorted_with_ties_by_class_and_named() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let top = top_k(&[0.1, 0.4, 0.1, 0.4], 3, &names);
        let classes: Vec<usize> = top.iter().map(|c| c.class).collect();
        assert_eq!(classes, [1, 3, 0]);
        assert_eq!(top[1].name, "d");
        assert_eq!(top_k(&[0.5, 0.5], 5, &names[..2]).len(), 2);
    }

    #[test]
    fn class_names_come_from_labels_data_or_imagenet_else_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::write(&labels, "cat\ndog\n").unwrap();
        let (names, origin) = class_names(2, Some(&labels), None).unwrap();
        assert_eq!(names, ["cat", "dog"]);
        assert_eq!(origin, NamesOrigin::LabelsFile(labels.clone()));
        let e = class_names(3, Some(&labels), None).unwrap_err().to_string();
        assert!(
            e.contains("2 class names for a model with 3 classes"),
            "{e}"
        );

        let (names, origin) = class_names(10, None, Some(&DataSpec::FashionMnist)).unwrap();
        assert_eq!(
            (names[0].as_str(), names[9].as_str()),
            ("T-shirt/top", "Ankle boot")
        );
        assert_eq!(origin, NamesOrigin::RunData(DataSpec::FashionMnist));

        // A folder data set: its class folders under train/, sorted.
        for class in ["zebra", "ant", ".hidden"] {
            std::fs::create_dir_all(dir.path().join("train").join(class)).unwrap();
        }
        std::fs::write(dir.path().join("train/readme.txt"), "x").unwrap();
        let folder = DataSpec::Folder(dir.path().to_path_buf());
        assert_eq!(
            class_names(2, None, Some(&folder)).unwrap().0,
            ["ant", "zebra"]
        );
        // Another class count, or data that is gone: numbered, saying why.
        let (names, origin) = class_names(3, None, Some(&folder)).unwrap();
        assert_eq!(names, ["class 0", "class 1", "class 2"]);
        assert!(
            matches!(&origin, NamesOrigin::Numbered { reason: Some(r) } if r.contains("has 2 classes now")),
            "{origin:?}"
        );
        let gone = DataSpec::Folder(dir.path().join("gone"));
        let (_, origin) = class_names(3, None, Some(&gone)).unwrap();
        assert!(
            matches!(&origin, NamesOrigin::Numbered { reason: Some(r) } if r.contains("cannot be read")),
            "{origin:?}"
        );
        // ImageNet weights imported as a run keep the run's data set (Fashion-MNIST by default).
        let (names, origin) = class_names(1000, None, Some(&DataSpec::FashionMnist)).unwrap();
        assert_eq!((names.len(), origin), (1000, NamesOrigin::ImageNet1k));

        let (names, origin) = class_names(1000, None, None).unwrap();
        assert_eq!(origin, NamesOrigin::ImageNet1k);
        assert_eq!(names.len(), 1000);
        assert_eq!(names[0], "tench, Tinca tinca");
        assert_eq!(names[999], "toilet tissue, toilet paper, bathroom tissue");
        assert_eq!(class_names(7, None, None).unwrap().0[6], "class 6");
    }
}
