//! `effnetv2 data`: install data sets and pack image folders into zip or TFRecord shards.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use effnetv2::data::source::TRAIN_SPLIT;
use effnetv2::data::{install_fashion_mnist, pack_shards, pack_tfrecords, ImageFolder, MaxSide};

/// What `data pack` writes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PackFormat {
    /// `shard-NNNNN-of-MMMMM.zip` and `labels.txt`, for `--data DIR` with `train/` and `val/`.
    Zip,
    /// `SPLIT-NNNNN-of-MMMMM` TFRecord shards of tf.train.Examples as imagenet_to_gcs.py writes
    /// them, and `labels.txt`; pack `train` and `validation` into one folder for `--data`.
    Tfrecord,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Install a data set from its package registry into the user cache.
    Install {
        /// The data set (only `fashion-mnist`, from Debian's dataset-fashion-mnist package).
        #[arg(value_parser = ["fashion-mnist"])]
        name: String,
    },
    /// Pack an image folder (one subfolder per class) into zip or TFRecord shards with a labels
    /// file.
    Pack {
        folder: PathBuf,
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        images_per_shard: usize,
        #[arg(long, value_enum, default_value_t = PackFormat::Zip)]
        format: PackFormat,
        /// The split the TFRecord shards are named after (`train` or `validation`)
        /// [default: train].
        #[arg(long, value_parser = ["train", "validation"])]
        split: Option<String>,
        /// Store JPEGs whose longer side exceeds N re-encoded with that side at N (aspect kept,
        /// Lanczos-3, quality 90, 4:2:0), so that decoding costs less; others unchanged.
        /// Smaller images can lose accuracy at the larger training and evaluation sizes
        /// (docs/input-pipeline.md). Default: every file stored as it is.
        #[arg(long, value_name = "N")]
        max_side: Option<MaxSide>,
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
                format,
                split,
                max_side,
            } => {
                let source = ImageFolder::open(&folder)?;
                let shards = match (format, split) {
                    (PackFormat::Zip, None) => {
                        pack_shards(&source, &out, images_per_shard, max_side)?
                    }
                    (PackFormat::Zip, Some(_)) => anyhow::bail!(
                        "--split names TFRecord shards; zip shards go into a train/ or val/ \
                         folder of their own"
                    ),
                    (PackFormat::Tfrecord, split) => pack_tfrecords(
                        &source,
                        &out,
                        images_per_shard,
                        split.as_deref().unwrap_or(TRAIN_SPLIT),
                        max_side,
                    )?,
                };
                println!("wrote {} shards to {}", shards.len(), out.display());
            }
        }
        Ok(())
    }
}
