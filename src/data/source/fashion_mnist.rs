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
use crate::data::decode::LoadedImage;
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
pub const CLASS_NAMES: [&str; 10] = [
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

    fn read(&self, index: usize) -> Result<LoadedImage> {
        let pixels = self.pixels(index);
        Ok(LoadedImage::Decoded(RgbImage::from_fn(
            SIDE as u32,
            SIDE as u32,
            |x, y| {
                let v = pixels[y as usize * SIDE + x as usize];
                Rgb([v, v, v])
            },
        )))
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

/// Most data bytes an IDX file may announce. The training split holds 47 MB; the bound keeps a
/// corrupt header from sizing the read.
const MAX_IDX_BYTES: usize = 256 << 20;

/// Reads a gzipped IDX file of unsigned bytes: returns its dimensions and data.
///
/// The header is read first and the data only up to the size it announces (one byte more shows
/// that the file is longer), so memory stays within [`MAX_IDX_BYTES`] whatever the file holds: a
/// corrupt header or a decompression bomb is an error, not an allocation of its claimed size.
fn read_idx(path: &Path, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = GzDecoder::new(file);
    let layout = |what: String| DataError::Layout(format!("{}: {what}", path.display()));
    let rank = (magic & 0xff) as usize;
    let mut header = vec![0; 4 * (rank + 1)];
    reader.read_exact(&mut header).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => layout("truncated IDX header".into()),
        _ => DataError::io(path, e),
    })?;
    let word = |i: usize| u32::from_be_bytes([0, 1, 2, 3].map(|b| header[4 * i + b]));
    if word(0) != magic {
        return Err(layout(format!(
            "IDX magic {:#010x}, expected {magic:#010x}",
            word(0)
        )));
    }
    let dims: Vec<usize> = (1..=rank).map(|i| word(i) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            layout(format!(
                "IDX dimensions {dims:?} need more than the {} MiB of data this reader accepts",
                MAX_IDX_BYTES >> 20
            ))
        })?;
    let mut data = Vec::new();
    reader
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| DataError::io(path, e))?;
    if data.len() > expected {
        return Err(layout(format!(
            "IDX data is longer than the {expected} bytes dimensions {dims:?} need"
        )));
    }
    if data.len() < expected {
        return Err(layout(format!(
            "IDX data has {} bytes, dimensions {dims:?} need {expected}",
            data.len()
        )));
    }
    Ok((dims, data))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    /// Writes `header` words (big-endian) followed by `data`, gzipped, and reads it as images.
    fn read(header: &[u32], data: &[u8]) -> Result<(Vec<usize>, Vec<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images.gz");
        let mut gz = GzEncoder::new(std::fs::File::create(&path).unwrap(), Compression::fast());
        for word in header {
            gz.write_all(&word.to_be_bytes()).unwrap();
        }
        gz.write_all(data).unwrap();
        gz.finish().unwrap();
        read_idx(&path, IMAGES_MAGIC)
    }

    #[test]
    fn reads_what_the_header_announces() {
        let (dims, data) = read(&[IMAGES_MAGIC, 2, 1, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!((dims, data), (vec![2, 1, 3], vec![1, 2, 3, 4, 5, 6]));
    }

    /// The fuzz target `fashion_mnist` found the product of three `u32` dimensions overflowing.
    #[test]
    fn dimensions_too_large_to_hold_are_refused_before_reading() {
        let err = read(&[IMAGES_MAGIC, u32::MAX, u32::MAX, 28], &[]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "IDX dimensions [4294967295, 4294967295, 28] need more than the 256 MiB of data \
                 this reader accepts"
            ),
            "{err}"
        );
    }

    /// A small file that inflates to far more than its header announces is read only up to the
    /// announced size.
    #[test]
    fn data_beyond_the_announced_size_is_an_error() {
        let err = read(&[IMAGES_MAGIC, 1, 28, 28], &vec![0; 32 << 20]).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("IDX data is longer than the 784 bytes dimensions [1, 28, 28] need"),
            "{err}"
        );
        let err = read(&[IMAGES_MAGIC, 2, 28, 28], &[0; 784]).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("IDX data has 784 bytes, dimensions [2, 28, 28] need 1568"),
            "{err}"
        );
        let err = read(&[IMAGES_MAGIC, 2], &[]).unwrap_err();
        assert!(err.to_string().ends_with("truncated IDX header"), "{err}");
    }
}
