//! Queries and their answers, and how a worker answers them from its arrangement shards.
//!
//! A query is routed to the worker that owns its key (the same hash the arrangements are
//! sharded by) and read there with a cursor, as of one LSN.

use std::sync::Arc;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::trace::TraceReader;
use serde::{Deserialize, Serialize};
use timely::progress::Antichain;

use crate::model::{Edge, EdgeKey, Lsn, Vertex, VertexKey};

/// A trace of `key -> value` at LSN times, as every graph arrangement is.
pub type GraphTrace<K, V> = TraceAgent<ValSpine<K, V, Lsn, isize>>;

/// The arrangements a worker reads queries from: its shard of each.
#[derive(Clone)]
pub struct Indexes {
    /// Vertex by key.
    pub vertices: GraphTrace<VertexKey, Arc<Vertex>>,
    /// Edge by key.
    pub edges: GraphTrace<EdgeKey, Arc<Edge>>,
    /// Out-adjacency: source vertex key to its outgoing edges.
    pub out_edges: GraphTrace<VertexKey, Arc<Edge>>,
    /// In-adjacency: target vertex key to its incoming edges.
    pub in_edges: GraphTrace<VertexKey, Arc<Edge>>,
}

/// A read of the graph.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Query {
    GetVertex { key: VertexKey, include_edges: bool },
    GetEdge { key: EdgeKey },
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Answer {
    Vertex(Option<VertexWithEdges>),
    Edge(Option<Arc<Edge>>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VertexWithEdges {
    pub vertex: Arc<Vertex>,
    /// Outgoing edges, then incoming ones (a self-loop once). Empty unless asked for.
    pub edges: Vec<Arc<Edge>>,
}

impl Query {
    /// The hash that routes the query to the worker owning its key. It is the hash the
    /// arrangements shard by, so the owner holds everything the query reads.
    pub fn route(&self) -> u64 {
        match self {
            Query::GetVertex { key, .. } => key.hashed(),
            Query::GetEdge { key } => key.hashed(),
        }
    }

    /// Answers the query from this worker's shards, as of `lsn`.
    pub fn answer(&self, indexes: &mut Indexes, lsn: Lsn) -> Answer {
        match self {
            Query::GetVertex { key, include_edges } => {
                let Some(vertex) = lookup(&mut indexes.vertices, key, lsn).into_iter().next() else {
                    return Answer::Vertex(None);
                };
                let mut edges = Vec::new();
                if *include_edges {
                    edges = lookup(&mut indexes.out_edges, key, lsn);
                    let incoming = lookup(&mut indexes.in_edges, key, lsn);
                    edges.extend(incoming.into_iter().filter(|e| e.from != e.to));
                }
                Answer::Vertex(Some(VertexWithEdges { vertex, edges }))
            }
            Query::GetEdge { key } => Answer::Edge(lookup(&mut indexes.edges, key, lsn).into_iter().next()),
        }
    }
}

/// The values of `key` in `trace` as of `lsn`: those whose updates at times up to `lsn` sum
/// to a positive count.
pub fn lookup<K, V>(trace: &mut GraphTrace<K, V>, key: &K, lsn: Lsn) -> Vec<V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    let mut found = Vec::new();
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return found;
    };
    let (mut cursor, storage) = cursor_list(batches);
    cursor.seek_key(&storage, key);
    if cursor.get_key(&storage) != Some(key) {
        return found;
    }
    while let Some(val) = cursor.get_val(&storage) {
        let mut count = 0isize;
        cursor.map_times(&storage, |time, diff| {
            if *time <= lsn {
                count += *diff;
            }
        });
        if count > 0 {
            found.push(val.clone());
        }
        cursor.step_val(&storage);
    }
    found
}
