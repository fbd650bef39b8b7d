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
        let mut bytes = Vec::new();
        let Some(at) = self.next_raw(&mut bytes)? else { return Ok(None) };
        decode(&bytes, at).map(Some)
    }

    /// Appends the next protobuf record's bytes to `bytes`; where it starts, or `None` at a
    /// clean end of the stream.
    fn next_raw(&mut self, bytes: &mut Vec<u8>) -> Result<Option<At>, SnapshotError> {
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
        let from = bytes.len();
        bytes.resize(from + length as usize, 0);
        self.input.read_exact(&mut bytes[from..]).map_err(|e| self.error(format!("cut short: {e}")))?;
        self.offset += length;
        Ok(Some(At { record: self.record, offset: self.start }))
    }

    /// A varint length; `None` at a clean end of the stream.
    fn varint(&mut self) -> Result<Option<u64>, SnapshotError> {
        // Read where the buffer holds it whole (nearly always): a read call a byte was a
        // tenth of a checkpoint's read.
        let (record, start) = (self.record, self.start);
        let buffered = (self.input.fill_buf()).map_err(|e| SnapshotError::Record {
            record,
            offset: start,
            problem: format!("reading: {e}"),
        })?;
        if let Some(end) = buffered.iter().take(10).position(|byte| byte & 0x80 == 0) {
            let value = (buffered[..=end].iter().enumerate())
                .fold(0u64, |value, (i, byte)| value | u64::from(byte & 0x7f) << (7 * i));
            self.input.consume(end + 1);
            self.offset += end as u64 + 1;
            return Ok(Some(value));
        }
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

/// Where a record starts: its number and its byte offset in the decompressed stream.
#[derive(Clone, Copy, Debug)]
struct At {
    record: u64,
    offset: u64,
}

/// One protobuf record's bytes as an item.
fn decode(bytes: &[u8], at: At) -> Result<SnapshotItem, SnapshotError> {
    let error = |problem: String| SnapshotError::Record { record: at.record, offset: at.offset, problem };
    let record = SnapshotRecord::decode(bytes).map_err(|e| error(format!("not a SnapshotRecord: {e}")))?;
    records::item_from_proto(record).map_err(error)
}

/// Records a decoding thread takes at once.
const RECORDS_A_CHUNK: usize = if cfg!(test) { 3 } else { 4096 };

/// Records cut from the stream for one decoding thread, in order.
struct Chunk {
    sequence: u64,
    bytes: Vec<u8>,
    /// Each record's end in `bytes`, and where it started in the stream.
    records: Vec<(usize, At)>,
}

impl SnapshotReader {
    /// Calls `each` with every item, in order, made by `convert` on `threads` threads (a
    /// `convert` each, from `converter`). This thread decompresses the stream and cuts it
    /// into records, the others decode and convert them: one thread did all of it, and
    /// decoding was most of a checkpoint's read. JSON lines are read on this thread alone.
    /// Stops at the first error, in the stream's order, whether the stream's or `each`'s (a
    /// check of what the items hold stops the read at the first item it refuses).
    pub fn for_each_parallel<T, C, E>(
        mut self,
        threads: usize,
        converter: impl Fn() -> C + Sync,
        mut each: impl FnMut(T) -> Result<(), E>,
    ) -> Result<(), E>
    where
        T: Send,
        C: FnMut(SnapshotItem) -> T,
        E: From<SnapshotError>,
    {
        if self.encoding != Encoding::Protobuf || threads == 0 {
            let mut convert = converter();
            for item in self {
                each(convert(item?))?;
            }
            return Ok(());
        }
        std::thread::scope(|scope| {
            let (done, finished) = std::sync::mpsc::channel::<(u64, Result<Vec<T>, SnapshotError>)>();
            let mut decoders = Vec::with_capacity(threads);
            for _ in 0..threads {
                let (chunks, take) = std::sync::mpsc::channel::<Chunk>();
                let (done, converter) = (done.clone(), &converter);
                scope.spawn(move || {
                    let mut convert = converter();
                    for Chunk { sequence, bytes, records } in take {
                        let mut start = 0;
                        let items = (records.iter())
                            .map(|&(end, at)| {
                                let item = decode(&bytes[start..end], at).map(&mut convert);
                                start = end;
                                item
                            })
                            .collect();
                        if done.send((sequence, items)).is_err() {
                            return;
                        }
                    }
                });
                decoders.push(chunks);
            }
            drop(done);
            // Decoded chunks wait here until every one before them is handed to `each`: at
            // most two a thread are in flight, which bounds the memory.
            let mut waiting = std::collections::BTreeMap::new();
            let (mut sent, mut next) = (0u64, 0u64);
            let mut deliver = |waiting: &mut std::collections::BTreeMap<u64, Result<Vec<T>, SnapshotError>>,
                               next: &mut u64|
             -> Result<(), E> {
                while let Some(items) = waiting.remove(next) {
                    items?.into_iter().try_for_each(&mut each)?;
                    *next += 1;
                }
                Ok(())
            };
            // A record that does not frame ends the stream; the records before it are
            // delivered first, so that an earlier record's error is the one returned.
            let mut cut = Ok(());
            let mut last_bytes = 0;
            while cut.is_ok() {
                while sent - next >= 2 * threads as u64 {
                    let Ok((sequence, items)) = finished.recv() else { break };
                    waiting.insert(sequence, items);
                    deliver(&mut waiting, &mut next)?;
                }
                let mut chunk = Chunk {
                    sequence: sent,
                    // As large as the last one: grown record by record, it was copied over and over.
                    bytes: Vec::with_capacity(last_bytes),
                    records: Vec::with_capacity(RECORDS_A_CHUNK),
                };
                while chunk.records.len() < RECORDS_A_CHUNK {
                    match self.next_raw(&mut chunk.bytes) {
                        Ok(Some(at)) => chunk.records.push((chunk.bytes.len(), at)),
                        Ok(None) => break,
                        Err(error) => {
                            cut = Err(error);
                            break;
                        }
                    }
                }
                let last = chunk.records.len() < RECORDS_A_CHUNK;
                last_bytes = chunk.bytes.len();
                if !chunk.records.is_empty() && decoders[(sent % threads as u64) as usize].send(chunk).is_ok() {
                    sent += 1;
                }
                if last {
                    break;
                }
            }
            decoders.clear();
            while next < sent {
                let Ok((sequence, items)) = finished.recv() else { break };
                waiting.insert(sequence, items);
                deliver(&mut waiting, &mut next)?;
            }
            Ok(cut?)
        })
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

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;
    use crate::item::SnapshotVertex;
    use crate::writer::SnapshotWriter;

    fn snapshot(vertices: usize, compression: Compression) -> Vec<u8> {
        // The writer owns its sink: it writes into a buffer shared with this test.
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut writer = SnapshotWriter::new(Sink(shared.clone()), Encoding::Protobuf, compression).unwrap();
        writer.write(&SnapshotItem::Section(Default::default())).unwrap();
        for i in 0..vertices {
            let vertex = SnapshotVertex { id: format!("v{i}"), label: "V".into(), ..Default::default() };
            writer.write(&SnapshotItem::Vertex(vertex)).unwrap();
        }
        writer.finish().unwrap();
        let written = shared.lock().unwrap().clone();
        written
    }

    fn one_thread(bytes: &[u8]) -> Result<Vec<SnapshotItem>, String> {
        let reader = SnapshotReader::new(Cursor::new(bytes.to_vec())).map_err(|e| e.to_string())?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    fn threads(bytes: &[u8], threads: usize) -> Result<Vec<SnapshotItem>, String> {
        let reader = SnapshotReader::new(Cursor::new(bytes.to_vec())).map_err(|e| e.to_string())?;
        let mut items = Vec::new();
        reader
            .for_each_parallel(
                threads,
                || |item| item,
                |item| {
                    items.push(item);
                    Ok::<_, SnapshotError>(())
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(items)
    }

    proptest! {
        /// Whole, damaged or cut short, a snapshot read on several threads gives what one
        /// thread reads: the same items in order, or the same first error.
        #[test]
        fn several_threads_read_what_one_reads(
            vertices in 0usize..40,
            zstd in any::<bool>(),
            decoders in 1usize..4,
            damage in proptest::option::of((any::<usize>(), any::<u8>(), any::<bool>())),
        ) {
            let mut bytes = snapshot(vertices, if zstd { Compression::Zstd } else { Compression::None });
            if let Some((at, byte, cut)) = damage {
                let at = at % bytes.len();
                if cut {
                    bytes.truncate(at);
                } else {
                    bytes[at] ^= byte | 1;
                }
            }
            let read = one_thread(&bytes);
            if damage.is_none() {
                prop_assert_eq!(read.as_ref().map(Vec::len), Ok(vertices + 1));
            }
            prop_assert_eq!(threads(&bytes, decoders), read);
        }
    }
}
