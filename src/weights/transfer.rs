//! Weights in and out of runs: a checkpoint as a timm state dict (`effnetv2 export`), and a timm
//! state dict as the first checkpoint of a run (`effnetv2 import`), from which `train --resume`
//! fine-tunes and `eval` evaluates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::data::Cursor;
use crate::hlo::Literal;
use crate::step::state::StateLayout;
use crate::trainer::checkpoint;
use crate::trainer::config::{CheckpointMeta, RunConfig};
use crate::trainer::init::initial_state;
use crate::trainer::pretrained::{Pretrained, WeightCopy};
use crate::trainer::timm_file::write_state_dict;

/// Writes one copy of the weights of `checkpoint` (a run directory, for its newest, or a
/// checkpoint directory) to `out` as a timm state dict loadable with
/// `load_state_dict(strict=True)`. Returns the number of tensors written.
pub fn export_timm(checkpoint: &Path, out: &Path, copy: WeightCopy) -> Result<usize> {
    let pretrained = Pretrained::from_checkpoint(checkpoint, copy)?;
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
/// slots. Returns the checkpoint's directory.
pub fn import_timm(file: &Path, config: &RunConfig) -> Result<PathBuf> {
    config.validate()?;
    let root = config.out.join("checkpoints");
    if !checkpoint::list(&root)?.is_empty() {
        bail!(
            "{} already holds checkpoints: import into a new --out",
            config.out.display()
        );
    }
    let model = config.model()?;
    let pretrained = Pretrained::from_timm(file, &model.spec)?;
    let layout = StateLayout::new(&model);
    let mut state = initial_state(&layout, config.seed);
    let initialised = pretrained.initialise(&layout, &mut state)?;
    if !initialised.reinitialised.is_empty() {
        bail!(
            "{} has a classifier for {} classes, model '{}' has {}: import keeps every tensor; \
             start a run on other classes with `train --init {}`",
            file.display(),
            initialised.pretrained_classes,
            model.spec.name,
            model.spec.num_classes,
            file.display()
        );
    }
    let named: Vec<(String, Literal)> = layout
        .entries()
        .iter()
        .map(|e| e.name.clone())
        .zip(state)
        .collect();
    let meta = CheckpointMeta {
        step: 0,
        cursor: Cursor::default(),
        config: config.clone(),
    };
    std::fs::create_dir_all(&config.out)?;
    std::fs::write(
        config.out.join("config.json"),
        serde_json::to_string_pretty(config)?,
    )?;
    checkpoint::save(&root, 0, &named, &meta, config.keep_checkpoints)
}
