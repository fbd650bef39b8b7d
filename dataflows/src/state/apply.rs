//! The apply stage: checks each log record against the rules of the graph and turns it into
//! differential updates (retract the old version, insert the new one).
//!
//! It runs on one worker, in log order, so that every server following a log decides every
//! record alike. It keeps the current version of each vertex and edge (the same `Arc` the
//! arrangements hold, so nothing is stored twice in a process) and, per vertex, the ids of its
//! edges, which is what the rules need: existence, endpoints, and edges for `cascade`.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::state::limits::{too_deep, ElementLimits, Measure, MAX_VALUE_DEPTH};
use crate::state::model::{Edge, EdgeKey, Lsn, Namespace, Vertex, VertexKey};
use crate::state::request_ids::{Remembered, RequestIdLimits, RequestIds};
use crate::state::write::{OpEffect, RecordOutcome, RejectKind, Rejection, WriteOp, WriteRecord};

/// A change to one of the graph's collections, produced by applying a record.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Vertex(VertexKey, Arc<Vertex>, isize),
    Edge(EdgeKey, Arc<Edge>, isize),
}

/// Every vertex and edge of a graph, keyed, and the request ids still remembered: what a
/// checkpoint holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WholeGraph {
    pub vertices: Vec<(VertexKey, Arc<Vertex>)>,
    pub edges: Vec<(EdgeKey, Arc<Edge>)>,
    /// Oldest first.
    pub request_ids: Vec<Remembered>,
}

#[derive(Clone, Debug)]
struct VertexEntry {
    vertex: Arc<Vertex>,
    /// Ids of the edges out of and into this vertex (a self-loop once).
    edges: Vec<String>,
}

/// The current graph as the apply stage needs it.
#[derive(Default)]
pub struct ApplyState {
    // foldhash rather than SipHash: these maps are on the write path of every record, and
    // their keys come from the log, not from an adversary choosing hash collisions per server.
    vertices: HashMap<VertexKey, VertexEntry, RandomState>,
    edges: HashMap<EdgeKey, Arc<Edge>, RandomState>,
    limits: ElementLimits,
    request_ids: RequestIds,
}

/// What an atomic record touched, as it was before, so that a rejection can restore it.
///
/// Vertex bodies and edges are remembered as they were; a vertex's list of edges is not
/// copied (a hub's list is long, and a batch of edges touches the hub in every batch) but
/// restored by undoing each addition and removal made to it.
#[derive(Default)]
struct Undo {
    vertices: HashMap<VertexKey, Option<Arc<Vertex>>>,
    edges: HashMap<EdgeKey, Option<Arc<Edge>>>,
    /// (vertex, edge id, whether it was added) in the order made.
    incidence: Vec<(VertexKey, String, bool)>,
}

impl ApplyState {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty graph whose elements are held to `limits`, remembering request ids within
    /// `request_ids`.
    pub fn with_limits(limits: ElementLimits, request_ids: RequestIdLimits) -> Self {
        ApplyState { limits, request_ids: RequestIds::new(request_ids), ..Self::default() }
    }

    #[cfg(test)]
    pub fn vertex_count(&self) -> usize {
        self.vertices.len()
    }

    #[cfg(test)]
    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// Puts back a whole graph from a checkpoint (into an empty state: no rules are checked,
    /// the checkpoint was a valid graph), appending its updates to `changes`.
    pub fn restore_checkpoint(&mut self, graph: WholeGraph, changes: &mut Vec<Change>) {
        for (key, vertex) in graph.vertices {
            changes.push(Change::Vertex(key.clone(), vertex.clone(), 1));
            self.vertices.insert(key, VertexEntry { vertex, edges: Vec::new() });
        }
        for (key, edge) in graph.edges {
            let from = VertexKey::new(&key.namespace, &edge.from);
            let to = VertexKey::new(&key.namespace, &edge.to);
            let endpoints = if from == to { vec![from] } else { vec![from, to] };
            for endpoint in endpoints {
                if let Some(entry) = self.vertices.get_mut(&endpoint) {
                    entry.edges.push(key.id.clone());
                }
            }
            changes.push(Change::Edge(key.clone(), edge.clone(), 1));
            self.edges.insert(key, edge);
        }
        for remembered in graph.request_ids {
            let Remembered { namespace, request_id, timestamp, outcome } = remembered;
            self.request_ids.remember(&namespace, &request_id, timestamp, outcome);
        }
    }

    /// Every vertex and edge of every namespace, as they are now (shared, not copied).
    pub fn whole_graph(&self) -> WholeGraph {
        WholeGraph {
            vertices: self.vertices.iter().map(|(k, e)| (k.clone(), e.vertex.clone())).collect(),
            edges: self.edges.iter().map(|(k, e)| (k.clone(), e.clone())).collect(),
            request_ids: self.request_ids.remembered(),
        }
    }

    /// The vertices and edges of one namespace, as they are now (shared, not copied).
    pub fn namespace_graph(&self, namespace: &Namespace) -> (Vec<Arc<Vertex>>, Vec<Arc<Edge>>) {
        let vertices = self.vertices.iter().filter(|(k, _)| k.namespace == *namespace).map(|(_, e)| e.vertex.clone());
        let edges = self.edges.iter().filter(|(k, _)| k.namespace == *namespace).map(|(_, e)| e.clone());
        (vertices.collect(), edges.collect())
    }

    /// Applies `record` at `lsn`, appending the differential updates it makes to `changes`.
    /// A record whose request id was applied before changes nothing and returns the first
    /// outcome (its LSN that of the first).
    pub fn apply(&mut self, lsn: Lsn, record: &WriteRecord, changes: &mut Vec<Change>) -> RecordOutcome {
        let Some(request_id) = record.request_id.as_deref().filter(|id| !id.is_empty()) else {
            return self.apply_ops(lsn, record, changes);
        };
        if let Some(first) = self.request_ids.first(&record.namespace, request_id) {
            return first.clone();
        }
        let outcome = self.apply_ops(lsn, record, changes);
        self.request_ids.remember(&record.namespace, request_id, record.timestamp, outcome.clone());
        outcome
    }

    fn apply_ops(&mut self, lsn: Lsn, record: &WriteRecord, changes: &mut Vec<Change>) -> RecordOutcome {
        let start = changes.len();
        let mut undo = if record.atomic { Some(Undo::default()) } else { None };
        let mut results = Vec::with_capacity(record.ops.len());
        for op in &record.ops {
            let result = self.apply_op(&record.namespace, record.timestamp, op, changes, undo.as_mut());
            let rejected = result.is_err();
            results.push(result);
            if rejected {
                if let Some(undo) = undo.take() {
                    self.restore(undo);
                    changes.truncate(start);
                    break;
                }
            }
        }
        RecordOutcome { lsn, results }
    }

    fn restore(&mut self, undo: Undo) {
        // Bodies first, so that a deleted vertex exists again to take back its edge ids.
        for (key, before) in &undo.vertices {
            if let Some(vertex) = before {
                match self.vertices.get_mut(key) {
                    Some(entry) => entry.vertex = vertex.clone(),
                    None => {
                        self.vertices.insert(key.clone(), VertexEntry { vertex: vertex.clone(), edges: Vec::new() });
                    }
                }
            }
        }
        for (key, edge_id, added) in undo.incidence.into_iter().rev() {
            if let Some(entry) = self.vertices.get_mut(&key) {
                if added {
                    if let Some(pos) = entry.edges.iter().position(|e| *e == edge_id) {
                        entry.edges.swap_remove(pos);
                    }
                } else {
                    entry.edges.push(edge_id);
                }
            }
        }
        for (key, before) in undo.vertices {
            if before.is_none() {
                self.vertices.remove(&key);
            }
        }
        for (key, before) in undo.edges {
            match before {
                Some(edge) => self.edges.insert(key, edge),
                None => self.edges.remove(&key),
            };
        }
    }

    fn remember_vertex(&self, undo: &mut Option<&mut Undo>, key: &VertexKey) {
        if let Some(undo) = undo {
            undo.vertices.entry(key.clone()).or_insert_with(|| self.vertices.get(key).map(|e| e.vertex.clone()));
        }
    }

    fn remember_edge(&self, undo: &mut Option<&mut Undo>, key: &EdgeKey) {
        if let Some(undo) = undo {
            undo.edges.entry(key.clone()).or_insert_with(|| self.edges.get(key).cloned());
        }
    }

    /// Checks one operation, and only if it passes, changes the state: an operation is
    /// never half applied.
    fn apply_op(
        &mut self,
        ns: &Namespace,
        now: i64,
        op: &WriteOp,
        changes: &mut Vec<Change>,
        mut undo: Option<&mut Undo>,
    ) -> Result<OpEffect, Rejection> {
        match op {
            WriteOp::CreateVertex { id, label, properties } => {
                require_id("vertex id", id)?;
                let key = VertexKey::new(ns, id);
                if self.vertices.contains_key(&key) {
                    return Err(reject(RejectKind::AlreadyExists, format!("vertex {id:?} already exists")));
                }
                let vertex = Arc::new(Vertex {
                    id: id.clone(),
                    label: label.clone(),
                    properties: properties.clone(),
                    created_at: now,
                    updated_at: now,
                });
                self.check_element("vertex", id, vertex.measure())?;
                self.remember_vertex(&mut undo, &key);
                changes.push(Change::Vertex(key.clone(), vertex.clone(), 1));
                self.vertices.insert(key, VertexEntry { vertex: vertex.clone(), edges: Vec::new() });
                Ok(OpEffect::Vertex(vertex))
            }
            WriteOp::UpdateVertex { id, properties, merge, label } => {
                require_id("vertex id", id)?;
                let key = VertexKey::new(ns, id);
                let Some(entry) = self.vertices.get(&key) else {
                    return Err(reject(RejectKind::NotFound, format!("vertex {id:?} not found")));
                };
                let old = entry.vertex.clone();
                let mut updated = Vertex::clone(&old);
                if let Some(label) = label {
                    updated.label = label.clone();
                }
                if *merge {
                    updated.properties.merge(properties);
                } else {
                    updated.properties = properties.clone();
                }
                updated.updated_at = now;
                // The element as it would be: a merge can push it past the limit.
                self.check_element("vertex", id, updated.measure())?;
                let updated = Arc::new(updated);
                self.remember_vertex(&mut undo, &key);
                changes.push(Change::Vertex(key.clone(), old, -1));
                changes.push(Change::Vertex(key.clone(), updated.clone(), 1));
                if let Some(entry) = self.vertices.get_mut(&key) {
                    entry.vertex = updated.clone();
                }
                Ok(OpEffect::Vertex(updated))
            }
            WriteOp::DeleteVertex { id, cascade } => {
                require_id("vertex id", id)?;
                let key = VertexKey::new(ns, id);
                let Some(entry) = self.vertices.get(&key) else {
                    return Err(reject(RejectKind::NotFound, format!("vertex {id:?} not found")));
                };
                if !entry.edges.is_empty() && !cascade {
                    return Err(reject(
                        RejectKind::FailedPrecondition,
                        format!("vertex {id:?} has {} edges; delete them first or set cascade", entry.edges.len()),
                    ));
                }
                let edge_ids = entry.edges.clone();
                for edge_id in &edge_ids {
                    self.remove_edge(&EdgeKey::new(ns, edge_id), changes, &mut undo);
                }
                self.remember_vertex(&mut undo, &key);
                if let Some(entry) = self.vertices.remove(&key) {
                    changes.push(Change::Vertex(key, entry.vertex, -1));
                }
                Ok(OpEffect::VertexDeleted { edges_deleted: edge_ids.len() as u64 })
            }
            WriteOp::CreateEdge { id, label, from, to, properties } => {
                require_id("edge id", id)?;
                require_id("from_vertex_id", from)?;
                require_id("to_vertex_id", to)?;
                let key = EdgeKey::new(ns, id);
                if self.edges.contains_key(&key) {
                    return Err(reject(RejectKind::AlreadyExists, format!("edge {id:?} already exists")));
                }
                let from_key = VertexKey::new(ns, from);
                let to_key = VertexKey::new(ns, to);
                for (field, endpoint, endpoint_key) in
                    [("from_vertex_id", from, &from_key), ("to_vertex_id", to, &to_key)]
                {
                    if !self.vertices.contains_key(endpoint_key) {
                        return Err(reject(
                            RejectKind::FailedPrecondition,
                            format!("{field}: vertex {endpoint:?} does not exist"),
                        ));
                    }
                }
                let edge = Arc::new(Edge {
                    id: id.clone(),
                    label: label.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    properties: properties.clone(),
                    created_at: now,
                });
                self.check_element("edge", id, edge.measure())?;
                self.remember_edge(&mut undo, &key);
                changes.push(Change::Edge(key.clone(), edge.clone(), 1));
                self.edges.insert(key, edge.clone());
                let endpoints = if from == to { vec![from_key] } else { vec![from_key, to_key] };
                for endpoint in endpoints {
                    if let Some(entry) = self.vertices.get_mut(&endpoint) {
                        entry.edges.push(id.clone());
                        if let Some(undo) = undo.as_mut() {
                            undo.incidence.push((endpoint, id.clone(), true));
                        }
                    }
                }
                Ok(OpEffect::Edge(edge))
            }
            WriteOp::DeleteEdge { id } => {
                require_id("edge id", id)?;
                let key = EdgeKey::new(ns, id);
                if !self.edges.contains_key(&key) {
                    return Err(reject(RejectKind::NotFound, format!("edge {id:?} not found")));
                }
                self.remove_edge(&key, changes, &mut undo);
                Ok(OpEffect::EdgeDeleted)
            }
        }
    }

    fn remove_edge(&mut self, key: &EdgeKey, changes: &mut Vec<Change>, undo: &mut Option<&mut Undo>) {
        self.remember_edge(undo, key);
        let Some(edge) = self.edges.remove(key) else {
            return;
        };
        for endpoint in [&edge.from, &edge.to] {
            let vkey = VertexKey::new(&key.namespace, endpoint);
            if let Some(entry) = self.vertices.get_mut(&vkey) {
                if let Some(pos) = entry.edges.iter().position(|e| *e == key.id) {
                    entry.edges.swap_remove(pos);
                    if let Some(undo) = undo.as_mut() {
                        undo.incidence.push((vkey, key.id.clone(), false));
                    }
                }
            }
        }
        changes.push(Change::Edge(key.clone(), edge, -1));
    }
}

impl ApplyState {
    /// The element a write would leave, held to the limits in one walk of its values: the
    /// size is the config's; the depth the decoders' already, and records built in memory
    /// are held to it too, or the log would take a record replay could not decode.
    fn check_element(&self, what: &str, id: &str, measure: Measure) -> Result<(), Rejection> {
        if measure.depth > MAX_VALUE_DEPTH {
            return Err(reject(RejectKind::InvalidArgument, format!("properties: {}", too_deep())));
        }
        let max = self.limits.max_element_bytes;
        if measure.bytes > max {
            return Err(reject(
                RejectKind::ResourceExhausted,
                format!("{what} {id:?} would take {} bytes, beyond max_element_bytes ({max})", measure.bytes),
            ));
        }
        Ok(())
    }
}

fn reject(kind: RejectKind, message: String) -> Rejection {
    Rejection::new(kind, message)
}

fn require_id(field: &str, id: &str) -> Result<(), Rejection> {
    if id.is_empty() {
        Err(reject(RejectKind::InvalidArgument, format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{Properties, Value};

    fn record(atomic: bool, ops: Vec<WriteOp>) -> WriteRecord {
        WriteRecord { namespace: Namespace::default(), atomic, timestamp: 7, ops, request_id: None }
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

    #[test]
    fn non_atomic_record_applies_what_passes() {
        let mut state = ApplyState::new();
        let mut changes = Vec::new();
        let outcome = state.apply(1, &record(false, vec![vertex("a"), vertex("a"), vertex("b")]), &mut changes);
        assert!(outcome.results[0].is_ok() && outcome.results[1].is_err() && outcome.results[2].is_ok());
        assert_eq!(state.vertex_count(), 2);
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
        let mut state = ApplyState::with_limits(ElementLimits { max_element_bytes: 200 }, Default::default());
        let mut changes = Vec::new();
        let text = |n: usize| -> Properties { [("p".to_string(), Value::String("x".repeat(n)))].into_iter().collect() };
        let create = WriteOp::CreateVertex { id: "a".into(), label: "L".into(), properties: text(100) };
        assert!(state.apply(1, &record(false, vec![create]), &mut changes).first_rejection().is_none());
        let too_big = WriteOp::CreateVertex { id: "b".into(), label: "L".into(), properties: text(300) };
        let outcome = state.apply(2, &record(false, vec![too_big]), &mut changes);
        assert_eq!(outcome.first_rejection().map(|(_, r)| r.kind.clone()), Some(RejectKind::ResourceExhausted));
        let more: Properties = [("q".to_string(), Value::String("y".repeat(100)))].into_iter().collect();
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
        let deep = (0..MAX_VALUE_DEPTH).fold(Value::Int(1), |inner, _| Value::List(vec![inner]));
        let properties: Properties = [("p".to_string(), deep)].into_iter().collect();
        let create = WriteOp::CreateVertex { id: "a".into(), label: "L".into(), properties };
        let outcome = state.apply(1, &record(false, vec![create]), &mut changes);
        let (_, rejection) = outcome.first_rejection().expect("too deep");
        assert!(rejection.message.contains("max_value_depth"), "{}", rejection.message);
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
