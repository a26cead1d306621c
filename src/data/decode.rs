//! Turning encoded JPEG / PNG bytes into 8-bit RGB pixels.
//!
//! JPEGs go straight to zune-jpeg, the decoder that `image` itself wraps: the wrapper copies the
//! whole file, parses the headers twice and converts the pixels once more, which cost 8 % of the
//! decoding time on ImageNet-like files (docs/input-pipeline.md). Everything else (PNG, and JPEGs
//! in colour spaces zune-jpeg cannot turn into RGB by itself) goes through `image`.

use std::io::Cursor;

use image::error::{DecodingError, ImageFormatHint};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::error::{DataError, Result};

/// Most memory one image may take to decode: its pixels in their stored colour type, or as 8-bit
/// RGB, whichever is larger. 256 MiB is 89 megapixels of RGB, beyond any training photo; the
/// bound is checked against the header before the pixel buffer exists, so a corrupt header that
/// claims 100,000x100,000 pixels costs nothing. The decoder's own working memory is held to what
/// is left of the same budget, as `image` does for its default limit.
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Decodes a JPEG or PNG (format sniffed from the bytes, not the file name) into RGB.
///
/// Greyscale images are replicated into three channels and alpha is dropped, because the network
/// always takes 3-channel input. `what` names the image in the error message. A JPEG whose stream
/// stops before its end-of-image marker is rejected: the decoder would otherwise fill the missing
/// part with grey and report success, and a half-grey photo is bad data. An image larger than
/// [`MAX_DECODED_BYTES`] is rejected with its size.
pub fn decode_rgb(bytes: &[u8], what: &str) -> Result<RgbImage> {
    if is_jpeg(bytes) {
        if !jpeg_is_complete(bytes) {
            return Err(DataError::Truncated {
                what: what.to_owned(),
            });
        }
        if let Some(image) = decode_jpeg(bytes, what)? {
            return Ok(image);
        }
    }
    decode_with_image(bytes, what)
}

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
fn decode_jpeg(bytes: &[u8], what: &str) -> Result<Option<RgbImage>> {
    let error = |source| DataError::Decode {
        what: what.to_owned(),
        source: ImageError::Decoding(DecodingError::new(
            ImageFormatHint::Exact(ImageFormat::Jpeg),
            source,
        )),
    };
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(error)?;
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
    let pixels = decoder.decode().map_err(error)?;
    RgbImage::from_raw(width, height, pixels)
        .map(Some)
        .ok_or_else(|| error("the decoder returned fewer pixels than the header declares".into()))
}

/// Decodes any format `image` knows into RGB, its limits set to [`MAX_DECODED_BYTES`].
fn decode_with_image(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let error = |source| DataError::Decode {
        what: what.to_owned(),
        source,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| error(ImageError::IoError(e)))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(error)?;
    let (width, height) = decoder.dimensions();
    let stored = decoder.total_bytes();
    let needed = stored.max(u64::from(width) * u64::from(height) * 3);
    if needed > MAX_DECODED_BYTES {
        return Err(too_large(what, width, height, needed));
    }
    limits.reserve(stored).map_err(error)?;
    decoder.set_limits(limits).map_err(error)?;
    let decoded = DynamicImage::from_decoder(decoder).map_err(error)?;
    Ok(decoded.into_rgb8())
}

/// The error for an image that needs `needed` bytes to decode, above [`MAX_DECODED_BYTES`].
fn too_large(what: &str, width: u32, height: u32, needed: u64) -> DataError {
    DataError::TooLarge {
        what: what.to_owned(),
        width,
        height,
        mib: needed >> 20,
        limit_mib: MAX_DECODED_BYTES >> 20,
    }
}

/// JPEG markers used by the completeness check.
const MARKER: u8 = 0xFF;
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const RST: std::ops::RangeInclusive<u8> = 0xD0..=0xD7;

fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[MARKER, SOI])
}

/// Whether a JPEG stream reaches its end-of-image marker. Walks the marker segments by their
/// lengths and skips entropy-coded data (where `FF` is always followed by a stuffed `00` or a
/// restart marker), so an `FF D9` inside metadata or a thumbnail does not count. Bytes that are
/// not markers between segments are skipped, as lenient decoders do.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2;
    loop {
        while i < bytes.len() && bytes[i] != MARKER {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == MARKER {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            EOI => return true,
            SOI | TEM => {}
            m if RST.contains(&m) => {}
            _ => {
                let Some(length) = bytes.get(i..i + 2) else {
                    return false;
                };
                i += usize::from(u16::from_be_bytes([length[0], length[1]]));
                if marker == SOS {
                    while i + 1 < bytes.len()
                        && !(bytes[i] == MARKER
                            && bytes[i + 1] != 0
                            && !RST.contains(&bytes[i + 1]))
                    {
                        i += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal marker skeleton: SOI, an APP0 segment holding `FF D9`, SOS with entropy data
    /// containing a stuffed `FF 00` and a restart marker, then EOI.
    fn skeleton() -> Vec<u8> {
        let mut jpeg = vec![MARKER, SOI];
        jpeg.extend([MARKER, 0xE0, 0x00, 0x06, MARKER, EOI, 0x00, 0x00]);
        jpeg.extend([MARKER, SOS, 0x00, 0x04, 0x01, 0x02]);
        jpeg.extend([0x12, MARKER, 0x00, 0x34, MARKER, 0xD3, 0x56]);
        jpeg.extend([MARKER, EOI]);
        jpeg
    }

    #[test]
    fn complete_stream_passes_and_every_truncation_fails() {
        let jpeg = skeleton();
        assert!(jpeg_is_complete(&jpeg));
        for cut in 2..jpeg.len() {
            assert!(!jpeg_is_complete(&jpeg[..cut]), "cut at {cut}");
        }
    }

    /// A PNG of a `width`x`height` RGB image whose data chunk is empty: the header, with valid
    /// CRCs, and nothing to decode.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut header = width.to_be_bytes().to_vec();
        header.extend(height.to_be_bytes());
        header.extend([8, 2, 0, 0, 0]);
        for (kind, data) in [(b"IHDR", header), (b"IDAT", Vec::new())] {
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(&data);
            png.extend((data.len() as u32).to_be_bytes());
            png.extend(kind);
            png.extend(data);
            png.extend(crc.sum().to_be_bytes());
        }
        png
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_with_its_size() {
        let err = decode_rgb(&png_header(100_000, 100_000), "huge.png").unwrap_err();
        assert_eq!(
            err.to_string(),
            "image huge.png is 100000x100000 pixels, which takes 28610 MiB to decode; \
             the limit per image is 256 MiB"
        );
        // Within the limit, the same header fails only for its missing data.
        let err = decode_rgb(&png_header(1000, 1000), "small.png").unwrap_err();
        assert!(matches!(err, DataError::Decode { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_after_eoi_are_accepted() {
        let mut jpeg = skeleton();
        jpeg.extend([0x00, 0x00, 0x17]);
        assert!(jpeg_is_complete(&jpeg));
    }
}
