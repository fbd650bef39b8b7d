//! The prism-graph engine.
//!
//! The graph lives in differential dataflow collections (`vertices`, `edges`), arranged three
//! ways (vertex by number, out- and in-adjacency) and sharded over timely workers; an edge
//! named by id is found in its owner's rule state.
//! Ordered write records come in (decoded from the log by the connectors), pass the apply
//! stage, and become differential updates at the record's LSN. Queries travel to the workers
//! owning their keys and read the arrangements there.
//!
//! The crate is split by concern:
//! - `state`: the domain types, write records, the limits and the apply rules;
//! - `read`: cursor reads on a worker's shard, and traversals and paths built on them;
//! - `algorithms`: one file per graph algorithm, knowing nothing of timely;
//! - `engine`: the timely workers, the dataflows, and the [`Engine`] handle.
//!
//! This crate knows no gRPC, no Kafka and no files: a log plugs in through [`WriteLog`] and
//! [`CommitSink`]. Everything a caller uses is re-exported here; no trace type leaves it.

mod algorithms;
mod engine;
mod read;
mod state;

// The engine, and the seam through which a log plugs in.
pub use engine::{
    ClusterConfig, CommitSink, Committed, Engine, EngineConfig, EngineError, FeedError, NamespaceGraph, PageRankFeed,
    Subscribed, Ticket, WriteLog,
};

// The graph's types and the records that change it.
pub use state::graph::{Change, NamespaceSize, WholeGraph};
pub use state::id_table::IdTable;
pub use state::limits::{self, Capacities, Capacity, ElementLimits, MAX_VALUE_DEPTH};
pub use state::model::{
    Edge, EdgeKey, Id, Lsn, Micros, Name, Namespace, NumberedEdge, Properties, Shared, Text, Value, Vertex, VertexKey,
    VertexNumber,
};
pub use state::request_ids::{Remembered, RequestIdLimits};
pub use state::snapshot_diff;
pub use state::write::{batches, Batcher, OpEffect, RecordOutcome, RejectKind, Rejection, WriteOp, WriteRecord};

// Reads: one key, and the multi-step queries.
pub use read::filter::{Filter, Operator, Predicate};
pub use read::paths::{
    all_paths, detect_cycles, shortest_path, AllPaths, Cycles, FoundPaths, PathLimits, ShortestPath,
};
pub use read::query::{Answer, Direction, Query, VertexWithEdges};
pub use read::reader::QueryError;
pub use read::traverse::{traverse, Path, Step, Traversal, TraversalLimits, Traversed};

// Algorithms: one-shot, and the standing PageRank a subscription follows.
pub use algorithms::standing_page_rank::{RankUpdate, StandingPageRank, SubscriptionParams};
pub use algorithms::{Community, CommunityAlgorithm, CommunityParams, Grouped, PageRankParams, Ranked};
