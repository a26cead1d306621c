//! The input pipeline: data sources, the official EfficientNetV2 augmentation, mixup/CutMix and a
//! deterministic multi-threaded prefetching loader that feeds the train step.
//!
//! Determinism: every random decision about an example comes from a stream keyed by
//! (seed, epoch, example index) ([`rng`]), and batches are assembled in order, so the output does
//! not depend on thread timing and a run resumed from a [`Cursor`] sees the same batches.

pub mod batch;
pub mod cache;
pub mod decode;
pub mod device_input;
pub mod error;
pub mod loader;
pub mod mix;
pub mod rng;
pub mod source;
pub mod tfrecord;
pub mod throughput;
pub mod transform;

pub use batch::{Batch, BatchImages, Cursor, SkippedImage};
pub use cache::cache_dir;
pub use decode::{decode_rgb, decode_rgb_top, LoadedImage};
pub use device_input::{DeviceImages, DeviceMix};
pub use error::{DataError, Result};
pub use loader::{EpochReport, EvalConfig, Loader, LoaderConfig, Shard, Stage, RANDAUGMENT_LAYERS};
pub use mix::{MixConfig, MixPlan};
pub use source::{
    detect_layout, fashion_mnist_dir, install_fashion_mnist, pack_shards, pack_tfrecords,
    tfrecord_class_names, FashionMnist, FileShare, ImageFolder, MaxSide, Source, Split,
    TfRecordShards, ZipShards,
};
pub use transform::{
    AugmentOn, AugmentSettings, DrawnExample, EvalTransform, Normalization, Policy, Preprocessing,
    TrainTransform,
};
