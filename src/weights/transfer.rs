//! Weights in and out of runs: a checkpoint as a timm state dict (`effnetv2 export`), and a timm
//! state dict as the first checkpoint of a run (`effnetv2 import`), from which `train --resume`
//! fine-tunes and `eval` evaluates.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};

use crate::data::Cursor;
use crate::step::state::StateLayout;
use crate::storage::{Location, Store};
use crate::trainer::checkpoint;
use crate::trainer::config::{CheckpointMeta, RunConfig};
use crate::trainer::events::{Event, EventSink};
use crate::trainer::init::initial_state;
use crate::trainer::pretrained::{initialise_from, Pretrained, WeightCopy, WeightSource};
use crate::trainer::timm_file::write_state_dict;

/// Writes one copy of the weights of `checkpoint` (a run directory, for its newest, or a
/// checkpoint directory) to `out` as a timm state dict loadable with
/// `load_state_dict(strict=True)`. Returns the number of tensors written.
pub fn export_timm(checkpoint: &Path, out: &Path, copy: WeightCopy) -> Result<usize> {
    let pretrained = Pretrained::from_checkpoint(&Location::parse_path(checkpoint)?, copy)?;
    let model = crate::model::Model::new(pretrained.spec.clone())?;
    let values: HashMap<String, Vec<f32>> = model
        .params()
        .into_iter()
        .map(|p| {
            let value = pretrained
                .get(&p.name)
                .expect("a checkpoint holds every parameter");
            let values = value.to_f64_vec().iter().map(|&v| v as f32).collect();
            (p.name, values)
        })
        .collect();
    let state_dict = model.to_timm(|p| &values[&p.name]);
    write_state_dict(out, &state_dict, &model.timm_bn_counters())?;
    Ok(state_dict.len())
}

/// Makes the timm state dict `file` the first checkpoint (step 0) of the run `config`
/// describes, in `config.out`: its weights as the variables and their EMA, fresh optimizer
/// slots. As `train --init` does, the classifier follows the data's class count: where the
/// data's differs from the spec's the head has the data's ([`Event::HeadFollowsData`]), and
/// where the file's differs from the run's the classifier is drawn afresh from the seed
/// ([`Event::Initialised`] says so), so that `train --resume` with the same options continues
/// from it for any class count. Returns the checkpoint's directory.
pub fn import_timm(
    file: &Path,
    config: &RunConfig,
    events: &mut dyn EventSink,
) -> Result<Location> {
    config.validate()?;
    let out = Location::parse_path(&config.out)?;
    let root = out.join("checkpoints");
    if !checkpoint::list(&root)?.is_empty() {
        bail!("{out} already holds checkpoints: import into a new --out");
    }
    let spec_classes = config.model()?.spec.num_classes;
    let config = &config.with_classes(config.data.class_names()?.len())?;
    let model = config.model()?;
    if model.spec.num_classes != spec_classes {
        events.emit(&Event::HeadFollowsData {
            spec: spec_classes,
            data: model.spec.num_classes,
        })?;
    }
    let layout = StateLayout::new(&model);
    let mut state = initial_state(&layout, config.seed);
    let source = WeightSource::Timm(file.to_path_buf());
    initialise_from(&source, &model, &layout, &mut state, events)?;
    let named = layout.named(state);
    let meta = CheckpointMeta {
        step: 0,
        cursor: Cursor::default(),
        config: config.clone(),
    };
    let config_json = serde_json::to_string_pretty(config)?;
    Store::open(&out)?.write("config.json", &mut config_json.as_bytes())?;
    checkpoint::save(&root, 0, &named, &meta, config.keep_checkpoints)
}
