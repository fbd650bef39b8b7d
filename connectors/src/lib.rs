//! Logs in and out of prism-graph.
//!
//! [`codec`] turns wal.proto bytes into the engine's write records and back; [`wal`] is the
//! embedded write-ahead log, [`kafka`] the log on an Apache Kafka topic. Both know bytes and files, not timely: they meet the engine only
//! through `prism_dataflows::WriteLog` and `CommitSink`.

pub mod codec;
pub mod json;
pub mod kafka;
pub mod wal;

pub use wal::{EmbeddedWal, Recovery, WalError, WalOptions};
