//! Sequential colour JPEGs whose components are coded in separate scans, decoded with
//! jpeg-decoder.
//!
//! Such files are valid (ITU T.81 allows up to one scan per component in sequential mode), but
//! rare among photos; `jpeg-encoder` writes them whenever its optimised Huffman tables are on.
//! zune-jpeg 0.5.15 decodes the chroma-subsampled ones (4:2:0) wrongly, as colourless stripes
//! (mean error over 100 levels against libjpeg-turbo), and panics on 4:2:0 CMYK ones; 4:4:4 and
//! 4:2:2 ones came out right, but the route does not depend on knowing where its bug ends.
//! jpeg-decoder 0.3.2 decodes all of them within 3-4 levels of libjpeg-turbo
//! (docs/input-pipeline.md, section 1). It is slower than zune-jpeg, which does not matter for
//! files this rare.

use image::RgbImage;
use jpeg_decoder::{Decoder, PixelFormat};

use super::{jpeg_error, too_large, MAX_DECODED_BYTES};
use crate::data::error::Result;

/// Decodes a complete JPEG whose frame has 3 or 4 components (what
/// `markers::has_separate_colour_scans` admits) into RGB. The decoder's buffers are bounded by
/// [`MAX_DECODED_BYTES`], checked against the header before decoding.
pub(super) fn decode(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let error = |source: jpeg_decoder::Error| jpeg_error(what, source);
    let mut decoder = Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES as usize);
    decoder.read_info().map_err(error)?;
    let info = decoder.info().expect("the header was read");
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let channels = info.pixel_format.pixel_bytes().max(3) as u64;
    let needed = u64::from(width) * u64::from(height) * channels;
    if needed > MAX_DECODED_BYTES {
        return Err(too_large(what, width, height, needed));
    }
    let pixels = decoder.decode().map_err(error)?;
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => pixels,
        PixelFormat::CMYK32 => cmyk_to_rgb(&pixels),
        other => {
            return Err(jpeg_error(
                what,
                format!("unexpected {other:?} pixels from a colour JPEG"),
            ))
        }
    };
    RgbImage::from_raw(width, height, rgb).ok_or_else(|| {
        jpeg_error(
            what,
            "the decoder returned fewer pixels than the header declares",
        )
    })
}

/// RGB from jpeg-decoder's CMYK, as zune-jpeg converts the same file stored in one scan:
/// jpeg-decoder returns the stored (Adobe, inverted) values, each channel is their complement
/// scaled by the complement of K, `(255 - c)(255 - k) / 255` rounded as zune-jpeg rounds it.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let scale = |value: u8, key: u8| {
        let t = u32::from(255 - value) * u32::from(255 - key) + 128;
        ((t + (t >> 8)) >> 8) as u8
    };
    cmyk.chunks_exact(4)
        .flat_map(|p| [scale(p[0], p[3]), scale(p[1], p[3]), scale(p[2], p[3])])
        .collect()
}
