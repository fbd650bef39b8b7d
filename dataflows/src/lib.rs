//! The prism-graph engine.
//!
//! The graph lives in differential dataflow collections (`vertices`, `edges`), arranged four
//! ways (vertex by key, edge by key, out- and in-adjacency) and sharded over timely workers.
//! Ordered write records come in (decoded from the log by the connectors), pass the
//! [`apply`] stage, and become differential updates at the record's LSN. Queries travel to
//! the workers owning their keys and read the arrangements there ([`query`]).
//!
//! This crate knows no gRPC, no Kafka and no files: see [`engine::WriteLog`] for the one
//! seam through which a log plugs in.

pub mod apply;
pub mod engine;
pub mod filter;
pub mod incremental;
pub mod limits;
pub mod louvain;
pub mod model;
pub mod paths;
pub mod query;
pub mod reader;
pub mod request_ids;
pub mod snapshot_diff;
pub mod standing_rank;
pub mod traverse;
pub mod write;

pub use engine::{ClusterConfig, CommitSink, Committed, Engine, EngineConfig, EngineError, Ticket, WriteLog};
pub use limits::{ElementLimits, MAX_VALUE_DEPTH};
pub use model::{Edge, EdgeKey, Lsn, Micros, Namespace, Properties, Value, Vertex, VertexKey};
pub use query::{Answer, Direction, Query, VertexWithEdges};
pub use write::{OpEffect, RecordOutcome, RejectKind, Rejection, WriteOp, WriteRecord};
