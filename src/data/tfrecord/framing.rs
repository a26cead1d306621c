//! TFRecord framing, as TensorFlow's `record_writer.cc` writes it: each record is
//! `u64 length, u32 masked_crc32c(length), data[length], u32 masked_crc32c(data)`, little-endian.
//!
//! The same framing carries ImageNet's `tf.train.Example` shards and TensorBoard's event files,
//! so the reader and the writer here serve both. The reader tells damage apart from the end of
//! the file: a bad data CRC spoils one record (its length was verified, so the next one is still
//! found), while a bad length CRC or a file cut short loses the framing and ends the file there.

use std::io::{self, Read, Write};

/// Bytes before a record's data: the length and its CRC.
pub const HEADER_BYTES: u64 = 12;
/// Bytes after a record's data: its CRC.
pub const FOOTER_BYTES: u64 = 4;
/// Longest record the reader accepts. A length field is only trusted after its CRC matched, but a
/// matching CRC of a huge length is cheap to forge, and no image or event needs more.
pub const MAX_RECORD_BYTES: u64 = 256 << 20;

/// CRC-32C masked as TFRecord stores it: CRCs of data that contains CRCs are weak, so the
/// stored value is rotated and offset (`crc32c.h`'s `Mask`).
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// What is wrong with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The length field does not match its CRC: the framing is lost from here on.
    LengthCrc,
    /// The length is above [`MAX_RECORD_BYTES`]: the framing is lost from here on.
    TooLong(u64),
    /// The data does not match its CRC: this record is unusable, the next one is intact.
    DataCrc,
    /// The file ends inside the record: nothing follows.
    Truncated,
}

impl Damage {
    /// Whether records after a record with this damage can still be found.
    pub fn loses_framing(self) -> bool {
        !matches!(self, Damage::DataCrc)
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Damage::LengthCrc => write!(
                f,
                "the length does not match its CRC (the rest of the file cannot be framed)"
            ),
            Damage::TooLong(len) => write!(
                f,
                "its length of {len} bytes is above the limit of {} MiB (the rest of the file \
                 cannot be framed)",
                MAX_RECORD_BYTES >> 20
            ),
            Damage::DataCrc => write!(f, "the data does not match its CRC"),
            Damage::Truncated => write!(f, "the file ends inside it (truncated)"),
        }
    }
}

/// Why a record could not be read: the stream failed, or the bytes are damaged.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("record {record}: {damage}")]
    Damaged { record: usize, damage: Damage },
}

/// One record read from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position of the record in its file, counting from 0.
    pub index: usize,
    /// Byte offset of the record's header in the file.
    pub offset: u64,
    pub data: Vec<u8>,
}

/// Reads records one after another, checking both CRCs.
///
/// Yields `Err(RecordError::Damaged)` for a damaged record; after a damage that
/// [loses the framing](Damage::loses_framing), or an I/O error, the iteration ends.
pub struct RecordReader<R> {
    inner: R,
    next_index: usize,
    offset: u64,
    done: bool,
}

impl<R: Read> RecordReader<R> {
    pub fn new(inner: R) -> Self {
        RecordReader {
            inner,
            next_index: 0,
            offset: 0,
            done: false,
        }
    }

    fn read_one(&mut self) -> Result<Option<Record>, RecordError> {
        let index = self.next_index;
        let damaged = |damage| RecordError::Damaged {
            record: index,
            damage,
        };
        let mut header = [0u8; HEADER_BYTES as usize];
        match read_full(&mut self.inner, &mut header)? {
            0 => return Ok(None),
            n if n < header.len() => return Err(damaged(Damage::Truncated)),
            _ => {}
        }
        let len = check_header(&header).map_err(damaged)?;
        let mut data = Vec::new();
        (&mut self.inner).take(len).read_to_end(&mut data)?;
        let mut footer = [0u8; FOOTER_BYTES as usize];
        if (data.len() as u64) < len || read_full(&mut self.inner, &mut footer)? < footer.len() {
            return Err(damaged(Damage::Truncated));
        }
        let record = Record {
            index,
            offset: self.offset,
            data,
        };
        self.next_index += 1;
        self.offset += HEADER_BYTES + len + FOOTER_BYTES;
        if u32::from_le_bytes(footer) != masked_crc(&record.data) {
            return Err(damaged(Damage::DataCrc));
        }
        Ok(Some(record))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.read_one().transpose()?;
        self.done = match &result {
            Ok(_) => false,
            Err(RecordError::Damaged { damage, .. }) => damage.loses_framing(),
            Err(RecordError::Io(_)) => true,
        };
        Some(result)
    }
}

/// The data length a record header announces, once its CRC and size are checked.
pub fn check_header(header: &[u8; HEADER_BYTES as usize]) -> Result<u64, Damage> {
    let (len_bytes, crc) = header.split_at(8);
    if u32::from_le_bytes(crc.try_into().expect("4 bytes")) != masked_crc(len_bytes) {
        return Err(Damage::LengthCrc);
    }
    let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    if len > MAX_RECORD_BYTES {
        return Err(Damage::TooLong(len));
    }
    Ok(len)
}

/// The data of a record whose data and footer CRC are `bytes` (as read at a known offset after
/// its header), once the CRC matches.
pub fn check_data(bytes: &[u8]) -> Result<&[u8], Damage> {
    let split = bytes
        .len()
        .checked_sub(FOOTER_BYTES as usize)
        .ok_or(Damage::Truncated)?;
    let (data, crc) = bytes.split_at(split);
    if u32::from_le_bytes(crc.try_into().expect("4 bytes")) != masked_crc(data) {
        return Err(Damage::DataCrc);
    }
    Ok(data)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Appends records to a stream.
pub struct RecordWriter<W> {
    inner: W,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(inner: W) -> Self {
        RecordWriter { inner }
    }

    /// Writes one record (header, data, footer).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.inner.write_all(&len)?;
        self.inner.write_all(&masked_crc(&len).to_le_bytes())?;
        self.inner.write_all(data)?;
        self.inner.write_all(&masked_crc(data).to_le_bytes())
    }

    /// Flushes the stream.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// The stream, for a final flush or sync.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: &[&[u8]]) -> Vec<u8> {
        let mut writer = RecordWriter::new(Vec::new());
        for record in records {
            writer.write(record).unwrap();
        }
        writer.into_inner()
    }

    fn read_all(bytes: &[u8]) -> Vec<Result<(usize, Vec<u8>), String>> {
        RecordReader::new(bytes)
            .map(|r| r.map(|r| (r.index, r.data)).map_err(|e| e.to_string()))
            .collect()
    }

    /// The CRC-32C check value of "123456789" is 0xe3069283 (RFC 3720); the masked values are
    /// those of the spec's formula computed by the `crc32c` Python package.
    #[test]
    fn masked_crc_matches_the_definition() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc(&5u64.to_le_bytes()), 0x3e04_b2ea);
    }

    #[test]
    fn records_round_trip_with_their_offsets() {
        let bytes = framed(&[b"first", b"", b"third record"]);
        let records: Vec<Record> = RecordReader::new(&bytes[..]).map(Result::unwrap).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].offset, 0);
        assert_eq!(records[1].offset, 12 + 5 + 4);
        assert_eq!(records[2].offset, 2 * 16 + 5);
        assert_eq!(records[2].data, b"third record");
        assert_eq!(bytes.len() as u64, 3 * 16 + 5 + 12);
    }

    #[test]
    fn a_flipped_payload_bit_spoils_only_its_record() {
        let mut bytes = framed(&[b"aaaa", b"bbbb", b"cccc"]);
        // Each record of four bytes takes 20: record 1's data starts at 32.
        bytes[20 + 12 + 2] ^= 0x10;
        let read = read_all(&bytes);
        assert_eq!(read[0], Ok((0, b"aaaa".to_vec())));
        assert_eq!(
            read[1],
            Err("record 1: the data does not match its CRC".into())
        );
        assert_eq!(read[2], Ok((2, b"cccc".to_vec())));
        assert_eq!(read.len(), 3);
    }

    #[test]
    fn a_flipped_length_bit_ends_the_file_there() {
        let mut bytes = framed(&[b"aaaa", b"bbbb", b"cccc"]);
        bytes[20] ^= 0x01;
        let read = read_all(&bytes);
        assert_eq!(read.len(), 2);
        assert!(read[1]
            .as_ref()
            .unwrap_err()
            .starts_with("record 1: the length does not match"));
    }

    #[test]
    fn a_flipped_crc_bit_is_detected_too() {
        let mut bytes = framed(&[b"aaaa"]);
        bytes[9] ^= 0x80;
        assert!(read_all(&bytes)[0].is_err());
        let mut bytes = framed(&[b"aaaa"]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        assert_eq!(
            read_all(&bytes),
            vec![Err("record 0: the data does not match its CRC".into())]
        );
    }

    #[test]
    fn a_file_cut_anywhere_inside_a_record_is_truncated() {
        let bytes = framed(&[b"aaaa", b"bbbbbbbb"]);
        for cut in 21..bytes.len() {
            let read = read_all(&bytes[..cut]);
            assert_eq!(read[0], Ok((0, b"aaaa".to_vec())), "cut at {cut}");
            assert_eq!(
                read[1..],
                [Err("record 1: the file ends inside it (truncated)".into())],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_forged_huge_length_is_refused_before_allocating() {
        let len = (MAX_RECORD_BYTES + 1).to_le_bytes();
        let mut bytes = len.to_vec();
        bytes.extend(masked_crc(&len).to_le_bytes());
        let read = read_all(&bytes);
        assert_eq!(read.len(), 1);
        assert!(read[0].as_ref().unwrap_err().contains("above the limit"));
    }

    #[test]
    fn check_data_verifies_a_record_read_at_its_offset() {
        let bytes = framed(&[b"payload"]);
        assert_eq!(check_data(&bytes[12..]), Ok(&b"payload"[..]));
        let mut bad = bytes[12..].to_vec();
        bad[0] ^= 1;
        assert_eq!(check_data(&bad), Err(Damage::DataCrc));
        assert_eq!(check_data(&bytes[..3]), Err(Damage::Truncated));
    }
}
