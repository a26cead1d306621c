//! Smaller JPEGs for packed shards (`data pack --max-side N`): a JPEG whose longer side exceeds
//! N is stored re-encoded at N, aspect kept, as FFCV stores ImageNet, so that every epoch
//! decodes fewer pixels (decoding time grows with the pixel count). The detail lost is lost for
//! every crop; what that may cost in accuracy is discussed in docs/input-pipeline.md.
//!
//! Everything else is stored byte for byte: images within the bound, PNGs, and files that do
//! not decode (the loader skips and counts those, as it would have without the option).

use std::ops::Range;
use std::path::Path;

use image::imageops::{resize, FilterType};
use image::RgbImage;
use jpeg_encoder::{ChromaSubsamplingMethod, ColorType, Encoder, SamplingFactor};
use rayon::prelude::*;
use zune_core::bytestream::ZCursor;
use zune_jpeg::JpegDecoder;

use super::ImageFolder;
use crate::data::decode::decode_rgb;
use crate::data::error::{DataError, Result};

/// Quality of the re-encoded JPEGs, FFCV's setting for ImageNet (`jpeg_quality=90`). With 4:2:0
/// chroma it changes a detailed photo by about 3 levels per pixel on average (tests/data_pack.rs).
pub const REENCODE_QUALITY: u8 = 90;

/// The largest side, in pixels, a packed JPEG may keep; validated when made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxSide(u32);

impl MaxSide {
    /// Below this every crop of a photo would be upsampled several times over for any
    /// ImageNet model (their progressive ranges start at 128 px): a typo, not a setting.
    pub const MIN: u32 = 32;
    /// The largest side a baseline JPEG can store.
    pub const MAX: u32 = u16::MAX as u32;

    /// `pixels` as a bound, or an error naming the valid range.
    pub fn new(pixels: u32) -> Result<Self> {
        if (Self::MIN..=Self::MAX).contains(&pixels) {
            Ok(MaxSide(pixels))
        } else {
            Err(DataError::Config(format!(
                "--max-side {pixels} is outside {}..={} pixels",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    pub fn pixels(self) -> u32 {
        self.0
    }

    /// The size an image of `width` x `height` is stored at: unchanged within the bound, else
    /// the longer side at the bound and the shorter one scaled alike (rounded, at least 1).
    pub fn fit(self, width: u32, height: u32) -> (u32, u32) {
        let longer = width.max(height);
        if longer <= self.0 {
            return (width, height);
        }
        let scale = |side: u32| {
            ((f64::from(side) * f64::from(self.0) / f64::from(longer)).round() as u32).max(1)
        };
        (scale(width), scale(height))
    }

    /// `image` resampled to [`MaxSide::fit`] its size: Lanczos-3, antialiased (the kernel
    /// widens with the reduction), so that fine detail averages out instead of aliasing.
    pub fn shrink(self, image: &RgbImage) -> RgbImage {
        let (width, height) = self.fit(image.width(), image.height());
        resize(image, width, height, FilterType::Lanczos3)
    }
}

impl std::str::FromStr for MaxSide {
    type Err = DataError;

    fn from_str(text: &str) -> Result<Self> {
        let pixels = text.parse().map_err(|_| {
            DataError::Config(format!("--max-side {text:?} is not a number of pixels"))
        })?;
        MaxSide::new(pixels)
    }
}

/// The bytes a packer stores for the images `indices` of `folder`, in their order: computed on
/// rayon's pool, because re-encoding costs about 6 ms of one core per 450x400 photo, two hours
/// for ImageNet's 1.28 million training images. One shard's images at a time stay in memory.
pub(crate) fn packed_images(
    folder: &ImageFolder,
    indices: Range<usize>,
    max_side: Option<MaxSide>,
) -> Result<Vec<Vec<u8>>> {
    indices
        .into_par_iter()
        .map(|index| packed_image(folder.path(index), max_side))
        .collect()
}

/// The bytes a packer stores for the image file at `path`: the file itself, or with
/// `max_side`, a JPEG larger than it re-encoded at its bound (see [`shrink_jpeg`]).
fn packed_image(path: &Path, max_side: Option<MaxSide>) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    match max_side {
        Some(max_side) => shrink_jpeg(bytes, max_side, &path.display().to_string()),
        None => Ok(bytes),
    }
}

/// `bytes` re-encoded at `max_side` when they are a decodable JPEG whose longer side exceeds
/// it: the decoded RGB pixels [shrunk](MaxSide::shrink), then a baseline, interleaved 4:2:0 JPEG
/// at [`REENCODE_QUALITY`] (the layout of most ImageNet photos and the cheapest to decode), with
/// the standard Huffman tables: the encoder writes optimised tables only into one scan per
/// component, which saves 3.4 % of the bytes but decodes 1.3x slower (such files go to
/// jpeg-decoder instead of zune-jpeg: docs/input-pipeline.md, section 7). Otherwise `bytes`
/// unchanged. `what` names the image in an encoder error.
pub fn shrink_jpeg(bytes: Vec<u8>, max_side: MaxSide, what: &str) -> Result<Vec<u8>> {
    let Some((width, height)) = jpeg_size(&bytes) else {
        return Ok(bytes);
    };
    if max_side.fit(width, height) == (width, height) {
        return Ok(bytes);
    }
    let Ok(image) = decode_rgb(&bytes, what) else {
        return Ok(bytes);
    };
    let smaller = max_side.shrink(&image);
    let mut encoded = Vec::new();
    let mut encoder = Encoder::new(&mut encoded, REENCODE_QUALITY);
    encoder.set_sampling_factor(SamplingFactor::R_4_2_0);
    encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
    // Both sides are at most `MaxSide::MAX`, a u16.
    encoder
        .encode(
            smaller.as_raw(),
            smaller.width() as u16,
            smaller.height() as u16,
            ColorType::Rgb,
        )
        .map_err(|e| DataError::Config(format!("cannot re-encode {what} as a JPEG: {e}")))?;
    Ok(encoded)
}

/// Width and height from a JPEG's headers, without decoding; `None` for anything else.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut decoder = JpegDecoder::new(ZCursor::new(bytes));
    decoder.decode_headers().ok()?;
    let (width, height) = decoder.dimensions()?;
    Some((width as u32, height as u32))
}
