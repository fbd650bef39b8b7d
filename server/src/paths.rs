//! ShortestPath, AllPaths and DetectCycles requests to the engine's path queries and back.

use std::time::Duration;

use prism_dataflows::{AllPaths, Cycles, FoundPaths, PathLimits, ShortestPath};
use prism_proto::graph;
use tonic::Status;

use crate::config::{within, Limits};
use crate::convert;
use crate::status::invalid;

/// The limits of a path query; `max_hops` is the cap for its hop or depth parameter.
pub fn limits(config: &Limits, max_hops: u32, deadline: Option<Duration>) -> PathLimits {
    PathLimits {
        max_hops,
        max_frontier: config.max_frontier,
        max_expanded_edges: config.max_expanded_edges,
        max_paths: config.max_paths,
        timeout: within(config.traversal_timeout, deadline),
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// A count field where 0 means "the server's default" and negatives are refused.
fn optional_count(field: &str, value: i32) -> Result<Option<u32>, Status> {
    match value {
        0 => Ok(None),
        v if v < 0 => Err(invalid(field, "must not be negative")),
        v => Ok(Some(v as u32)),
    }
}

pub fn shortest_from_proto(request: graph::ShortestPathRequest) -> Result<ShortestPath, Status> {
    required("start_vertex_id", &request.start_vertex_id)?;
    required("end_vertex_id", &request.end_vertex_id)?;
    let max_hops = match request.max_hops {
        None => None,
        Some(h) if h < 1 => return Err(invalid("max_hops", "must be at least 1")),
        Some(h) => Some(h as u32),
    };
    Ok(ShortestPath {
        start: request.start_vertex_id,
        end: request.end_vertex_id,
        max_hops,
        weight_property: request.weight_property.filter(|p| !p.is_empty()),
        labels: request.edge_labels,
    })
}

pub fn all_from_proto(request: graph::AllPathsRequest) -> Result<AllPaths, Status> {
    required("start_vertex_id", &request.start_vertex_id)?;
    required("end_vertex_id", &request.end_vertex_id)?;
    Ok(AllPaths {
        start: request.start_vertex_id,
        end: request.end_vertex_id,
        max_hops: optional_count("max_hops", request.max_hops)?,
        limit: optional_count("limit", request.limit)?.map(|l| l as usize),
    })
}

pub fn cycles_from_proto(request: graph::DetectCyclesRequest) -> Result<Cycles, Status> {
    required("start_vertex_id", &request.start_vertex_id)?;
    Ok(Cycles {
        start: request.start_vertex_id,
        labels: request.edge_labels,
        max_depth: optional_count("max_depth", request.max_depth)?,
        min_length: optional_count("min_cycle_length", request.min_cycle_length)?.unwrap_or(1),
    })
}

pub fn to_proto(found: FoundPaths) -> Vec<graph::Path> {
    found.paths.into_iter().map(convert::path_to_proto).collect()
}
