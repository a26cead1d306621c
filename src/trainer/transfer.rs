//! Weights in and out of runs: a checkpoint as a timm state dict (`effnetv2 export`), and a timm
//! state dict as the first checkpoint of a run (`effnetv2 import`), from which `train --resume`
//! fine-tunes and `eval` evaluates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::checkpoint;
use super::config::{CheckpointMeta, RunConfig};
use super::init::initial_state;
use super::timm_file::{read_state_dict, write_state_dict};
use crate::data::Cursor;
use crate::hlo::Literal;
use crate::train::state::{Role, StateLayout};

/// Which of a checkpoint's copies of the weights to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportedWeights {
    /// The exponential moving averages: what evaluation uses, and what the official code exports.
    Ema,
    /// The trained variables themselves.
    Trained,
}

/// Writes the weights of `checkpoint` (a run directory, for its newest, or a checkpoint
/// directory) to `out` as a timm state dict loadable with `load_state_dict(strict=True)`.
/// Returns the number of tensors written.
pub fn export_timm(checkpoint: &Path, out: &Path, weights: ExportedWeights) -> Result<usize> {
    let dir = checkpoint::find(checkpoint)?;
    let meta: CheckpointMeta = serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)?;
    let model = meta.config.model()?;
    let layout = StateLayout::new(&model);
    let expected = layout.entries().iter().map(|e| (e.name.as_str(), &e.shape));
    let (tensors, _): (Vec<Literal>, serde_json::Value) = checkpoint::load(&dir, expected)?;
    let prefix = match weights {
        ExportedWeights::Ema => "ema/",
        ExportedWeights::Trained => "params/",
    };
    let values: HashMap<String, Vec<f32>> = layout
        .entries()
        .iter()
        .zip(&tensors)
        .filter_map(|(e, t)| {
            let name = e.name.strip_prefix(prefix)?;
            Some((
                name.to_owned(),
                t.to_f64_vec().iter().map(|&v| v as f32).collect(),
            ))
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
    let imported = model.from_timm(&read_state_dict(file)?)?;
    let by_name: HashMap<String, Vec<f32>> = model
        .params()
        .into_iter()
        .map(|p| p.name)
        .zip(imported)
        .collect();
    let layout = StateLayout::new(&model);
    let mut state = initial_state(&layout, config.seed);
    for (entry, tensor) in layout.entries().iter().zip(&mut state) {
        let name = match &entry.role {
            Role::Variable(p) => &p.name,
            Role::Ema(name) => name,
            _ => continue,
        };
        *tensor =
            Literal::from_vec(entry.shape.dims(), &by_name[name]).map_err(anyhow::Error::msg)?;
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
