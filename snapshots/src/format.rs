//! Which format a snapshot is in, told by its bytes.

/// How the bytes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// How records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// varint(length) + `SnapshotRecord`, repeated.
    Protobuf,
    /// One JSON object a line.
    JsonLines,
}

impl Compression {
    /// By the magic number at the start of the file.
    pub fn detect(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

impl Encoding {
    /// By the first decompressed bytes: JSON lines start with `{` and then `"` or `}` (after
    /// any whitespace). A protobuf stream may start with 0x7b too (a record of 123 bytes), but
    /// then a field tag follows (0x0a, 0x12, 0x1a or 0x2a), never a quote or a brace.
    pub fn detect(head: &[u8]) -> Encoding {
        let mut bytes = head.iter().filter(|b| !b.is_ascii_whitespace());
        match (bytes.next(), bytes.next()) {
            (Some(b'{'), Some(b'"' | b'}') | None) => Encoding::JsonLines,
            _ => Encoding::Protobuf,
        }
    }
}
