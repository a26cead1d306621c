//! `effnetv2 data`: install data sets and pack image folders into zip shards.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use effnetv2::data::{install_fashion_mnist, pack_shards, ImageFolder};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Install a data set from its package registry into the user cache.
    Install {
        /// The data set (only `fashion-mnist`, from Debian's dataset-fashion-mnist package).
        #[arg(value_parser = ["fashion-mnist"])]
        name: String,
    },
    /// Pack an image folder (one subfolder per class) into zip shards with a labels file.
    Pack {
        folder: PathBuf,
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        images_per_shard: usize,
    },
}

impl DataCommand {
    pub fn run(self) -> Result<()> {
        match self {
            DataCommand::Install { .. } => {
                let dir = install_fashion_mnist()?;
                println!("Fashion-MNIST is in {}", dir.display());
            }
            DataCommand::Pack {
                folder,
                out,
                images_per_shard,
            } => {
                let source = ImageFolder::open(&folder)?;
                let shards = pack_shards(&source, &out, images_per_shard)?;
                println!("wrote {} shards to {}", shards.len(), out.display());
            }
        }
        Ok(())
    }
}
