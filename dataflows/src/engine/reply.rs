//! What the engine answers: every reply a request can get, and why one could not be served.
//!
//! A leaf of the engine: the request dataflow, the algorithm loop and the front all speak
//! these types, and this module knows none of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::algorithms::{Grouped, Ranked};
use crate::read::query::Answer;
use crate::state::model::{Edge, Lsn, Shared, Vertex};
use crate::state::write::RecordOutcome;

/// What a request gets back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    Read(Result<(Lsn, Answer), EngineError>),
    Write(Result<RecordOutcome, EngineError>),
    /// PageRank scores, highest first, with the LSN they were computed at.
    Ranked(Result<Ranked, EngineError>),
    /// Communities, with the LSN they were computed at.
    Communities(Result<Grouped, EngineError>),
    /// The request ids remembered for the records through an LSN (worker 0 only).
    RequestIds(Vec<crate::state::request_ids::Remembered>),
    /// The writer process has recovered, with this LSN applied.
    Recovered(Lsn),
    /// Vertices and edges per namespace (worker 0 only).
    Sizes(Vec<crate::state::graph::NamespaceSize>),
}

/// Why the engine could not serve a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EngineError {
    #[error("this server has no write-ahead log attached (still recovering, or not the writer)")]
    NoLog,
    #[error("the write-ahead log failed: {0}")]
    Log(String),
    /// A limit the request would pass (the message names it): a record beyond the log's size
    /// limit (nothing was written), a standing PageRank beyond the cap.
    #[error("{0}")]
    Limit(String),
    #[error("LSN {wanted} is not applied yet (applied: {applied})")]
    LsnNotApplied { wanted: Lsn, applied: Lsn },
    #[error("LSN {lsn} is no longer readable (compacted up to {since}); the query ran longer than the read hold")]
    Compacted { lsn: Lsn, since: Lsn },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the engine is shutting down")]
    Shutdown,
    #[error("could not start the workers: {0}")]
    Start(String),
    #[error("{0}")]
    Subscription(String),
    #[error("{0}")]
    NotHere(String),
}

/// A namespace's graph at an LSN, sharing the engine's vertices and edges.
pub type NamespaceGraph = (Lsn, Vec<Shared<Vertex>>, Vec<Shared<Edge>>);
