//! Reading a JPEG's marker segments without decoding it: whether the stream is complete, and
//! how its colour components are laid out in scans (which picks the decoder).

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
/// the markers that carry no segment).
struct Segment<'a> {
    marker: u8,
    payload: &'a [u8],
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
        match marker {
            EOI => self.ended = true,
            SOI | TEM => {}
            m if RST.contains(&m) => {}
            _ => {
                let length = bytes.get(i..i + 2)?;
                let length = usize::from(u16::from_be_bytes([length[0], length[1]])).max(2);
                payload = bytes.get(i + 2..i + length)?;
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
        Some(Segment { marker, payload })
    }
}

/// Whether a JPEG stream reaches its end-of-image marker (see [`Markers`] for how it is found).
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
}
