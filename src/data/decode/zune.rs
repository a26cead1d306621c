//! The fast path: zune-jpeg called directly, for every JPEG but those of
//! [`super::separate_scans`].

use image::RgbImage;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::markers::sequential_frame;
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

/// Decodes the top `rows` rows of a complete JPEG (all of them where it has fewer) with
/// zune-jpeg into RGB, with the options `image` uses (lenient parsing, no size limit of the
/// decoder's own: [`MAX_DECODED_BYTES`] is checked here, for the whole image). `None` when the
/// stored colour space is not one of [`DIRECT_COLOUR_SPACES`].
///
/// zune-jpeg has no way to stop early, but it decodes a sequential frame's MCU rows top down
/// and stops after as many as the frame header's height asks for. So the top of a sequential
/// JPEG is decoded from a copy whose header claims fewer rows: through the MCU row holding row
/// `rows`, the first one below those kept, because the chroma upsampling of the last kept row
/// reads the row below it (without it, the last row of a 4:2:0 MCU row differs). The rows kept
/// are then exactly those of the whole image (test
/// `decoding_the_top_rows_equals_the_full_decode_exactly` in tests/data_jpeg_layouts.rs).
pub(super) fn decode(bytes: &[u8], what: &str, rows: u32) -> Result<Option<RgbImage>> {
    let error = |source: zune_jpeg::errors::DecodeErrors| jpeg_error(what, source);
    let frame = sequential_frame(bytes);
    let top = match &frame {
        Some(frame) if rows < u32::from(frame.height) => {
            let mcu_rows = u32::from(frame.mcu_rows);
            let decoded = ((rows / mcu_rows + 1) * mcu_rows).min(u32::from(frame.height));
            let mut top = bytes.to_vec();
            // `decoded` is at most the stored height, a u16.
            top[frame.height_at..frame.height_at + 2]
                .copy_from_slice(&(decoded as u16).to_be_bytes());
            Some(top)
        }
        _ => None,
    };
    let source = ZCursor::new(top.as_deref().unwrap_or(bytes));
    let mut decoder = JpegDecoder::new_with_options(source, options());
    decoder.decode_headers().map_err(error)?;
    let stored = decoder.input_colorspace().expect("headers were decoded");
    if !DIRECT_COLOUR_SPACES.contains(&stored) {
        return Ok(None);
    }
    let (width, decoded) = decoder.dimensions().expect("headers were decoded");
    let width = width as u32;
    let height = frame.map_or(decoded as u32, |frame| u32::from(frame.height));
    let needed = u64::from(width) * u64::from(height) * 3;
    if needed > MAX_DECODED_BYTES {
        return Err(too_large(what, width, height, needed));
    }
    let mut pixels = decoder.decode().map_err(error)?;
    let rows = rows.min(height);
    pixels.truncate(width as usize * rows as usize * 3);
    RgbImage::from_raw(width, rows, pixels)
        .map(Some)
        .ok_or_else(|| {
            jpeg_error(
                what,
                "the decoder returned fewer pixels than the header declares",
            )
        })
}

/// The options `image` decodes JPEGs with: lenient parsing, no size limit of the decoder's own.
fn options() -> DecoderOptions {
    DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB)
}

/// The width and height a JPEG's frame header declares, read without decoding any pixels.
pub(super) fn dimensions(bytes: &[u8], what: &str) -> Result<(u32, u32)> {
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options());
    decoder
        .decode_headers()
        .map_err(|source| jpeg_error(what, source))?;
    let (width, height) = decoder.dimensions().expect("headers were decoded");
    Ok((width as u32, height as u32))
}
