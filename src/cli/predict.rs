//! `effnetv2 predict`: the top classes of image files, as a table or one JSON document.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use effnetv2::program::context::Context;
use effnetv2::runtime::provision::PluginKind;
use effnetv2::weights::predict::{Classifier, LoadOptions, NamesOrigin, Predictions, Predictor};
use serde_json::json;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A run directory (its newest checkpoint) or one checkpoint directory (local or
    /// `gs://bucket/prefix`), or a local timm
    /// `tf_efficientnetv2_*` state dict (.safetensors, with --model).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The architecture of a timm file (b0, b1, b2, b3, s, m, l, xl or a spec file); a
    /// checkpoint brings its own.
    #[arg(long)]
    model: Option<String>,
    /// Image files and directories (searched recursively for .jpg, .jpeg and .png).
    #[arg(required = true, value_name = "IMAGE|DIR")]
    inputs: Vec<PathBuf>,
    /// Class names, one per line (line i names class i); default: the run's data set's, the
    /// ImageNet-1k names for a 1000-class head, else "class N".
    #[arg(long)]
    labels: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Images per batch (the last batch is padded).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Side in pixels the images are resized to (default: the model's eval size).
    #[arg(long)]
    image_size: Option<usize>,
    /// PJRT plugin kind (default: the run's, for a timm file the default CPU plugin).
    #[arg(long, value_parser = super::plugin::kind_value_parser())]
    plugin: Option<PluginKind>,
    /// Use this plugin library instead of finding/installing one.
    #[arg(long)]
    plugin_path: Option<PathBuf>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Use a checkpoint's trained variables instead of their moving averages (EMA, the
    /// default).
    #[arg(long)]
    trained: bool,
}

impl PredictArgs {
    pub fn run(self) -> Result<()> {
        let classifier = Classifier::load(
            &self.checkpoint,
            &LoadOptions {
                model: self.model.clone(),
                trained: self.trained,
                image_size: self.image_size,
                labels: self.labels.clone(),
            },
        )?;
        if let NamesOrigin::Numbered {
            reason: Some(reason),
        } = &classifier.names_origin
        {
            eprintln!(
                "effnetv2: warning: classes are numbered: {reason} (name them with --labels)"
            );
        }
        let (run_kind, run_path) = classifier.plugin();
        let kind = self.plugin.unwrap_or(run_kind);
        let plugin_path = self
            .plugin_path
            .clone()
            .or_else(|| self.plugin.is_none().then(|| run_path.map(PathBuf::from))?);
        let ctx = Context::open(kind, plugin_path.as_deref())?;
        let mut predictor = Predictor::new(&ctx, classifier)?;
        let result = predictor.predict(&self.inputs, self.batch, self.top)?;
        for skipped in &result.skipped {
            eprintln!(
                "effnetv2: warning: skipped {}: {}",
                skipped.file.display(),
                skipped.reason
            );
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(&document(&result))?);
        } else {
            print!("{}", table(predictor.classifier(), &result));
        }
        Ok(())
    }
}

/// The JSON document: every prediction, then every skipped file with its reason.
fn document(result: &Predictions) -> serde_json::Value {
    let predictions: Vec<_> = result
        .predictions
        .iter()
        .map(|p| {
            let top: Vec<_> = p
                .top
                .iter()
                .map(|c| json!({"class": c.class, "name": c.name, "probability": c.probability}))
                .collect();
            json!({"file": p.file.to_string_lossy(), "predictions": top})
        })
        .collect();
    let skipped: Vec<_> = result
        .skipped
        .iter()
        .map(|s| json!({"file": s.file.to_string_lossy(), "reason": s.reason}))
        .collect();
    json!({"predictions": predictions, "skipped": skipped})
}

/// Per image: its path, then one line per class: rank, probability, class index, name.
fn table(classifier: &Classifier, result: &Predictions) -> String {
    let index_width = (classifier.classes().max(1) - 1).to_string().len();
    let mut out = format!(
        "{} ({} classes, {} px, class names {}):\n",
        classifier.weights.spec.name,
        classifier.classes(),
        classifier.transform.image_size,
        match &classifier.names_origin {
            NamesOrigin::LabelsFile(path) => format!("from {}", path.display()),
            NamesOrigin::RunData(_) => "of the run's data set".into(),
            NamesOrigin::ImageNet1k => "of ImageNet-1k".into(),
            NamesOrigin::Numbered { .. } => "unknown".into(),
        }
    );
    for prediction in &result.predictions {
        out.push_str(&format!("{}\n", prediction.file.display()));
        for (rank, c) in prediction.top.iter().enumerate() {
            out.push_str(&format!(
                "  {:>2}. {:>7.3}%  {:>index_width$}  {}\n",
                rank + 1,
                100.0 * c.probability,
                c.class,
                c.name
            ));
        }
    }
    out
}
