//! Reading a JPEG's marker segments without decoding it: whether the stream is complete, how
//! its colour components are laid out in scans (which picks the decoder), and where a
//! sequential frame stores its height (which lets the decoder stop early).

/// JPEG markers read here.
const MARKER: u8 = 0xFF;
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const RST: std::ops::RangeInclusive<u8> = 0xD0..=0xD7;
/// Start-of-frame markers: every `C0`-`CF` except DHT (`C4`), JPG (`C8`) and DAC (`CC`).
const SOF: [u8; 13] = [
    0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF,
];
/// The sequential, Huffman-coded frames: baseline (`C0`) and extended (`C1`).
const SEQUENTIAL: [u8; 2] = [0xC0, 0xC1];

pub(super) fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[MARKER, SOI])
}

/// One marker of a JPEG stream and its segment's payload (after the length field; empty for
/// the markers that carry no segment), which starts at byte `start` of the stream.
struct Segment<'a> {
    marker: u8,
    payload: &'a [u8],
    start: usize,
}

/// The markers of a JPEG stream after its SOI, in order, up to and including EOI. Walks the
/// segments by their lengths and skips entropy-coded data (where `FF` is always followed by a
/// stuffed `00` or a restart marker), so an `FF D9` inside metadata or a thumbnail does not
/// count. Bytes that are not markers between segments are skipped, as lenient decoders do.
/// Ends early where the stream ends inside a segment.
struct Markers<'a> {
    bytes: &'a [u8],
    at: usize,
    ended: bool,
}

impl<'a> Markers<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Markers {
            bytes,
            at: 2,
            ended: false,
        }
    }
}

impl<'a> Iterator for Markers<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        if self.ended {
            return None;
        }
        let bytes = self.bytes;
        let mut i = self.at;
        while i < bytes.len() && bytes[i] != MARKER {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == MARKER {
            i += 1;
        }
        let marker = *bytes.get(i)?;
        i += 1;
        let mut payload: &[u8] = &[];
        let mut start = i;
        match marker {
            EOI => self.ended = true,
            SOI | TEM => {}
            m if RST.contains(&m) => {}
            _ => {
                let length = bytes.get(i..i + 2)?;
                let length = usize::from(u16::from_be_bytes([length[0], length[1]])).max(2);
                start = i + 2;
                payload = bytes.get(start..i + length)?;
                i += length;
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
        self.at = i;
        Some(Segment {
            marker,
            payload,
            start,
        })
    }
}

/// Whether a JPEG stream reaches its end-of-image marker, found by walking the marker segments
/// by their lengths and skipping entropy-coded data, so that an `FF D9` inside metadata or a
/// thumbnail does not count.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    Markers::new(bytes).any(|segment| segment.marker == EOI)
}

/// Whether `bytes` are a sequential colour JPEG (baseline or extended, 3 or 4 components) whose
/// first scan holds fewer components than the frame: its components are coded in separate
/// scans (one per component, as `jpeg-encoder` writes them with optimised Huffman tables)
/// instead of one interleaved scan. Reads the headers up to the first scan only.
pub(super) fn has_separate_colour_scans(bytes: &[u8]) -> bool {
    let mut sequential_components = None;
    for segment in Markers::new(bytes) {
        match segment.marker {
            m if SOF.contains(&m) => {
                // Payload: precision, height (2), width (2), component count.
                sequential_components = SEQUENTIAL
                    .contains(&m)
                    .then(|| segment.payload.get(5).copied())
                    .flatten();
            }
            SOS => {
                let scan_components = segment.payload.first().copied();
                return matches!(
                    (sequential_components, scan_components),
                    (Some(frame @ 3..=4), Some(scan)) if scan < frame
                );
            }
            _ => {}
        }
    }
    false
}

/// The frame header of a sequential JPEG (baseline or extended, Huffman-coded), as far as
/// decoding only its top rows needs it.
#[derive(Debug, PartialEq)]
pub(super) struct SequentialFrame {
    /// Rows of the image; never 0 (a height defined later by a DNL marker is not admitted).
    pub height: u16,
    /// Byte offset of the big-endian height field in the stream.
    pub height_at: usize,
    /// Pixel rows per MCU row: 8 times the largest vertical sampling factor.
    pub mcu_rows: u16,
}

/// The frame header of `bytes` when it is a sequential JPEG with a known height; `None` for
/// progressive and other frames, and for headers cut short.
pub(super) fn sequential_frame(bytes: &[u8]) -> Option<SequentialFrame> {
    let segment = Markers::new(bytes).find(|segment| SOF.contains(&segment.marker))?;
    if !SEQUENTIAL.contains(&segment.marker) {
        return None;
    }
    // Payload: precision, height (2), width (2), component count, then per component its id,
    // sampling factors (horizontal << 4 | vertical) and quantisation table.
    let payload = segment.payload;
    let height = u16::from_be_bytes([*payload.get(1)?, *payload.get(2)?]);
    let components = usize::from(*payload.get(5)?);
    let vertical = (0..components)
        .map(|c| payload.get(6 + 3 * c + 1).map(|factors| factors & 0x0F))
        .collect::<Option<Vec<u8>>>()?
        .into_iter()
        .max()?;
    (height > 0 && vertical > 0).then_some(SequentialFrame {
        height,
        height_at: segment.start + 1,
        mcu_rows: 8 * u16::from(vertical),
    })
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

    /// SOI, a frame header `sof` of `components` components, then scans of the given component
    /// counts (each with one byte of entropy data), then EOI.
    fn frame(sof: u8, components: u8, scans: &[u8]) -> Vec<u8> {
        let mut jpeg = vec![MARKER, SOI];
        let length = 8 + 3 * u16::from(components);
        jpeg.extend([MARKER, sof]);
        jpeg.extend(length.to_be_bytes());
        jpeg.extend([8, 0x01, 0x00, 0x02, 0x00, components]);
        for id in 1..=components {
            jpeg.extend([id, 0x11, 0x00]);
        }
        for &count in scans {
            let length = 6 + 2 * u16::from(count);
            jpeg.extend([MARKER, SOS]);
            jpeg.extend(length.to_be_bytes());
            jpeg.push(count);
            for id in 1..=count {
                jpeg.extend([id, 0x00]);
            }
            jpeg.extend([0x00, 0x3F, 0x00, 0x5A]);
        }
        jpeg.extend([MARKER, EOI]);
        jpeg
    }

    #[test]
    fn separate_colour_scans_are_told_from_the_headers() {
        assert!(!has_separate_colour_scans(&frame(0xC0, 3, &[3])));
        assert!(has_separate_colour_scans(&frame(0xC0, 3, &[1, 1, 1])));
        assert!(has_separate_colour_scans(&frame(0xC1, 3, &[1, 2])));
        assert!(has_separate_colour_scans(&frame(0xC0, 4, &[1, 1, 1, 1])));
        assert!(!has_separate_colour_scans(&frame(0xC0, 4, &[4])));
        // Progressive frames are multi-scan by nature; zune-jpeg decodes them itself.
        assert!(!has_separate_colour_scans(&frame(0xC2, 3, &[1, 1, 1])));
        // Greyscale and 2-component frames stay with zune-jpeg.
        assert!(!has_separate_colour_scans(&frame(0xC0, 1, &[1])));
        assert!(!has_separate_colour_scans(&frame(0xC0, 2, &[1, 1])));
        // No frame header before the scan: not a layout to route.
        let separate = frame(0xC0, 3, &[1, 1, 1]);
        let frame_end = 2 + 2 + 8 + 3 * 3;
        let headless = [&separate[..2], &separate[frame_end..]].concat();
        assert!(!has_separate_colour_scans(&headless));
        for jpeg in [frame(0xC0, 3, &[3]), frame(0xC0, 3, &[1, 1, 1])] {
            assert!(jpeg_is_complete(&jpeg));
        }
    }

    #[test]
    fn the_sequential_frame_header_is_found_with_its_height_and_mcu_rows() {
        let jpeg = frame(0xC1, 3, &[3]);
        // SOI (2), marker (2), length (2), precision (1): the height follows.
        let found = sequential_frame(&jpeg).unwrap();
        assert_eq!(
            found,
            SequentialFrame {
                height: 0x100,
                height_at: 7,
                mcu_rows: 8
            }
        );
        assert_eq!(jpeg[7..9], [0x01, 0x00]);
        let mut subsampled = jpeg.clone();
        subsampled[2 + 2 + 8 + 1] = 0x22;
        assert_eq!(sequential_frame(&subsampled).unwrap().mcu_rows, 16);
        assert_eq!(sequential_frame(&frame(0xC2, 3, &[3])), None);
        let mut unknown_height = jpeg.clone();
        unknown_height[7..9].copy_from_slice(&[0, 0]);
        assert_eq!(sequential_frame(&unknown_height), None);
        assert_eq!(sequential_frame(&jpeg[..12]), None);
    }
}
