//! Fashion-MNIST from the Debian package `dataset-fashion-mnist` (gzipped IDX files).
//!
//! The data set is looked for in the package's install folder, then in the user cache. When it is
//! in neither, [`install_fashion_mnist`] fetches the `.deb` with `apt-get download` (no root
//! needed) and unpacks it with `dpkg-deb -x` into the cache.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;
use image::{Rgb, RgbImage};

use super::Source;
use crate::data::cache::cache_dir;
use crate::data::error::{DataError, Result};

/// Where `apt-get install dataset-fashion-mnist` puts the files.
const SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The Debian package that ships the data set.
const PACKAGE: &str = "dataset-fashion-mnist";
/// Path of the files inside the package.
const PACKAGE_SUBDIR: &str = "usr/share/datasets/fashion-mnist";
/// Image side in pixels.
const SIDE: usize = 28;
/// Class names in label order.
const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// IDX magic numbers: unsigned byte data with 3 (images) or 1 (labels) dimensions.
const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The two official splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl Split {
    fn file_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    fn images_file(self) -> String {
        format!("{}-images-idx3-ubyte.gz", self.file_prefix())
    }

    fn labels_file(self) -> String {
        format!("{}-labels-idx1-ubyte.gz", self.file_prefix())
    }
}

/// One split of Fashion-MNIST held in memory (47 MB for the training split): 28x28 greyscale
/// images, served as 3-channel RGB.
#[derive(Debug)]
pub struct FashionMnist {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    classes: Vec<String>,
}

impl FashionMnist {
    /// Loads `split`, installing the data set into the user cache on first use.
    pub fn load(split: Split) -> Result<Self> {
        let dir = match fashion_mnist_dir()? {
            Some(dir) => dir,
            None => install_fashion_mnist()?,
        };
        Self::from_dir(dir, split)
    }

    /// Loads `split` from a folder holding the four `*-ubyte.gz` files.
    pub fn from_dir(dir: impl AsRef<Path>, split: Split) -> Result<Self> {
        let dir = dir.as_ref();
        let images_path = dir.join(split.images_file());
        let (dims, pixels) = read_idx(&images_path, IMAGES_MAGIC)?;
        if dims[1..] != [SIDE, SIDE] {
            return Err(DataError::Layout(format!(
                "{}: images are {}x{}, expected {SIDE}x{SIDE}",
                images_path.display(),
                dims[1],
                dims[2]
            )));
        }
        let labels_path = dir.join(split.labels_file());
        let (label_dims, labels) = read_idx(&labels_path, LABELS_MAGIC)?;
        if label_dims[0] != dims[0] {
            return Err(DataError::Layout(format!(
                "{} holds {} labels but {} holds {} images",
                labels_path.display(),
                label_dims[0],
                images_path.display(),
                dims[0]
            )));
        }
        if let Some(bad) = labels
            .iter()
            .find(|&&l| usize::from(l) >= CLASS_NAMES.len())
        {
            return Err(DataError::Layout(format!(
                "{}: label {bad} is out of range 0..{}",
                labels_path.display(),
                CLASS_NAMES.len()
            )));
        }
        Ok(FashionMnist {
            pixels,
            labels,
            classes: CLASS_NAMES.iter().map(|&c| c.to_owned()).collect(),
        })
    }

    /// The 28x28 row-major greyscale pixels of example `index`.
    pub fn pixels(&self, index: usize) -> &[u8] {
        &self.pixels[index * SIDE * SIDE..(index + 1) * SIDE * SIDE]
    }
}

impl Source for FashionMnist {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn label(&self, index: usize) -> usize {
        usize::from(self.labels[index])
    }

    fn load(&self, index: usize) -> Result<RgbImage> {
        let pixels = self.pixels(index);
        Ok(RgbImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
            let v = pixels[y as usize * SIDE + x as usize];
            Rgb([v, v, v])
        }))
    }
}

/// The folder that holds an installed copy (system package first, then the user cache), if any.
pub fn fashion_mnist_dir() -> Result<Option<PathBuf>> {
    let system = PathBuf::from(SYSTEM_DIR);
    if is_complete(&system) {
        return Ok(Some(system));
    }
    let cached = cache_dir()?.join("fashion-mnist");
    Ok(is_complete(&cached).then_some(cached))
}

/// Fetches the Debian package into the user cache (`<cache>/fashion-mnist`) unless an installed
/// copy exists, and returns the folder holding the IDX files.
///
/// Needs `apt-get` and `dpkg-deb` and access to a Debian mirror; the error says which step failed
/// and how to fix it.
pub fn install_fashion_mnist() -> Result<PathBuf> {
    if let Some(dir) = fashion_mnist_dir()? {
        return Ok(dir);
    }
    let cache = cache_dir()?;
    let dest = cache.join("fashion-mnist");
    let work = tempfile::Builder::new()
        .prefix(".fashion-mnist-")
        .tempdir_in(&cache)
        .map_err(|e| DataError::io(&cache, e))?;
    let download = || {
        run(
            Command::new("apt-get")
                .args(["download", PACKAGE])
                .current_dir(work.path()),
            "apt-get download",
        )
    };
    if download().is_err() {
        // A fresh machine may have no package lists yet: refresh them once (this works as root,
        // and fails harmlessly otherwise), then try again and report that attempt's error.
        let _ = Command::new("apt-get").arg("update").output();
        download()?;
    }
    let deb = find_deb(work.path())?;
    let root = work.path().join("root");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb -x",
    )?;
    let unpacked = root.join(PACKAGE_SUBDIR);
    if !is_complete(&unpacked) {
        return Err(DataError::Install(format!(
            "{} does not contain the four Fashion-MNIST files under /{PACKAGE_SUBDIR}",
            deb.display()
        )));
    }
    // Another process may have finished the same install meanwhile; its copy is as good as ours.
    if let Err(e) = std::fs::rename(&unpacked, &dest) {
        if !is_complete(&dest) {
            return Err(DataError::io(&dest, e));
        }
    }
    Ok(dest)
}

/// Whether `dir` holds all four files of the data set.
fn is_complete(dir: &Path) -> bool {
    [Split::Train, Split::Test]
        .iter()
        .flat_map(|s| [s.images_file(), s.labels_file()])
        .all(|f| dir.join(f).is_file())
}

/// Runs an install step, turning a missing tool or a failure into an actionable message.
fn run(command: &mut Command, step: &str) -> Result<()> {
    let output = command.output().map_err(|e| {
        DataError::Install(format!(
            "cannot run `{step}` ({e}); Fashion-MNIST comes from the Debian package {PACKAGE}: \
             install it with apt, or unpack it so that {SYSTEM_DIR} or $EFFNETV2_CACHE/fashion-mnist \
             holds its *-ubyte.gz files"
        ))
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(DataError::Install(format!(
        "`{step}` for {PACKAGE} failed ({}): {}; check the network connection to the Debian \
         mirror (offline?) and run `apt-get update` if the package is unknown",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}

/// The single `.deb` that `apt-get download` left in `dir`.
fn find_deb(dir: &Path) -> Result<PathBuf> {
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.extension().is_some_and(|ext| ext == "deb") {
            return Ok(path);
        }
    }
    Err(DataError::Install(format!(
        "`apt-get download {PACKAGE}` left no .deb in {}",
        dir.display()
    )))
}

/// Reads a gzipped IDX file of unsigned bytes: returns its dimensions and data.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    let layout = |what: String| DataError::Layout(format!("{}: {what}", path.display()));
    let word = |i: usize| -> Result<usize> {
        let b = bytes
            .get(4 * i..4 * i + 4)
            .ok_or_else(|| layout("truncated IDX header".into()))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let found = word(0)? as u32;
    if found != magic {
        return Err(layout(format!(
            "IDX magic {found:#010x}, expected {magic:#010x}"
        )));
    }
    let rank = (magic & 0xff) as usize;
    let dims = (1..=rank).map(word).collect::<Result<Vec<_>>>()?;
    let header = 4 * (rank + 1);
    let expected = dims.iter().product::<usize>();
    if bytes.len() - header != expected {
        return Err(layout(format!(
            "IDX data has {} bytes, dimensions {dims:?} need {expected}",
            bytes.len() - header
        )));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}
