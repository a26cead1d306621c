//! Where a TFRecord data set's files are and how they are read: a local folder (a shard read at
//! offsets with `pread`, or front to back with seeks over what is not needed) or a Cloud Storage
//! prefix (an object read through [`Store`]: one ranged request for a record, a stream with
//! read-ahead for a whole shard). The source above is written once over [`Folder`] and
//! [`ShardFile`], whichever the place.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::error::{DataError, Result};
use crate::storage::{Location, StorageError, Store};

/// A folder of data files: local, or a prefix in a bucket.
#[derive(Clone)]
pub(super) enum Folder {
    Local(PathBuf),
    Bucket(Arc<Store>),
}

impl std::fmt::Debug for Folder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Folder {
    /// The folder `location` names; a bucket prefix is opened without a request.
    pub(super) fn at(location: &Location) -> Result<Folder> {
        Ok(match location {
            Location::Local(dir) => Folder::Local(dir.clone()),
            Location::Gcs(_) => Folder::Bucket(Arc::new(Store::open(location)?)),
        })
    }

    /// The folder as the user wrote it: a path, or `gs://bucket/prefix/`.
    pub(super) fn describe(&self) -> String {
        match self {
            Folder::Local(dir) => dir.display().to_string(),
            Folder::Bucket(store) => store.location().to_string(),
        }
    }

    /// Where file `name` of this folder is, for messages.
    pub(super) fn describe_file(&self, name: &str) -> String {
        match self {
            Folder::Local(dir) => dir.join(name).display().to_string(),
            Folder::Bucket(store) => format!("{}{name}", store.location()),
        }
    }

    /// The names of the files directly in this folder (not in folders below it), hidden ones
    /// left out. A missing bucket or a permission error fails, naming the bucket and the
    /// credentials used.
    pub(super) fn file_names(&self) -> Result<Vec<String>> {
        let mut names = match self {
            Folder::Local(dir) => {
                let mut names = Vec::new();
                for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
                    let entry = entry.map_err(|e| DataError::io(dir, e))?;
                    if let Ok(name) = entry.file_name().into_string() {
                        names.push(name);
                    }
                }
                names
            }
            Folder::Bucket(store) => store
                .list("")?
                .into_iter()
                .filter(|name| !name.contains('/'))
                .collect(),
        };
        names.retain(|name| !name.starts_with('.'));
        names.sort();
        Ok(names)
    }

    /// Whether this folder has a file `name`.
    pub(super) fn has_file(&self, name: &str) -> Result<bool> {
        Ok(match self {
            Folder::Local(dir) => dir.join(name).is_file(),
            Folder::Bucket(_) => self.file_names()?.iter().any(|n| n == name),
        })
    }

    /// The whole text of file `name`.
    pub(super) fn read_text(&self, name: &str) -> Result<String> {
        match self {
            Folder::Local(dir) => {
                let path = dir.join(name);
                std::fs::read_to_string(&path).map_err(|e| DataError::io(path, e))
            }
            Folder::Bucket(store) => {
                let mut text = String::new();
                store
                    .read(name)?
                    .read_to_string(&mut text)
                    .map_err(|e| DataError::io(self.describe_file(name), e))?;
                Ok(text)
            }
        }
    }

    /// Opens file `name` for reading. A missing bucket or a permission error is
    /// [`DataError::Storage`]; a file that cannot be opened otherwise is [`DataError::Io`].
    pub(super) fn open(&self, name: &str) -> Result<ShardFile> {
        let what = self.describe_file(name);
        let access = match self {
            Folder::Local(dir) => {
                let path = dir.join(name);
                let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
                let size = file.metadata().map_err(|e| DataError::io(&path, e))?.len();
                Access::Local { file, size }
            }
            Folder::Bucket(store) => Access::Object {
                store: Arc::clone(store),
                name: name.to_string(),
            },
        };
        Ok(ShardFile { what, access })
    }
}

/// Whether `error` spoils only the shard being read (a file or object that cannot be read, or
/// fails midway after the retries), so that the shard is skipped and the run goes on. A missing
/// bucket or refused credentials are not: they will fail every object alike, and the user must
/// act.
pub(super) fn spoils_one_shard(error: &DataError) -> bool {
    match error {
        DataError::Io { .. } => true,
        DataError::Storage(e) => !matches!(
            e,
            StorageError::BucketNotFound { .. } | StorageError::PermissionDenied { .. }
        ),
        _ => false,
    }
}

enum Access {
    Local { file: File, size: u64 },
    Object { store: Arc<Store>, name: String },
}

/// One data file, shared by the loader's workers (no lock: reads go by offset).
pub(super) struct ShardFile {
    what: String,
    access: Access,
}

impl std::fmt::Debug for ShardFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)
    }
}

impl ShardFile {
    /// The file as messages name it: a path or a `gs://` URL.
    pub(super) fn what(&self) -> &str {
        &self.what
    }

    /// The file as a path for [`DataError`]s (a `gs://` URL kept as written).
    pub(super) fn path(&self) -> PathBuf {
        PathBuf::from(&self.what)
    }

    /// Fills `buf` from `offset` on; a file that ends first is an error.
    pub(super) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match &self.access {
            Access::Local { file, .. } => file.read_exact_at(buf, offset),
            Access::Object { store, name } => {
                let range = offset..offset + buf.len() as u64;
                store
                    .read_range(name, range)
                    .map_err(io::Error::other)?
                    .read_exact(buf)
            }
        }
    }

    /// The file front to back. A missing bucket or a permission error is
    /// [`DataError::Storage`] (see [`spoils_one_shard`]).
    pub(super) fn sequential(&self) -> Result<Sequential> {
        Ok(match &self.access {
            Access::Local { file, size } => {
                let file = file
                    .try_clone()
                    .map_err(|e| DataError::io(self.path(), e))?;
                Sequential::Local {
                    file: BufReader::with_capacity(1 << 16, file),
                    remaining: *size,
                }
            }
            Access::Object { store, name } => Sequential::Stream(store.read(name)?),
        })
    }
}

/// A data file read front to back, skipping cheaply what is not needed: a local file seeks,
/// a stream (an object, read ahead in large pieces) reads and drops.
pub(super) enum Sequential {
    Local {
        file: BufReader<File>,
        remaining: u64,
    },
    Stream(Box<dyn Read + Send>),
}

impl Sequential {
    /// Moves `n` bytes on; returns how many there were (fewer only at the end of the file).
    pub(super) fn skip(&mut self, n: u64) -> io::Result<u64> {
        match self {
            Sequential::Local { file, remaining } => {
                let n = n.min(*remaining);
                file.seek_relative(n as i64)?;
                *remaining -= n;
                Ok(n)
            }
            Sequential::Stream(stream) => io::copy(&mut stream.take(n), &mut io::sink()),
        }
    }
}

impl Read for Sequential {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sequential::Local { file, remaining } => {
                let len = buf
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                let n = file.read(&mut buf[..len])?;
                *remaining -= n as u64;
                Ok(n)
            }
            Sequential::Stream(stream) => stream.read(buf),
        }
    }
}

/// The parent folder and last name of a local `path` (`.` when it has no parent).
pub(super) fn split_path(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, stem)
}
