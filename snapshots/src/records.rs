//! One snapshot record in either encoding: a [`SnapshotItem`] to and from snapshot.proto's
//! `SnapshotRecord` and its JSON line. The reader and the writer frame and compress them.

use prism_connectors::codec::value;
use prism_dataflows::{Edge, OpEffect, RejectKind, Rejection, Shared, Vertex};
use prism_proto::snapshot::{
    operation_result, snapshot_record, EdgeRecord, OperationResult, RequestRecord, SnapshotMetadata, SnapshotRecord,
    VertexRecord,
};
use serde_json::{json, Value as Json};

use crate::item::{Section, SnapshotEdge, SnapshotItem, SnapshotRequest, SnapshotVertex};

/// A decoded record as an item; the error says what is wrong with it.
pub(crate) fn item_from_proto(record: SnapshotRecord) -> Result<SnapshotItem, String> {
    match record.record {
        Some(snapshot_record::Record::Metadata(metadata)) => Ok(SnapshotItem::Section(section(metadata))),
        Some(snapshot_record::Record::Vertex(vertex)) => Ok(SnapshotItem::Vertex(vertex_from_proto(vertex)?)),
        Some(snapshot_record::Record::Edge(edge)) => Ok(SnapshotItem::Edge(edge_from_proto(edge)?)),
        Some(snapshot_record::Record::Request(request) | snapshot_record::Record::RequestField4(request)) => {
            Ok(SnapshotItem::Request(request_from_proto(request)?))
        }
        None => Err("unknown record type (neither metadata, vertex, edge nor request)".into()),
    }
}

pub(crate) fn item_to_proto(item: &SnapshotItem) -> SnapshotRecord {
    let record = match item {
        SnapshotItem::Section(section) => snapshot_record::Record::Metadata(SnapshotMetadata {
            snapshot_id: section.snapshot_id.clone(),
            timestamp: section.timestamp,
            vertex_count: section.vertex_count.map_or(-1, |n| n as i64),
            edge_count: section.edge_count.map_or(-1, |n| n as i64),
            previous_snapshot_id: String::new(),
            lsn: section.lsn,
            namespace: section.namespace.clone().unwrap_or_default(),
        }),
        SnapshotItem::Vertex(vertex) => snapshot_record::Record::Vertex(vertex_to_proto(vertex)),
        SnapshotItem::Edge(edge) => snapshot_record::Record::Edge(edge_to_proto(edge)),
        SnapshotItem::Request(request) => snapshot_record::Record::Request(request_to_proto(request)),
    };
    SnapshotRecord { record: Some(record) }
}

fn section(metadata: SnapshotMetadata) -> Section {
    Section {
        namespace: (!metadata.namespace.is_empty()).then_some(metadata.namespace),
        snapshot_id: metadata.snapshot_id,
        timestamp: metadata.timestamp,
        vertex_count: u64::try_from(metadata.vertex_count).ok(),
        edge_count: u64::try_from(metadata.edge_count).ok(),
        lsn: metadata.lsn,
    }
}

fn vertex_from_proto(vertex: VertexRecord) -> Result<SnapshotVertex, String> {
    Ok(SnapshotVertex {
        properties: value::decode_properties(&vertex.properties)?,
        id: vertex.id,
        label: vertex.label,
        created_at: vertex.created_at,
        updated_at: vertex.updated_at,
    })
}

fn edge_from_proto(edge: EdgeRecord) -> Result<SnapshotEdge, String> {
    Ok(SnapshotEdge {
        properties: value::decode_properties(&edge.properties)?,
        id: edge.id,
        label: edge.label,
        from: edge.from_vertex_id,
        to: edge.to_vertex_id,
        created_at: edge.created_at,
    })
}

fn vertex_to_proto(vertex: &SnapshotVertex) -> VertexRecord {
    VertexRecord {
        id: vertex.id.clone(),
        label: vertex.label.clone(),
        properties: value::encode_properties(&vertex.properties),
        created_at: vertex.created_at,
        updated_at: vertex.updated_at,
    }
}

fn edge_to_proto(edge: &SnapshotEdge) -> EdgeRecord {
    EdgeRecord {
        id: edge.id.clone(),
        label: edge.label.clone(),
        from_vertex_id: edge.from.clone(),
        to_vertex_id: edge.to.clone(),
        properties: value::encode_properties(&edge.properties),
        created_at: edge.created_at,
    }
}

fn request_from_proto(request: RequestRecord) -> Result<SnapshotRequest, String> {
    use operation_result::Result as Kind;
    let results = request
        .results
        .into_iter()
        .map(|result| {
            Ok(match result.result {
                Some(Kind::Vertex(v)) => Ok(OpEffect::Vertex(Shared::new(Vertex::from(vertex_from_proto(v)?)))),
                Some(Kind::VertexDeleted(edges_deleted)) => Ok(OpEffect::VertexDeleted { edges_deleted }),
                Some(Kind::Edge(e)) => Ok(OpEffect::Edge(Shared::new(Edge::from(edge_from_proto(e)?)))),
                Some(Kind::EdgeDeleted(_)) => Ok(OpEffect::EdgeDeleted),
                Some(Kind::Rejection(r)) => Err(rejection(&r.kind, r.message)?),
                None => return Err("request: a result of no kind".to_string()),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(SnapshotRequest { request_id: request.request_id, lsn: request.lsn, timestamp: request.timestamp, results })
}

fn request_to_proto(request: &SnapshotRequest) -> RequestRecord {
    use operation_result::Result as Kind;
    let results = request
        .results
        .iter()
        .map(|result| {
            let kind = match result {
                Ok(OpEffect::Vertex(v)) => Kind::Vertex(vertex_to_proto(&SnapshotVertex::of(v))),
                Ok(OpEffect::VertexDeleted { edges_deleted }) => Kind::VertexDeleted(*edges_deleted),
                Ok(OpEffect::Edge(e)) => Kind::Edge(edge_to_proto(&SnapshotEdge::of(e))),
                Ok(OpEffect::EdgeDeleted) => Kind::EdgeDeleted(true),
                Err(r) => Kind::Rejection(prism_proto::snapshot::Rejection {
                    kind: r.kind.name().into(),
                    message: r.message.clone(),
                }),
            };
            OperationResult { result: Some(kind) }
        })
        .collect();
    RequestRecord { request_id: request.request_id.clone(), lsn: request.lsn, timestamp: request.timestamp, results }
}

fn rejection(kind: &str, message: String) -> Result<Rejection, String> {
    let kind = RejectKind::from_name(kind).ok_or_else(|| format!("request: unknown rejection kind {kind:?}"))?;
    Ok(Rejection::new(kind, message))
}

/// A JSON line as an item; the error says what is wrong with it.
pub(crate) fn item_from_json(json: &Json) -> Result<SnapshotItem, String> {
    let count = |name: &str| json.get(name).and_then(Json::as_i64).and_then(|n| u64::try_from(n).ok());
    match text(json, "type")?.as_str() {
        "vertex" => Ok(SnapshotItem::Vertex(vertex_from_json(json)?)),
        "edge" => Ok(SnapshotItem::Edge(edge_from_json(json)?)),
        "metadata" => Ok(SnapshotItem::Section(Section {
            namespace: json.get("namespace").and_then(Json::as_str).filter(|n| !n.is_empty()).map(str::to_owned),
            snapshot_id: json.get("snapshot_id").and_then(Json::as_str).unwrap_or_default().to_owned(),
            timestamp: time(json, "timestamp"),
            vertex_count: count("vertex_count"),
            edge_count: count("edge_count"),
            lsn: json.get("lsn").and_then(Json::as_u64).unwrap_or(0),
        })),
        "request" => Ok(SnapshotItem::Request(request_from_json(json)?)),
        other => Err(format!("unknown record type {other:?} (valid: metadata, vertex, edge, request)")),
    }
}

pub(crate) fn item_to_json(item: &SnapshotItem) -> Json {
    match item {
        SnapshotItem::Section(section) => json!({
            "type": "metadata",
            "namespace": section.namespace.clone().unwrap_or_default(),
            "snapshot_id": section.snapshot_id,
            "timestamp": section.timestamp,
            "vertex_count": section.vertex_count.map_or(-1, |n| n as i64),
            "edge_count": section.edge_count.map_or(-1, |n| n as i64),
            "lsn": section.lsn,
        }),
        SnapshotItem::Vertex(v) => typed("vertex", vertex_to_json(v)),
        SnapshotItem::Edge(e) => typed("edge", edge_to_json(e)),
        SnapshotItem::Request(request) => json!({
            "type": "request",
            "request_id": request.request_id,
            "lsn": request.lsn,
            "timestamp": request.timestamp,
            "results": request.results.iter().map(result_to_json).collect::<Vec<_>>(),
        }),
    }
}

fn text(json: &Json, name: &str) -> Result<String, String> {
    json.get(name).and_then(Json::as_str).map(str::to_owned).ok_or_else(|| format!("{name}: must be a string"))
}

fn time(json: &Json, name: &str) -> i64 {
    json.get(name).and_then(Json::as_i64).unwrap_or(0)
}

fn properties(json: &Json) -> Result<prism_dataflows::Properties, String> {
    prism_connectors::json::properties(json.get("properties"), "properties").map_err(|e| e.to_string())
}

fn vertex_from_json(json: &Json) -> Result<SnapshotVertex, String> {
    Ok(SnapshotVertex {
        id: text(json, "id")?,
        label: text(json, "label")?,
        properties: properties(json)?,
        created_at: time(json, "created_at"),
        updated_at: time(json, "updated_at"),
    })
}

fn edge_from_json(json: &Json) -> Result<SnapshotEdge, String> {
    Ok(SnapshotEdge {
        id: text(json, "id")?,
        label: text(json, "label")?,
        from: text(json, "from")?,
        to: text(json, "to")?,
        properties: properties(json)?,
        created_at: time(json, "created_at"),
    })
}

fn properties_to_json(properties: &prism_dataflows::Properties) -> Json {
    Json::Object(properties.iter().map(|(k, v)| (k.to_owned(), prism_connectors::json::to_json(v))).collect())
}

fn vertex_to_json(v: &SnapshotVertex) -> Json {
    json!({
        "id": v.id, "label": v.label, "properties": properties_to_json(&v.properties),
        "created_at": v.created_at, "updated_at": v.updated_at,
    })
}

fn edge_to_json(e: &SnapshotEdge) -> Json {
    json!({
        "id": e.id, "label": e.label, "from": e.from, "to": e.to,
        "properties": properties_to_json(&e.properties), "created_at": e.created_at,
    })
}

/// `object` with its `"type"` field set.
fn typed(kind: &str, mut object: Json) -> Json {
    if let Json::Object(fields) = &mut object {
        fields.insert("type".into(), Json::String(kind.into()));
    }
    object
}

fn result_to_json(result: &Result<OpEffect, Rejection>) -> Json {
    match result {
        Ok(OpEffect::Vertex(v)) => json!({ "vertex": vertex_to_json(&SnapshotVertex::of(v)) }),
        Ok(OpEffect::VertexDeleted { edges_deleted }) => json!({ "vertex_deleted": edges_deleted }),
        Ok(OpEffect::Edge(e)) => json!({ "edge": edge_to_json(&SnapshotEdge::of(e)) }),
        Ok(OpEffect::EdgeDeleted) => json!({ "edge_deleted": true }),
        Err(r) => json!({ "rejection": { "kind": r.kind.name(), "message": r.message } }),
    }
}

fn request_from_json(json: &Json) -> Result<SnapshotRequest, String> {
    let results = json
        .get("results")
        .and_then(Json::as_array)
        .ok_or("results: must be a list")?
        .iter()
        .map(|result| {
            if let Some(v) = result.get("vertex") {
                Ok(Ok(OpEffect::Vertex(Shared::new(Vertex::from(vertex_from_json(v)?)))))
            } else if let Some(n) = result.get("vertex_deleted") {
                let edges_deleted = n.as_u64().ok_or("vertex_deleted: must be a count")?;
                Ok(Ok(OpEffect::VertexDeleted { edges_deleted }))
            } else if let Some(e) = result.get("edge") {
                Ok(Ok(OpEffect::Edge(Shared::new(Edge::from(edge_from_json(e)?)))))
            } else if result.get("edge_deleted").is_some() {
                Ok(Ok(OpEffect::EdgeDeleted))
            } else if let Some(r) = result.get("rejection") {
                Ok(Err(rejection(&text(r, "kind")?, text(r, "message")?)?))
            } else {
                Err("results: a result of no known kind".to_string())
            }
        })
        .collect::<Result<_, String>>()?;
    Ok(SnapshotRequest {
        request_id: text(json, "request_id")?,
        lsn: json.get("lsn").and_then(Json::as_u64).unwrap_or(0),
        timestamp: time(json, "timestamp"),
        results,
    })
}
