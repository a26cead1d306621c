//! Storage on local disk with the object-store semantics of [`super::Store`]: a written file
//! appears whole or not at all (written under a `.partial-` name, then renamed), and a
//! create-only file appears whole and only once (hard-linked into place, which fails if the name
//! is taken, as `O_EXCL` would, but never shows a half-written lock).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::error::StorageError;

/// Names of files being written; never listed.
const PARTIAL_PREFIX: &str = ".partial-";

pub(crate) struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub(crate) fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(crate) fn read(&self, name: &str) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.path(name);
        match File::open(&path) {
            Ok(file) => Ok(Box::new(BufReader::new(file))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound {
                location: path.display().to_string(),
            }),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    pub(crate) fn read_range(
        &self,
        name: &str,
        range: Range<u64>,
    ) -> Result<Box<dyn Read + Send>, StorageError> {
        let path = self.path(name);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound {
                    location: path.display().to_string(),
                })
            }
            Err(e) => return Err(StorageError::io(path, e)),
        };
        file.seek(SeekFrom::Start(range.start))
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(Box::new(file.take(range.end.saturating_sub(range.start))))
    }

    /// Writes `data` to a hidden file beside `name`, flushed to disk.
    fn write_partial(
        &self,
        name: &str,
        data: &mut dyn Read,
    ) -> Result<tempfile::NamedTempFile, StorageError> {
        let path = self.path(name);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let mut partial = tempfile::Builder::new()
            .prefix(PARTIAL_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| StorageError::io(dir, e))?;
        std::io::copy(data, &mut partial).map_err(|e| StorageError::io(&path, e))?;
        partial.flush().map_err(|e| StorageError::io(&path, e))?;
        partial
            .as_file()
            .sync_all()
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(partial)
    }

    pub(crate) fn write(&self, name: &str, data: &mut dyn Read) -> Result<(), StorageError> {
        let path = self.path(name);
        self.write_partial(name, data)?
            .persist(&path)
            .map_err(|e| StorageError::io(&path, e.error))?;
        Ok(())
    }

    pub(crate) fn create_only(&self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let path = self.path(name);
        let partial = self.write_partial(name, &mut &data[..])?;
        match std::fs::hard_link(partial.path(), &path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StorageError::AlreadyExists {
                    location: path.display().to_string(),
                })
            }
            Err(e) => Err(StorageError::io(path, e)),
        }
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        // Only the folder the prefix names can hold matches: no need to walk the whole root.
        let start = prefix.rfind('/').map_or("", |end| &prefix[..end]);
        walk(&self.root, &self.path(start), &mut names)?;
        names.retain(|name| name.starts_with(prefix));
        names.sort();
        Ok(names)
    }

    /// Deletes `name`, then the folders it leaves empty (up to the root), as an object store's
    /// folders vanish with their last object.
    pub(crate) fn delete(&self, name: &str) -> Result<(), StorageError> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io(path, e)),
            _ => {
                let mut dir = path.parent();
                // Stops at the first folder that is not empty (or gone, or the root).
                while let Some(d) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
                    if std::fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
                Ok(())
            }
        }
    }
}

/// Appends the `/`-separated names (relative to `root`) of the files under `dir`.
fn walk(root: &Path, dir: &Path, names: &mut Vec<String>) -> Result<(), StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| StorageError::io(&path, e))?;
        if kind.is_dir() {
            walk(root, &path, names)?;
        } else if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(PARTIAL_PREFIX)
        {
            let relative = path.strip_prefix(root).expect("walked from root");
            let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
            names.push(parts.join("/"));
        }
    }
    Ok(())
}
