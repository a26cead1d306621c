//! An ImageNet-style folder: `root/<class>/<image>.{jpg,jpeg,png}`.

use std::path::{Path, PathBuf};

use super::{has_image_extension, labels::write_labels, Source};
use crate::data::decode::LoadedImage;
use crate::data::error::{DataError, Result};

/// Images found under one sub-folder per class.
///
/// Classes are the sub-folder names in sorted (byte) order and examples are sorted by (class, file
/// name), so the same folder always yields the same indices on every machine. Hidden entries
/// (names starting with `.`) and plain files directly under `root` (such as a labels file) are
/// ignored; anything else that is not a JPEG or PNG is an error rather than silently dropped data.
#[derive(Debug)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    /// (file path, class index), in index order.
    items: Vec<(PathBuf, usize)>,
}

impl ImageFolder {
    /// Scans `root`. Fails on a missing root, a root without class folders, an empty class
    /// folder, a nested folder or a file with an unknown extension.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let classes = Self::class_folders(&root)?;
        if classes.is_empty() {
            return Err(DataError::Layout(format!(
                "{} has no class sub-folders (expected root/<class>/<image>.jpg)",
                root.display()
            )));
        }
        let mut items = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let class_dir = root.join(class);
            let before = items.len();
            for (name, path) in sorted_entries(&class_dir)? {
                if path.is_dir() {
                    return Err(DataError::Layout(format!(
                        "nested folder {} is not supported: images must sit directly in their class folder",
                        path.display()
                    )));
                }
                if !has_image_extension(&name) {
                    return Err(DataError::Layout(format!(
                        "unsupported file {}: extension must be .jpg, .jpeg or .png",
                        path.display()
                    )));
                }
                items.push((path, label));
            }
            if items.len() == before {
                return Err(DataError::Layout(format!(
                    "class folder {} contains no images",
                    class_dir.display()
                )));
            }
        }
        Ok(ImageFolder {
            root,
            classes,
            items,
        })
    }

    /// The class names a folder at `root` has, in class-index order: its non-hidden
    /// sub-folders, sorted, without looking inside them.
    pub fn class_folders(root: &Path) -> Result<Vec<String>> {
        Ok(sorted_entries(root)?
            .into_iter()
            .filter(|(_, path)| path.is_dir())
            .map(|(name, _)| name)
            .collect())
    }

    /// The folder this source was opened from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of example `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.items[index].0
    }

    /// File name of example `index` inside its class folder.
    pub fn file_name(&self, index: usize) -> String {
        self.path(index)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Writes the class list (line `i` = class `i`) to `path`.
    pub fn write_labels(&self, path: impl AsRef<Path>) -> Result<()> {
        write_labels(path.as_ref(), &self.classes)
    }
}

impl Source for ImageFolder {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, index: usize) -> usize {
        self.items[index].1
    }

    fn read(&self, index: usize) -> Result<LoadedImage> {
        let path = self.path(index);
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Ok(LoadedImage::Encoded {
            bytes,
            what: path.display().to_string(),
        })
    }
}

/// Non-hidden entries of `dir` as (UTF-8 name, path), sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| {
            DataError::Layout(format!("file name {} is not valid UTF-8", path.display()))
        })?;
        if !name.starts_with('.') {
            entries.push((name, path));
        }
    }
    entries.sort();
    Ok(entries)
}
