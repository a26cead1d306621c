//! `effnetv2 export` and `effnetv2 import`: weights to and from timm's `tf_efficientnetv2_*`
//! state dicts (safetensors).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use effnetv2::trainer::pretrained::WeightCopy;
use effnetv2::weights::transfer::{export_timm, import_timm};

use super::progress::Progress;
use super::train::TrainArgs;

/// The weight formats `export` and `import` know.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// timm's `tf_efficientnetv2_*` state dict, as safetensors.
    Timm,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    to: Format,
    /// A run directory (its newest checkpoint) or one checkpoint directory, local or
    /// `gs://bucket/prefix`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The file to write, e.g. model.safetensors or gs://bucket/weights/model.safetensors.
    #[arg(long)]
    out: PathBuf,
    /// Export the trained variables instead of their moving averages (EMA, the default).
    #[arg(long)]
    trained: bool,
}

impl ExportArgs {
    pub fn run(self) -> Result<()> {
        let Format::Timm = self.to;
        let weights = if self.trained {
            WeightCopy::Trained
        } else {
            WeightCopy::Ema
        };
        let count = export_timm(&self.checkpoint, &self.out, weights)?;
        println!(
            "wrote {count} tensors to {} (load with timm.create_model('tf_efficientnetv2_...', \
             checkpoint_path=...))",
            self.out.display()
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(long, value_enum)]
    from: Format,
    /// The state dict to import (safetensors), a local file or `gs://bucket/.../name`.
    file: PathBuf,
    /// The run the weights start: its model (`--model`), data, recipe and `--out`, as `train`
    /// takes them; `train --resume` with the same options continues from the imported weights.
    /// The classifier follows the data: a file with another class count gets a fresh one.
    #[command(flatten)]
    run: TrainArgs,
}

impl ImportArgs {
    pub fn run(self) -> Result<()> {
        let Format::Timm = self.from;
        let dir = import_timm(&self.file, &self.run.config()?, &mut Progress::new())?;
        println!(
            "imported {} as {dir}; continue with `effnetv2 train --resume` and the same options",
            self.file.display()
        );
        Ok(())
    }
}
