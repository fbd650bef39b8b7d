//! The GraphService: validates each call, turns writes into one log record, reads from the
//! engine, and maps every outcome to a reply or a status.

use std::sync::Arc;
use std::time::Duration;

use prism_connectors::codec::value;
use prism_dataflows::{
    Answer, EdgeKey, Engine, EngineError, Lsn, Namespace, OpEffect, Properties, Query, RecordOutcome, VertexKey,
    WriteOp, WriteRecord,
};
use prism_dataflows::{CommunityAlgorithm, CommunityParams, PageRankParams};
use prism_proto::graph::*;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::audit::{Audit, Caller, Changes, Operation, Origin, Outcome};
use crate::config::{within, Config};
use crate::convert::{edge_to_proto, now_micros, vertex_to_proto};
use crate::paths;
use crate::pb::graph_service_server::GraphService;
use crate::status::{self, invalid};
use crate::subscription;
use crate::traversal;

pub const NAMESPACE_HEADER: &str = "x-prism-namespace";
pub const LSN_HEADER: &str = "x-prism-lsn";
pub const MIN_LSN_HEADER: &str = "x-prism-min-lsn";
/// Makes a write safe to retry: a write whose request id was applied before answers with the
/// first outcome instead of applying again.
pub const REQUEST_ID_HEADER: &str = "x-prism-request-id";

/// Longest request id accepted.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Label propagation's iterations when the request does not say.
const DEFAULT_LABEL_ITERATIONS: u32 = 10;

/// Longest namespace name accepted.
const MAX_NAMESPACE_BYTES: usize = 256;

pub struct GraphApi {
    engine: Arc<Engine>,
    config: Arc<Config>,
    audit: Option<Audit>,
}

/// A mutating call: its metadata, who made it, and the method, for the audit log.
struct Call {
    metadata: MetadataMap,
    origin: Origin,
    method: &'static str,
}

impl Call {
    fn of<T>(request: Request<T>, method: &'static str) -> (Call, T) {
        let token = request.extensions().get::<Caller>().map(|caller| caller.0.clone());
        let origin = Origin { token, peer: request.remote_addr() };
        let (metadata, _, message) = request.into_parts();
        (Call { metadata, origin, method }, message)
    }
}

impl GraphApi {
    pub fn new(engine: Arc<Engine>, config: Arc<Config>, audit: Option<Audit>) -> Self {
        GraphApi { engine, config, audit }
    }

    /// Appends one record and waits until it is durable and applied (and audited).
    async fn write(&self, call: &Call, atomic: bool, ops: Vec<WriteOp>) -> Result<RecordOutcome, Status> {
        let metadata = &call.metadata;
        let namespace = namespace(metadata)?;
        let timeout = deadline(metadata)?.unwrap_or(self.config.server.write_timeout);
        let request_id = request_id(metadata)?;
        let operations = match self.audit {
            Some(_) => ops.iter().map(Operation::of).collect(),
            None => Vec::new(),
        };
        let record = WriteRecord {
            namespace: namespace.clone(),
            atomic,
            timestamp: now_micros(),
            ops,
            request_id,
            ..Default::default()
        };
        let written = self.engine.write(record, timeout).await.map_err(status::from_engine);
        if let Some(audit) = &self.audit {
            let outcome = match &written {
                Ok(outcome) => Outcome::of(outcome),
                Err(status) => Outcome::failed(status),
            };
            let changes = Changes::Operations { operations };
            audit.record(&call.origin, call.method, namespace.as_str(), &changes, &outcome).await;
        }
        written
    }

    /// Writes a single operation; its rejection becomes the call's status.
    async fn write_one(&self, call: &Call, op: WriteOp) -> Result<(Lsn, OpEffect), Status> {
        let outcome = self.write(call, true, vec![op]).await?;
        match outcome.results.into_iter().next() {
            Some(Ok(effect)) => Ok((outcome.lsn, effect)),
            Some(Err(rejection)) => Err(status::from_rejection(&rejection, "")),
            None => Err(Status::internal("the write produced no result")),
        }
    }

    async fn read(&self, metadata: &MetadataMap, query: Query) -> Result<(Lsn, Answer), Status> {
        let min_lsn = min_lsn(metadata)?;
        let timeout = deadline(metadata)?.unwrap_or(self.config.server.read_timeout);
        self.engine.read(query, min_lsn, timeout).await.map_err(status::from_engine)
    }
}

fn with_lsn<T>(message: T, lsn: Lsn) -> Response<T> {
    let mut response = Response::new(message);
    if let Ok(value) = lsn.to_string().parse() {
        response.metadata_mut().insert(LSN_HEADER, value);
    }
    response
}

fn namespace(metadata: &MetadataMap) -> Result<Namespace, Status> {
    let Some(value) = metadata.get(NAMESPACE_HEADER) else {
        return Ok(Namespace::default());
    };
    let name = value.to_str().map_err(|_| invalid(NAMESPACE_HEADER, "must be printable ASCII"))?;
    if name.len() > MAX_NAMESPACE_BYTES {
        return Err(invalid(NAMESPACE_HEADER, format!("longer than {MAX_NAMESPACE_BYTES} bytes")));
    }
    Ok(Namespace::new(name))
}

fn request_id(metadata: &MetadataMap) -> Result<Option<String>, Status> {
    let Some(value) = metadata.get(REQUEST_ID_HEADER) else {
        return Ok(None);
    };
    let id = value.to_str().map_err(|_| invalid(REQUEST_ID_HEADER, "must be printable ASCII"))?;
    if id.is_empty() || id.len() > MAX_REQUEST_ID_BYTES {
        return Err(invalid(REQUEST_ID_HEADER, format!("must be 1 to {MAX_REQUEST_ID_BYTES} bytes")));
    }
    Ok(Some(id.to_owned()))
}

fn min_lsn(metadata: &MetadataMap) -> Result<Lsn, Status> {
    let Some(value) = metadata.get(MIN_LSN_HEADER) else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| invalid(MIN_LSN_HEADER, "must be a non-negative integer LSN"))
}

/// The call's deadline (`grpc-timeout`), if the client set one.
fn deadline(metadata: &MetadataMap) -> Result<Option<Duration>, Status> {
    let Some(value) = metadata.get("grpc-timeout") else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| invalid("grpc-timeout", "not ASCII"))?;
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let amount: u64 = digits.parse().map_err(|_| invalid("grpc-timeout", format!("{text:?} is malformed")))?;
    let duration = match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return Err(invalid("grpc-timeout", format!("{text:?} has an unknown unit"))),
    };
    // Answer a little before the caller gives up, so it gets DEADLINE_EXCEEDED with our
    // message rather than a cancellation of its own.
    let margin = (duration / 10).min(Duration::from_millis(50));
    Ok(Some(duration.saturating_sub(margin)))
}

fn require(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

fn properties(field: &str, wire: &std::collections::HashMap<String, Value>) -> Result<Properties, Status> {
    value::properties_from_proto(wire, field).map_err(Status::invalid_argument)
}

/// A CreateVertexRequest as an operation. Errors name the field relative to the request;
/// a batch prefixes the item (only on error, so valid items cost no formatting).
fn create_vertex_op(request: CreateVertexRequest) -> Result<WriteOp, Status> {
    require("id", &request.id)?;
    let properties = properties("properties", &request.properties)?;
    Ok(WriteOp::CreateVertex { id: request.id, label: request.label, properties })
}

fn create_edge_op(request: CreateEdgeRequest) -> Result<WriteOp, Status> {
    require("id", &request.id)?;
    require("from_vertex_id", &request.from_vertex_id)?;
    require("to_vertex_id", &request.to_vertex_id)?;
    let properties = properties("properties", &request.properties)?;
    Ok(WriteOp::CreateEdge {
        id: request.id,
        label: request.label,
        from: request.from_vertex_id,
        to: request.to_vertex_id,
        properties,
    })
}

/// How a batch's items fared: valid items go into the record, invalid ones are reported at
/// their index without reaching the log.
struct Batch {
    ops: Vec<WriteOp>,
    /// For each op, its index in the request.
    indexes: Vec<usize>,
    errors: Vec<ItemError>,
}

impl GraphApi {
    /// Validates a batch's items; an atomic batch fails on the first invalid one.
    fn batch<T>(
        &self,
        metadata: &MetadataMap,
        items: Vec<T>,
        atomic: bool,
        field: &str,
        to_op: impl Fn(T) -> Result<WriteOp, Status>,
    ) -> Result<Batch, Status> {
        let ns = namespace(metadata)?;
        let max = self.config.limits(ns.as_str()).batch_size;
        if items.len() > max {
            return Err(Status::resource_exhausted(format!(
                "{field}: {} items exceed the batch_size limit of {max}",
                items.len()
            )));
        }
        let mut batch = Batch { ops: Vec::with_capacity(items.len()), indexes: Vec::new(), errors: Vec::new() };
        for (index, item) in items.into_iter().enumerate() {
            match to_op(item).map_err(|s| Status::new(s.code(), format!("{field}[{index}].{}", s.message()))) {
                Ok(op) => {
                    batch.ops.push(op);
                    batch.indexes.push(index);
                }
                Err(status) if atomic => return Err(status),
                Err(status) => batch.errors.push(ItemError {
                    index: index as i32,
                    code: status::code_name(status.code()).into(),
                    message: status.message().into(),
                }),
            }
        }
        Ok(batch)
    }

    /// Writes a validated batch; returns the LSN, the effects, and every item's error.
    async fn write_batch(
        &self,
        call: &Call,
        mut batch: Batch,
        atomic: bool,
        field: &str,
    ) -> Result<(Lsn, Vec<OpEffect>, Vec<ItemError>), Status> {
        if batch.ops.is_empty() {
            return Ok((self.engine.applied_lsn(), Vec::new(), batch.errors));
        }
        let outcome = self.write(call, atomic, std::mem::take(&mut batch.ops)).await?;
        if atomic {
            if let Some((i, rejection)) = outcome.first_rejection() {
                return Err(status::from_rejection(rejection, &format!("{field}[{}]: ", batch.indexes[i])));
            }
        }
        let mut effects = Vec::new();
        for (i, result) in outcome.results.into_iter().enumerate() {
            match result {
                Ok(effect) => effects.push(effect),
                Err(rejection) => batch.errors.push(ItemError {
                    index: batch.indexes[i] as i32,
                    code: rejection.kind.name().into(),
                    message: rejection.message,
                }),
            }
        }
        batch.errors.sort_by_key(|e| e.index);
        Ok((outcome.lsn, effects, batch.errors))
    }
}

#[tonic::async_trait]
impl GraphService for GraphApi {
    async fn create_vertex(
        &self,
        request: Request<CreateVertexRequest>,
    ) -> Result<Response<CreateVertexResponse>, Status> {
        let (call, message) = Call::of(request, "CreateVertex");
        let op = create_vertex_op(message)?;
        let (lsn, effect) = self.write_one(&call, op).await?;
        let OpEffect::Vertex(vertex) = effect else {
            return Err(Status::internal("unexpected write effect"));
        };
        Ok(with_lsn(CreateVertexResponse { vertex: Some(vertex_to_proto(&vertex)) }, lsn))
    }

    async fn get_vertex(&self, request: Request<GetVertexRequest>) -> Result<Response<GetVertexResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        require("id", &message.id)?;
        let namespace = namespace(&metadata)?;
        let max_edges = self.config.limits(namespace.as_str()).max_vertex_edges;
        let key = VertexKey::new(&namespace, &message.id);
        let (lsn, answer) =
            self.read(&metadata, Query::GetVertex { key, include_edges: message.include_edges, max_edges }).await?;
        let Answer::Vertex(Some(found)) = answer else {
            return Err(Status::not_found(format!("vertex {:?} not found", message.id)));
        };
        if found.truncated {
            return Err(Status::resource_exhausted(format!(
                "include_edges: vertex {:?} has more than max_vertex_edges ({max_edges}) edges; read them with Traverse",
                message.id
            )));
        }
        let response = GetVertexResponse {
            vertex: Some(vertex_to_proto(&found.vertex)),
            edges: found.edges.iter().map(|e| edge_to_proto(e)).collect(),
        };
        Ok(with_lsn(response, lsn))
    }

    async fn update_vertex(
        &self,
        request: Request<UpdateVertexRequest>,
    ) -> Result<Response<UpdateVertexResponse>, Status> {
        let (call, message) = Call::of(request, "UpdateVertex");
        require("id", &message.id)?;
        let properties = properties("properties", &message.properties)?;
        let op = WriteOp::UpdateVertex { id: message.id, properties, merge: message.merge, label: None };
        let (lsn, effect) = self.write_one(&call, op).await?;
        let OpEffect::Vertex(vertex) = effect else {
            return Err(Status::internal("unexpected write effect"));
        };
        Ok(with_lsn(UpdateVertexResponse { vertex: Some(vertex_to_proto(&vertex)) }, lsn))
    }

    async fn delete_vertex(
        &self,
        request: Request<DeleteVertexRequest>,
    ) -> Result<Response<DeleteVertexResponse>, Status> {
        let (call, message) = Call::of(request, "DeleteVertex");
        require("id", &message.id)?;
        let op = WriteOp::DeleteVertex { id: message.id, cascade: message.cascade };
        let (lsn, effect) = self.write_one(&call, op).await?;
        let OpEffect::VertexDeleted { edges_deleted } = effect else {
            return Err(Status::internal("unexpected write effect"));
        };
        Ok(with_lsn(DeleteVertexResponse { edges_deleted: edges_deleted as i64 }, lsn))
    }

    async fn create_edge(&self, request: Request<CreateEdgeRequest>) -> Result<Response<CreateEdgeResponse>, Status> {
        let (call, message) = Call::of(request, "CreateEdge");
        let op = create_edge_op(message)?;
        let (lsn, effect) = self.write_one(&call, op).await?;
        let OpEffect::Edge(edge) = effect else {
            return Err(Status::internal("unexpected write effect"));
        };
        Ok(with_lsn(CreateEdgeResponse { edge: Some(edge_to_proto(&edge)) }, lsn))
    }

    async fn get_edge(&self, request: Request<GetEdgeRequest>) -> Result<Response<GetEdgeResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        require("id", &message.id)?;
        let key = EdgeKey::new(&namespace(&metadata)?, &message.id);
        let (lsn, answer) = self.read(&metadata, Query::GetEdge { key }).await?;
        let Answer::Edge(Some(edge)) = answer else {
            return Err(Status::not_found(format!("edge {:?} not found", message.id)));
        };
        Ok(with_lsn(GetEdgeResponse { edge: Some(edge_to_proto(&edge)) }, lsn))
    }

    async fn delete_edge(&self, request: Request<DeleteEdgeRequest>) -> Result<Response<DeleteEdgeResponse>, Status> {
        let (call, message) = Call::of(request, "DeleteEdge");
        require("id", &message.id)?;
        let (lsn, _) = self.write_one(&call, WriteOp::DeleteEdge { id: message.id }).await?;
        Ok(with_lsn(DeleteEdgeResponse {}, lsn))
    }

    async fn batch_create_vertices(
        &self,
        request: Request<BatchCreateVerticesRequest>,
    ) -> Result<Response<BatchCreateVerticesResponse>, Status> {
        let (call, message) = Call::of(request, "BatchCreateVertices");
        let batch = self.batch(&call.metadata, message.vertices, message.atomic, "vertices", create_vertex_op)?;
        let (lsn, effects, errors) = self.write_batch(&call, batch, message.atomic, "vertices").await?;
        let vertices = effects
            .iter()
            .filter_map(|e| match e {
                OpEffect::Vertex(v) => Some(vertex_to_proto(v)),
                _ => None,
            })
            .collect();
        Ok(with_lsn(BatchCreateVerticesResponse { vertices, errors }, lsn))
    }

    async fn batch_create_edges(
        &self,
        request: Request<BatchCreateEdgesRequest>,
    ) -> Result<Response<BatchCreateEdgesResponse>, Status> {
        let (call, message) = Call::of(request, "BatchCreateEdges");
        let batch = self.batch(&call.metadata, message.edges, message.atomic, "edges", create_edge_op)?;
        let (lsn, effects, errors) = self.write_batch(&call, batch, message.atomic, "edges").await?;
        let edges = effects
            .iter()
            .filter_map(|e| match e {
                OpEffect::Edge(e) => Some(edge_to_proto(e)),
                _ => None,
            })
            .collect();
        Ok(with_lsn(BatchCreateEdgesResponse { edges, errors }, lsn))
    }

    async fn traverse(&self, request: Request<TraverseRequest>) -> Result<Response<TraverseResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        let with_counts = message.rank_by == traverse_request::RankBy::PathCount as i32;
        let (traversal, limits) = traversal::from_proto(message, &config, deadline(&metadata)?)?;
        let result = prism_dataflows::traverse(&self.engine, &namespace, &traversal, &limits, min_lsn(&metadata)?)
            .await
            .map_err(status::from_query)?;
        let lsn = result.lsn;
        Ok(with_lsn(traversal::to_proto(result, with_counts), lsn))
    }

    async fn shortest_path(
        &self,
        request: Request<ShortestPathRequest>,
    ) -> Result<Response<ShortestPathResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        let query = paths::shortest_from_proto(message)?;
        let limits = paths::limits(&config, config.max_path_hops, deadline(&metadata)?);
        let found = prism_dataflows::shortest_path(&self.engine, &namespace, &query, &limits, min_lsn(&metadata)?)
            .await
            .map_err(status::from_query)?;
        let lsn = found.lsn;
        let path = paths::to_proto(found).into_iter().next();
        let total_weight = path.as_ref().map_or(0.0, |p| p.weight);
        Ok(with_lsn(ShortestPathResponse { path: Some(path.unwrap_or_default()), total_weight }, lsn))
    }

    async fn all_paths(&self, request: Request<AllPathsRequest>) -> Result<Response<AllPathsResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        let query = paths::all_from_proto(message)?;
        let limits = paths::limits(&config, config.max_path_hops, deadline(&metadata)?);
        let found = prism_dataflows::all_paths(&self.engine, &namespace, &query, &limits, min_lsn(&metadata)?)
            .await
            .map_err(status::from_query)?;
        let lsn = found.lsn;
        Ok(with_lsn(AllPathsResponse { paths: paths::to_proto(found) }, lsn))
    }

    async fn page_rank(&self, request: Request<PageRankRequest>) -> Result<Response<PageRankResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        if message.iterations < 0 {
            return Err(invalid("iterations", "must not be negative"));
        }
        if message.iterations as u32 > config.max_iterations {
            return Err(Status::resource_exhausted(format!(
                "iterations: {} exceeds max_iterations ({})",
                message.iterations, config.max_iterations
            )));
        }
        let damping = if message.damping_factor == 0.0 { 0.85 } else { message.damping_factor };
        if !(damping > 0.0 && damping <= 1.0) {
            return Err(invalid("damping_factor", "must be in (0, 1] (0 means the default 0.85)"));
        }
        if message.limit < 0 {
            return Err(invalid("limit", "must not be negative"));
        }
        if message.limit as usize > config.max_results {
            return Err(Status::resource_exhausted(format!(
                "limit: {} exceeds max_results ({})",
                message.limit, config.max_results
            )));
        }
        let filter = message
            .vertex_filter
            .map(|f| traversal::filter_from_proto("vertex_filter", f.labels, &f.property_filters))
            .transpose()?;
        let limit = if message.limit == 0 { config.max_results + 1 } else { message.limit as usize };
        let params = PageRankParams { iterations: message.iterations as u32, damping, filter, limit };
        let timeout = within(config.algorithm_timeout, deadline(&metadata)?);
        let (lsn, scores) = self
            .engine
            .page_rank(namespace, params, min_lsn(&metadata)?, timeout)
            .await
            .map_err(status::from_engine)?;
        if message.limit == 0 && scores.len() > config.max_results {
            return Err(Status::resource_exhausted(format!(
                "max_results: more than {} vertices are ranked; ask for the top ones with limit",
                config.max_results
            )));
        }
        let scores =
            scores.into_iter().map(|(vertex_id, score)| VertexScore { vertex_id: vertex_id.into(), score }).collect();
        Ok(with_lsn(PageRankResponse { scores }, lsn))
    }

    async fn community_detection(
        &self,
        request: Request<CommunityDetectionRequest>,
    ) -> Result<Response<CommunityDetectionResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        let algorithm = match message.algorithm.as_str() {
            "connected_components" => CommunityAlgorithm::ConnectedComponents,
            "label_propagation" => CommunityAlgorithm::LabelPropagation,
            "louvain" => CommunityAlgorithm::Louvain,
            other => {
                return Err(invalid(
                    "algorithm",
                    format!("unknown algorithm {other:?}; valid: connected_components, label_propagation, louvain"),
                ))
            }
        };
        let max_iterations = match message.max_iterations {
            Some(n) if n < 0 => return Err(invalid("max_iterations", "must not be negative")),
            Some(n) if n as u32 > config.max_iterations => {
                return Err(Status::resource_exhausted(format!(
                    "max_iterations: {n} exceeds the server's max_iterations ({})",
                    config.max_iterations
                )))
            }
            Some(n) => n as u32,
            // Label propagation runs a fixed number; components run until nothing changes.
            None if algorithm == CommunityAlgorithm::LabelPropagation => DEFAULT_LABEL_ITERATIONS,
            None => 0,
        };
        let filter = message
            .vertex_filter
            .map(|f| traversal::filter_from_proto("vertex_filter", f.labels, &f.property_filters))
            .transpose()?;
        let params = CommunityParams { algorithm, max_iterations, filter };
        let timeout = within(config.algorithm_timeout, deadline(&metadata)?);
        let grouped = self
            .engine
            .communities(namespace, params, min_lsn(&metadata)?, timeout)
            .await
            .map_err(status::from_engine)?;
        let communities = grouped
            .communities
            .into_iter()
            .map(|c| Community {
                community_id: c.id.into(),
                vertex_ids: c.members.into_iter().map(String::from).collect(),
                modularity: c.modularity,
            })
            .collect();
        Ok(with_lsn(CommunityDetectionResponse { communities, modularity: grouped.modularity }, grouped.lsn))
    }

    async fn detect_cycles(
        &self,
        request: Request<DetectCyclesRequest>,
    ) -> Result<Response<DetectCyclesResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        let query = paths::cycles_from_proto(message)?;
        let limits = paths::limits(&config, config.max_traversal_depth, deadline(&metadata)?);
        let found = prism_dataflows::detect_cycles(&self.engine, &namespace, &query, &limits, min_lsn(&metadata)?)
            .await
            .map_err(status::from_query)?;
        let lsn = found.lsn;
        Ok(with_lsn(DetectCyclesResponse { cycles: paths::to_proto(found) }, lsn))
    }

    type SubscribePageRankStream = subscription::PageRankStream;

    async fn subscribe_page_rank(
        &self,
        request: Request<SubscribePageRankRequest>,
    ) -> Result<Response<Self::SubscribePageRankStream>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let config = self.config.limits(namespace.as_str());
        let params = subscription::params_from_proto(namespace, message, &config)?;
        let timeout = within(config.algorithm_timeout, deadline(&metadata)?);
        let min_lsn = min_lsn(&metadata)?;
        if min_lsn > self.engine.applied_lsn() {
            tokio::time::timeout(timeout, self.engine.wait_applied(min_lsn))
                .await
                .map_err(|_| {
                    status::from_engine(EngineError::LsnNotApplied {
                        wanted: min_lsn,
                        applied: self.engine.applied_lsn(),
                    })
                })?
                .map_err(status::from_engine)?;
        }
        let top_k = params.top_k;
        let subscribed = self
            .engine
            .subscribe_page_rank(params, config.subscription_buffer, timeout)
            .await
            .map_err(status::from_engine)?;
        if top_k == 0 && subscribed.first.scores.len() > config.max_results {
            return Err(Status::resource_exhausted(format!(
                "max_results: more than {} vertices are ranked; subscribe to the top ones with top_k",
                config.max_results
            )));
        }
        let lsn = subscribed.first.lsn;
        Ok(with_lsn(subscription::stream(subscribed, config.subscription_heartbeat), lsn))
    }

    type ExportSnapshotStream = crate::snapshots::ChunkStream;

    async fn export_snapshot(
        &self,
        request: Request<ExportSnapshotRequest>,
    ) -> Result<Response<Self::ExportSnapshotStream>, Status> {
        let (metadata, _, message) = request.into_parts();
        let namespace = namespace(&metadata)?;
        let (encoding, compression) = crate::snapshots::parse_format(&message.format, &message.compression)?;
        let timeout = deadline(&metadata)?.unwrap_or(self.config.server.read_timeout);
        let masked = if message.mask_pii { self.config.pii(namespace.as_str()) } else { Vec::new() };
        let format = (encoding, compression);
        let (lsn, stream) = crate::snapshots::export(&self.engine, namespace, format, masked, timeout).await?;
        Ok(with_lsn(stream, lsn))
    }

    async fn apply_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<ApplySnapshotResponse>, Status> {
        let (call, chunks) = Call::of(request, "ApplySnapshot");
        let namespace = namespace(&call.metadata)?;
        let timeout = deadline(&call.metadata)?.unwrap_or(self.config.server.write_timeout);
        let applied = crate::snapshots::apply(&self.engine, namespace.clone(), chunks, timeout).await;
        if let Some(audit) = &self.audit {
            let (changes, outcome) = match &applied {
                Ok(a) => (
                    Changes::Snapshot {
                        vertices: [a.vertices_added, a.vertices_removed, a.vertices_modified],
                        edges: [a.edges_added, a.edges_removed, a.edges_modified],
                    },
                    Outcome::Applied { lsn: a.lsn, rejected: Vec::new() },
                ),
                Err(status) => (Changes::Operations { operations: Vec::new() }, Outcome::failed(status)),
            };
            audit.record(&call.origin, call.method, namespace.as_str(), &changes, &outcome).await;
        }
        let applied = applied?;
        let lsn = applied.lsn;
        Ok(with_lsn(applied, lsn))
    }
}
