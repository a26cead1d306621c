//! An example as a source hands it over: still encoded where it is stored encoded, so that a
//! training crop decodes only the rows it needs.

use image::RgbImage;

use super::{decode_rgb_top, image_dimensions, top};
use crate::data::error::Result;

/// One example's image before decoding, as [`crate::data::Source::read`] returns it.
#[derive(Clone, Debug)]
pub enum LoadedImage {
    /// A JPEG or PNG file's bytes, and the name its errors give (the file, or the shard entry).
    Encoded { bytes: Vec<u8>, what: String },
    /// Pixels a source holds raw (Fashion-MNIST).
    Decoded(RgbImage),
}

impl LoadedImage {
    /// Width and height, from the header for an encoded image (no pixel is decoded). A file
    /// that is not an image fails here, with the error decoding it whole would give.
    pub fn dimensions(&self) -> Result<(u32, u32)> {
        match self {
            LoadedImage::Encoded { bytes, what } => image_dimensions(bytes, what),
            LoadedImage::Decoded(image) => Ok(image.dimensions()),
        }
    }

    /// The top `rows` rows (all of them where the image has fewer), exactly as [`Self::decode`]
    /// gives them ([`decode_rgb_top`]). Only the data of those rows is decoded and checked, so
    /// a JPEG whose entropy-coded data is damaged only below them decodes here (a truncated
    /// one is still refused: its end-of-image marker is checked).
    pub fn decode_top(self, rows: u32) -> Result<RgbImage> {
        match self {
            LoadedImage::Encoded { bytes, what } => decode_rgb_top(&bytes, &what, rows),
            LoadedImage::Decoded(image) => Ok(top(image, rows)),
        }
    }

    /// The whole image in RGB.
    pub fn decode(self) -> Result<RgbImage> {
        self.decode_top(u32::MAX)
    }
}
