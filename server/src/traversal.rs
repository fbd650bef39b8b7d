//! Traverse requests to the engine's traversal and back: validation naming each field, and
//! the limits of the namespace's config.

use std::collections::HashMap;
use std::time::Duration;

use prism_connectors::codec::value;
use prism_dataflows::{Direction, Value};
use prism_dataflows::{Filter, Operator, Predicate};
use prism_dataflows::{Step, Traversal, TraversalLimits, Traversed};
use prism_proto::graph::{self, traversal_step, traverse_request, value_predicate};
use tonic::Status;

use crate::config::{within, Limits};
use crate::convert::{self, edge_to_proto, vertex_to_proto};
use crate::status::invalid;

/// Converts a request; returns the traversal and the limits it runs under.
pub fn from_proto(
    request: graph::TraverseRequest,
    config: &Limits,
    deadline: Option<Duration>,
) -> Result<(Traversal, TraversalLimits), Status> {
    if request.start_vertex_id.is_empty() {
        return Err(invalid("start_vertex_id", "must not be empty"));
    }
    let max_depth = match request.max_depth {
        None => config.max_traversal_depth,
        Some(d) if d < 1 => return Err(invalid("max_depth", "must be at least 1")),
        Some(d) if d as u32 > config.max_traversal_depth => {
            return Err(Status::resource_exhausted(format!(
                "max_depth: {d} exceeds the server's max_traversal_depth of {}",
                config.max_traversal_depth
            )))
        }
        Some(d) => d as u32,
    };
    let limit = match request.limit {
        None => None,
        Some(l) if l < 1 => return Err(invalid("limit", "must be at least 1")),
        Some(l) => Some(l as usize),
    };
    let steps = request.steps.iter().enumerate().map(|(i, s)| step_from_proto(i, s)).collect::<Result<_, _>>()?;
    let rank_by = traverse_request::RankBy::try_from(request.rank_by)
        .map_err(|_| invalid("rank_by", format!("unknown value {}", request.rank_by)))?;
    let traversal = Traversal {
        start: request.start_vertex_id,
        steps,
        limit,
        vertex_filter: request
            .vertex_filter
            .map(|f| filter_from_proto("vertex_filter", f.labels, &f.property_filters))
            .transpose()?,
        edge_filter: request
            .edge_filter
            .map(|f| filter_from_proto("edge_filter", f.labels, &f.property_filters))
            .transpose()?,
        include_paths: request.include_paths,
        exclude: request.exclude_vertex_ids,
        rank_by_path_count: rank_by == traverse_request::RankBy::PathCount,
    };
    let timeout = within(config.traversal_timeout, deadline);
    let limits = TraversalLimits {
        max_depth,
        max_frontier: config.max_frontier,
        max_expanded_edges: config.max_expanded_edges,
        max_results: config.max_results,
        max_paths: config.max_paths,
        timeout,
    };
    Ok((traversal, limits))
}

fn step_from_proto(index: usize, step: &graph::TraversalStep) -> Result<Step, Status> {
    let field = |name: &str| format!("steps[{index}].{name}");
    let direction = match traversal_step::Direction::try_from(step.direction) {
        Ok(traversal_step::Direction::Out) => Direction::Out,
        Ok(traversal_step::Direction::In) => Direction::In,
        Ok(traversal_step::Direction::Both) => Direction::Both,
        Err(_) => return Err(invalid(&field("direction"), format!("unknown value {}", step.direction))),
    };
    let min_hops = step.min_hops.unwrap_or(1);
    if min_hops < 0 {
        return Err(invalid(&field("min_hops"), "must not be negative"));
    }
    let max_hops = step.max_hops.unwrap_or(min_hops.max(1));
    if max_hops < min_hops {
        return Err(invalid(&field("max_hops"), format!("{max_hops} is below min_hops {min_hops}")));
    }
    Ok(Step { direction, labels: step.edge_labels.clone(), min_hops: min_hops as u32, max_hops: max_hops as u32 })
}

pub fn filter_from_proto(
    field: &str,
    labels: Vec<String>,
    predicates: &HashMap<String, graph::ValuePredicate>,
) -> Result<Filter, Status> {
    let mut properties = Vec::with_capacity(predicates.len());
    for (key, predicate) in predicates {
        let at = format!("{field}.property_filters.{key}");
        let operator = match value_predicate::Operator::try_from(predicate.operator) {
            Ok(value_predicate::Operator::Eq) => Operator::Eq,
            Ok(value_predicate::Operator::Ne) => Operator::Ne,
            Ok(value_predicate::Operator::Lt) => Operator::Lt,
            Ok(value_predicate::Operator::Le) => Operator::Le,
            Ok(value_predicate::Operator::Gt) => Operator::Gt,
            Ok(value_predicate::Operator::Ge) => Operator::Ge,
            Ok(value_predicate::Operator::In) => Operator::In,
            Ok(value_predicate::Operator::Contains) => Operator::Contains,
            Ok(value_predicate::Operator::StartsWith) => Operator::StartsWith,
            Err(_) => {
                return Err(invalid(&format!("{at}.operator"), format!("unknown operator {}", predicate.operator)))
            }
        };
        let wire = predicate.value.as_ref().ok_or_else(|| invalid(&format!("{at}.value"), "is required"))?;
        let value = value::from_proto(wire, &format!("{at}.value")).map_err(Status::invalid_argument)?;
        if operator == Operator::In && !matches!(value, Value::List(_)) {
            return Err(invalid(&format!("{at}.value"), "IN needs a list value"));
        }
        properties.push((key.clone(), Predicate { operator, value }));
    }
    properties.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Filter { labels, properties })
}

pub fn to_proto(result: Traversed, with_counts: bool) -> graph::TraverseResponse {
    graph::TraverseResponse {
        vertices: result.vertices.iter().map(|v| vertex_to_proto(v)).collect(),
        edges: result.edges.iter().map(|e| edge_to_proto(e)).collect(),
        paths: result.paths.into_iter().map(convert::path_to_proto).collect(),
        path_counts: if with_counts { result.path_counts.iter().map(|c| *c as i64).collect() } else { Vec::new() },
    }
}
