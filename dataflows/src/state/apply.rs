//! The apply stage: checks each log record against the rules of the graph and turns it into
//! differential updates (retract the old version, insert the new one).
//!
//! It runs on one worker, in log order, so that every server following a log decides every
//! record alike. It keeps only what the rules need, per namespace: each vertex and edge
//! numbered densely ([`crate::state::ids`]) with its string id indexed once, each edge's
//! endpoints, and per vertex the numbers of its edges, each edge knowing its place in both
//! endpoints' lists: adding or removing an edge is constant time, and a cascade delete is
//! linear in the vertex's degree, however many edges its neighbours have. (An ordered set of
//! (vertex, edge) pairs did the same in less code, but its inserts missed the cache at every
//! level and took a fifth of the apply stage's loading time.) Vertices and edges are the `Arc`s the
//! arrangements hold, so nothing is stored twice in a process: they are what a change
//! retracts.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::state::graph::{Change, NamespaceSize, WholeGraph};
use crate::state::ids::{DenseId, Keyed, Numbered, Slab, Taken, VertexNumbers};
use crate::state::limits::{Capacities, Capacity, ElementLimits};
use crate::state::model::{Edge, Lsn, Namespace, NumberedEdge, Properties, Shared, Vertex, VertexNumber};
use crate::state::names::Names;
use crate::state::request_ids::{First, Remembered, RequestIdLimits, RequestIds};
use crate::state::rules::{check_element, reject, require_id, room_for};
use crate::state::write::{OpEffect, RecordOutcome, RejectKind, Rejection, WriteOp, WriteRecord};

struct VertexSlot {
    vertex: Shared<Vertex>,
    /// Its edges, in and out (a self-loop once), in no order.
    edges: Vec<DenseId>,
}

impl Keyed for VertexSlot {
    fn key(&self) -> &str {
        &self.vertex.id
    }
}

#[derive(Clone)]
struct EdgeSlot {
    edge: Shared<Edge>,
    from: DenseId,
    to: DenseId,
    /// Its places in `from`'s and `to`'s lists of edges (the same for a self-loop).
    at_from: u32,
    at_to: u32,
}

impl EdgeSlot {
    /// Its endpoints with its places in their lists, a self-loop's once. No allocation:
    /// this runs for every edge added, removed or undone.
    fn places(&self) -> impl DoubleEndedIterator<Item = (DenseId, u32)> {
        let ends = if self.from == self.to { 1 } else { 2 };
        [(self.from, self.at_from), (self.to, self.at_to)].into_iter().take(ends)
    }

    /// Its place in `vertex`'s list, set (an edge moved there).
    fn place_at(&mut self, vertex: DenseId, place: u32) {
        if self.from == vertex {
            self.at_from = place;
        }
        if self.to == vertex {
            self.at_to = place;
        }
    }
}

impl Keyed for EdgeSlot {
    fn key(&self) -> &str {
        &self.edge.id
    }
}

/// One namespace's graph as the rules need it.
struct NamespaceState {
    /// The one copy of the namespace's name that every key made here shares.
    name: Namespace,
    vertices: Slab<VertexSlot>,
    edges: Slab<EdgeSlot>,
    numbers: VertexNumbers,
    names: Names,
    capacity: Capacity,
}

impl NamespaceState {
    fn new(name: Namespace, workers: usize, capacity: Capacity) -> Self {
        NamespaceState {
            name,
            vertices: Slab::default(),
            edges: Slab::default(),
            numbers: VertexNumbers::new(workers),
            names: Names::default(),
            capacity,
        }
    }

    /// `properties` with their keys shared.
    fn named(&mut self, properties: &Properties) -> Properties {
        let mut properties = properties.clone();
        properties.share_keys(|key| self.names.share(key));
        properties
    }
}

/// One step an atomic record took, kept so that a rejection can take it back.
enum Step {
    VertexCreated(Numbered, Taken),
    VertexUpdated(DenseId, Shared<Vertex>),
    VertexDeleted(DenseId, VertexSlot),
    EdgeCreated(Numbered),
    EdgeDeleted(DenseId, EdgeSlot),
}

/// The current graph as the apply stage needs it.
pub struct ApplyState {
    // foldhash rather than SipHash: this map is on the write path of every record, and
    // its keys come from the log, not from an adversary choosing hash collisions per server.
    namespaces: HashMap<Namespace, NamespaceState, RandomState>,
    limits: ElementLimits,
    capacities: Capacities,
    request_ids: RequestIds,
    /// The number of workers vertex numbers are spread over.
    workers: usize,
}

impl ApplyState {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::with_limits(ElementLimits::default(), Capacities::default(), RequestIdLimits::default(), 1)
    }

    /// An empty graph whose elements are held to `limits` and namespaces to `capacities`,
    /// remembering request ids within `request_ids`, numbering vertices for `workers` workers.
    pub fn with_limits(
        limits: ElementLimits,
        capacities: Capacities,
        request_ids: RequestIdLimits,
        workers: usize,
    ) -> Self {
        let request_ids = RequestIds::new(request_ids);
        ApplyState { namespaces: HashMap::default(), limits, capacities, request_ids, workers }
    }

    fn namespace(&mut self, namespace: &Namespace) -> &mut NamespaceState {
        let (workers, capacities) = (self.workers, &self.capacities);
        self.namespaces
            .entry(namespace.clone())
            .or_insert_with(|| NamespaceState::new(namespace.clone(), workers, capacities.of(namespace)))
    }

    /// Vertices and edges per namespace, in namespace order.
    pub fn sizes(&self) -> Vec<NamespaceSize> {
        let mut sizes: Vec<_> = self
            .namespaces
            .iter()
            .map(|(namespace, state)| NamespaceSize {
                namespace: namespace.clone(),
                vertices: state.vertices.len() as u64,
                edges: state.edges.len() as u64,
            })
            .collect();
        sizes.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        sizes
    }

    #[cfg(test)]
    pub fn vertex_count(&self) -> usize {
        self.namespaces.values().map(|state| state.vertices.len()).sum()
    }

    #[cfg(test)]
    pub fn edge_count(&self) -> usize {
        self.namespaces.values().map(|state| state.edges.len()).sum()
    }

    /// The dense id of a vertex of the default namespace.
    #[cfg(test)]
    fn dense_vertex(&self, id: &str) -> Option<DenseId> {
        self.namespaces.get(&Namespace::default())?.vertices.find(id)
    }

    /// Puts back a whole graph from a checkpoint (into an empty state: no rules are checked,
    /// the checkpoint was a valid graph), numbering its vertices, and appends its updates to
    /// `changes`.
    pub fn restore_checkpoint(&mut self, graph: WholeGraph, changes: &mut Vec<Change>) {
        for (namespace, mut vertex) in graph.vertices {
            let state = self.namespace(&namespace);
            if state.vertices.find(&vertex.id).is_none() {
                let vertex_mut = Shared::make_mut(&mut vertex);
                vertex_mut.number = state.numbers.take_for(&state.name, &vertex_mut.id).number;
                state.names.share_in(&mut vertex_mut.label, &mut vertex_mut.properties);
                changes.push(Change::Vertex(state.name.clone(), vertex.clone(), 1));
                state.vertices.insert(VertexSlot { vertex, edges: Vec::new() });
            }
        }
        for (namespace, mut edge) in graph.edges {
            let state = self.namespace(&namespace);
            let (Some(from), Some(to)) = (state.vertices.find(&edge.from), state.vertices.find(&edge.to)) else {
                tracing::warn!(%namespace, edge = %edge.id, "a checkpoint's edge names a vertex it lacks; skipped");
                continue;
            };
            if state.edges.find(&edge.id).is_some() {
                continue;
            }
            let edge_mut = Shared::make_mut(&mut edge);
            state.names.share_in(&mut edge_mut.label, &mut edge_mut.properties);
            changes.push(Change::Edge(state.name.clone(), state.numbered(&edge, from, to), 1));
            state.add_edge(edge, from, to);
        }
        for remembered in graph.request_ids {
            let Remembered { namespace, request_id, timestamp, outcome } = remembered;
            self.request_ids.remember(&namespace, &request_id, timestamp, First::Decided(outcome));
        }
    }

    /// Every vertex and edge of every namespace, as they are now (shared, not copied).
    pub fn whole_graph(&self) -> WholeGraph {
        let mut whole = WholeGraph { request_ids: self.request_ids.remembered(Lsn::MAX), ..WholeGraph::default() };
        for (namespace, state) in &self.namespaces {
            whole.vertices.extend(state.vertices.iter().map(|(_, slot)| (namespace.clone(), slot.vertex.clone())));
            whole.edges.extend(state.edges.iter().map(|(_, slot)| (namespace.clone(), slot.edge.clone())));
        }
        whole
    }

    /// Applies `record` at `lsn`, appending the differential updates it makes to `changes`.
    /// A record whose request id was applied before changes nothing and returns the first
    /// outcome (its LSN that of the first).
    pub fn apply(&mut self, lsn: Lsn, record: &WriteRecord, changes: &mut Vec<Change>) -> RecordOutcome {
        let Some(request_id) = record.request_id.as_deref().filter(|id| !id.is_empty()) else {
            return self.apply_ops(lsn, record, changes);
        };
        if let Some(first) = self.request_ids.outcome(&record.namespace, request_id) {
            return first.clone();
        }
        let outcome = self.apply_ops(lsn, record, changes);
        self.request_ids.remember(&record.namespace, request_id, record.timestamp, First::Decided(outcome.clone()));
        outcome
    }

    fn apply_ops(&mut self, lsn: Lsn, record: &WriteRecord, changes: &mut Vec<Change>) -> RecordOutcome {
        let start = changes.len();
        let mut steps = Vec::new();
        let mut undo = record.atomic.then_some(&mut steps);
        let limits = self.limits;
        let state = self.namespace(&record.namespace);
        // The keys share the namespace's one name, not this record's copy of it.
        let ns = state.name.clone();
        let mut results = Vec::with_capacity(record.ops.len());
        for op in &record.ops {
            let result = state.apply_op(&ns, record.timestamp, op, &limits, changes, &mut undo);
            let rejected = result.is_err();
            results.push(result);
            if rejected && record.atomic {
                state.undo(steps);
                changes.truncate(start);
                break;
            }
        }
        RecordOutcome { lsn, results }
    }
}

impl NamespaceState {
    /// Takes back an atomic record's steps, last first: every number and index as before.
    fn undo(&mut self, steps: Vec<Step>) {
        for step in steps.into_iter().rev() {
            match step {
                Step::VertexCreated(numbered, taken) => {
                    self.vertices.uninsert(numbered);
                    self.numbers.untake(taken);
                }
                Step::VertexUpdated(id, before) => {
                    if let Some(slot) = self.vertices.get_mut(id) {
                        slot.vertex = before;
                    }
                }
                Step::VertexDeleted(id, slot) => {
                    self.numbers.unfree(slot.vertex.number);
                    self.vertices.unremove(id, slot);
                }
                Step::EdgeCreated(numbered) => {
                    // The last edge added to both lists: it is last in each.
                    if let Some(slot) = self.edges.uninsert(numbered) {
                        for (endpoint, _) in slot.places() {
                            if let Some(vertex) = self.vertices.get_mut(endpoint) {
                                vertex.edges.pop();
                            }
                        }
                    }
                }
                Step::EdgeDeleted(id, slot) => {
                    for (endpoint, place) in slot.places() {
                        self.put_back(endpoint, place, id);
                    }
                    self.edges.unremove(id, slot);
                }
            }
        }
    }

    /// The number of vertex `id`.
    fn number_of(&self, id: DenseId) -> VertexNumber {
        self.vertices.get(id).map_or(VertexNumber::UNASSIGNED, |slot| slot.vertex.number)
    }

    /// `edge` between the vertices `from` and `to`, with their numbers. A vertex keeps its
    /// number while it has edges, so an edge's retraction carries the numbers its insertion did.
    fn numbered(&self, edge: &Shared<Edge>, from: DenseId, to: DenseId) -> NumberedEdge {
        NumberedEdge { from: self.number_of(from), to: self.number_of(to), edge: edge.clone() }
    }

    /// The edges at vertex `id`, in and out.
    fn edges_at(&self, id: DenseId) -> &[DenseId] {
        self.vertices.get(id).map_or(&[], |slot| &slot.edges)
    }

    /// Numbers `edge` between `from` and `to`, appended to both endpoints' lists.
    fn add_edge(&mut self, edge: Shared<Edge>, from: DenseId, to: DenseId) -> Numbered {
        let place = |vertices: &Slab<VertexSlot>, v: DenseId| vertices.get(v).map_or(0, |s| s.edges.len() as u32);
        let at_from = place(&self.vertices, from);
        let at_to = if from == to { at_from } else { place(&self.vertices, to) };
        let numbered = self.edges.insert(EdgeSlot { edge, from, to, at_from, at_to });
        if let Some(slot) = self.edges.get(numbered.id()) {
            for (endpoint, _) in slot.places() {
                if let Some(vertex) = self.vertices.get_mut(endpoint) {
                    vertex.edges.push(numbered.id());
                }
            }
        }
        numbered
    }

    /// Takes edge `id` out of `vertex`'s list at `place`, moving the last edge there.
    fn take_out(&mut self, vertex: DenseId, place: u32) {
        let Some(slot) = self.vertices.get_mut(vertex) else { return };
        slot.edges.swap_remove(place as usize);
        if let Some(&moved) = slot.edges.get(place as usize) {
            if let Some(moved) = self.edges.get_mut(moved) {
                moved.place_at(vertex, place);
            }
        }
    }

    /// Undoes `take_out`: the edge moved to `place` goes back to the end, `id` to `place`.
    fn put_back(&mut self, vertex: DenseId, place: u32, id: DenseId) {
        let Some(slot) = self.vertices.get_mut(vertex) else { return };
        let end = slot.edges.len() as u32;
        if place == end {
            slot.edges.push(id);
            return;
        }
        let moved = slot.edges[place as usize];
        slot.edges.push(moved);
        slot.edges[place as usize] = id;
        if let Some(moved) = self.edges.get_mut(moved) {
            moved.place_at(vertex, end);
        }
    }

    /// Checks one operation, and only if it passes, changes the state: an operation is
    /// never half applied.
    fn apply_op(
        &mut self,
        ns: &Namespace,
        now: i64,
        op: &WriteOp,
        limits: &ElementLimits,
        changes: &mut Vec<Change>,
        undo: &mut Option<&mut Vec<Step>>,
    ) -> Result<OpEffect, Rejection> {
        let mut record = |step: Step| {
            if let Some(undo) = undo.as_mut() {
                undo.push(step);
            }
        };
        match op {
            WriteOp::CreateVertex { id, label, properties } => {
                require_id("vertex id", id)?;
                if self.vertices.find(id).is_some() {
                    return Err(reject(RejectKind::AlreadyExists, format!("vertex {id:?} already exists")));
                }
                room_for(ns, "vertices", self.vertices.len() as u64, self.capacity.max_vertices)?;
                let mut vertex = Vertex {
                    number: VertexNumber::UNASSIGNED,
                    id: id.as_str().into(),
                    label: self.names.of(label),
                    properties: self.named(properties),
                    created_at: now,
                    updated_at: now,
                };
                check_element(limits, "vertex", id, vertex.measure())?;
                let taken = self.numbers.take_for(ns, id);
                vertex.number = taken.number;
                let vertex = Shared::new(vertex);
                changes.push(Change::Vertex(ns.clone(), vertex.clone(), 1));
                let numbered = self.vertices.insert(VertexSlot { vertex: vertex.clone(), edges: Vec::new() });
                record(Step::VertexCreated(numbered, taken));
                Ok(OpEffect::Vertex(vertex))
            }
            WriteOp::UpdateVertex { id, properties, merge, label } => {
                require_id("vertex id", id)?;
                let not_found = || reject(RejectKind::NotFound, format!("vertex {id:?} not found"));
                let dense = self.vertices.find(id).ok_or_else(not_found)?;
                // Names first: sharing them needs the namespace, the slot borrows it after.
                let label = label.as_deref().map(|label| self.names.of(label));
                let properties = self.named(properties);
                let slot = self.vertices.get_mut(dense).ok_or_else(not_found)?;
                let mut updated = Vertex::clone(&slot.vertex);
                if let Some(label) = label {
                    updated.label = label;
                }
                if *merge {
                    updated.properties.merge(&properties);
                } else {
                    updated.properties = properties;
                }
                updated.updated_at = now;
                // The element as it would be: a merge can push it past the limit.
                check_element(limits, "vertex", id, updated.measure())?;
                let updated = Shared::new(updated);
                let old = std::mem::replace(&mut slot.vertex, updated.clone());
                changes.push(Change::Vertex(ns.clone(), old.clone(), -1));
                changes.push(Change::Vertex(ns.clone(), updated.clone(), 1));
                record(Step::VertexUpdated(dense, old));
                Ok(OpEffect::Vertex(updated))
            }
            WriteOp::DeleteVertex { id, cascade } => {
                require_id("vertex id", id)?;
                let Some(dense) = self.vertices.find(id) else {
                    return Err(reject(RejectKind::NotFound, format!("vertex {id:?} not found")));
                };
                let edges: Vec<DenseId> = self.edges_at(dense).to_vec();
                if !edges.is_empty() && !cascade {
                    return Err(reject(
                        RejectKind::FailedPrecondition,
                        format!("vertex {id:?} has {} edges; delete them first or set cascade", edges.len()),
                    ));
                }
                for &edge in &edges {
                    if let Some(step) = self.remove_edge(ns, edge, changes) {
                        record(step);
                    }
                }
                if let Some(slot) = self.vertices.remove(dense) {
                    self.numbers.free(slot.vertex.number);
                    changes.push(Change::Vertex(ns.clone(), slot.vertex.clone(), -1));
                    record(Step::VertexDeleted(dense, slot));
                }
                Ok(OpEffect::VertexDeleted { edges_deleted: edges.len() as u64 })
            }
            WriteOp::CreateEdge { id, label, from, to, properties } => {
                require_id("edge id", id)?;
                require_id("from_vertex_id", from)?;
                require_id("to_vertex_id", to)?;
                if self.edges.find(id).is_some() {
                    return Err(reject(RejectKind::AlreadyExists, format!("edge {id:?} already exists")));
                }
                let endpoint = |field: &str, endpoint: &String| {
                    self.vertices.find(endpoint).ok_or_else(|| {
                        reject(RejectKind::FailedPrecondition, format!("{field}: vertex {endpoint:?} does not exist"))
                    })
                };
                let (from_id, to_id) = (endpoint("from_vertex_id", from)?, endpoint("to_vertex_id", to)?);
                room_for(ns, "edges", self.edges.len() as u64, self.capacity.max_edges)?;
                let edge = Shared::new(Edge {
                    id: id.as_str().into(),
                    label: self.names.of(label),
                    from: from.as_str().into(),
                    to: to.as_str().into(),
                    properties: self.named(properties),
                    created_at: now,
                });
                check_element(limits, "edge", id, edge.measure())?;
                changes.push(Change::Edge(ns.clone(), self.numbered(&edge, from_id, to_id), 1));
                record(Step::EdgeCreated(self.add_edge(edge.clone(), from_id, to_id)));
                Ok(OpEffect::Edge(edge))
            }
            WriteOp::DeleteEdge { id } => {
                require_id("edge id", id)?;
                let Some(dense) = self.edges.find(id) else {
                    return Err(reject(RejectKind::NotFound, format!("edge {id:?} not found")));
                };
                if let Some(step) = self.remove_edge(ns, dense, changes) {
                    record(step);
                }
                Ok(OpEffect::EdgeDeleted)
            }
        }
    }

    /// Removes edge `id` and its incidence; the step that takes it back.
    fn remove_edge(&mut self, ns: &Namespace, id: DenseId, changes: &mut Vec<Change>) -> Option<Step> {
        let slot = self.edges.remove(id)?;
        // In reverse of `put_back`'s order in the undo, so that each list is restored exactly.
        for (endpoint, place) in slot.places().rev() {
            self.take_out(endpoint, place);
        }
        changes.push(Change::Edge(ns.clone(), self.numbered(&slot.edge, slot.from, slot.to), -1));
        Some(Step::EdgeDeleted(id, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::limits::MAX_VALUE_DEPTH;
    use crate::state::model::{Id, Properties, Value};

    fn record(atomic: bool, ops: Vec<WriteOp>) -> WriteRecord {
        WriteRecord { namespace: Namespace::default(), atomic, timestamp: 7, ops, ..Default::default() }
    }

    fn vertex(id: &str) -> WriteOp {
        WriteOp::CreateVertex { id: id.into(), label: "User".into(), properties: Default::default() }
    }

    fn edge(id: &str, from: &str, to: &str) -> WriteOp {
        WriteOp::CreateEdge {
            id: id.into(),
            label: "FOLLOWS".into(),
            from: from.into(),
            to: to.into(),
            properties: Default::default(),
        }
    }

    #[test]
    fn duplicate_vertex_is_already_exists() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        state.apply(1, &record(false, vec![vertex("a")]), &mut changes);
        let outcome = state.apply(2, &record(false, vec![vertex("a")]), &mut changes);
        assert_eq!(outcome.first_rejection().map(|(_, r)| r.kind.clone()), Some(RejectKind::AlreadyExists));
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn atomic_record_is_all_or_nothing() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let outcome = state.apply(1, &record(true, vec![vertex("a"), vertex("b"), edge("e", "a", "zz")]), &mut changes);
        assert_eq!(
            outcome.first_rejection().map(|(i, r)| (i, r.kind.clone())),
            Some((2, RejectKind::FailedPrecondition))
        );
        assert!(changes.is_empty());
        assert_eq!(state.vertex_count(), 0);
        // The same ids are free afterwards.
        let outcome = state.apply(2, &record(true, vec![vertex("a"), vertex("b"), edge("e", "a", "b")]), &mut changes);
        assert!(outcome.first_rejection().is_none());
        assert_eq!((state.vertex_count(), state.edge_count()), (2, 1));
    }

    #[test]
    fn a_rejected_cascade_restores_every_edge_and_incidence() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        state.apply(
            1,
            &record(true, vec![vertex("a"), vertex("b"), edge("e", "a", "b"), edge("s", "a", "a")]),
            &mut changes,
        );
        let cascade_then_fail =
            record(true, vec![WriteOp::DeleteVertex { id: "a".into(), cascade: true }, vertex("b")]);
        let outcome = state.apply(2, &cascade_then_fail, &mut changes);
        assert_eq!(outcome.first_rejection().map(|(i, _)| i), Some(1));
        assert_eq!((state.vertex_count(), state.edge_count()), (2, 2));
        // Both vertices still know their edges: neither deletes without cascade.
        for id in ["a", "b"] {
            let outcome = state.apply(
                3,
                &record(false, vec![WriteOp::DeleteVertex { id: id.into(), cascade: false }]),
                &mut changes,
            );
            assert_eq!(
                outcome.first_rejection().map(|(_, r)| r.kind.clone()),
                Some(RejectKind::FailedPrecondition),
                "{id}"
            );
        }
        let outcome =
            state.apply(4, &record(false, vec![WriteOp::DeleteVertex { id: "a".into(), cascade: true }]), &mut changes);
        assert_eq!(outcome.results[0], Ok(OpEffect::VertexDeleted { edges_deleted: 2 }));
    }

    /// Every vertex's dense id and its edges' ids, sorted: what numbering and incidence are.
    /// Per vertex: its id, dense id, number and edges; and each edge's endpoint numbers.
    type Shape = Vec<(Id, DenseId, VertexNumber, Vec<(Id, VertexNumber, VertexNumber)>)>;

    fn shape(state: &ApplyState) -> Shape {
        let Some(ns) = state.namespaces.get(&Namespace::default()) else { return Vec::new() };
        let mut shape: Vec<_> = ns
            .vertices
            .iter()
            .map(|(id, slot)| {
                let mut edges: Vec<_> = slot
                    .edges
                    .iter()
                    .filter_map(|&e| ns.edges.get(e))
                    .map(|e| (e.edge.id.clone(), ns.number_of(e.from), ns.number_of(e.to)))
                    .collect();
                edges.sort();
                (slot.vertex.id.clone(), id, slot.vertex.number, edges)
            })
            .collect();
        shape.sort();
        shape
    }

    fn random_op() -> impl proptest::strategy::Strategy<Value = WriteOp> {
        use proptest::prelude::*;
        let v = || (0..6u8).prop_map(|i| format!("v{i}"));
        prop_oneof![
            v().prop_map(|id| vertex(&id)),
            (0..8u8, v(), v()).prop_map(|(e, a, b)| edge(&format!("e{e}"), &a, &b)),
            (v(), any::<bool>()).prop_map(|(id, cascade)| WriteOp::DeleteVertex { id, cascade }),
            (0..8u8).prop_map(|e| WriteOp::DeleteEdge { id: format!("e{e}") }),
        ]
    }

    proptest::proptest! {
        /// A rejected atomic record is undone exactly: the state, numbering and every list
        /// of edges included, is the one its accepted records alone produce.
        #[test]
        fn undo_restores_exactly_what_the_accepted_records_made(
            records in proptest::collection::vec(proptest::collection::vec(random_op(), 1..6), 1..30)
        ) {
            let workers = || ApplyState::with_limits(ElementLimits::default(), Capacities::default(), RequestIdLimits::default(), 3);
            let (mut state, mut accepted_only) = (workers(), workers());
            for (i, ops) in records.into_iter().enumerate() {
                let atomic = record(true, ops);
                let outcome = state.apply(i as u64 + 1, &atomic, &mut Vec::new());
                if outcome.first_rejection().is_none() {
                    accepted_only.apply(i as u64 + 1, &atomic, &mut Vec::new());
                }
                proptest::prop_assert_eq!(shape(&state), shape(&accepted_only));
                for (_, dense, number, edges) in shape(&state) {
                    proptest::prop_assert_eq!(
                        edges.iter().filter(|(_, from, to)| *from == number || *to == number).count(),
                        edges.len(),
                        "an edge's numbers name its endpoints"
                    );
                    let ns = &state.namespaces[&Namespace::default()];
                    let slot = ns.vertices.get(dense).expect("listed");
                    for (place, &e) in slot.edges.iter().enumerate() {
                        let edge = ns.edges.get(e).expect("an edge in a list exists");
                        let at = if edge.from == dense { edge.at_from } else { edge.at_to };
                        proptest::prop_assert_eq!(at as usize, place, "{:?}", edges);
                    }
                }
            }
        }
    }

    #[test]
    fn a_rejected_atomic_record_leaves_the_numbering_as_it_was() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        state.apply(1, &record(true, vec![vertex("a"), vertex("b"), vertex("c")]), &mut changes);
        state.apply(2, &record(true, vec![WriteOp::DeleteVertex { id: "b".into(), cascade: false }]), &mut changes);
        let fails = record(
            true,
            vec![
                vertex("x"),
                edge("e", "a", "c"),
                WriteOp::DeleteVertex { id: "c".into(), cascade: true },
                vertex("y"),
                vertex("a"),
            ],
        );
        assert!(state.apply(3, &fails, &mut changes).first_rejection().is_some());
        assert_eq!(state.dense_vertex("c"), Some(2));
        // As if the rejected record had never been: b's number is the one free.
        state.apply(4, &record(true, vec![vertex("z"), vertex("w")]), &mut changes);
        assert_eq!((state.dense_vertex("z"), state.dense_vertex("w")), (Some(1), Some(3)));
    }

    #[test]
    fn cascade_deletes_only_the_vertex_own_edges() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let mut ops = vec![vertex("hub")];
        for i in 0..100 {
            ops.push(vertex(&format!("v{i}")));
            ops.push(edge(&format!("e{i}"), &format!("v{i}"), "hub"));
        }
        ops.push(edge("loop", "v0", "v0"));
        state.apply(1, &record(true, ops), &mut changes);
        let outcome = state.apply(
            2,
            &record(false, vec![WriteOp::DeleteVertex { id: "v0".into(), cascade: true }]),
            &mut changes,
        );
        assert_eq!(outcome.results[0], Ok(OpEffect::VertexDeleted { edges_deleted: 2 }));
        let outcome = state.apply(
            3,
            &record(false, vec![WriteOp::DeleteVertex { id: "hub".into(), cascade: false }]),
            &mut changes,
        );
        let (_, rejection) = outcome.first_rejection().expect("the hub still has edges");
        assert!(rejection.message.contains("has 99 edges"), "{}", rejection.message);
    }

    #[test]
    fn non_atomic_record_applies_what_passes() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let outcome = state.apply(1, &record(false, vec![vertex("a"), vertex("a"), vertex("b")]), &mut changes);
        assert!(outcome.results[0].is_ok() && outcome.results[1].is_err() && outcome.results[2].is_ok());
        assert_eq!(state.vertex_count(), 2);
    }

    #[test]
    fn a_namespace_at_its_capacity_refuses_creates_until_a_delete_makes_room() {
        let capacity = Capacity { max_vertices: 2, max_edges: 1 };
        let capacities = Capacities { namespaces: [("default".to_string(), capacity)].into(), ..Default::default() };
        let mut state = ApplyState::with_limits(ElementLimits::default(), capacities, Default::default(), 1);
        let mut changes = Vec::new();
        let refused =
            |outcome: &RecordOutcome| outcome.first_rejection().map(|(_, r)| (r.kind.clone(), r.message.clone()));

        // An atomic record past the limit is refused whole.
        let outcome = state.apply(1, &record(true, vec![vertex("a"), vertex("b"), vertex("c")]), &mut changes);
        let (kind, message) = refused(&outcome).expect("refused");
        assert_eq!(kind, RejectKind::ResourceExhausted);
        assert!(message.contains("max_vertices") && message.contains("holds 2 vertices"), "{message}");
        assert_eq!(state.vertex_count(), 0);

        // Non-atomic: each operation on its own, the ones within the limit kept.
        let outcome = state.apply(2, &record(false, vec![vertex("a"), vertex("b"), vertex("c")]), &mut changes);
        assert!(outcome.results[..2].iter().all(Result::is_ok));
        assert_eq!(outcome.results[2].as_ref().map_err(|r| r.kind.clone()), Err(RejectKind::ResourceExhausted));
        let outcome = state.apply(3, &record(false, vec![edge("e", "a", "b"), edge("f", "b", "a")]), &mut changes);
        let message = outcome.results[1].clone().expect_err("past max_edges").message;
        assert!(message.contains("max_edges"), "{message}");

        // Another namespace has no limit; a delete makes room in this one.
        let mut other = record(false, vec![vertex("x"), vertex("y"), vertex("z")]);
        other.namespace = Namespace::new("other");
        assert!(state.apply(4, &other, &mut changes).first_rejection().is_none());
        let delete = WriteOp::DeleteVertex { id: "a".into(), cascade: true };
        assert!(state.apply(5, &record(false, vec![delete, vertex("c")]), &mut changes).first_rejection().is_none());
    }

    #[test]
    fn delete_with_edges_needs_cascade() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        state.apply(
            1,
            &record(true, vec![vertex("a"), vertex("b"), edge("e", "a", "b"), edge("s", "a", "a")]),
            &mut changes,
        );
        let outcome = state.apply(
            2,
            &record(false, vec![WriteOp::DeleteVertex { id: "a".into(), cascade: false }]),
            &mut changes,
        );
        assert_eq!(outcome.first_rejection().map(|(_, r)| r.kind.clone()), Some(RejectKind::FailedPrecondition));
        let outcome =
            state.apply(3, &record(false, vec![WriteOp::DeleteVertex { id: "a".into(), cascade: true }]), &mut changes);
        assert_eq!(outcome.results[0], Ok(OpEffect::VertexDeleted { edges_deleted: 2 }));
        assert_eq!((state.vertex_count(), state.edge_count()), (1, 0));
        // b no longer lists the deleted edge, so it deletes without cascade.
        let outcome = state.apply(
            4,
            &record(false, vec![WriteOp::DeleteVertex { id: "b".into(), cascade: false }]),
            &mut changes,
        );
        assert!(outcome.first_rejection().is_none());
    }

    #[test]
    fn an_element_past_the_size_limit_is_refused_even_by_a_merge() {
        let mut state = ApplyState::with_limits(
            ElementLimits { max_element_bytes: 200 },
            Default::default(),
            Default::default(),
            1,
        );
        let mut changes = Vec::new();
        let text =
            |n: usize| -> Properties { [("p".to_string(), Value::String("x".repeat(n).into()))].into_iter().collect() };
        let create = WriteOp::CreateVertex { id: "a".into(), label: "L".into(), properties: text(100) };
        assert!(state.apply(1, &record(false, vec![create]), &mut changes).first_rejection().is_none());
        let too_big = WriteOp::CreateVertex { id: "b".into(), label: "L".into(), properties: text(300) };
        let outcome = state.apply(2, &record(false, vec![too_big]), &mut changes);
        assert_eq!(outcome.first_rejection().map(|(_, r)| r.kind.clone()), Some(RejectKind::ResourceExhausted));
        let more: Properties = [("q".to_string(), Value::String("y".repeat(100).into()))].into_iter().collect();
        let merge = WriteOp::UpdateVertex { id: "a".into(), properties: more, merge: true, label: None };
        let outcome = state.apply(3, &record(false, vec![merge]), &mut changes);
        let (_, rejection) = outcome.first_rejection().expect("the merge would pass the limit");
        assert!(rejection.message.contains("max_element_bytes"), "{}", rejection.message);
        assert_eq!(state.vertex_count(), 1);
    }

    #[test]
    fn a_retried_request_id_returns_the_first_outcome_and_changes_nothing() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let with_id = |ops| WriteRecord { request_id: Some("r1".into()), ..record(true, ops) };
        let first = state.apply(1, &with_id(vec![vertex("a")]), &mut changes);
        assert!(first.first_rejection().is_none());
        let retried = state.apply(2, &with_id(vec![vertex("a")]), &mut changes);
        assert_eq!(retried, first, "the first outcome, LSN 1 included");
        assert_eq!(changes.len(), 1, "the retry changed nothing");
        // Without the id, the same write is a second one (and breaks a rule).
        let again = state.apply(3, &record(true, vec![vertex("a")]), &mut changes);
        assert_eq!(again.first_rejection().map(|(_, r)| r.kind.clone()), Some(RejectKind::AlreadyExists));
        // The ids travel with the graph (checkpoints).
        let mut restored = ApplyState::new();
        restored.restore_checkpoint(state.whole_graph(), &mut Vec::new());
        assert_eq!(restored.apply(4, &with_id(vec![vertex("a")]), &mut Vec::new()), first);
    }

    #[test]
    fn a_value_nested_too_deep_is_refused() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let deep = (0..MAX_VALUE_DEPTH).fold(Value::Int(1), |inner, _| Value::List([inner].into()));
        let properties: Properties = [("p".to_string(), deep)].into_iter().collect();
        let create = WriteOp::CreateVertex { id: "a".into(), label: "L".into(), properties };
        let outcome = state.apply(1, &record(false, vec![create]), &mut changes);
        let (_, rejection) = outcome.first_rejection().expect("too deep");
        assert!(rejection.message.contains("max_value_depth"), "{}", rejection.message);
    }

    #[test]
    fn labels_and_property_keys_are_held_once_per_namespace() {
        let mut state = ApplyState::new();
        let with_email = |id: &str| WriteOp::CreateVertex {
            id: id.into(),
            label: "User".into(),
            properties: [("email", Value::String(ecow::eco_format!("{id}@x")))].into_iter().collect(),
        };
        let outcome = state.apply(1, &record(true, vec![with_email("a"), with_email("b")]), &mut Vec::new());
        let vertices: Vec<Shared<Vertex>> = outcome
            .results
            .into_iter()
            .map(|r| match r {
                Ok(OpEffect::Vertex(v)) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(crate::state::model::Name::ptr_eq(&vertices[0].label, &vertices[1].label));
        let key = |v: &Vertex| v.properties.keys().next().map(|k| k.as_ptr());
        assert_eq!(key(&vertices[0]), key(&vertices[1]), "one copy of the key");
    }

    #[test]
    fn update_merges_or_replaces() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let props = |pairs: &[(&str, i64)]| pairs.iter().map(|(k, v)| (k.to_string(), Value::Int(*v))).collect();
        state.apply(
            1,
            &record(
                false,
                vec![WriteOp::CreateVertex {
                    id: "a".into(),
                    label: "L".into(),
                    properties: props(&[("x", 1), ("y", 2)]),
                }],
            ),
            &mut changes,
        );
        let merged = state.apply(
            2,
            &record(
                false,
                vec![WriteOp::UpdateVertex {
                    id: "a".into(),
                    properties: props(&[("y", 3)]),
                    merge: true,
                    label: None,
                }],
            ),
            &mut changes,
        );
        let Ok(OpEffect::Vertex(v)) = &merged.results[0] else { panic!("update failed: {merged:?}") };
        assert_eq!(v.properties, props(&[("x", 1), ("y", 3)]));
        let replaced = state.apply(
            3,
            &record(
                false,
                vec![WriteOp::UpdateVertex {
                    id: "a".into(),
                    properties: props(&[("z", 4)]),
                    merge: false,
                    label: None,
                }],
            ),
            &mut changes,
        );
        let Ok(OpEffect::Vertex(v)) = &replaced.results[0] else { panic!("update failed: {replaced:?}") };
        assert_eq!(v.properties, props(&[("z", 4)]));
        // Every update retracts the version it replaces.
        let net: isize = changes
            .iter()
            .map(|c| match c {
                Change::Vertex(_, _, d) => *d,
                Change::Edge(_, _, d) => *d,
            })
            .sum();
        assert_eq!(net, 1);
    }
}
