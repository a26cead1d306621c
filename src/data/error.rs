//! The one error type of the input pipeline.

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading, decoding or batching training data.
///
/// Messages name the file, option or value at fault so that a user can act on them without a
/// debugger.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode image {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: image::ImageError,
    },
    #[error("image {what} is truncated: its JPEG stream ends before the end-of-image marker")]
    Truncated { what: String },
    #[error(
        "image {what} is {width}x{height} pixels, which takes {mib} MiB to decode; \
         the limit per image is {limit_mib} MiB"
    )]
    TooLarge {
        what: String,
        width: u32,
        height: u32,
        mib: u64,
        limit_mib: u64,
    },
    #[error("zip shard {path}: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    /// A TFRecord record is damaged or does not hold a labelled image.
    #[error("TFRecord shard {shard}, record {record}: {reason}")]
    Record {
        shard: PathBuf,
        record: usize,
        reason: String,
    },
    /// Data in a bucket that cannot be reached: it names the bucket, the object and the
    /// credentials used.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The on-disk layout of a data set is wrong (empty class folder, unknown file type, bad header).
    #[error("data set layout: {0}")]
    Layout(String),
    /// A loader or transform option is out of range.
    #[error("invalid data option: {0}")]
    Config(String),
    /// Installing a data set or fetching a fixture failed.
    #[error("install failed: {0}")]
    Install(String),
    /// The background batch producer ended abnormally.
    #[error("data loader stopped: {0}")]
    Stopped(String),
    /// No example of a batch could be read, so no batch can be formed.
    #[error(
        "batch at epoch {epoch}, position {position}: every image was unreadable (first: {first})"
    )]
    EmptyBatch {
        epoch: u64,
        position: usize,
        first: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias of the data module.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
