//! Wire messages to domain types and back, at the edge of the server.

use prism_connectors::codec::value;
use prism_dataflows::{Edge, Micros, Path, Vertex};
use prism_proto::graph;

pub fn timestamp(micros: Micros) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

pub fn vertex_to_proto(vertex: &Vertex) -> graph::Vertex {
    graph::Vertex {
        id: vertex.id.to_string(),
        label: vertex.label.to_string(),
        properties: value::properties_to_proto(&vertex.properties),
        created_at: Some(timestamp(vertex.created_at)),
        updated_at: Some(timestamp(vertex.updated_at)),
    }
}

pub fn edge_to_proto(edge: &Edge) -> graph::Edge {
    graph::Edge {
        id: edge.id.to_string(),
        label: edge.label.to_string(),
        from_vertex_id: edge.from.to_string(),
        to_vertex_id: edge.to.to_string(),
        properties: value::properties_to_proto(&edge.properties),
        created_at: Some(timestamp(edge.created_at)),
    }
}

/// Now, as the log record's timestamp.
pub fn path_to_proto(path: Path) -> graph::Path {
    graph::Path {
        vertex_ids: path.vertices.into_iter().map(String::from).collect(),
        edge_ids: path.edges.into_iter().map(String::from).collect(),
        weight: path.weight,
    }
}

pub fn now_micros() -> Micros {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as Micros).unwrap_or(0)
}
