//! Snapshot formats of prism-graph.
//!
//! A snapshot is RFC-055's stream of `VertexRecord`s and `EdgeRecord`s (snapshot.proto), as
//! length-delimited protobuf (varint length + record) or JSON lines, plain or compressed.
//! This crate will read and write them as streams (memory does not grow with the file) and
//! turn records into the engine's write operations; the difference between a snapshot and
//! the running graph is computed by the engine, in dataflow.
//!
//! Like the connectors, it knows bytes and files, not timely.

pub use prism_proto::snapshot::{EdgeRecord, GraphSnapshot, VertexRecord};
