//! `effnetv2 summary`: the layer table of a model.

use anyhow::Result;
use clap::Args;
use effnetv2::model::{load_spec, Model};

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Model spec: a built-in name (tiny, b0..b3, s, m, l, xl) or a JSON file.
    #[arg(long, default_value = "s")]
    model: String,
    /// Input image size (default: the spec's eval size).
    #[arg(long)]
    image_size: Option<usize>,
}

impl SummaryArgs {
    pub fn run(self) -> Result<()> {
        let model = Model::new(load_spec(&self.model)?)?;
        let size = self.image_size.unwrap_or(model.spec.image_size.eval);
        println!("{}", model.summary(size));
        Ok(())
    }
}
