//! The fast path: zune-jpeg called directly, for every JPEG but those of
//! [`super::separate_scans`].

use image::RgbImage;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::{jpeg_error, too_large, MAX_DECODED_BYTES};
use crate::data::error::Result;

/// Colour spaces that zune-jpeg converts to RGB itself (greyscale by replication, as
/// `into_rgb8` does); JPEGs stored otherwise go through `image`.
const DIRECT_COLOUR_SPACES: [ColorSpace; 5] = [
    ColorSpace::YCbCr,
    ColorSpace::Luma,
    ColorSpace::RGB,
    ColorSpace::CMYK,
    ColorSpace::YCCK,
];

/// Decodes a complete JPEG with zune-jpeg into RGB, with the options `image` uses (lenient
/// parsing, no size limit of the decoder's own: [`MAX_DECODED_BYTES`] is checked here). `None`
/// when the stored colour space is not one of [`DIRECT_COLOUR_SPACES`].
pub(super) fn decode(bytes: &[u8], what: &str) -> Result<Option<RgbImage>> {
    let error = |source: zune_jpeg::errors::DecodeErrors| jpeg_error(what, source);
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| error(e))?;
    let stored = decoder.input_colorspace().expect("headers were decoded");
    if !DIRECT_COLOUR_SPACES.contains(&stored) {
        return Ok(None);
    }
    let (width, height) = decoder.dimensions().expect("headers were decoded");
    let (width, height) = (width as u32, height as u32);
    let needed = u64::from(width) * u64::from(height) * 3;
    if needed > MAX_DECODED_BYTES {
        return Err(too_large(what, width, height, needed));
    }
    let pixels = decoder.decode().map_err(|e| error(e))?;
    RgbImage::from_raw(width, height, pixels)
        .map(Some)
        .ok_or_else(|| {
            jpeg_error(
                what,
                "the decoder returned fewer pixels than the header declares",
            )
        })
}
