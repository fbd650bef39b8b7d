//! Reads a snapshot as a stream of items, whatever its format; every error names the record
//! number and the byte offset (in the decompressed stream) where it was found.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use prism_proto::snapshot::SnapshotRecord;
use prost::Message;

use crate::format::{Compression, Encoding};
use crate::item::SnapshotItem;
use crate::records;

/// Largest record accepted: a length beyond it is damage, not a record.
const MAX_RECORD_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("record {record} (starting at byte {offset}): {problem}")]
    Record { record: u64, offset: u64, problem: String },
    #[error("writing: {0}")]
    Write(#[from] std::io::Error),
}

pub struct SnapshotReader {
    input: Box<dyn BufRead + Send>,
    encoding: Encoding,
    compression: Compression,
    /// Records read so far (the next one is `record + 1`).
    record: u64,
    /// Bytes consumed so far in the decompressed stream.
    offset: u64,
    /// Where the record being read starts (what errors name).
    start: u64,
    line: String,
}

impl SnapshotReader {
    pub fn open(path: &Path) -> Result<SnapshotReader, SnapshotError> {
        let open = |source| SnapshotError::Open { path: path.display().to_string(), source };
        let file = File::open(path).map_err(open)?;
        SnapshotReader::new(file).map_err(open)
    }

    /// Reads from any byte source (a file, standard input, a network stream).
    pub fn new(source: impl Read + Send + 'static) -> std::io::Result<SnapshotReader> {
        let mut raw = BufReader::with_capacity(1 << 16, source);
        let compression = Compression::detect(raw.fill_buf()?);
        let mut input: Box<dyn BufRead + Send> = match compression {
            Compression::None => Box::new(raw),
            Compression::Gzip => Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(raw))),
            Compression::Zstd => Box::new(BufReader::with_capacity(1 << 16, zstd::Decoder::with_buffer(raw)?)),
        };
        let encoding = Encoding::detect(input.fill_buf()?);
        Ok(SnapshotReader { input, encoding, compression, record: 0, offset: 0, start: 0, line: String::new() })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    fn error(&self, problem: impl Into<String>) -> SnapshotError {
        SnapshotError::Record { record: self.record, offset: self.start, problem: problem.into() }
    }

    fn next_protobuf(&mut self) -> Result<Option<SnapshotItem>, SnapshotError> {
        self.start = self.offset;
        // Counted before its length is read, so that a bad length names this record.
        self.record += 1;
        let Some(length) = self.varint()? else {
            self.record -= 1;
            return Ok(None);
        };
        if length > MAX_RECORD_BYTES {
            return Err(self.error(format!(
                "record length {length} is beyond {MAX_RECORD_BYTES} bytes: not a snapshot, or damaged"
            )));
        }
        let mut bytes = vec![0u8; length as usize];
        self.input.read_exact(&mut bytes).map_err(|e| self.error(format!("cut short: {e}")))?;
        self.offset += length;
        let record =
            SnapshotRecord::decode(bytes.as_slice()).map_err(|e| self.error(format!("not a SnapshotRecord: {e}")))?;
        records::item_from_proto(record).map(Some).map_err(|e| self.error(e))
    }

    /// A varint length; `None` at a clean end of the stream.
    fn varint(&mut self) -> Result<Option<u64>, SnapshotError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8];
            match self.input.read(&mut byte) {
                Ok(0) if shift == 0 => return Ok(None),
                Ok(0) => return Err(self.error("cut short inside a length varint")),
                Ok(_) => {}
                Err(e) => return Err(self.error(format!("reading: {e}"))),
            }
            self.offset += 1;
            value |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(self.error("bad length varint (longer than 10 bytes)"))
    }

    fn next_json(&mut self) -> Result<Option<SnapshotItem>, SnapshotError> {
        loop {
            self.line.clear();
            self.start = self.offset;
            let read = self.input.read_line(&mut self.line).map_err(|e| self.error(format!("reading: {e}")))?;
            if read == 0 {
                return Ok(None);
            }
            self.offset += read as u64;
            if self.line.trim().is_empty() {
                continue;
            }
            self.record += 1;
            let json = prism_connectors::json::parse(&self.line).map_err(|e| self.error(format!("not JSON: {e}")))?;
            return records::item_from_json(&json).map(Some).map_err(|e| self.error(e));
        }
    }
}

impl Iterator for SnapshotReader {
    type Item = Result<SnapshotItem, SnapshotError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match self.encoding {
            Encoding::Protobuf => self.next_protobuf(),
            Encoding::JsonLines => self.next_json(),
        };
        item.transpose()
    }
}
