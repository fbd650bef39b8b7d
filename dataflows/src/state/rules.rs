//! The checks every operation shares, whichever stage decides it: ids present, elements
//! within their limits, namespaces within their capacity. Each answers with the
//! [`Rejection`] a client sees, naming the field or the limit.

use std::collections::HashMap;

use crate::state::graph::WholeGraph;
use crate::state::limits::{too_deep, Capacities, ElementLimits, Measure, MAX_VALUE_DEPTH};
use crate::state::model::Namespace;
use crate::state::write::{RejectKind, Rejection};

/// The element a write would leave, held to the limits in one walk of its values: the
/// size is the config's; the depth the decoders' already, and records built in memory
/// are held to it too, or the log would take a record replay could not decode.
pub fn check_element(limits: &ElementLimits, what: &str, id: &str, measure: Measure) -> Result<(), Rejection> {
    if measure.depth > MAX_VALUE_DEPTH {
        return Err(reject(RejectKind::InvalidArgument, format!("properties: {}", too_deep())));
    }
    let max = limits.max_element_bytes;
    if measure.bytes > max {
        return Err(reject(
            RejectKind::ResourceExhausted,
            format!("{what} {id:?} would take {} bytes, beyond max_element_bytes ({max})", measure.bytes),
        ));
    }
    Ok(())
}

/// Refuses one more of `kind` (`vertices` or `edges`) when `held` is at `max` (its
/// `max_` setting; 0 for none).
pub fn room_for(ns: &Namespace, kind: &str, held: u64, max: u64) -> Result<(), Rejection> {
    if max != 0 && held >= max {
        return Err(reject(
            RejectKind::ResourceExhausted,
            format!("max_{kind}: namespace {ns} holds {held} {kind}, its limit (backend.max_{kind})"),
        ));
    }
    Ok(())
}

pub fn reject(kind: RejectKind, message: String) -> Rejection {
    Rejection::new(kind, message)
}

pub fn require_id(field: &str, id: &str) -> Result<(), Rejection> {
    if id.is_empty() {
        Err(reject(RejectKind::InvalidArgument, format!("{field} must not be empty")))
    } else {
        Ok(())
    }
}

/// The rules a whole graph loaded at once is held to, as its elements would be one by one:
/// ids present, every element within the limits, every namespace within its capacity. (Ids
/// once and edges between the graph's vertices are the caller's to check as it reads it.)
pub fn check_graph(graph: &WholeGraph, limits: &ElementLimits, capacities: &Capacities) -> Result<(), Rejection> {
    let mut counts: HashMap<&Namespace, [u64; 2]> = HashMap::new();
    for (namespace, vertex) in &graph.vertices {
        require_id("vertex id", &vertex.id)?;
        check_element(limits, "vertex", &vertex.id, vertex.measure())?;
        counts.entry(namespace).or_default()[0] += 1;
    }
    for (namespace, edge) in &graph.edges {
        require_id("edge id", &edge.id)?;
        check_element(limits, "edge", &edge.id, edge.measure())?;
        counts.entry(namespace).or_default()[1] += 1;
    }
    for (namespace, [vertices, edges]) in counts {
        let capacity = capacities.of(namespace);
        // One past the last element the namespace may hold is refused, as a create would be.
        if vertices > 0 {
            room_for(namespace, "vertices", vertices - 1, capacity.max_vertices)?;
        }
        if edges > 0 {
            room_for(namespace, "edges", edges - 1, capacity.max_edges)?;
        }
    }
    Ok(())
}
