//! The image-folder layout packed into zip shards, read with random access and never unpacked.
//!
//! Each shard holds entries named `<class>/<file>`, stored uncompressed (JPEG and PNG are already
//! compressed, and stored entries are read without inflating). A `labels.txt` next to the shards
//! fixes the class order, so a class index means the same thing as in the source folder.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::labels::{read_labels, write_labels, LABELS_FILE};
use super::max_side::{packed_images, MaxSide};
use super::{has_image_extension, ImageFolder, Source};
use crate::data::decode::{LoadedImage, MAX_DECODED_BYTES};
use crate::data::error::{DataError, Result};

/// How many shards of `images_per_shard` images `folder` packs into, with `out_dir` created for
/// them: the start every packer shares.
pub(crate) fn shard_count(
    folder: &ImageFolder,
    out_dir: &Path,
    images_per_shard: usize,
) -> Result<usize> {
    if images_per_shard == 0 {
        return Err(DataError::Config(
            "images_per_shard must be at least 1".into(),
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    Ok(folder.len().div_ceil(images_per_shard))
}

/// Packs every image of `folder` into `ceil(len / images_per_shard)` zip shards named
/// `shard-NNNNN-of-MMMMM.zip` in `out_dir` (created if needed), in index order, and writes
/// `labels.txt` there; with `max_side`, JPEGs larger than it are stored re-encoded smaller
/// ([`MaxSide`]). Returns the shard paths.
pub fn pack_shards(
    folder: &ImageFolder,
    out_dir: impl AsRef<Path>,
    images_per_shard: usize,
    max_side: Option<MaxSide>,
) -> Result<Vec<PathBuf>> {
    let out_dir = out_dir.as_ref();
    let count = shard_count(folder, out_dir, images_per_shard)?;
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let mut paths = Vec::with_capacity(count);
    for shard in 0..count {
        let path = out_dir.join(format!("shard-{shard:05}-of-{count:05}.zip"));
        let zip_error = |source| DataError::Zip {
            path: path.clone(),
            source,
        };
        let file = File::create(&path).map_err(|e| DataError::io(&path, e))?;
        let mut writer = ZipWriter::new(BufWriter::new(file));
        let indices = shard * images_per_shard..folder.len().min((shard + 1) * images_per_shard);
        let images = packed_images(folder, indices.clone(), max_side)?;
        for (index, bytes) in indices.zip(images) {
            let class = &folder.class_names()[folder.label(index)];
            let entry = format!("{class}/{}", folder.file_name(index));
            writer.start_file(entry, options).map_err(zip_error)?;
            writer
                .write_all(&bytes)
                .map_err(|e| DataError::io(&path, e))?;
        }
        let mut file = writer.finish().map_err(zip_error)?;
        file.flush().map_err(|e| DataError::io(&path, e))?;
        paths.push(path);
    }
    write_labels(&out_dir.join(LABELS_FILE), folder.class_names())?;
    Ok(paths)
}

/// Most bytes one entry may hold: an encoded image larger than the most its pixels may take
/// decoded would be refused by the decoder anyway, and reading stops here even when a corrupt
/// header understates the size or a compressed entry inflates without end.
const MAX_ENTRY_BYTES: u64 = MAX_DECODED_BYTES;

/// Bytes reserved before reading an entry: its stated size, up to this. The stated size is only
/// a header field, so anything larger grows as the bytes actually arrive.
const ENTRY_RESERVE: u64 = 1 << 20;

/// One example inside a shard.
#[derive(Debug)]
struct Entry {
    shard: usize,
    index_in_shard: usize,
    label: usize,
    /// `<class>/<file>`, used to order examples and in error messages.
    name: String,
}

/// An open shard. The archive sits behind a mutex because `zip` reads need `&mut`; only the copy
/// of one entry's bytes happens under the lock, decoding happens outside it.
#[derive(Debug)]
struct Shard {
    path: PathBuf,
    archive: Mutex<ZipArchive<File>>,
}

/// Zip shards written by [`pack_shards`] (or by hand in the same layout).
///
/// Examples are ordered by (class, file name), the same order as [`ImageFolder`], so a folder and
/// its shards give identical batches.
#[derive(Debug)]
pub struct ZipShards {
    classes: Vec<String>,
    shards: Vec<Shard>,
    entries: Vec<Entry>,
}

impl ZipShards {
    /// Opens every `*.zip` in `dir` and the `labels.txt` beside them.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let classes = read_labels(&dir.join(LABELS_FILE))?;
        let mut shard_paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
            let path = entry.map_err(|e| DataError::io(dir, e))?.path();
            if path.extension().is_some_and(|ext| ext == "zip") {
                shard_paths.push(path);
            }
        }
        shard_paths.sort();
        if shard_paths.is_empty() {
            return Err(DataError::Layout(format!(
                "{} contains no .zip shards",
                dir.display()
            )));
        }
        let mut shards = Vec::with_capacity(shard_paths.len());
        let mut entries = Vec::new();
        for (shard, path) in shard_paths.into_iter().enumerate() {
            let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
            let archive = ZipArchive::new(file).map_err(|source| DataError::Zip {
                path: path.clone(),
                source,
            })?;
            for index_in_shard in 0..archive.len() {
                let name = archive.name_for_index(index_in_shard).unwrap_or_default();
                if name.ends_with('/') {
                    continue;
                }
                let label = entry_label(name, &classes).map_err(|reason| {
                    DataError::Layout(format!("shard {} entry {name:?}: {reason}", path.display()))
                })?;
                entries.push(Entry {
                    shard,
                    index_in_shard,
                    label,
                    name: name.to_owned(),
                });
            }
            shards.push(Shard {
                path,
                archive: Mutex::new(archive),
            });
        }
        entries.sort_by(|a, b| (a.label, &a.name).cmp(&(b.label, &b.name)));
        let mut per_class = vec![0usize; classes.len()];
        for entry in &entries {
            per_class[entry.label] += 1;
        }
        if let Some((class, _)) = classes.iter().zip(&per_class).find(|(_, &n)| n == 0) {
            return Err(DataError::Layout(format!(
                "class {class:?} of {} has no image in the shards",
                dir.display()
            )));
        }
        Ok(ZipShards {
            classes,
            shards,
            entries,
        })
    }

    /// The bytes of example `index`, copied out of its shard.
    fn read_bytes(&self, index: usize) -> Result<Vec<u8>> {
        let entry = &self.entries[index];
        let shard = &self.shards[entry.shard];
        let zip_error = |source| DataError::Zip {
            path: shard.path.clone(),
            source,
        };
        // A panic while holding the lock cannot leave the archive in a state we rely on: every
        // read seeks to its entry first, so a poisoned lock is still usable.
        let mut archive = shard.archive.lock().unwrap_or_else(|p| p.into_inner());
        let file = archive.by_index(entry.index_in_shard).map_err(zip_error)?;
        let mut bytes = Vec::with_capacity(file.size().min(ENTRY_RESERVE) as usize);
        file.take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::io(shard.path.join(&entry.name), e))?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(DataError::Layout(format!(
                "shard {} entry {:?} holds more than {} MiB, the limit per image",
                shard.path.display(),
                entry.name,
                MAX_ENTRY_BYTES >> 20
            )));
        }
        Ok(bytes)
    }
}

/// Class index of an entry named `<class>/<file>`, or why the name is not acceptable.
fn entry_label(name: &str, classes: &[String]) -> Result<usize, String> {
    let (class, file) = name.split_once('/').ok_or("expected <class>/<file>")?;
    if file.contains('/') {
        return Err("nested folders are not supported".into());
    }
    if !has_image_extension(file) {
        return Err("extension must be .jpg, .jpeg or .png".into());
    }
    classes
        .iter()
        .position(|c| c == class)
        .ok_or_else(|| format!("class {class:?} is not in {LABELS_FILE}"))
}

impl Source for ZipShards {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, index: usize) -> usize {
        self.entries[index].label
    }

    fn read(&self, index: usize) -> Result<LoadedImage> {
        let bytes = self.read_bytes(index)?;
        let entry = &self.entries[index];
        let what = format!("{}:{}", self.shards[entry.shard].path.display(), entry.name);
        Ok(LoadedImage::Encoded { bytes, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deflated entry of zeros inflating to one byte past the limit (256 MiB from a 256 KiB
    /// shard) is refused once the limit is read, whatever its header says.
    #[test]
    fn an_entry_inflating_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_labels(&dir.path().join(LABELS_FILE), &["a".to_owned()]).unwrap();
        let path = dir.path().join("shard-00000-of-00001.zip");
        let mut zip = ZipWriter::new(File::create(&path).unwrap());
        let deflated = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(1));
        zip.start_file("a/big.png", deflated).unwrap();
        let zeros = vec![0; 1 << 20];
        for _ in 0..MAX_ENTRY_BYTES >> 20 {
            zip.write_all(&zeros).unwrap();
        }
        zip.write_all(&[0]).unwrap();
        zip.finish().unwrap();
        let err = ZipShards::open(dir.path()).unwrap().load(0).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("entry \"a/big.png\" holds more than 256 MiB, the limit per image"),
            "{err}"
        );
    }
}
