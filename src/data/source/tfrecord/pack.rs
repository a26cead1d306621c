//! Writing an image folder as TFRecord shards in the `imagenet_to_gcs.py` layout.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::data::error::{DataError, Result};
use crate::data::source::labels::{read_labels, write_labels, LABELS_FILE};
use crate::data::source::max_side::{packed_images, MaxSide};
use crate::data::source::shards::shard_count;
use crate::data::source::{ImageFolder, Source};
use crate::data::tfrecord::{ImageExample, Layout, RecordWriter};

/// Writes every image of `folder` as `split` shards in the `imagenet_to_gcs.py` layout
/// (`{split}-NNNNN-of-MMMMM`, `image/encoded`, `image/class/label` counted from 1,
/// `image/class/synset` = the class folder's name), `images_per_shard` per shard, in index
/// order, and `labels.txt` (the class folders) beside them. A shard is written under a temporary
/// name and renamed when complete. With `max_side`, JPEGs larger than it are stored re-encoded
/// smaller ([`MaxSide`]). Fails when `out_dir` already has a `labels.txt` with other
/// classes (the other split of another data set). Returns the shard paths.
pub fn pack_tfrecords(
    folder: &ImageFolder,
    out_dir: impl AsRef<Path>,
    images_per_shard: usize,
    split: &str,
    max_side: Option<MaxSide>,
) -> Result<Vec<PathBuf>> {
    let out_dir = out_dir.as_ref();
    let count = shard_count(folder, out_dir, images_per_shard)?;
    let labels = out_dir.join(LABELS_FILE);
    if labels.is_file() && read_labels(&labels)? != folder.class_names() {
        return Err(DataError::Layout(format!(
            "{} lists other classes than {}: pack each data set into its own folder",
            labels.display(),
            folder.root().display()
        )));
    }
    let mut paths = Vec::with_capacity(count);
    for shard in 0..count {
        let path = out_dir.join(format!("{split}-{shard:05}-of-{count:05}"));
        let mut file =
            tempfile::NamedTempFile::new_in(out_dir).map_err(|e| DataError::io(out_dir, e))?;
        let mut writer = RecordWriter::new(BufWriter::new(file.as_file_mut()));
        let indices = shard * images_per_shard..folder.len().min((shard + 1) * images_per_shard);
        let images = packed_images(folder, indices.clone(), max_side)?;
        for (index, encoded) in indices.zip(images) {
            let format = if encoded.starts_with(b"\x89PNG") {
                "PNG"
            } else {
                "JPEG"
            };
            let label = folder.label(index);
            let example = ImageExample {
                encoded,
                label,
                synset: Some(folder.class_names()[label].clone()),
            };
            let bytes = Layout::ImagenetToGcs.encode(&example, format, &folder.file_name(index));
            writer.write(&bytes).map_err(|e| DataError::io(&path, e))?;
        }
        writer.flush().map_err(|e| DataError::io(&path, e))?;
        drop(writer);
        file.as_file()
            .sync_all()
            .map_err(|e| DataError::io(&path, e))?;
        file.persist(&path)
            .map_err(|e| DataError::io(&path, e.error))?;
        paths.push(path);
    }
    write_labels(&labels, folder.class_names())?;
    Ok(paths)
}
