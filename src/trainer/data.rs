//! Which data a run trains and evaluates on, and turning batches into device inputs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, FashionMnist, ImageFolder, Source, Split, ZipShards};
use crate::hlo::Literal;
use crate::train::step::port;

/// A training data set: Fashion-MNIST (installed on first use), or an ImageNet-style layout with
/// `train/` and `val/` class folders, as folders or as zip shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub enum DataSpec {
    FashionMnist,
    Folder(PathBuf),
    Shards(PathBuf),
}

impl std::str::FromStr for DataSpec {
    type Err = String;

    /// `fashion-mnist`, a directory with `train/` and `val/` image folders, or a directory with
    /// `train/` and `val/` zip-shard directories (detected by their `.zip` files).
    fn from_str(s: &str) -> Result<DataSpec, String> {
        if s == "fashion-mnist" {
            return Ok(DataSpec::FashionMnist);
        }
        let path = PathBuf::from(s);
        let train = path.join("train");
        if !train.is_dir() {
            return Err(format!(
                "--data {s}: expected 'fashion-mnist' or a directory containing train/ and val/"
            ));
        }
        let has_zip = std::fs::read_dir(&train)
            .map_err(|e| format!("--data {s}: {e}"))?
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "zip"));
        Ok(if has_zip {
            DataSpec::Shards(path)
        } else {
            DataSpec::Folder(path)
        })
    }
}

impl DataSpec {
    /// Opens the training and evaluation sources.
    pub fn open(&self) -> Result<(Arc<dyn Source>, Arc<dyn Source>)> {
        Ok(match self {
            DataSpec::FashionMnist => (
                Arc::new(
                    FashionMnist::load(Split::Train).context("loading Fashion-MNIST (train)")?,
                ),
                Arc::new(FashionMnist::load(Split::Test).context("loading Fashion-MNIST (test)")?),
            ),
            DataSpec::Folder(root) => (
                Arc::new(ImageFolder::open(root.join("train"))?),
                Arc::new(ImageFolder::open(root.join("val"))?),
            ),
            DataSpec::Shards(root) => (
                Arc::new(ZipShards::open(root.join("train"))?),
                Arc::new(ZipShards::open(root.join("val"))?),
            ),
        })
    }
}

/// The train step's per-batch inputs by name (images, soft labels, classes) for each of
/// `replicas` replicas: replica `r` gets the `r`-th of equal consecutive shares of the batch.
pub fn train_feeds(batch: &Batch, replicas: usize) -> Result<Vec<Vec<(&'static str, Literal)>>> {
    let [n, h, w, c] = batch.image_dims();
    anyhow::ensure!(
        replicas > 0 && n % replicas == 0,
        "a batch of {n} does not split evenly over {replicas} replicas"
    );
    let share = n / replicas;
    let classes = batch.num_classes;
    let rows =
        |data_len: usize, r: usize| (data_len / n) * share * r..(data_len / n) * share * (r + 1);
    (0..replicas)
        .map(|r| {
            let literal = |dims: &[usize], data: &[f32]| {
                let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
                Literal::from_vec(&dims, &data[rows(data.len(), r)]).map_err(anyhow::Error::msg)
            };
            let images = literal(&[share, h, w, c], &batch.images)?;
            let labels = literal(&[share, classes], &batch.soft_labels)?;
            let classes =
                Literal::from_vec(&[share as i64], &batch.labels[share * r..share * (r + 1)])
                    .map_err(anyhow::Error::msg)?;
            Ok(vec![
                (port::IMAGES, images),
                (port::LABELS, labels),
                (port::CLASSES, classes),
            ])
        })
        .collect()
}

/// The eval step's inputs by name for one batch padded to `size` examples (padding has class
/// -1 and never counts as correct).
pub fn eval_feeds(batch: &Batch, size: usize) -> Result<Vec<(&'static str, Literal)>> {
    let [n, h, w, c] = batch.image_dims();
    let per_image = h * w * c;
    let mut images = batch.images.clone();
    images.resize(size * per_image, 0.0);
    let mut classes = batch.labels.clone();
    classes.resize(size, -1);
    debug_assert!(n <= size);
    let images = Literal::from_vec(&[size as i64, h as i64, w as i64, c as i64], &images)
        .map_err(anyhow::Error::msg)?;
    let classes = Literal::from_vec(&[size as i64], &classes).map_err(anyhow::Error::msg)?;
    Ok(vec![(port::IMAGES, images), (port::CLASSES, classes)])
}
