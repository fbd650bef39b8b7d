//! One worker's part of the rule state: the vertices whose keys shard to it, the edges
//! whose ids do. It answers a batch's reads and applies the effects on its keys.
//!
//! A vertex's slot is the index of its number ([`VertexNumber`] is `index * workers +
//! owner`), so the numbers this worker gives are exactly its slab's, and an edge's effect
//! finds its endpoints here by number, without a string.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::state::graph::Change;
use crate::state::ids::{DenseId, Keyed, Slab};
use crate::state::model::{owner_of, EdgeKey, Lsn, Namespace, NumberedEdge, Vertex, VertexKey, VertexNumber};
use crate::state::sharded::reads::{Incidence, Reads, VertexRead};
use crate::state::sharded::{Decided, Effect};
use crate::state::write::{WriteOp, WriteRecord};

struct VertexSlot {
    vertex: Arc<Vertex>,
    degree: u32,
}

impl Keyed for VertexSlot {
    fn key(&self) -> &str {
        &self.vertex.id
    }
}

struct EdgeSlot(NumberedEdge);

impl Keyed for EdgeSlot {
    fn key(&self) -> &str {
        &self.0.edge.id
    }
}

/// One namespace's keys on this worker.
struct Owned {
    /// The one copy of the namespace's name the keys made here share.
    name: Namespace,
    vertices: Slab<VertexSlot>,
    edges: Slab<EdgeSlot>,
}

/// One worker's vertices and edges, as the rules need them.
pub struct Shard {
    me: usize,
    workers: usize,
    namespaces: HashMap<Namespace, Owned, RandomState>,
}

impl Shard {
    pub fn new(me: usize, workers: usize) -> Self {
        Shard { me, workers, namespaces: HashMap::default() }
    }

    fn owns_vertex(&self, namespace: &Namespace, id: &str) -> bool {
        owner_of(VertexKey::route(namespace, id), self.workers) == self.me
    }

    fn owns_edge(&self, namespace: &Namespace, id: &str) -> bool {
        owner_of(EdgeKey::route(namespace, id), self.workers) == self.me
    }

    /// How many vertices and edges of `namespace` this worker holds.
    pub fn count(&self, namespace: &Namespace) -> [u64; 2] {
        self.namespaces.get(namespace).map_or([0, 0], |owned| [owned.vertices.len() as u64, owned.edges.len() as u64])
    }

    /// What `records` ask of this worker's keys, as of now (the state before them).
    pub fn read(&self, records: &[(Lsn, Arc<WriteRecord>)], incidence: &dyn Incidence) -> Reads {
        let mut vertices: HashSet<(&Namespace, &str), RandomState> = HashSet::default();
        let mut cascades: HashSet<(&Namespace, &str), RandomState> = HashSet::default();
        let mut edges: HashSet<(&Namespace, &str), RandomState> = HashSet::default();
        let mut creates: HashMap<&Namespace, usize, RandomState> = HashMap::default();
        let mut namespaces: Vec<&Namespace> = Vec::new();
        for (_, record) in records {
            let ns = &record.namespace;
            if !namespaces.contains(&ns) {
                namespaces.push(ns);
            }
            for op in &record.ops {
                match op {
                    WriteOp::CreateVertex { id, .. } => {
                        if self.owns_vertex(ns, id) {
                            vertices.insert((ns, id));
                            *creates.entry(ns).or_default() += 1;
                        }
                    }
                    WriteOp::UpdateVertex { id, .. } => {
                        vertices.insert((ns, id));
                    }
                    WriteOp::DeleteVertex { id, cascade } => {
                        vertices.insert((ns, id));
                        if *cascade {
                            cascades.insert((ns, id));
                        }
                    }
                    WriteOp::CreateEdge { id, from, to, .. } => {
                        edges.insert((ns, id));
                        vertices.insert((ns, from));
                        vertices.insert((ns, to));
                    }
                    WriteOp::DeleteEdge { id } => {
                        edges.insert((ns, id));
                    }
                }
            }
        }
        let mut reads = Reads::default();
        for (ns, id) in vertices {
            if !self.owns_vertex(ns, id) {
                continue;
            }
            let read = self.vertex(ns, id).map(|slot| VertexRead {
                vertex: slot.vertex.clone(),
                degree: slot.degree,
                incident: if slot.degree > 0 && cascades.contains(&(ns, id)) {
                    incidence.edges_at(ns, slot.vertex.number)
                } else {
                    Vec::new()
                },
            });
            reads.vertices.push((ns.clone(), id.into(), read));
        }
        for (ns, id) in edges {
            if self.owns_edge(ns, id) {
                let edge = self.namespaces.get(ns).and_then(|owned| owned.edges.get(owned.edges.find(id)?));
                reads.edges.push((ns.clone(), id.into(), edge.map(|slot| slot.0.clone())));
            }
        }
        for (ns, n) in creates {
            let next = self.namespaces.get(ns).map(|owned| owned.vertices.next_numbers(n)).unwrap_or_default();
            reads.numbers.push((ns.clone(), next));
        }
        reads.counts = namespaces.into_iter().map(|ns| (ns.clone(), self.count(ns))).collect();
        reads
    }

    fn vertex(&self, namespace: &Namespace, id: &str) -> Option<&VertexSlot> {
        let owned = self.namespaces.get(namespace)?;
        owned.vertices.get(owned.vertices.find(id)?)
    }

    fn owned(&mut self, namespace: &Namespace) -> &mut Owned {
        self.namespaces.entry(namespace.clone()).or_insert_with(|| Owned {
            name: namespace.clone(),
            vertices: Slab::default(),
            edges: Slab::default(),
        })
    }

    /// Applies the parts of `effects` on this worker's keys, appending the collections'
    /// changes, each at its record's LSN.
    pub fn apply<'a>(&mut self, effects: impl IntoIterator<Item = &'a Decided>, changes: &mut Vec<(Lsn, Change)>) {
        let (me, workers) = (self.me, self.workers);
        for Decided { lsn, namespace, effect } in effects {
            let owns_edge = |edge: &NumberedEdge| self.owns_edge(namespace, &edge.edge.id);
            let lsn = *lsn;
            match effect {
                Effect::EdgeCreated(edge) | Effect::EdgeDeleted(edge) => {
                    let created = matches!(effect, Effect::EdgeCreated(_));
                    let mine = owns_edge(edge);
                    let owned = self.owned(namespace);
                    if mine {
                        let key = EdgeKey::new(&owned.name, &edge.edge.id);
                        if created {
                            owned.edges.insert(EdgeSlot(edge.clone()));
                        } else if let Some(id) = owned.edges.find(&edge.edge.id) {
                            owned.edges.remove(id);
                        }
                        changes.push((lsn, Change::Edge(key, edge.clone(), if created { 1 } else { -1 })));
                    }
                    let ends = if edge.from == edge.to { 1 } else { 2 };
                    for end in [edge.from, edge.to].into_iter().take(ends) {
                        if end.owner(workers) == me {
                            if let Some(slot) = owned.vertices.get_mut(slot_of(end, workers)) {
                                slot.degree = if created { slot.degree + 1 } else { slot.degree.saturating_sub(1) };
                            }
                        }
                    }
                }
                Effect::VertexCreated(vertex) => {
                    let owned = self.owned(namespace);
                    let numbered = owned.vertices.insert(VertexSlot { vertex: vertex.clone(), degree: 0 });
                    if numbered.id() != slot_of(vertex.number, workers) {
                        tracing::error!(vertex = %vertex.id, "a vertex's number differs from its slot here");
                        debug_assert!(false, "numbers decided and given differ");
                    }
                    changes.push((lsn, Change::Vertex(VertexKey::new(&owned.name, &vertex.id), vertex.clone(), 1)));
                }
                Effect::VertexUpdated { before, after } => {
                    let owned = self.owned(namespace);
                    if let Some(slot) = owned.vertices.get_mut(slot_of(after.number, workers)) {
                        slot.vertex = after.clone();
                    }
                    let key = VertexKey::new(&owned.name, &after.id);
                    changes.push((lsn, Change::Vertex(key.clone(), before.clone(), -1)));
                    changes.push((lsn, Change::Vertex(key, after.clone(), 1)));
                }
                Effect::VertexDeleted(vertex) => {
                    let owned = self.owned(namespace);
                    owned.vertices.remove(slot_of(vertex.number, workers));
                    changes.push((lsn, Change::Vertex(VertexKey::new(&owned.name, &vertex.id), vertex.clone(), -1)));
                }
            }
        }
    }
}

/// A vertex's slot on its owner: the index of its number.
fn slot_of(number: VertexNumber, workers: usize) -> DenseId {
    number.index(workers) as DenseId
}
