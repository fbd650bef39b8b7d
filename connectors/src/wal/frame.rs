//! The on-disk frame of one log record, and reading a segment back frame by frame.
//!
//! ```text
//! | length: u32 LE | lsn: u64 LE | payload crc32c: u32 LE | header crc32c: u32 LE | payload |
//! ```
//! The payload checksum covers the LSN and the payload; the header checksum the 16 bytes
//! before it. A valid header followed by too few bytes is a write cut short (a torn tail);
//! a header that fails its checksum is damage, even near the end, because a damaged length
//! could otherwise pass for a torn tail and silently drop the records after it.

use std::io::{self, Read};

use prism_dataflows::Lsn;

pub const HEADER_BYTES: usize = 20;

/// The largest payload a frame may declare; a larger length is taken as corruption rather
/// than an allocation request.
pub const MAX_PAYLOAD_BYTES: u32 = 256 * 1024 * 1024;

pub fn encode(lsn: Lsn, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&payload_crc(lsn, payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 16]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
}

fn payload_crc(lsn: Lsn, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), payload)
}

/// What reading the next frame found.
#[derive(Debug, PartialEq)]
pub enum Next {
    Frame {
        lsn: Lsn,
        payload: Vec<u8>,
    },
    /// Clean end of the segment.
    End,
    /// The segment ends inside a frame: a write cut short.
    Truncated,
    /// A frame whose checksum or length is wrong; `frame_bytes` is its extent when its
    /// length field is sane.
    Corrupt {
        reason: String,
        frame_bytes: Option<u64>,
    },
}

/// Reads frames from a segment, tracking the byte offset of the frame being read.
pub struct FrameReader<R> {
    inner: R,
    pub offset: u64,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader { inner, offset: 0 }
    }

    /// Reads the frame at `self.offset`; on a good frame, moves past it.
    pub fn next(&mut self) -> io::Result<Next> {
        let mut header = [0u8; HEADER_BYTES];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < HEADER_BYTES {
            return Ok(Next::Truncated);
        }
        let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let length = word(0);
        let lsn = u64::from(word(4)) | (u64::from(word(8)) << 32);
        let crc = word(12);
        let stored_header_crc = word(16);
        let header_crc = crc32c::crc32c(&header[..16]);
        if header_crc != stored_header_crc {
            let reason = format!(
                "frame header checksum mismatch (stored {stored_header_crc:#010x}, computed {header_crc:#010x})"
            );
            return Ok(Next::Corrupt { reason, frame_bytes: None });
        }
        if length > MAX_PAYLOAD_BYTES {
            let reason = format!("frame length {length} exceeds {MAX_PAYLOAD_BYTES}");
            return Ok(Next::Corrupt { reason, frame_bytes: None });
        }
        let mut payload = vec![0u8; length as usize];
        let got = read_full(&mut self.inner, &mut payload)?;
        if got < payload.len() {
            return Ok(Next::Truncated);
        }
        let actual = payload_crc(lsn, &payload);
        if actual != crc {
            let reason = format!("checksum mismatch (stored {crc:#010x}, computed {actual:#010x})");
            return Ok(Next::Corrupt { reason, frame_bytes: Some((HEADER_BYTES + payload.len()) as u64) });
        }
        self.offset += (HEADER_BYTES + payload.len()) as u64;
        Ok(Next::Frame { lsn, payload })
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            encode(i as u64 + 1, p, &mut out);
        }
        out
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let bytes = frames(&[b"one", b"", b"three"]);
        let mut reader = FrameReader::new(bytes.as_slice());
        assert_eq!(reader.next().unwrap(), Next::Frame { lsn: 1, payload: b"one".to_vec() });
        assert_eq!(reader.next().unwrap(), Next::Frame { lsn: 2, payload: vec![] });
        assert_eq!(reader.next().unwrap(), Next::Frame { lsn: 3, payload: b"three".to_vec() });
        assert_eq!(reader.next().unwrap(), Next::End);
        assert_eq!(reader.offset, bytes.len() as u64);
    }

    #[test]
    fn a_cut_frame_is_truncated_and_a_flipped_bit_corrupt() {
        let bytes = frames(&[b"one", b"two"]);
        for cut in [bytes.len() - 1, bytes.len() - 5, HEADER_BYTES + 3 + 3] {
            let mut reader = FrameReader::new(&bytes[..cut]);
            assert!(matches!(reader.next().unwrap(), Next::Frame { .. }));
            assert_eq!(reader.next().unwrap(), Next::Truncated, "cut at {cut}");
        }
        for at in [0, 5, HEADER_BYTES + 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            let next = FrameReader::new(flipped.as_slice()).next().unwrap();
            assert!(matches!(next, Next::Corrupt { .. }), "flip at {at}: {next:?}");
        }
    }

    proptest::proptest! {
        /// Whatever bytes a segment holds, reading it ends in a frame, an end, a cut or
        /// damage: never a panic, never an allocation beyond what the frame limit allows.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut reader = FrameReader::new(bytes.as_slice());
            while let Ok(Next::Frame { .. }) = reader.next() {}
            proptest::prop_assert!(reader.offset <= bytes.len() as u64);
        }

        /// Frames read back as written, and a cut anywhere in the last one is a torn tail.
        #[test]
        fn frames_round_trip_and_cuts_are_torn_tails(
            payloads in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 1..8),
            cut in proptest::num::usize::ANY,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let bytes = frames(&refs);
            let mut reader = FrameReader::new(bytes.as_slice());
            for (i, payload) in payloads.iter().enumerate() {
                proptest::prop_assert_eq!(
                    reader.next().unwrap(),
                    Next::Frame { lsn: i as u64 + 1, payload: payload.clone() }
                );
            }
            proptest::prop_assert_eq!(reader.next().unwrap(), Next::End);
            let last = bytes.len() - HEADER_BYTES - payloads[payloads.len() - 1].len();
            let cut_at = last + 1 + cut % (bytes.len() - last - 1).max(1);
            if cut_at < bytes.len() {
                let mut reader = FrameReader::new(&bytes[..cut_at]);
                for _ in 0..payloads.len() - 1 {
                    let whole = matches!(reader.next().unwrap(), Next::Frame { .. });
                    proptest::prop_assert!(whole, "a frame before the cut one did not read");
                }
                proptest::prop_assert_eq!(reader.next().unwrap(), Next::Truncated);
            }
        }
    }
}
