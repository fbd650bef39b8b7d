//! The graph as the engine hands it around: a change to one of its collections, a whole
//! graph (what a checkpoint holds), and how much a namespace holds.

use serde::{Deserialize, Serialize};

use crate::state::model::{Edge, Namespace, NumberedEdge, Shared, Vertex};
use crate::state::request_ids::Remembered;

/// A change to one of the graph's collections, produced by applying a record: the element
/// beside its namespace (it holds its own id, so no key beside it copies it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    Vertex(Namespace, Shared<Vertex>, isize),
    Edge(Namespace, NumberedEdge, isize),
}

/// How many vertices and edges a namespace holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceSize {
    pub namespace: Namespace,
    pub vertices: u64,
    pub edges: u64,
}

/// Every vertex and edge of a graph, each beside its namespace, and the request ids still
/// remembered: what a checkpoint holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WholeGraph {
    /// Each element holds its id, so no key beside it copies it.
    pub vertices: Vec<(Namespace, Shared<Vertex>)>,
    pub edges: Vec<(Namespace, Shared<Edge>)>,
    /// Oldest first.
    pub request_ids: Vec<Remembered>,
    /// Each edge's ends as the places of its vertices in `vertices`, when whoever made the
    /// graph found them and checked every id given once (a snapshot's check looks every
    /// end up anyway): a restore then numbers the ends without looking them up again.
    #[serde(default)]
    pub ends: Option<Vec<[u32; 2]>>,
}

impl WholeGraph {
    /// [`WholeGraph::ends`], if it gives every edge's.
    pub fn ends_placed(&self) -> Option<&[[u32; 2]]> {
        self.ends.as_deref().filter(|ends| ends.len() == self.edges.len())
    }
}
