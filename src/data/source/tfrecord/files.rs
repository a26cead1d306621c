//! Finding a TFRecord data set's shard files by name: a directory or a file-name prefix, the
//! naming of the two layouts, a gap in the numbering refused, the layout detected.

use std::collections::BTreeMap;

use super::place::{split_path, Folder};
use crate::data::error::{DataError, Result};
use crate::data::tfrecord::Layout;
use crate::storage::Location;

/// The split names both layouts use in their file names.
pub const TRAIN_SPLIT: &str = "train";
pub const VALIDATION_SPLIT: &str = "validation";

/// Where a data set's shards are: a folder and the start of their file names.
#[derive(Clone, Debug)]
pub(super) struct Prefix {
    pub(super) folder: Folder,
    pub(super) stem: String,
}

impl Prefix {
    /// A folder means every file in it; anything else is a folder plus a file-name prefix. A
    /// `gs://` location is a folder when objects lie directly under it (object names have no
    /// folders, so `gs://b/data/imagenet2012-` can only be told from `gs://b/data/` by listing).
    pub(super) fn of(location: &Location) -> Result<Prefix> {
        match location {
            Location::Local(path) if path.is_dir() => Ok(Prefix {
                folder: Folder::Local(path.clone()),
                stem: String::new(),
            }),
            Location::Local(path) => {
                let (dir, stem) = split_path(path);
                Ok(Prefix {
                    folder: Folder::Local(dir),
                    stem,
                })
            }
            Location::Gcs(place) => {
                let folder = Folder::at(location)?;
                let segments = place.prefix().trim_end_matches('/');
                let Some((parent, stem)) = segments
                    .rsplit_once('/')
                    .or_else(|| (!segments.is_empty()).then_some(("", segments)))
                else {
                    return Ok(Prefix {
                        folder,
                        stem: String::new(),
                    });
                };
                if !folder.file_names()?.is_empty() {
                    return Ok(Prefix {
                        folder,
                        stem: String::new(),
                    });
                }
                let parent = Location::parse(&format!("gs://{}/{parent}", place.bucket()))?;
                Ok(Prefix {
                    folder: Folder::at(&parent)?,
                    stem: stem.to_string(),
                })
            }
        }
    }
}

/// `NNNNN-of-MMMMM` as (index, count).
fn numbering(s: &str) -> Option<(usize, usize)> {
    let (index, count) = s.split_once("-of-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(index) && digits(count)).then(|| Some((index.parse().ok()?, count.parse().ok()?)))?
}

/// The shard numbering of file `name` if it belongs to `split` in `layout`.
fn shard_of(name: &str, layout: Layout, split: &str) -> Option<(usize, usize)> {
    match layout {
        Layout::ImagenetToGcs => numbering(name.strip_prefix(split)?.strip_prefix('-')?),
        Layout::Tfds => {
            let (head, tail) = name.rsplit_once(".tfrecord-")?;
            let dataset = head.strip_suffix(split)?;
            (dataset.is_empty() || dataset.ends_with('-'))
                .then(|| numbering(tail))
                .flatten()
        }
    }
}

/// The shard files of `split` in `layout`, in shard order. Fails when none is found or when the
/// numbering has a gap (a shard missing from a copy is otherwise silent data loss).
pub(super) fn shard_files(prefix: &Prefix, layout: Layout, split: &str) -> Result<Vec<String>> {
    let found = matching(prefix, layout, split)?;
    let Some(&(_, count, _)) = found.first() else {
        return Err(DataError::Layout(format!(
            "no {split} shards in {} {}",
            where_(prefix),
            expected_names(layout, split)
        )));
    };
    let mut by_index: BTreeMap<usize, String> = BTreeMap::new();
    for (index, of, name) in found {
        if of != count || index >= count {
            return Err(DataError::Layout(format!(
                "{} does not fit the numbering of {count} {split} shards",
                prefix.folder.describe_file(&name)
            )));
        }
        by_index.insert(index, name);
    }
    if let Some(missing) = (0..count).find(|i| !by_index.contains_key(i)) {
        return Err(DataError::Layout(format!(
            "{split} shard {missing} of {count} is missing from {}",
            where_(prefix)
        )));
    }
    Ok(by_index.into_values().collect())
}

/// Files of `split` in `layout` under `prefix` as (index, count, name).
fn matching(prefix: &Prefix, layout: Layout, split: &str) -> Result<Vec<(usize, usize, String)>> {
    let mut found = Vec::new();
    for name in prefix.folder.file_names()? {
        if let Some((index, count)) = name
            .strip_prefix(&prefix.stem)
            .and_then(|_| shard_of(&name, layout, split))
        {
            found.push((index, count, name));
        }
    }
    found.sort();
    Ok(found)
}

pub(super) fn where_(prefix: &Prefix) -> String {
    if prefix.stem.is_empty() {
        prefix.folder.describe()
    } else {
        format!(
            "{} (files starting with {:?})",
            prefix.folder.describe(),
            prefix.stem
        )
    }
}

fn expected_names(layout: Layout, split: &str) -> String {
    match layout {
        Layout::ImagenetToGcs => {
            format!("(expected {split}-00000-of-NNNNN ..., imagenet_to_gcs.py)")
        }
        Layout::Tfds => format!("(expected NAME-{split}.tfrecord-00000-of-NNNNN ..., TFDS)"),
    }
}

/// The layout of the TFRecord data set at `location` (a folder or a prefix, local or `gs://`),
/// from the names of its training shards: `None` when shards of both layouts are there
/// (`--data-format` then chooses). Fails when neither layout matches, naming what was looked
/// for.
pub fn detect_layout(location: &Location) -> Result<Option<Layout>> {
    let prefix = Prefix::of(location)?;
    let mut found = Vec::new();
    for layout in [Layout::ImagenetToGcs, Layout::Tfds] {
        if !matching(&prefix, layout, TRAIN_SPLIT)?.is_empty() {
            found.push(layout);
        }
    }
    match found[..] {
        [layout] => Ok(Some(layout)),
        [] => Err(DataError::Layout(format!(
            "no TFRecord training shards in {} {} {}",
            where_(&prefix),
            expected_names(Layout::ImagenetToGcs, TRAIN_SPLIT),
            expected_names(Layout::Tfds, TRAIN_SPLIT)
        ))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_of_both_layouts_are_recognised() {
        let gcs = Layout::ImagenetToGcs;
        let tfds = Layout::Tfds;
        assert_eq!(
            shard_of("train-00003-of-01024", gcs, "train"),
            Some((3, 1024))
        );
        assert_eq!(
            shard_of("validation-00127-of-00128", gcs, "validation"),
            Some((127, 128))
        );
        assert_eq!(shard_of("validation-00127-of-00128", gcs, "train"), None);
        assert_eq!(shard_of("train-0000x-of-01024", gcs, "train"), None);
        assert_eq!(shard_of("train-00003-of-", gcs, "train"), None);
        assert_eq!(
            shard_of("imagenet2012-train.tfrecord-00000-of-01024", tfds, "train"),
            Some((0, 1024))
        );
        assert_eq!(
            shard_of(
                "imagenet2012-validation.tfrecord-00063-of-00064",
                tfds,
                "validation"
            ),
            Some((63, 64))
        );
        assert_eq!(
            shard_of(
                "imagenet2012-pretrain.tfrecord-00000-of-00001",
                tfds,
                "train"
            ),
            None
        );
        assert_eq!(shard_of("train-00000-of-00001", tfds, "train"), None);
    }
}
