//! Pretrained weights from outside a run: a checkpoint of another run (its run directory or one
//! checkpoint directory) or a timm `tf_efficientnetv2_*` state dict (a `.safetensors` file). One
//! reader serves `import`, `train --init` and `predict`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::checkpoint;
use super::config::CheckpointMeta;
use super::events::{Event, EventSink};
use super::timm_file::read_state_dict;
use crate::hlo::Literal;
use crate::model::{Model, ModelSpec};
use crate::step::state::{Namespace, Role, StateLayout};
use crate::storage::Location;

/// The timm name of the classifier's weight, whose first dimension is the class count.
const TIMM_CLASSIFIER: &str = "classifier.weight";

/// Which of a checkpoint's two copies of the weights to take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightCopy {
    /// The exponential moving averages: what evaluation uses, and what the official code exports.
    Ema,
    /// The trained variables themselves.
    Trained,
}

impl WeightCopy {
    /// The state namespace of this copy's tensors.
    fn namespace(self) -> Namespace {
        match self {
            WeightCopy::Ema => Namespace::Ema,
            WeightCopy::Trained => Namespace::Params,
        }
    }
}

/// Where pretrained weights come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightSource {
    /// A run directory (its newest checkpoint) or a checkpoint directory of ours, local or in a
    /// bucket.
    Checkpoint(Location),
    /// A timm state dict (safetensors), on local disk.
    Timm(PathBuf),
}

impl WeightSource {
    /// A `gs://` location is a timm state dict when it names a `.safetensors` object, else a
    /// checkpoint of ours; locally a directory is a checkpoint, a file a timm state dict;
    /// anything else is refused naming the path.
    pub fn at(path: &Path) -> Result<WeightSource> {
        let timm_file = path.extension().is_some_and(|e| e == "safetensors");
        match Location::parse_path(path)? {
            Location::Gcs(_) if timm_file => Ok(WeightSource::Timm(path.to_path_buf())),
            gcs @ Location::Gcs(_) => Ok(WeightSource::Checkpoint(gcs)),
            Location::Local(_) if path.is_dir() => Ok(WeightSource::Checkpoint(path.into())),
            Location::Local(_) if path.is_file() => Ok(WeightSource::Timm(path.to_path_buf())),
            Location::Local(_) => bail!(
                "{}: no such run directory, checkpoint directory or safetensors file",
                path.display()
            ),
        }
    }

    /// Where the weights are.
    pub fn location(&self) -> Location {
        match self {
            WeightSource::Checkpoint(location) => location.clone(),
            WeightSource::Timm(path) => path.into(),
        }
    }
}

/// A model's parameters by our names in our layouts (batch-norm statistics included), with the
/// spec they were trained for.
#[derive(Clone, Debug)]
pub struct Pretrained {
    /// The spec of the network the weights belong to (for a timm file: `like` with the file's
    /// class count).
    pub spec: ModelSpec,
    values: HashMap<String, Literal>,
}

/// What [`Pretrained::initialise`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initialised {
    /// Parameters taken from the pretrained weights.
    pub loaded: usize,
    /// The classifier's parameters, drawn afresh because the class counts differ.
    pub reinitialised: Vec<String>,
    /// The classes of the pretrained head (the run's own may differ).
    pub pretrained_classes: usize,
}

impl Pretrained {
    /// Reads `source`. A checkpoint brings its own spec (from its run's config); a timm state
    /// dict is read as the architecture `like` with as many classes as the file's classifier.
    pub fn read(source: &WeightSource, like: &ModelSpec, copy: WeightCopy) -> Result<Pretrained> {
        match source {
            WeightSource::Checkpoint(path) => Pretrained::from_checkpoint(path, copy),
            WeightSource::Timm(path) => Pretrained::from_timm(path, like),
        }
    }

    /// Reads one copy of the weights of a checkpoint (a run directory, for its newest, or a
    /// checkpoint directory).
    pub fn from_checkpoint(path: &Location, copy: WeightCopy) -> Result<Pretrained> {
        read_checkpoint(path, copy)
            .with_context(|| format!("reading pretrained weights from {path}"))
    }

    /// Reads a timm state dict as the architecture `like` with the file's class count.
    pub fn from_timm(path: &Path, like: &ModelSpec) -> Result<Pretrained> {
        read_timm(path, like)
            .with_context(|| format!("reading pretrained weights from {}", path.display()))
    }

    /// The value of parameter `name`, if the weights have it.
    pub fn get(&self, name: &str) -> Option<&Literal> {
        self.values.get(name)
    }

    /// Sets every variable of `state` (laid out by `layout`) and its moving average from these
    /// weights; optimizer slots, step and key stay as they are. When the class counts differ the
    /// classifier and its average keep their values in `state` (a fresh draw, from
    /// [`super::init::initial_state`]); any other parameter that is missing or shaped
    /// differently is an error naming every such parameter (another architecture, not a new
    /// head).
    pub fn initialise(&self, layout: &StateLayout, state: &mut [Literal]) -> Result<Initialised> {
        let mut problems = Vec::new();
        let mut loaded = 0;
        let mut reinitialised = Vec::new();
        for (entry, tensor) in layout.entries().iter().zip(state.iter_mut()) {
            let (name, is_variable) = match &entry.role {
                Role::Variable(p) => (p.name.as_str(), true),
                Role::Ema(name) => (name.as_str(), false),
                _ => continue,
            };
            let dims = entry.shape.dims();
            match self.values.get(name) {
                Some(value) if value.shape().dims() == dims => {
                    *tensor = value.clone();
                    loaded += usize::from(is_variable);
                }
                found if Model::is_classifier(name) => {
                    if is_variable {
                        reinitialised.push(name.to_owned());
                    }
                    if found.is_none() {
                        problems.push(format!("the classifier `{name}` is missing"));
                    }
                }
                Some(value) if is_variable => problems.push(format!(
                    "`{name}` is {:?} there, {dims:?} here",
                    value.shape().dims()
                )),
                None if is_variable => problems.push(format!("`{name}` is missing")),
                _ => {}
            }
        }
        if !problems.is_empty() {
            let shown = problems.len().min(8);
            bail!(
                "the pretrained weights ({}) do not fit this model: {}{}",
                self.spec.name,
                problems[..shown].join("; "),
                if problems.len() > shown {
                    format!("; and {} more", problems.len() - shown)
                } else {
                    String::new()
                }
            );
        }
        Ok(Initialised {
            loaded,
            reinitialised,
            pretrained_classes: self.spec.num_classes,
        })
    }
}

/// Sets the variables of `state` (laid out by `layout` for `model`) and their EMA from the
/// weights at `source` (a checkpoint's EMA copy), as [`Pretrained::initialise`] does, and says
/// what it did in an [`Event::Initialised`]: a classifier for another class count is drawn
/// afresh, and the event names both counts. `train --init` and `import` start runs this way.
pub fn initialise_from(
    source: &WeightSource,
    model: &Model,
    layout: &StateLayout,
    state: &mut [Literal],
    events: &mut dyn EventSink,
) -> Result<()> {
    let pretrained = Pretrained::read(source, &model.spec, WeightCopy::Ema)?;
    let initialised = pretrained.initialise(layout, state)?;
    events.emit(&Event::Initialised {
        from: source.location(),
        loaded: initialised.loaded,
        new_head: (!initialised.reinitialised.is_empty())
            .then_some((initialised.pretrained_classes, model.spec.num_classes)),
    })
}

fn read_checkpoint(path: &Location, copy: WeightCopy) -> Result<Pretrained> {
    let dir = checkpoint::find(path)?;
    let meta: CheckpointMeta = checkpoint::metadata(&dir)?;
    let model = meta.config.model()?;
    let layout = StateLayout::new(&model);
    let expected = layout.entries().iter().map(|e| (e.name.as_str(), &e.shape));
    let (tensors, _): (Vec<Literal>, serde_json::Value) = checkpoint::load(&dir, expected)?;
    let values = layout
        .entries()
        .iter()
        .zip(tensors)
        .filter_map(|(e, t)| Some((copy.namespace().variable(&e.name)?.to_owned(), t)))
        .collect();
    Ok(Pretrained {
        spec: model.spec,
        values,
    })
}

/// timm's own EfficientNetV2 variants (`efficientnetv2_rw_s`, `efficientnetv2_s`, ...) pad
/// symmetrically, use another batch-norm epsilon and, for the `rw` ones, another block layout;
/// some share the `tf_` variants' tensor shapes, so only their names tell them apart: the Hub
/// stores files under the model's name (`models--timm--efficientnetv2_rw_s.ra2_in1k/...`).
fn refuse_non_tf_variant(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("efficientnetv2_") {
        if !rest[..at].ends_with("tf_") {
            bail!(
                "{} looks like timm's own `efficientnetv2_*` variant, not `tf_efficientnetv2_*`: \
                 those pad symmetrically (not TensorFlow's SAME) with another batch-norm epsilon, \
                 and the `rw` ones have another block layout, so their weights would compute \
                 something else here; use a `tf_efficientnetv2_*` checkpoint",
                path.display()
            );
        }
        rest = &rest[at + 1..];
    }
    Ok(())
}

fn read_timm(path: &Path, like: &ModelSpec) -> Result<Pretrained> {
    refuse_non_tf_variant(path)?;
    let state_dict = read_state_dict(path)?;
    let mut spec = like.clone();
    if let Some(classifier) = state_dict.get(TIMM_CLASSIFIER) {
        spec.num_classes = classifier.shape[0];
    }
    let model = Model::new(spec)?;
    let imported = model.from_timm(&state_dict)?;
    let values = model
        .params()
        .into_iter()
        .zip(imported)
        .map(|(p, v)| {
            let dims: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
            let literal = Literal::from_vec(&dims, &v).map_err(anyhow::Error::msg)?;
            Ok((p.name, literal))
        })
        .collect::<Result<_>>()?;
    Ok(Pretrained {
        spec: model.spec,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timm_own_variants_are_refused_by_name() {
        for ok in [
            "weights.safetensors",
            "hub/models--timm--tf_efficientnetv2_s.in21k_ft_in1k/snapshots/x/model.safetensors",
            "tf_efficientnetv2_b0.safetensors",
        ] {
            refuse_non_tf_variant(Path::new(ok)).unwrap();
        }
        for refused in [
            "hub/models--timm--efficientnetv2_rw_s.ra2_in1k/snapshots/x/model.safetensors",
            "efficientnetv2_s.safetensors",
            "tf_efficientnetv2_s/efficientnetv2_m.safetensors",
        ] {
            let e = refuse_non_tf_variant(Path::new(refused)).unwrap_err();
            assert!(e.to_string().contains("not `tf_efficientnetv2_*`"), "{e}");
        }
    }
}
