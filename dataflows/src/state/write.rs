//! Write operations, as decoded from log records, and what applying them produced.
//!
//! A [`WriteRecord`] is the unit of the log: one record, one LSN. The apply stage checks each
//! operation against the rules of the graph at that LSN and reports a [`RecordOutcome`].

use serde::{Deserialize, Serialize};

use crate::state::model::{Edge, Lsn, Micros, Namespace, Properties, Shared, Vertex};

/// One write operation (RFC-055's `WALOperation`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WriteOp {
    CreateVertex {
        id: String,
        label: String,
        properties: Properties,
    },
    /// `merge`: set the given keys and keep the others; otherwise replace the map. `label`,
    /// when set, replaces the label (snapshot diffs; the RPC keeps it).
    UpdateVertex {
        id: String,
        properties: Properties,
        merge: bool,
        label: Option<String>,
    },
    /// `cascade`: delete the vertex's edges too; otherwise a vertex with edges is kept.
    DeleteVertex {
        id: String,
        cascade: bool,
    },
    CreateEdge {
        id: String,
        label: String,
        from: String,
        to: String,
        properties: Properties,
    },
    DeleteEdge {
        id: String,
    },
}

impl WriteOp {
    /// About its size in a log record (its strings and properties, with overheads that cover
    /// the encoding's): what [`batches`] splits by.
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD: usize = 32;
        OVERHEAD
            + match self {
                WriteOp::CreateVertex { id, label, properties } => id.len() + label.len() + properties.size_bytes(),
                WriteOp::UpdateVertex { id, properties, label, .. } => {
                    id.len() + label.as_ref().map_or(0, String::len) + properties.size_bytes()
                }
                WriteOp::DeleteVertex { id, .. } | WriteOp::DeleteEdge { id } => id.len(),
                WriteOp::CreateEdge { id, label, from, to, properties } => {
                    id.len() + label.len() + from.len() + to.len() + properties.size_bytes()
                }
            }
    }
}

/// Splits `ops` into runs of at most `max_ops` operations and at most about `max_bytes`
/// (a single larger operation goes alone): records a log takes.
pub fn batches(ops: Vec<WriteOp>, max_ops: usize, max_bytes: usize) -> Vec<Vec<WriteOp>> {
    let mut batcher = Batcher::new(max_ops, max_bytes);
    let mut batches: Vec<Vec<WriteOp>> = ops.into_iter().filter_map(|op| batcher.push(op)).collect();
    batches.extend(batcher.finish());
    batches
}

/// [`batches`] as the operations come, for a stream too large to hold.
pub struct Batcher {
    max_ops: usize,
    max_bytes: usize,
    current: Vec<WriteOp>,
    bytes: usize,
}

impl Batcher {
    pub fn new(max_ops: usize, max_bytes: usize) -> Self {
        Batcher { max_ops: max_ops.max(1), max_bytes, current: Vec::new(), bytes: 0 }
    }

    /// Adds `op`; the run it closed, if it starts a new one.
    pub fn push(&mut self, op: WriteOp) -> Option<Vec<WriteOp>> {
        let size = op.size_bytes();
        let mut closed = None;
        if !self.current.is_empty() && (self.current.len() >= self.max_ops || self.bytes + size > self.max_bytes) {
            closed = Some(std::mem::take(&mut self.current));
            self.bytes = 0;
        }
        self.bytes += size;
        self.current.push(op);
        closed
    }

    /// The last run, if any.
    pub fn finish(self) -> Option<Vec<WriteOp>> {
        (!self.current.is_empty()).then_some(self.current)
    }
}

/// A log record: operations applied in order at one LSN.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteRecord {
    pub namespace: Namespace,
    /// All or nothing: one failing operation rejects the whole record.
    pub atomic: bool,
    /// When the record was written; becomes `created_at`/`updated_at` of what it writes, so
    /// that replaying the log reproduces them.
    pub timestamp: Micros,
    pub ops: Vec<WriteOp>,
    /// Set by a client that may retry the write: a record whose id was applied before (in
    /// this namespace, within the retry window) changes nothing and gets the first outcome.
    pub request_id: Option<String>,
    /// Marks the LSN at which a graph was loaded in bulk into empty namespaces: the record
    /// has no operations, and the graph is in the checkpoint written at or after its LSN,
    /// not in the log. Replayed without that checkpoint, it changes nothing.
    pub bulk_load: bool,
}

/// Why an operation was rejected. The kinds map one to one onto gRPC status codes at the
/// server's edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectKind {
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    /// A limit (`max_element_bytes`) the operation would pass.
    ResourceExhausted,
}

/// An operation the rules of the graph rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub message: String,
}

impl RejectKind {
    /// Its name, as checkpoints spell it (the gRPC status it maps to).
    pub fn name(&self) -> &'static str {
        match self {
            RejectKind::NotFound => "NOT_FOUND",
            RejectKind::AlreadyExists => "ALREADY_EXISTS",
            RejectKind::FailedPrecondition => "FAILED_PRECONDITION",
            RejectKind::InvalidArgument => "INVALID_ARGUMENT",
            RejectKind::ResourceExhausted => "RESOURCE_EXHAUSTED",
        }
    }

    pub fn from_name(name: &str) -> Option<RejectKind> {
        [
            RejectKind::NotFound,
            RejectKind::AlreadyExists,
            RejectKind::FailedPrecondition,
            RejectKind::InvalidArgument,
            RejectKind::ResourceExhausted,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

impl Rejection {
    pub fn new(kind: RejectKind, message: impl Into<String>) -> Self {
        Rejection { kind, message: message.into() }
    }
}

/// What an applied operation wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpEffect {
    /// The vertex as written by a create or update.
    Vertex(Shared<Vertex>),
    /// A deleted vertex and the number of edges deleted with it.
    VertexDeleted {
        edges_deleted: u64,
    },
    Edge(Shared<Edge>),
    EdgeDeleted,
}

/// The result of applying one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordOutcome {
    pub lsn: Lsn,
    /// One entry per operation, in order. For an atomic record that was rejected, the
    /// entries stop at the failing operation and nothing was written.
    pub results: Vec<Result<OpEffect, Rejection>>,
}

impl RecordOutcome {
    /// The first rejection, with the index of its operation.
    pub fn first_rejection(&self) -> Option<(usize, &Rejection)> {
        self.results.iter().enumerate().find_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
    }
}
