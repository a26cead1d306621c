//! Turning encoded JPEG / PNG bytes into 8-bit RGB pixels.

use std::io::Cursor;

use image::{ImageReader, RgbImage};

use super::error::{DataError, Result};

/// Decodes a JPEG or PNG (format sniffed from the bytes, not the file name) into RGB.
///
/// Greyscale images are replicated into three channels and alpha is dropped, because the network
/// always takes 3-channel input. `what` names the image in the error message. A JPEG whose stream
/// stops before its end-of-image marker is rejected: the decoder behind `image` would otherwise
/// fill the missing part with grey and report success, and a half-grey photo is bad data.
pub fn decode_rgb(bytes: &[u8], what: &str) -> Result<RgbImage> {
    if is_jpeg(bytes) && !jpeg_is_complete(bytes) {
        return Err(DataError::Truncated {
            what: what.to_owned(),
        });
    }
    let error = |source| DataError::Decode {
        what: what.to_owned(),
        source,
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| error(image::ImageError::IoError(e)))?;
    let decoded = reader.decode().map_err(error)?;
    Ok(decoded.into_rgb8())
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

    #[test]
    fn trailing_bytes_after_eoi_are_accepted() {
        let mut jpeg = skeleton();
        jpeg.extend([0x00, 0x00, 0x17]);
        assert!(jpeg_is_complete(&jpeg));
    }
}
