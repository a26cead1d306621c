//! Where labelled images come from: image folders, zip shards, TFRecord shards and Fashion-MNIST.

mod fashion_mnist;
mod folder;
mod labels;
mod max_side;
mod shards;
mod tfrecord;

pub use fashion_mnist::{
    fashion_mnist_dir, install_fashion_mnist, FashionMnist, Split,
    CLASS_NAMES as FASHION_MNIST_CLASSES,
};
pub use folder::ImageFolder;
pub use labels::{read_labels, write_labels, LABELS_FILE};
pub use max_side::{shrink_jpeg, MaxSide, REENCODE_QUALITY};
pub use shards::{pack_shards, ZipShards};
pub use tfrecord::{
    detect_layout, pack_tfrecords, tfrecord_class_names, FileShare, TfRecordShards,
    TFDS_LABELS_FILE, TRAIN_SPLIT, VALIDATION_SPLIT,
};

use image::RgbImage;

use super::decode::LoadedImage;
use super::error::Result;

/// A finite, indexable set of labelled images that worker threads read concurrently.
///
/// Indices run over `0..len()`; `label` must be cheap (no decoding) because the loader asks for it
/// when forming batches. Callers pass only indices below `len()`.
pub trait Source: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// Whether the source holds no example.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names; a label is an index into this list.
    fn class_names(&self) -> &[String];

    /// Number of classes.
    fn num_classes(&self) -> usize {
        self.class_names().len()
    }

    /// Class index of example `index`.
    fn label(&self, index: usize) -> usize;

    /// Reads example `index` without decoding it, so that a training crop decodes only the rows
    /// it needs. An error means this example is unusable (unreadable); the loader skips it and
    /// keeps going, as it does for one that then fails to decode.
    fn read(&self, index: usize) -> Result<LoadedImage>;

    /// Reads and decodes example `index` whole into RGB.
    fn load(&self, index: usize) -> Result<RgbImage> {
        self.read(index)?.decode()
    }

    /// The order in which epoch `epoch` visits the examples: a permutation of `0..len()` that is
    /// a pure function of its arguments (so a resumed run sees the same order). By default a
    /// uniform shuffle when `shuffle` is set; a source whose reads are cheaper in sequence
    /// (TFRecord shards) keeps them near each other instead.
    fn epoch_order(&self, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
        crate::data::rng::epoch_order(self.len(), seed, epoch, shuffle)
    }
}

/// File extensions (lower case) accepted as images.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Whether `name` ends in one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known))
    })
}
