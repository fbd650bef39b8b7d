//! One worker's part of the rule state: the vertices whose keys shard to it, the edges
//! whose ids do. It answers a batch's reads and applies the effects on its keys.
//!
//! A vertex's slot is the index of its number ([`VertexNumber`] is `index * workers +
//! owner`), so the numbers this worker gives are exactly its slab's, and an edge's effect
//! finds its endpoints here by number, without a string.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::state::graph::{Change, WholeGraph};
use crate::state::ids::{DenseId, Keyed, Slab};
use crate::state::model::{
    owner_of, Edge, EdgeKey, Id, Lsn, Name, Namespace, NumberedEdge, Shared, Vertex, VertexKey, VertexNumber,
};
use crate::state::names::Names;
use crate::state::sharded::reads::{Incidence, NamespaceReads, Reads, VertexRead};
use crate::state::sharded::recent::{DepartedEdge, Recent};
use crate::state::sharded::restore::{numbering, Numberings, Restore};
use crate::state::sharded::{Decided, Effect};
use crate::state::write::{WriteOp, WriteRecord};

struct VertexSlot {
    vertex: Shared<Vertex>,
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

/// What a batch asks of one worker's keys, and whether it reaches past the keys it names:
/// what tells whether a later batch may be read before this one is applied.
#[derive(Default)]
pub struct Plan {
    namespaces: Vec<(Namespace, Asked)>,
    /// It deletes a vertex of this worker: it reads a degree.
    reads_degree: bool,
    /// It deletes edges by id: their endpoints' degrees change wherever they live.
    moves_degrees: bool,
    /// It deletes a vertex with its edges: edges and degrees it does not name change.
    cascades: bool,
}

impl Plan {
    /// Whether this batch must wait for `earlier` to be applied before it is read: they
    /// share a key here, or `earlier` may change what this one reads without naming it.
    pub fn conflicts_with(&self, earlier: &Plan) -> bool {
        if self.cascades || earlier.cascades || (self.reads_degree && earlier.moves_degrees) {
            return true;
        }
        self.namespaces.iter().any(|(ns, asked)| {
            let Some((_, other)) = earlier.namespaces.iter().find(|(other, _)| other == ns) else { return false };
            // Probing the larger set with the smaller one's keys.
            let (few, many) =
                if asked.vertices.len() <= other.vertices.len() { (asked, other) } else { (other, asked) };
            let vertices = few.vertices.keys().any(|id| many.vertices.contains_key(id));
            let (few, many) = if asked.edges.len() <= other.edges.len() { (asked, other) } else { (other, asked) };
            vertices || few.edges.iter().any(|id| many.edges.contains(id))
        })
    }

    pub fn cascades(&self) -> bool {
        self.cascades
    }
}

/// What a batch asks of one namespace's keys.
#[derive(Default)]
struct Asked {
    vertices: HashMap<Id, Wanted, RandomState>,
    edges: HashSet<Id, RandomState>,
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
    /// Labels and property keys shared by the elements a restore builds here.
    names: Names,
    /// The numbers of vertices deleted here that a read may still ask for.
    vertices_departed: Recent<VertexNumber>,
    /// When the edges held here were made, if a read may still ask for an LSN before: the
    /// rule state keeps no LSN an edge (8 bytes each, for the few a read can ask about).
    edges_made: Recent<Lsn>,
    /// Edges deleted here that a read may still ask for.
    edges_departed: Recent<DepartedEdge>,
}

impl Owned {
    /// The LSN edge `id` was last made at, or 0 when that was at or before the frontier.
    fn made_at(&self, id: &str) -> Lsn {
        self.edges_made.get(id).last().copied().unwrap_or(0)
    }

    /// An edge made (or gone) moves the degrees of its ends held here; a self-loop counts once.
    fn count_degrees(&mut self, [from, to]: [VertexNumber; 2], made: bool, me: usize, workers: usize) {
        let ends = if from == to { 1 } else { 2 };
        for end in [from, to].into_iter().take(ends).filter(|end| end.owner(workers) == me) {
            if let Some(slot) = self.vertices.get_mut(slot_of(end, workers)) {
                slot.degree = if made { slot.degree + 1 } else { slot.degree.saturating_sub(1) };
            }
        }
    }
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

    /// Appends the numbers vertex `id` of `namespace`, owned here, may have had at an LSN a
    /// read may still ask for: its number now, if it exists, then those it had before its
    /// deletes still remembered. A read keeps the one whose vertex at its LSN has the id.
    pub fn numbers_of(&self, namespace: &Namespace, id: &str, numbers: &mut Vec<VertexNumber>) {
        let Some(owned) = self.namespaces.get(namespace) else { return };
        let start = numbers.len();
        if let Some(slot) = owned.vertices.find(id) {
            numbers.push(VertexNumber::new(slot as u64, self.me, self.workers));
        }
        // Freed numbers are given again most recent first, so one number may recur.
        for number in owned.vertices_departed.get(id).iter().rev() {
            if !numbers[start..].contains(number) {
                numbers.push(*number);
            }
        }
    }

    /// Edge `id` of `namespace`, owned here, as it was at `lsn` (at or after the compaction
    /// frontier), if it was live then: the one held now unless it was made after `lsn`, or
    /// else the one deleted after `lsn` that was made by then.
    pub fn edge_at(&self, namespace: &Namespace, id: &str, lsn: Lsn) -> Option<Shared<Edge>> {
        let owned = self.namespaces.get(namespace)?;
        let held = owned.edges.find(id).and_then(|slot| owned.edges.get(slot));
        if let Some(EdgeSlot(held)) = held.filter(|_| owned.made_at(id) <= lsn) {
            return Some(held.edge.clone());
        }
        let departed = owned.edges_departed.get(id).iter();
        departed.rev().find(|gone| gone.made <= lsn && lsn < gone.deleted).map(|gone| gone.edge.clone())
    }

    /// Forgets the changes at or before `lsn`: reads below the compaction frontier are
    /// refused, so none asks for an LSN before them.
    pub fn forget_through(&mut self, lsn: Lsn) {
        for owned in self.namespaces.values_mut() {
            owned.vertices_departed.forget_through(lsn);
            owned.edges_made.forget_through(lsn);
            owned.edges_departed.forget_through(lsn);
        }
    }

    /// How many vertices and edges of `namespace` this worker holds.
    #[cfg(test)]
    pub fn count(&self, namespace: &Namespace) -> [u64; 2] {
        self.namespaces.get(namespace).map_or([0, 0], |owned| [owned.vertices.len() as u64, owned.edges.len() as u64])
    }

    /// What `records` ask of this worker's keys.
    pub fn plan(&self, records: &[(Lsn, Arc<WriteRecord>)]) -> Plan {
        let mut plan = Plan::default();
        for (_, record) in records {
            let ns = &record.namespace;
            let at = match plan.namespaces.iter().position(|(asked, _)| asked == ns) {
                Some(at) => at,
                None => {
                    plan.namespaces.push((ns.clone(), Asked::default()));
                    plan.namespaces.len() - 1
                }
            };
            let asked = &mut plan.namespaces[at].1;
            // Only this worker's keys are noted: every worker sees the whole batch.
            let mine = |id: &str| self.owns_vertex(ns, id);
            for op in &record.ops {
                match op {
                    WriteOp::CreateVertex { id, .. } if mine(id) => {
                        asked.vertices.entry(id.into()).or_default();
                    }
                    WriteOp::UpdateVertex { id, .. } if mine(id) => {
                        asked.vertices.entry(id.into()).or_default().whole = true;
                    }
                    WriteOp::DeleteVertex { id, cascade } => {
                        plan.cascades |= *cascade;
                        if mine(id) {
                            plan.reads_degree = true;
                            let wanted = asked.vertices.entry(id.into()).or_default();
                            wanted.whole = true;
                            wanted.edges |= *cascade;
                        }
                    }
                    WriteOp::CreateEdge { id, from, to, .. } => {
                        if self.owns_edge(ns, id) {
                            asked.edges.insert(id.into());
                        }
                        for end in [from, to] {
                            if mine(end) {
                                asked.vertices.entry(end.into()).or_default();
                            }
                        }
                    }
                    WriteOp::DeleteEdge { id } => {
                        // Its endpoints lose an edge wherever they live, unnamed here.
                        plan.moves_degrees = true;
                        if self.owns_edge(ns, id) {
                            asked.edges.insert(id.into());
                        }
                    }
                    WriteOp::CreateVertex { .. } | WriteOp::UpdateVertex { .. } => {}
                }
            }
        }
        plan
    }

    /// The answers to `plan`, as of now (the state before its batch).
    pub fn read(&self, plan: &Plan, incidence: &dyn Incidence) -> Reads {
        let mut reads = Reads::default();
        for (ns, asked) in &plan.namespaces {
            let owned = self.namespaces.get(ns);
            let mut answers = NamespaceReads::default();
            for (id, wanted) in &asked.vertices {
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
                answers.vertices.push((id.clone(), read));
            }
            for id in &asked.edges {
                let edge = owned.and_then(|owned| owned.edges.get(owned.edges.find(id)?));
                answers.edges.push((id.clone(), edge.map(|slot| slot.0.clone())));
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
            names: Names::default(),
            vertices_departed: Recent::default(),
            edges_made: Recent::default(),
            edges_departed: Recent::default(),
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
                        let id = &edge.edge.id;
                        if created {
                            owned.edges.insert(EdgeSlot(edge.clone()));
                            owned.edges_made.remember(lsn, id, lsn);
                        } else if let Some(slot) = owned.edges.find(id) {
                            owned.edges.remove(slot);
                            let gone = DepartedEdge { made: owned.made_at(id), deleted: lsn, edge: edge.edge.clone() };
                            owned.edges_departed.remember(lsn, id, gone);
                        }
                        changes
                            .push((lsn, Change::Edge(owned.name.clone(), edge.clone(), if created { 1 } else { -1 })));
                    }
                    owned.count_degrees([edge.from, edge.to], created, me, workers);
                }
                Effect::VertexCreated(vertex) => {
                    let owned = self.owned(namespace);
                    let numbered = owned.vertices.insert(VertexSlot { vertex: vertex.clone(), degree: 0 });
                    if numbered.id() != slot_of(vertex.number, workers) {
                        tracing::error!(vertex = %vertex.id, "a vertex's number differs from its slot here");
                        debug_assert!(false, "numbers decided and given differ");
                    }
                    changes.push((lsn, Change::Vertex(owned.name.clone(), vertex.clone(), 1)));
                }
                Effect::VertexUpdated { before, after } => {
                    let owned = self.owned(namespace);
                    if let Some(slot) = owned.vertices.get_mut(slot_of(after.number, workers)) {
                        slot.vertex = after.clone();
                    }
                    changes.push((lsn, Change::Vertex(owned.name.clone(), before.clone(), -1)));
                    changes.push((lsn, Change::Vertex(owned.name.clone(), after.clone(), 1)));
                }
                Effect::VertexDeleted(vertex) => {
                    let owned = self.owned(namespace);
                    owned.vertices.remove(slot_of(vertex.number, workers));
                    owned.vertices_departed.remember(lsn, &vertex.id, vertex.number);
                    changes.push((lsn, Change::Vertex(owned.name.clone(), vertex.clone(), -1)));
                }
            }
        }
    }
}

/// A restore under way on one worker: its vertices are taken, its edges a chunk at a
/// time ([`Shard::restore_edges`]), so that their changes reach the arrangements as they are
/// made. Made all at once, a graph's changes were held whole, then again in the channels
/// and by each consumer of the edge collection before any arrangement took one: more than
/// twice the memory the graph then settled in (5.3 GiB for 10M edges that settle in 2.2).
pub struct RestoreRun {
    lsn: Lsn,
    graph: Arc<WholeGraph>,
    numberings: Numberings,
    /// The graph's next edge to take.
    next: usize,
}

impl RestoreRun {
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }
}

impl Shard {
    /// Starts taking this worker's part of `graph` at `lsn`, in the namespaces `restore`
    /// lists (empty ones), appending its vertices' changes, numbered as every worker numbers
    /// them. The edges follow through [`Shard::restore_edges`].
    pub fn restore(
        &mut self,
        lsn: Lsn,
        restore: &Restore,
        graph: Arc<WholeGraph>,
        changes: &mut Vec<(Lsn, Change)>,
    ) -> RestoreRun {
        let (me, workers) = (self.me, self.workers);
        let numberings = numbering(&graph, restore, workers);
        for (namespace, numbering) in &numberings.namespaces {
            let owned = self.owned(namespace);
            owned.vertices.reserve(numbering.taken(me) as usize);
            // Edges shard evenly by id: this worker's share, and a little more.
            owned.edges.reserve(graph.edges.len() / workers + graph.edges.len() / (workers * 32));
        }
        for (at, (namespace, vertex)) in graph.vertices.iter().enumerate() {
            let Some(number) = numberings.vertex(at) else { continue };
            if number.owner(workers) != me {
                continue;
            }
            let owned = self.owned(namespace);
            let mut vertex = Vertex::clone(vertex);
            vertex.number = number;
            owned.names.share_in(&mut vertex.label, &mut vertex.properties);
            let vertex = Shared::new(vertex);
            // A vertex given twice keeps its first number, and its first version (the
            // numbering gave the repeat none).
            let Some(slot) = owned.vertices.push(VertexSlot { vertex: vertex.clone(), degree: 0 }) else { continue };
            if slot != slot_of(number, workers) {
                tracing::error!(vertex = %vertex.id, "a restored vertex's number differs from its slot here");
                debug_assert!(false, "numbers decided and given differ");
            }
            changes.push((lsn, Change::Vertex(owned.name.clone(), vertex, 1)));
        }
        RestoreRun { lsn, graph, numberings, next: 0 }
    }

    /// Takes about `at_most` more of the run's edges, appending the changes of those whose
    /// ids this worker owns and counting the degrees of its vertices; true once every edge
    /// is taken.
    pub fn restore_edges(&mut self, run: &mut RestoreRun, at_most: usize, changes: &mut Vec<(Lsn, Change)>) -> bool {
        // Owners by hash first: numbers are looked up only where this worker needs them.
        let RestoreRun { lsn, graph, numberings, next } = run;
        let end = graph.edges.len().min(next.saturating_add(at_most.max(1)));
        let places = graph.ends_placed();
        let (me, workers) = (self.me, self.workers);
        let mut touching: Vec<Touching> = Vec::new();
        for start in (*next..end).step_by(Numberings::EDGES_AT_ONCE) {
            touching.clear();
            for at in start..end.min(start + Numberings::EDGES_AT_ONCE) {
                let (ns, edge) = &graph.edges[at];
                let mine = self.owns_edge(ns, &edge.id);
                match places {
                    // Ends given as places are numbered already, and a number names its owner.
                    Some(places) => {
                        let ends = numberings.placed(places[at]);
                        if mine || ends.is_some_and(|ends| ends.iter().any(|end| end.owner(workers) == me)) {
                            touching.push((ns, edge, mine, ends));
                        }
                    }
                    None => {
                        if mine || self.owns_vertex(ns, &edge.from) || self.owns_vertex(ns, &edge.to) {
                            touching.push((ns, edge, mine, None));
                        }
                    }
                }
            }
            // The namespaces of a graph's edges come in runs: each run's keys looked up once.
            for run in touching.chunk_by_mut(|a, b| a.0 == b.0) {
                let namespace = run[0].0;
                let Some(numbering) = numberings.namespaces.get(namespace) else { continue };
                if places.is_none() {
                    let ends = numbering.look_up_ends(run.iter().map(|(_, edge, _, _)| &***edge));
                    run.iter_mut().zip(ends).for_each(|(edge, ends)| edge.3 = ends);
                }
                let mut taking = Taking { lsn: *lsn, me, workers, label: None };
                let owned = self.owned(namespace);
                for &(_, edge, mine, ends) in run.iter() {
                    match ends {
                        Some(ends) => owned.restore_edge(&mut taking, edge, mine, ends, changes),
                        None if mine => {
                            tracing::warn!(%namespace, edge = %edge.id, "a restored edge names a vertex the graph lacks; skipped");
                        }
                        None => {}
                    }
                }
            }
        }
        *next = end;
        end == graph.edges.len()
    }
}

/// A restored edge this worker keeps or counts: its namespace, itself, whether its id is
/// ours, and its ends' numbers (none where the graph lacks an end).
type Touching<'g> = (&'g Namespace, &'g Shared<Edge>, bool, Option<[VertexNumber; 2]>);

/// A run of restored edges of one namespace being taken.
struct Taking {
    lsn: Lsn,
    me: usize,
    workers: usize,
    /// The last label met, and whether it is the one shared here already (a graph's edges
    /// come with few labels, in runs): looked up once, not once an edge.
    label: Option<(Name, bool)>,
}

impl Owned {
    /// One restored edge with its ends' numbers: kept here if its id is `mine`, and counted
    /// in the degrees of its ends held here.
    fn restore_edge(
        &mut self,
        taking: &mut Taking,
        edge: &Shared<Edge>,
        mine: bool,
        [from, to]: [VertexNumber; 2],
        changes: &mut Vec<(Lsn, Change)>,
    ) {
        if mine {
            // An edge whose names are the ones shared here already (a loader that held each
            // label once) is kept as it is, not copied.
            let label_shared = match &taking.label {
                Some((label, shared)) if Name::ptr_eq(label, &edge.label) => *shared,
                _ => {
                    let shared = Name::ptr_eq(&self.names.share(&edge.label), &edge.label);
                    taking.label = Some((edge.label.clone(), shared));
                    shared
                }
            };
            let body = if label_shared && edge.properties.is_empty() {
                edge.clone()
            } else {
                let mut body = Edge::clone(edge);
                self.names.share_in(&mut body.label, &mut body.properties);
                Shared::new(body)
            };
            let edge = NumberedEdge { from, to, edge: body };
            if self.edges.push(EdgeSlot(edge.clone())).is_none() {
                let namespace = &self.name;
                tracing::error!(%namespace, edge = %edge.edge.id, "a restored graph gives an edge id twice; the first kept");
                return;
            }
            changes.push((taking.lsn, Change::Edge(self.name.clone(), edge, 1)));
        }
        self.count_degrees([from, to], true, taking.me, taking.workers);
    }
}

/// A vertex's slot on its owner: the index of its number.
fn slot_of(number: VertexNumber, workers: usize) -> DenseId {
    number.index(workers) as DenseId
}
