//! Turning encoded JPEG / PNG bytes into 8-bit RGB pixels.
//!
//! JPEGs go straight to zune-jpeg, the decoder that `image` itself wraps: the wrapper copies the
//! whole file, parses the headers twice and converts the pixels once more, which cost 8 % of the
//! decoding time on ImageNet-like files (docs/input-pipeline.md). Sequential colour JPEGs whose
//! components are coded in separate scans go to jpeg-decoder instead: zune-jpeg 0.5.15 decodes
//! the chroma-subsampled ones as colourless stripes and panics on some (`separate_scans.rs`).
//! Everything else (PNG, and JPEGs in colour spaces zune-jpeg cannot turn into RGB by itself)
//! goes through `image`.

mod loaded;
mod markers;
mod separate_scans;
mod zune;

use std::io::Cursor;

use image::error::{DecodingError, ImageFormatHint};
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use super::error::{DataError, Result};
pub use loaded::LoadedImage;
pub use markers::jpeg_is_complete;

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
    decode_rgb_top(bytes, what, u32::MAX)
}

/// The top `rows` rows of an image (all of it where it has fewer), exactly as [`decode_rgb`]
/// decodes them, with the same checks and errors: what a crop window needs, whose bottom is
/// `rows`. A sequential JPEG (baseline, the layout of most photos) is decoded only down to the
/// MCU row below them, so the rows further down are never entropy-decoded, which is most of a
/// JPEG's decoding time (docs/input-pipeline.md, section 1); other images are decoded whole and
/// cut.
pub fn decode_rgb_top(bytes: &[u8], what: &str, rows: u32) -> Result<RgbImage> {
    if markers::is_jpeg(bytes) {
        if !jpeg_is_complete(bytes) {
            return Err(DataError::Truncated {
                what: what.to_owned(),
            });
        }
        if markers::has_separate_colour_scans(bytes) {
            return separate_scans::decode(bytes, what).map(|image| top(image, rows));
        }
        if let Some(image) = zune::decode(bytes, what, rows)? {
            return Ok(image);
        }
    }
    decode_with_image(bytes, what).map(|image| top(image, rows))
}

/// The top `rows` rows of `image` (all of it where it has fewer), without copying.
fn top(image: RgbImage, rows: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    if rows >= height {
        return image;
    }
    let mut pixels = image.into_raw();
    pixels.truncate(width as usize * rows as usize * 3);
    RgbImage::from_raw(width, rows, pixels).expect("a prefix of whole rows")
}

/// The error for a JPEG that a decoder refused, with the decoder's reason.
fn jpeg_error(
    what: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> DataError {
    DataError::Decode {
        what: what.to_owned(),
        source: ImageError::Decoding(DecodingError::new(
            ImageFormatHint::Exact(ImageFormat::Jpeg),
            source,
        )),
    }
}

/// The width and height an image's header declares (a JPEG's frame header, read by zune-jpeg;
/// any other format's by `image`), without decoding its pixels: what a crop is drawn from. A
/// file that is not an image, or a JPEG whose header is unreadable, fails here with the error
/// [`decode_rgb`] gives it (a truncated JPEG's as [`DataError::Truncated`], which that checks
/// first).
pub fn image_dimensions(bytes: &[u8], what: &str) -> Result<(u32, u32)> {
    if markers::is_jpeg(bytes) {
        return zune::dimensions(bytes, what).map_err(|error| {
            if jpeg_is_complete(bytes) {
                error
            } else {
                DataError::Truncated {
                    what: what.to_owned(),
                }
            }
        });
    }
    let (decoder, _) = image_decoder(bytes, what)?;
    Ok(decoder.dimensions())
}

/// The error for an image that `image` refused.
fn image_error(what: &str, source: ImageError) -> DataError {
    DataError::Decode {
        what: what.to_owned(),
        source,
    }
}

/// `image`'s decoder for `bytes` (format sniffed from them), with the limits it is to decode
/// under: at most [`MAX_DECODED_BYTES`].
fn image_decoder<'a>(bytes: &'a [u8], what: &str) -> Result<(impl ImageDecoder + 'a, Limits)> {
    let error = |source| image_error(what, source);
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| error(ImageError::IoError(e)))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits.clone());
    let decoder = reader.into_decoder().map_err(error)?;
    Ok((decoder, limits))
}

/// Decodes any format `image` knows into RGB, its limits set to [`MAX_DECODED_BYTES`].
fn decode_with_image(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let error = |source| image_error(what, source);
    let (mut decoder, mut limits) = image_decoder(bytes, what)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dimensions_come_from_the_header_and_a_non_image_fails_as_decoding_it_does() {
        let header = LoadedImage::Encoded {
            bytes: png_header(1000, 700),
            what: "small.png".into(),
        };
        assert_eq!(header.dimensions().unwrap(), (1000, 700));
        for bytes in [
            &b"GIF89a, but not really"[..],
            b"plain text",
            &[0xFF, 0xD8, 0xFF],
        ] {
            let loaded = LoadedImage::Encoded {
                bytes: bytes.to_vec(),
                what: "odd.jpg".into(),
            };
            let by_header = loaded.dimensions().unwrap_err().to_string();
            assert_eq!(
                by_header,
                decode_rgb(bytes, "odd.jpg").unwrap_err().to_string()
            );
        }
    }
}
