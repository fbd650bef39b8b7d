//! The wire contract of prism-graph, as prost messages.
//!
//! `graph` is the public API (`prism.graph.v1`); `wal` the log record every write path shares
//! (`prism.wal.v1`); `snapshot` the snapshot records (`prism.snapshot.v1`). The gRPC service
//! stubs are generated in the server crate, the only one that knows gRPC.

/// The generated packages, nested as their proto package names are (prost's cross-package
/// paths rely on it).
pub mod prism {
    pub mod graph {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/prism.graph.v1.rs"));
        }
    }
    pub mod snapshot {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/prism.snapshot.v1.rs"));
        }
    }
    pub mod wal {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/prism.wal.v1.rs"));
        }
    }
}

/// `prism.graph.v1`: the Graph Pattern API messages.
pub use prism::graph::v1 as graph;
/// `prism.snapshot.v1`: snapshot records.
pub use prism::snapshot::v1 as snapshot;
/// `prism.wal.v1`: the write-ahead log record.
pub use prism::wal::v1 as wal;
