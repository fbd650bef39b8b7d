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
use crate::state::sharded::reads::{Incidence, NamespaceReads, Reads, VertexRead};
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

/// What a batch asks of one namespace's keys.
#[derive(Default)]
struct Asked<'a> {
    vertices: HashMap<&'a str, Wanted, RandomState>,
    edges: HashSet<&'a str, RandomState>,
    creates: usize,
}

/// What a batch wants of a vertex beyond whether it exists.
#[derive(Default)]
struct Wanted {
    /// The vertex itself: an update or delete.
    whole: bool,
    /// Its edges: a cascade.
    edges: bool,
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
        let mut asked: Vec<(&Namespace, Asked)> = Vec::new();
        for (_, record) in records {
            let ns = &record.namespace;
            let at = match asked.iter().position(|(asked, _)| *asked == ns) {
                Some(at) => at,
                None => {
                    asked.push((ns, Asked::default()));
                    asked.len() - 1
                }
            };
            let asked = &mut asked[at].1;
            // Only this worker's keys are noted: every worker sees the whole batch.
            let mine = |id: &str| self.owns_vertex(ns, id);
            for op in &record.ops {
                match op {
                    WriteOp::CreateVertex { id, .. } if mine(id) => {
                        asked.vertices.entry(id).or_default();
                        asked.creates += 1;
                    }
                    WriteOp::UpdateVertex { id, .. } if mine(id) => asked.vertices.entry(id).or_default().whole = true,
                    WriteOp::DeleteVertex { id, cascade } if mine(id) => {
                        let wanted = asked.vertices.entry(id).or_default();
                        wanted.whole = true;
                        wanted.edges |= *cascade;
                    }
                    WriteOp::CreateEdge { id, from, to, .. } => {
                        if self.owns_edge(ns, id) {
                            asked.edges.insert(id);
                        }
                        for end in [from, to] {
                            if mine(end) {
                                asked.vertices.entry(end).or_default();
                            }
                        }
                    }
                    WriteOp::DeleteEdge { id } if self.owns_edge(ns, id) => {
                        asked.edges.insert(id);
                    }
                    _ => {}
                }
            }
        }
        let mut reads = Reads::default();
        for (ns, asked) in asked {
            let owned = self.namespaces.get(ns);
            let mut answers = NamespaceReads { count: self.count(ns), ..Default::default() };
            for (id, wanted) in asked.vertices {
                let slot = owned.and_then(|owned| owned.vertices.get(owned.vertices.find(id)?));
                let read = slot.map(|slot| VertexRead {
                    number: slot.vertex.number,
                    degree: slot.degree,
                    vertex: wanted.whole.then(|| slot.vertex.clone()),
                    incident: if wanted.edges && slot.degree > 0 {
                        incidence.edges_at(ns, slot.vertex.number)
                    } else {
                        Vec::new()
                    },
                });
                answers.vertices.push((id.into(), read));
            }
            for id in asked.edges {
                let edge = owned.and_then(|owned| owned.edges.get(owned.edges.find(id)?));
                answers.edges.push((id.into(), edge.map(|slot| slot.0.clone())));
            }
            if asked.creates > 0 {
                answers.numbers =
                    Some(owned.map(|owned| owned.vertices.next_numbers(asked.creates)).unwrap_or_default());
            }
            reads.namespaces.push((ns.clone(), answers));
        }
        reads
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
