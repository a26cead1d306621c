//! Where a TFRecord data set's files are and how they are read: a local folder (a shard read at
//! offsets with `pread`, or front to back with seeks over what is not needed) or a Cloud Storage
//! prefix (an object read through [`Store`]: streamed front to back with read-ahead, for the
//! index and for the loads, see [`ReadAhead`]). The source above is written once over
//! [`Folder`] and [`ShardFile`], whichever the place.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::data::error::{DataError, Result};
use crate::data::tfrecord::framing::{check_header, FOOTER_BYTES, HEADER_BYTES};
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
                end: 0,
                ahead: Mutex::default(),
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
    Local {
        file: File,
        size: u64,
    },
    Object {
        store: Arc<Store>,
        name: String,
        /// Where the object's last well-framed record ends, once indexed.
        end: u64,
        ahead: Mutex<ReadAhead>,
    },
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

    /// Notes where the last well-framed record ends (found by the index), so that loads can
    /// stream the object up to there.
    pub(super) fn set_records_end(&mut self, records_end: u64) {
        if let Access::Object { end, .. } = &mut self.access {
            *end = records_end;
        }
    }

    /// Fills `buf` with the data and footer of the record whose data starts at `offset`; a
    /// file that ends first is an error.
    pub(super) fn read_record(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match &self.access {
            Access::Local { file, .. } => file.read_exact_at(buf, offset),
            Access::Object {
                store,
                name,
                end,
                ahead,
            } => {
                // A worker that panicked while holding the lock left nothing half-done that
                // matters: the read-ahead is only a cache.
                let mut ahead = ahead.lock().unwrap_or_else(|e| e.into_inner());
                if ahead.take(buf, offset, |start| store.read_range(name, start..*end))? {
                    return Ok(());
                }
                drop(ahead);
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
            Access::Object { store, name, .. } => Sequential::Stream(store.read(name)?),
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

/// Bytes of records one object's [`ReadAhead`] holds for loads still to come, at most.
const HELD_BYTES: usize = 64 << 20;

/// An object's records streamed for the loads, which ask for them nearly in order: a shuffled
/// epoch reads each shard front to back through a shuffle buffer, so a shard's records come
/// out somewhat reordered. A load ahead of the stream reads on up to its record, holding the
/// records it passes (up to [`HELD_BYTES`]) for the loads that will ask for them; a load of a
/// held record takes it; a load behind the stream (a record dropped for room, the next epoch)
/// starts the stream again, from the front when the record is within [`HELD_BYTES`] of it.
/// So a shard costs a few streamed requests (in 8 MiB pieces, one read ahead) instead of one
/// request per record.
pub(super) struct ReadAhead {
    /// The stream, at the start of a record.
    stream: Option<(u64, Box<dyn Read + Send>)>,
    /// Records passed over and not yet asked for: data and footer by data offset.
    held: BTreeMap<u64, Vec<u8>>,
    held_bytes: usize,
    /// At most this many bytes held; a load further behind the stream starts it again.
    limit: usize,
}

impl Default for ReadAhead {
    fn default() -> ReadAhead {
        ReadAhead {
            stream: None,
            held: BTreeMap::new(),
            held_bytes: 0,
            limit: HELD_BYTES,
        }
    }
}

impl ReadAhead {
    /// Fills `buf` with the record whose data starts at `offset` from what is held or from the
    /// stream (started by `open(from)` when there is none or it is past the record); `false`
    /// when it cannot (the stream failed, or the index and the object disagree: the caller
    /// reads the record by range, which reports the error).
    fn take(
        &mut self,
        buf: &mut [u8],
        offset: u64,
        open: impl FnOnce(u64) -> std::result::Result<Box<dyn Read + Send>, StorageError>,
    ) -> io::Result<bool> {
        if let Some(bytes) = self.held.remove(&offset) {
            self.held_bytes -= bytes.len();
            if bytes.len() == buf.len() {
                buf.copy_from_slice(&bytes);
                return Ok(true);
            }
        }
        let start = offset.saturating_sub(HEADER_BYTES);
        if self.stream.as_ref().is_none_or(|(at, _)| *at > start) {
            // From the front when the record is near it: a shuffled epoch asks for the records
            // it passes soon, so they are held; else from the record (a resumed epoch).
            let from = if start <= self.limit as u64 { 0 } else { start };
            self.stream = Some((from, open(from).map_err(io::Error::other)?));
        }
        match self.read_on_to(buf, offset) {
            Ok(found) => Ok(found),
            Err(_) => {
                // A stream that failed midway (after the Store's retries) is dropped; the
                // ranged read that follows reports the error if the object is really gone.
                self.stream = None;
                Ok(false)
            }
        }
    }

    /// Reads records from the stream until the one at `offset`, holding those passed.
    fn read_on_to(&mut self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        let Some((at, stream)) = &mut self.stream else {
            return Ok(false);
        };
        loop {
            let mut header = [0u8; HEADER_BYTES as usize];
            stream.read_exact(&mut header)?;
            let len = check_header(&header).map_err(|d| io::Error::other(d.to_string()))?;
            let data_at = *at + HEADER_BYTES;
            *at = data_at + len + FOOTER_BYTES;
            if data_at == offset && (len + FOOTER_BYTES) as usize == buf.len() {
                stream.read_exact(buf)?;
                return Ok(true);
            }
            let mut bytes = vec![0u8; (len + FOOTER_BYTES) as usize];
            stream.read_exact(&mut bytes)?;
            if data_at >= offset {
                // Not where the index has a record: the caller reads by range.
                return Ok(false);
            }
            if self.held_bytes + bytes.len() <= self.limit {
                self.held_bytes += bytes.len();
                if let Some(old) = self.held.insert(data_at, bytes) {
                    self.held_bytes -= old.len();
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tfrecord::RecordWriter;

    /// A shard of `n` records of different lengths, and each record's data offset and bytes
    /// (data and footer).
    fn shard(n: usize) -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
        let mut writer = RecordWriter::new(Vec::new());
        let mut records = Vec::new();
        let mut at = 0u64;
        for i in 0..n {
            let data = vec![i as u8; 100 + 37 * i];
            writer.write(&data).unwrap();
            let written = writer.into_inner();
            let len = data.len() as u64;
            let footer = &written[(at + HEADER_BYTES + len) as usize..][..4];
            records.push((at + HEADER_BYTES, [&data[..], footer].concat()));
            at = written.len() as u64;
            writer = RecordWriter::new(written);
        }
        (writer.into_inner(), records)
    }

    /// Loads in a reordered order (as a shuffle buffer emits them) are served from one stream
    /// with the right bytes, holding what they pass up to the limit; a load behind the stream
    /// and not held (a record dropped for room, the next epoch) starts it again: from the
    /// front when the record is near it, else from the record.
    #[test]
    fn loads_nearly_in_order_share_one_stream() {
        // Records of 104, 141, 178, ... bytes (data and footer), 116, 153, 190, ... framed.
        let (bytes, records) = shard(12);
        let opened = std::cell::RefCell::new(Vec::new());
        let open = |from: u64| {
            opened.borrow_mut().push(from);
            let rest = bytes[from as usize..].to_vec();
            Ok(Box::new(io::Cursor::new(rest)) as Box<dyn Read + Send>)
        };
        let mut ahead = ReadAhead {
            limit: 600,
            ..ReadAhead::default()
        };
        // (record, where the streams opened so far started)
        let steps: [(usize, &[u64]); 12] = [
            (2, &[0]), // from the front: 0 and 1 held
            (0, &[0]),
            (1, &[0]),
            (5, &[0]), // 3 and 4 held (467 bytes)
            (3, &[0]),
            (4, &[0]),
            (6, &[0]),
            (9, &[0]), // 7 held, 8 dropped for room
            (7, &[0]),
            (8, &[0, 1964]), // behind, not held, far from the front: from the record
            (0, &[0, 1964, 0]), // the next epoch
            (1, &[0, 1964, 0]),
        ];
        for (i, streams) in steps {
            let (offset, want) = &records[i];
            let mut got = vec![0u8; want.len()];
            assert!(ahead.take(&mut got, *offset, open).unwrap(), "record {i}");
            assert!(got == *want, "record {i}");
            assert_eq!(*opened.borrow(), streams, "record {i}");
            assert!(ahead.held_bytes <= 600);
        }
    }
}
