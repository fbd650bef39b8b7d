//! Queries and their answers, and how a worker answers them from its arrangement shards.
//!
//! A query is routed to the worker that owns its key (the same hash the arrangements are
//! sharded by) and read there with a cursor, as of one LSN. Vertices are indexed by number;
//! a vertex named by id is found through the rule state of its owner, this worker
//! ([`Shard::numbers_of`]), and an edge named by id is read from that rule state alone
//! ([`Shard::edge_at`]).

use std::cell::RefCell;
use std::rc::Rc;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::cursor::{cursor_list, Cursor, Navigable};
use differential_dataflow::trace::TraceReader;
use serde::{Deserialize, Serialize};
use timely::progress::Antichain;

use crate::read::filter::Filter;
use crate::read::layout::{KeySpine, ValSpine};
use crate::state::model::{
    route, AdjacencyKey, Adjacent, Edge, EdgeKey, Id, Lsn, Namespace, Shared, Vertex, VertexKey, VertexNumber,
};
use crate::state::sharded::Shard;

/// A trace of `key -> value` at LSN times, as the adjacencies are.
pub type GraphTrace<K, V> = TraceAgent<ValSpine<K, V>>;

/// A trace of vertices each held as its own key in its namespace, with nothing for a value:
/// ordered by number (a vertex's first field), which is stored once, in it, and a batch
/// keeps no value offsets.
pub type VertexTrace = TraceAgent<KeySpine<(Namespace, Shared<Vertex>)>>;

/// The arrangements a worker reads queries from: its shard of each, and the rule state that
/// finds a vertex's number from its id and holds the edges.
#[derive(Clone)]
pub struct Indexes {
    /// Vertex by number: each vertex in its namespace, the vertex itself the key.
    pub vertices: VertexTrace,
    /// Out-adjacency: source vertex number to its outgoing edges.
    pub out_edges: GraphTrace<AdjacencyKey, Adjacent>,
    /// In-adjacency: target vertex number to its incoming edges.
    pub in_edges: GraphTrace<AdjacencyKey, Adjacent>,
    /// This worker's rule state: the numbers of the vertices it owns, and the edges it owns,
    /// by id.
    pub shard: Rc<RefCell<Shard>>,
}

/// Which way to follow edges from a vertex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Out,
    In,
    Both,
}

/// A read of the graph.
///
/// `Expand` and `Vertices` read many keys at once; a caller sends them only keys owned by
/// one worker (see [`crate::engine::Engine::owner_of_key`] and
/// [`crate::engine::Engine::owner_of_number`]), so they route by the first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Query {
    /// A vertex, and with `include_edges` its edges: at most `max_edges` of them (the answer
    /// says when there were more).
    GetVertex {
        key: VertexKey,
        include_edges: bool,
        max_edges: usize,
    },
    GetEdge {
        key: EdgeKey,
    },
    /// The edges of each of `sources` in `direction`, with one of `labels` (any when empty)
    /// and passing `filter`; at most `max_edges` of them in all.
    Expand {
        namespace: Namespace,
        sources: Vec<Source>,
        direction: Direction,
        labels: Vec<String>,
        filter: Option<Filter>,
        max_edges: usize,
    },
    /// The vertices of `keys`, where they exist.
    Vertices {
        keys: Vec<VertexKey>,
    },
    /// The vertices numbered `numbers` in `namespace`, where they exist: answered as
    /// `Vertices`.
    VerticesNumbered {
        namespace: Namespace,
        numbers: Vec<VertexNumber>,
    },
    /// Every vertex and edge of `namespace` (of every namespace when `None`) on `worker`:
    /// one worker's part of a whole graph, which the asker gathers from every worker.
    Shard {
        worker: usize,
        namespace: Option<Namespace>,
    },
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Answer {
    Vertex(Option<VertexWithEdges>),
    Edge(Option<Shared<Edge>>),
    /// For `Expand`: the edges followed; `truncated` when `max_edges` cut the list short;
    /// `sources`, each source's number, none for one named by id with no vertex (a vertex
    /// lives on the worker of its adjacency, so a query's start is checked with no extra
    /// round trip).
    Expanded {
        edges: Vec<Followed>,
        truncated: bool,
        sources: Vec<Option<VertexNumber>>,
    },
    /// For `Vertices`: one entry per key, in order.
    Vertices(Vec<Option<Shared<Vertex>>>),
    Shard {
        vertices: Vec<(Namespace, Shared<Vertex>)>,
        edges: Vec<(Namespace, Shared<Edge>)>,
    },
}

/// A vertex an `Expand` starts from: by its id, looked up first (a query's start), or by its
/// number, known from an edge read earlier at the same LSN (a later hop's frontier), which
/// keys its adjacency with no lookup: a vertex at an end of an edge exists as long as the
/// edge does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Id(Id),
    Number(VertexNumber),
}

/// An edge an `Expand` followed: from its `source` (the index in the query's sources) to the
/// vertex numbered `neighbour`, outward (along its direction) or not.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Followed {
    pub source: u32,
    pub neighbour: VertexNumber,
    pub edge: Shared<Edge>,
    pub outward: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VertexWithEdges {
    pub vertex: Shared<Vertex>,
    /// Outgoing edges, then incoming ones (a self-loop once). Empty unless asked for.
    pub edges: Vec<Shared<Edge>>,
    /// The vertex has more edges than the query's `max_edges`.
    pub truncated: bool,
}

impl Query {
    /// The hash that routes the query to the worker owning its key. It is the hash the
    /// arrangements shard by, so the owner holds everything the query reads.
    pub fn route(&self) -> u64 {
        match self {
            Query::GetVertex { key, .. } => key.hashed(),
            Query::GetEdge { key } => key.hashed(),
            Query::Vertices { keys } => keys.first().map_or(0, |k| k.hashed()),
            Query::VerticesNumbered { numbers, .. } => numbers.first().map_or(0, |number| number.0),
            // A number routes to its owner as the adjacencies are exchanged: by itself.
            Query::Expand { namespace, sources, .. } => match sources.first() {
                Some(Source::Id(id)) => route(namespace, id),
                Some(Source::Number(number)) => number.0,
                None => 0,
            },
            // A worker's index routes to it: timely's exchange takes it modulo the workers.
            Query::Shard { worker, .. } => *worker as u64,
        }
    }

    /// Answers the query from this worker's shards, as of `lsn`.
    pub fn answer(&self, indexes: &mut Indexes, lsn: Lsn) -> Answer {
        match self {
            Query::GetVertex { key, include_edges, max_edges } => {
                let Some(vertex) = vertex_by_id(indexes, &key.namespace, &key.id, lsn) else {
                    return Answer::Vertex(None);
                };
                let mut edges = Vec::new();
                let mut truncated = false;
                if *include_edges {
                    let key = [AdjacencyKey { number: vertex.number, namespace: key.namespace.clone() }];
                    let key = key.as_slice();
                    let mut take = |edge: &Shared<Edge>| {
                        if edges.len() < *max_edges {
                            edges.push(edge.clone());
                        } else {
                            truncated = true;
                        }
                    };
                    lookup_many(&mut indexes.out_edges, key, lsn, |_, a| take(&a.edge));
                    // A self-loop is both outgoing and incoming: list it once.
                    lookup_many(&mut indexes.in_edges, key, lsn, |_, a| {
                        if a.neighbour != vertex.number {
                            take(&a.edge)
                        }
                    });
                }
                Answer::Vertex(Some(VertexWithEdges { vertex, edges, truncated }))
            }
            Query::GetEdge { key } => Answer::Edge(indexes.shard.borrow().edge_at(&key.namespace, &key.id, lsn)),
            Query::Expand { namespace, sources, direction, labels, filter, max_edges } => {
                // Sources named by id give their numbers, which key their edges.
                let mut numbers: Vec<Option<VertexNumber>> = (sources.iter())
                    .map(|source| match source {
                        Source::Id(_) => None,
                        Source::Number(number) => Some(*number),
                    })
                    .collect();
                let by_id: Vec<(usize, (&Namespace, &str))> = (sources.iter().enumerate())
                    .filter_map(|(i, source)| match source {
                        Source::Id(id) => Some((i, (namespace, id.as_str()))),
                        Source::Number(_) => None,
                    })
                    .collect();
                let ids: Vec<(&Namespace, &str)> = by_id.iter().map(|(_, key)| *key).collect();
                vertices_by_id(indexes, &ids, lsn, |i, vertex| numbers[by_id[i].0] = Some(vertex.number));
                let numbered = (numbers.iter().enumerate()).filter_map(|(i, number)| {
                    Some((AdjacencyKey { number: (*number)?, namespace: namespace.clone() }, i))
                });
                let (adjacency_keys, at): (Vec<AdjacencyKey>, Vec<usize>) = numbered.into_iter().unzip();
                let mut edges = Vec::new();
                let mut truncated = false;
                let mut take = |index: usize, adjacent: &Adjacent, outward: bool| {
                    let edge = &adjacent.edge;
                    let wanted = (labels.is_empty() || labels.iter().any(|l| **l == *edge.label))
                        && filter.as_ref().is_none_or(|f| f.matches_edge(edge));
                    if wanted {
                        if edges.len() < *max_edges {
                            let (source, neighbour, edge) = (index as u32, adjacent.neighbour, edge.clone());
                            edges.push(Followed { source, neighbour, edge, outward });
                        } else {
                            truncated = true;
                        }
                    }
                };
                if matches!(direction, Direction::Out | Direction::Both) {
                    lookup_many(&mut indexes.out_edges, &adjacency_keys, lsn, |i, a| take(at[i], a, true));
                }
                if matches!(direction, Direction::In | Direction::Both) {
                    // Followed both ways, a self-loop is one edge, already taken outward.
                    let both = *direction == Direction::Both;
                    lookup_many(&mut indexes.in_edges, &adjacency_keys, lsn, |i, a| {
                        if !(both && a.neighbour == adjacency_keys[i].number) {
                            take(at[i], a, false)
                        }
                    });
                }
                Answer::Expanded { edges, truncated, sources: numbers }
            }
            Query::Vertices { keys } => {
                let mut found = vec![None; keys.len()];
                vertices_by_id(indexes, &ids_of(keys), lsn, |i, v| found[i] = Some(v.clone()));
                Answer::Vertices(found)
            }
            Query::VerticesNumbered { namespace, numbers } => {
                let keys: Vec<(&Namespace, VertexNumber)> = numbers.iter().map(|number| (namespace, *number)).collect();
                let mut found = vec![None; keys.len()];
                lookup_by_number(&mut indexes.vertices, &keys, lsn, |i, v| found[i] = Some(v.clone()));
                Answer::Vertices(found)
            }
            Query::Shard { namespace, .. } => {
                let wanted = |ns: &Namespace| namespace.as_ref().is_none_or(|namespace| namespace == ns);
                let mut vertices = Vec::new();
                scan(&mut indexes.vertices, lsn, |(ns, vertex), ()| {
                    if wanted(ns) {
                        vertices.push((ns.clone(), vertex.clone()));
                    }
                });
                Answer::Shard { vertices, edges: edges_held(&mut indexes.out_edges, lsn, wanted) }
            }
        }
    }
}

/// Calls `found(index, value)` for every value of every key in `keys` as of `lsn`, reading
/// the trace with one cursor, keys visited in order.
pub fn lookup_many<K, V>(trace: &mut GraphTrace<K, V>, keys: &[K], lsn: Lsn, mut found: impl FnMut(usize, &V))
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return;
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    let (mut cursor, storage) = cursor_list(batches);
    for index in order {
        let key = &keys[index];
        cursor.seek_key(&storage, key);
        if cursor.get_key(&storage) != Some(key) {
            continue;
        }
        cursor.rewind_vals(&storage);
        live_vals(&mut cursor, &storage, lsn, |val| found(index, val));
    }
}

/// Vertex keys as [`vertices_by_id`] takes them.
fn ids_of(keys: &[VertexKey]) -> Vec<(&Namespace, &str)> {
    keys.iter().map(|key| (&key.namespace, key.id.as_str())).collect()
}

/// Calls `found(index, vertex)` with the vertex live as of `lsn` numbered as each of `keys`
/// (namespace and number) says, reading the index with one cursor, keys visited in order.
/// Every vertex that ever had a number is searched, from the least vertex with it: at one
/// LSN, one at most is live.
fn lookup_by_number(
    trace: &mut VertexTrace,
    keys: &[(&Namespace, VertexNumber)],
    lsn: Lsn,
    mut found: impl FnMut(usize, &Shared<Vertex>),
) {
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return;
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    let (mut cursor, storage) = cursor_list(batches);
    for index in order {
        let (namespace, number) = keys[index];
        cursor.seek_key(&storage, &(namespace.clone(), Shared::new(Vertex::least_with_number(number))));
        while let Some((held_in, vertex)) = cursor.get_key(&storage) {
            if held_in != namespace || vertex.number != number {
                break;
            }
            // A key asked twice is met again where the first search left the cursor.
            cursor.rewind_vals(&storage);
            let mut live = false;
            live_vals(&mut cursor, &storage, lsn, |()| live = true);
            if live {
                found(index, vertex);
                break;
            }
            cursor.step_key(&storage);
        }
    }
}

/// Calls `found(index, vertex)` with the vertex live as of `lsn` of each of `keys`
/// (namespace and id), all owned by this worker: each id's numbers, from the rule state,
/// are read in the index, and the one holding a vertex with the id at `lsn` is its.
fn vertices_by_id(
    indexes: &mut Indexes,
    keys: &[(&Namespace, &str)],
    lsn: Lsn,
    mut found: impl FnMut(usize, &Shared<Vertex>),
) {
    let (mut candidates, mut of) = (Vec::with_capacity(keys.len()), Vec::with_capacity(keys.len()));
    let mut numbers = Vec::new();
    {
        let shard = indexes.shard.borrow();
        for (index, (namespace, id)) in keys.iter().enumerate() {
            numbers.clear();
            shard.numbers_of(namespace, id, &mut numbers);
            candidates.extend(numbers.iter().map(|number| (*namespace, *number)));
            of.extend(numbers.iter().map(|_| index));
        }
    }
    lookup_by_number(&mut indexes.vertices, &candidates, lsn, |candidate, vertex| {
        let index = of[candidate];
        if vertex.id == keys[index].1 {
            found(index, vertex);
        }
    });
}

/// The vertex with `id` in `namespace` as of `lsn`.
fn vertex_by_id(indexes: &mut Indexes, namespace: &Namespace, id: &str, lsn: Lsn) -> Option<Shared<Vertex>> {
    let mut found = None;
    vertices_by_id(indexes, &[(namespace, id)], lsn, |_, vertex| found = Some(vertex.clone()));
    found
}

/// Calls `found(key, value)` for every value in `trace` as of `lsn`, in key order: of a
/// [`GraphTrace`], or of a [`VertexTrace`], whose values are `()`.
pub fn scan<Tr, K, V>(trace: &mut Tr, lsn: Lsn, mut found: impl FnMut(&K, &V))
where
    Tr: TraceReader<Time = Lsn>,
    Tr::Batch: Navigable,
    for<'a> <Tr::Batch as Navigable>::Cursor: Cursor<
        Key<'a> = &'a K,
        Val<'a> = &'a V,
        TimeGat<'a> = &'a Lsn,
        DiffGat<'a> = &'a isize,
        Time = Lsn,
        Diff = isize,
    >,
    K: 'static,
    V: 'static,
{
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return;
    };
    let (mut cursor, storage) = cursor_list(batches);
    while let Some(key) = cursor.get_key(&storage) {
        live_vals(&mut cursor, &storage, lsn, |val| found(key, val));
        cursor.step_key(&storage);
    }
}

/// Every edge of this worker's out-adjacency live as of `lsn` whose namespace is `wanted`:
/// each edge once, at its source's owner. In the order their bodies lie in memory: met by
/// source, they lie anywhere, and each is touched to share it and then read by whoever
/// walks the graph (prints, a checkpoint's encoding), a cache miss each in the adjacency's
/// order (a 10M-edge graph took seconds).
fn edges_held(
    trace: &mut GraphTrace<AdjacencyKey, Adjacent>,
    lsn: Lsn,
    wanted: impl Fn(&Namespace) -> bool,
) -> Vec<(Namespace, Shared<Edge>)> {
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return Vec::new();
    };
    let (mut cursor, storage) = cursor_list(batches);
    // Sorted by one integer each, taken as they are met: the body's address (below 2^48),
    // and above it the namespace's place in `namespaces`, so that the edge's namespace
    // rides along in the same 8 bytes (and each namespace's edges come together).
    // Comparing through the references would read the batches again, out of order.
    let mut namespaces: Vec<&Namespace> = Vec::new();
    let mut live: Vec<(u64, &Shared<Edge>)> = Vec::new();
    while let Some(key) = cursor.get_key(&storage) {
        if wanted(&key.namespace) {
            let place = match namespaces.iter().position(|namespace| *namespace == &key.namespace) {
                Some(place) => place,
                None => {
                    namespaces.push(&key.namespace);
                    namespaces.len() - 1
                }
            };
            let group = (place as u64) << 48;
            live_vals(&mut cursor, &storage, lsn, |adjacent: &Adjacent| {
                live.push((group | Shared::as_ptr(&adjacent.edge) as u64, &adjacent.edge))
            });
        }
        cursor.step_key(&storage);
    }
    live.sort_unstable_by_key(|(order, _)| *order);
    live.into_iter().map(|(order, edge)| (namespaces[(order >> 48) as usize].clone(), edge.clone())).collect()
}

/// Calls `found` for each value of the cursor's current key whose updates at times up to
/// `lsn` sum to a positive count, leaving the cursor past the key's last value.
fn live_vals<'s, C, V>(cursor: &mut C, storage: &'s C::Storage, lsn: Lsn, mut found: impl FnMut(&'s V))
where
    C: Cursor<Time = Lsn, Diff = isize>,
    for<'a> C: Cursor<Val<'a> = &'a V, TimeGat<'a> = &'a Lsn, DiffGat<'a> = &'a isize>,
    V: 'static,
{
    while let Some(val) = cursor.get_val(storage) {
        let mut count = 0isize;
        cursor.map_times(storage, |time, diff| {
            if *time <= lsn {
                count += *diff;
            }
        });
        if count > 0 {
            found(val);
        }
        cursor.step_val(storage);
    }
}
