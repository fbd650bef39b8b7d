//! The rules of the graph, decided for a batch of records against the owners' reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::state::graph::{NamespaceSize, WholeGraph};
use crate::state::ids::{DenseId, NextNumbers};
use crate::state::limits::{Capacities, ElementLimits};
use crate::state::model::{owner_of, Edge, Id, Lsn, Namespace, NumberedEdge, Properties, Shared, Vertex, VertexKey};
use crate::state::names::Names;
use crate::state::rules::{check_element, reject, require_id, room_for};
use crate::state::sharded::overlay::{Kept, Overlay, Space};
use crate::state::sharded::reads::Reads;
use crate::state::sharded::restore::{numbering, Restore};
use crate::state::sharded::{Decided, Decision, Effect};
use crate::state::write::{OpEffect, RecordOutcome, RejectKind, Rejection, WriteOp, WriteRecord};

/// Decides batches on one worker. It keeps nothing of the graph between batches, only the
/// names it shares into the elements it builds.
pub struct Executor {
    workers: usize,
    limits: ElementLimits,
    capacities: Capacities,
    names: HashMap<Namespace, Names, RandomState>,
    /// Per namespace, the numbers each owner gives next and the elements held: the rule
    /// state every create touches, kept here, where batches are decided in order.
    kept: HashMap<Namespace, Kept, RandomState>,
}

impl Executor {
    pub fn new(workers: usize, limits: ElementLimits, capacities: Capacities) -> Self {
        Executor { workers: workers.max(1), limits, capacities, names: HashMap::default(), kept: HashMap::default() }
    }

    /// How many vertices and edges each namespace holds, after the batches decided so far,
    /// in namespace order.
    pub fn sizes(&self) -> Vec<NamespaceSize> {
        let mut sizes: Vec<NamespaceSize> = self
            .kept
            .iter()
            .map(|(namespace, kept)| NamespaceSize {
                namespace: namespace.clone(),
                vertices: kept.count[0],
                edges: kept.count[1],
            })
            .collect();
        sizes.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        sizes
    }

    /// Decides `records` in order against `reads`, each worker's (by worker index) answers
    /// for them.
    pub fn decide(&mut self, records: &[(Lsn, Arc<WriteRecord>)], reads: impl IntoIterator<Item = Reads>) -> Decision {
        let cascades: Vec<(Namespace, Id)> = records
            .iter()
            .flat_map(|(_, record)| {
                record.ops.iter().filter_map(|op| match op {
                    WriteOp::DeleteVertex { id, cascade: true } => Some((record.namespace.clone(), id.into())),
                    _ => None,
                })
            })
            .collect();
        let kept = std::mem::take(&mut self.kept);
        let mut overlay = Overlay::new(self.workers, kept, reads, &cascades);
        let mut decision = Decision::default();
        for (lsn, record) in records {
            let names = self.names.entry(record.namespace.clone()).or_default();
            let mut op = Op {
                space: overlay.space(&record.namespace),
                effects: &mut decision.effects,
                names,
                ns: &record.namespace,
                lsn: *lsn,
                now: record.timestamp,
                limits: &self.limits,
                capacity: self.capacities.of(&record.namespace),
                workers: self.workers,
            };
            decision.outcomes.push(op.record(record));
        }
        self.kept = overlay.finish();
        decision
    }
}

impl Executor {
    /// Takes `graph` into the namespaces it names that are empty here, at once: says where
    /// each owner's numbers start in each (the owners then number and keep their own parts,
    /// [`Shard::restore`](crate::state::sharded::Shard::restore)) and counts what they
    /// will hold. No rule is checked: the graph was a valid one (a checkpoint, or a snapshot
    /// checked whole), with each edge id once. A namespace that holds anything is left out,
    /// with an error logged: the caller restores only into empty ones.
    pub fn restore(&mut self, graph: &WholeGraph) -> Restore {
        let mut restore = Restore::default();
        let named = graph
            .vertices
            .iter()
            .map(|(namespace, _)| namespace)
            .chain(graph.edges.iter().map(|(namespace, _)| namespace));
        let mut considered: HashSet<&Namespace, RandomState> = HashSet::default();
        for namespace in named {
            if !considered.insert(namespace) {
                continue;
            }
            let kept = self.kept.entry(namespace.clone()).or_default();
            if kept.count != [0, 0] {
                tracing::error!(%namespace, "a restore into a namespace that is not empty; left out");
                continue;
            }
            let starts = (0..self.workers).map(|owner| kept.numbers.get(&owner).map_or(0, NextNumbers::end)).collect();
            restore.starts.push((namespace.clone(), starts));
        }
        let numberings = numbering(graph, &restore, self.workers);
        for (namespace, numbering) in &numberings.namespaces {
            let kept = self.kept.entry(namespace.clone()).or_default();
            for owner in 0..self.workers {
                let taken = numbering.taken(owner);
                kept.numbers.entry(owner).or_default().extend(taken as DenseId);
                kept.count[0] += taken;
            }
        }
        // The owners keep every edge of a valid graph (both ends in it, each id once: what
        // a checkpoint holds and a bulk load's check makes sure of), so every edge is
        // counted, with no lookup of its ends here: this worker did all of them, one after
        // another, while every other worker waited for the restore's starts (they log an
        // edge they cannot keep).
        for run in graph.edges.chunk_by(|(a, _), (b, _)| a == b) {
            let namespace = &run[0].0;
            if numberings.namespaces.contains_key(namespace) {
                self.kept.entry(namespace.clone()).or_default().count[1] += run.len() as u64;
            }
        }
        restore
    }
}

/// One record's operations being decided.
struct Op<'a> {
    space: &'a mut Space,
    effects: &'a mut Vec<Decided>,
    names: &'a mut Names,
    ns: &'a Namespace,
    lsn: Lsn,
    now: i64,
    limits: &'a ElementLimits,
    capacity: crate::state::limits::Capacity,
    workers: usize,
}

impl Op<'_> {
    fn record(&mut self, record: &WriteRecord) -> RecordOutcome {
        let start = self.effects.len();
        if record.atomic {
            self.space.begin();
        }
        let mut results = Vec::with_capacity(record.ops.len());
        for op in &record.ops {
            let result = self.op(op);
            let rejected = result.is_err();
            results.push(result);
            if rejected && record.atomic {
                self.space.rollback();
                self.effects.truncate(start);
                break;
            }
        }
        self.space.commit();
        RecordOutcome { lsn: self.lsn, results }
    }

    fn effect(&mut self, effect: Effect) {
        self.effects.push(Decided { lsn: self.lsn, namespace: self.ns.clone(), effect });
    }

    /// `properties` with their keys shared.
    fn named(&mut self, properties: &Properties) -> Properties {
        let mut properties = properties.clone();
        properties.share_keys(|key| self.names.share(key));
        properties
    }

    /// Checks one operation, and only if it passes, changes the overlay: an operation is
    /// never half applied.
    fn op(&mut self, op: &WriteOp) -> Result<OpEffect, Rejection> {
        let ns = self.ns;
        match op {
            WriteOp::CreateVertex { id, label, properties } => {
                require_id("vertex id", id)?;
                if self.space.number(id).is_some() {
                    return Err(reject(RejectKind::AlreadyExists, format!("vertex {id:?} already exists")));
                }
                room_for(ns, "vertices", self.space.count()[0], self.capacity.max_vertices)?;
                let mut vertex = Vertex {
                    number: Default::default(),
                    id: id.as_str().into(),
                    label: self.names.of(label),
                    properties: self.named(properties),
                    created_at: self.now,
                    updated_at: self.now,
                };
                check_element(self.limits, "vertex", id, vertex.measure())?;
                let owner = owner_of(VertexKey::route(ns, id), self.workers);
                vertex.number = self.space.take_number(owner);
                let vertex = Shared::new(vertex);
                self.space.set_vertex(id, Some(vertex.clone()));
                self.space.add_count(0, 1);
                self.effect(Effect::VertexCreated(vertex.clone()));
                Ok(OpEffect::Vertex(vertex))
            }
            WriteOp::UpdateVertex { id, properties, merge, label } => {
                require_id("vertex id", id)?;
                let Some(before) = self.space.vertex(id).cloned() else {
                    return Err(reject(RejectKind::NotFound, format!("vertex {id:?} not found")));
                };
                let label = label.as_deref().map(|label| self.names.of(label));
                let properties = self.named(properties);
                let mut after = Vertex::clone(&before);
                if let Some(label) = label {
                    after.label = label;
                }
                if *merge {
                    after.properties.merge(&properties);
                } else {
                    after.properties = properties;
                }
                after.updated_at = self.now;
                // The element as it would be: a merge can push it past the limit.
                check_element(self.limits, "vertex", id, after.measure())?;
                let after = Shared::new(after);
                self.space.set_vertex(id, Some(after.clone()));
                self.effect(Effect::VertexUpdated { before, after: after.clone() });
                Ok(OpEffect::Vertex(after))
            }
            WriteOp::DeleteVertex { id, cascade } => {
                require_id("vertex id", id)?;
                let Some(vertex) = self.space.vertex(id).cloned() else {
                    return Err(reject(RejectKind::NotFound, format!("vertex {id:?} not found")));
                };
                let degree = self.space.degree(id);
                if degree > 0 && !cascade {
                    return Err(reject(
                        RejectKind::FailedPrecondition,
                        format!("vertex {id:?} has {degree} edges; delete them first or set cascade"),
                    ));
                }
                let mut deleted = 0;
                for edge in self.space.edges_at(id, vertex.number) {
                    if let Some(edge) = self.space.remove_edge(&edge) {
                        self.space.add_count(1, -1);
                        self.effect(Effect::EdgeDeleted(edge));
                        deleted += 1;
                    }
                }
                self.space.set_vertex(id, None);
                self.space.free_number(vertex.number);
                self.space.add_count(0, -1);
                self.effect(Effect::VertexDeleted(vertex));
                Ok(OpEffect::VertexDeleted { edges_deleted: deleted })
            }
            WriteOp::CreateEdge { id, label, from, to, properties } => {
                require_id("edge id", id)?;
                require_id("from_vertex_id", from)?;
                require_id("to_vertex_id", to)?;
                if self.space.edge(id).is_some() {
                    return Err(reject(RejectKind::AlreadyExists, format!("edge {id:?} already exists")));
                }
                let endpoint = |field: &str, endpoint: &String| {
                    self.space.number(endpoint).ok_or_else(|| {
                        reject(RejectKind::FailedPrecondition, format!("{field}: vertex {endpoint:?} does not exist"))
                    })
                };
                let (from_number, to_number) = (endpoint("from_vertex_id", from)?, endpoint("to_vertex_id", to)?);
                room_for(ns, "edges", self.space.count()[1], self.capacity.max_edges)?;
                let edge = Shared::new(Edge {
                    id: id.as_str().into(),
                    label: self.names.of(label),
                    from: from.as_str().into(),
                    to: to.as_str().into(),
                    properties: self.named(properties),
                    created_at: self.now,
                });
                check_element(self.limits, "edge", id, edge.measure())?;
                let numbered = NumberedEdge { from: from_number, to: to_number, edge: edge.clone() };
                self.space.add_edge(numbered.clone());
                self.space.add_count(1, 1);
                self.effect(Effect::EdgeCreated(numbered));
                Ok(OpEffect::Edge(edge))
            }
            WriteOp::DeleteEdge { id } => {
                require_id("edge id", id)?;
                let Some(edge) = self.space.remove_edge(id) else {
                    return Err(reject(RejectKind::NotFound, format!("edge {id:?} not found")));
                };
                self.space.add_count(1, -1);
                self.effect(Effect::EdgeDeleted(edge));
                Ok(OpEffect::EdgeDeleted)
            }
        }
    }
}
