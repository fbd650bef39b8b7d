//! Snapshot formats of prism-graph.
//!
//! A snapshot is RFC-055's stream of vertex and edge records (snapshot.proto), as
//! length-delimited protobuf (varint length + `SnapshotRecord`) or JSON lines, plain or
//! compressed with gzip or zstd. [`SnapshotReader`] tells them apart by their bytes, not the
//! file name, and reads them as a stream (memory does not grow with the file);
//! [`SnapshotWriter`] writes them. A metadata record opens a section: one namespace's graph,
//! with the counts it must hold and, for checkpoints, the LSN it covers.
//!
//! Like the connectors, this crate knows bytes and files, not timely.

mod check;
mod element_records;
mod format;
mod item;
mod reader;
mod records;
mod writer;

pub use check::{CheckError, SnapshotCheck};
pub use format::{Compression, Encoding};
pub use item::{Section, SnapshotEdge, SnapshotItem, SnapshotRequest, SnapshotVertex};
pub use reader::{SnapshotError, SnapshotReader};
pub use writer::SnapshotWriter;
