//! What a batch asks of each worker's keys, and how a worker finds a vertex's edges.

use serde::{Deserialize, Serialize};

use crate::state::model::{Id, Namespace, NumberedEdge, Shared, Vertex, VertexNumber};

/// The edges at a vertex, as of the state before the batch being read. The rule state keeps
/// a vertex's degree, not its edges: a cascade delete asks whoever holds them (the
/// adjacency arrangements, on the same worker as the vertex).
pub trait Incidence {
    fn edges_at(&self, namespace: &Namespace, vertex: VertexNumber) -> Vec<NumberedEdge>;
}

/// One worker's answers to a batch, per namespace it writes, as of the state before it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reads {
    pub namespaces: Vec<(Namespace, NamespaceReads)>,
}

/// One worker's answers about one namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamespaceReads {
    /// Every vertex the batch names that this worker owns, and whether it exists.
    pub vertices: Vec<(Id, Option<VertexRead>)>,
    /// Every edge id the batch names that this worker owns, and the edge if it exists.
    pub edges: Vec<(Id, Option<NumberedEdge>)>,
}

/// A vertex as the rules need it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VertexRead {
    pub number: VertexNumber,
    /// Its edges, in and out, a self-loop once.
    pub degree: u32,
    /// The vertex itself, when the batch may update or delete it (what the change retracts).
    pub vertex: Option<Shared<Vertex>>,
    /// Its edges, when the batch may delete it with them (a cascade) and it has any.
    pub incident: Vec<NumberedEdge>,
}
