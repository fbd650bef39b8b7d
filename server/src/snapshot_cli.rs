//! `prism-graph snapshot …`: export a server's graph to a file, load or apply a file to a
//! server, and diff two files — the client side of the snapshot RPCs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use prism_dataflows::snapshot_diff::{self, DiffCounts, Element};
use prism_proto::graph as pb;
use prism_snapshots::{SnapshotCheck, SnapshotItem, SnapshotReader};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::pb::graph_service_client::GraphServiceClient;
use crate::service::NAMESPACE_HEADER;

type Client = GraphServiceClient<InterceptedService<Channel, Bearer>>;

/// A server to call and how: the flags every client command takes.
#[derive(clap::Args)]
pub struct Remote {
    #[arg(long)]
    pub server: String,
    /// The bearer token, for a server with `security.tokens`.
    #[arg(long, env = "PRISM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The CA certificate (PEM) that signed the server's: connect with TLS.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// This client's certificate (PEM), for a server that asks for one (mutual TLS).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

impl Remote {
    fn tls(&self) -> anyhow::Result<Option<ClientTlsConfig>> {
        let Some(ca) = &self.ca else {
            anyhow::ensure!(self.cert.is_none() && self.key.is_none(), "--cert and --key need --ca");
            return Ok(None);
        };
        let read = |flag: &str, path: &Path| std::fs::read(path).with_context(|| format!("{flag} {}", path.display()));
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--ca", ca)?));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(read("--cert", cert)?, read("--key", key)?))
            }
            (None, None) => {}
            _ => anyhow::bail!("--cert and --key go together"),
        }
        Ok(Some(tls))
    }
}

/// Adds `authorization: Bearer <token>` to every call, when there is a token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Items in one batch RPC of a load.
const LOAD_BATCH: usize = 1000;
/// About the most bytes of elements in one batch RPC (well within a request and a record).
const LOAD_BATCH_BYTES: usize = 16 << 20;
/// Batches in flight during a load.
const LOAD_IN_FLIGHT: usize = 8;

pub async fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let server = &remote.server;
    let tls = remote.tls()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = if server.contains("://") { server.to_owned() } else { format!("{scheme}://{server}") };
    let bearer = match &remote.token {
        Some(token) => Some(format!("Bearer {token}").parse().context("--token: not a valid header value")?),
        None => None,
    };
    let mut endpoint = Channel::from_shared(url.clone())?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await.with_context(|| format!("connecting to {url}"))?;
    Ok(GraphServiceClient::with_interceptor(channel, Bearer(bearer))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

fn with_namespace<T>(message: T, namespace: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(NAMESPACE_HEADER, namespace.parse().context("namespace")?);
    Ok(request)
}

/// Writes the namespace's graph to `output`.
pub async fn export(
    remote: &Remote,
    namespace: &str,
    output: &Path,
    format: &str,
    compression: &str,
    mask_pii: bool,
) -> anyhow::Result<()> {
    let mut client = connect(remote).await?;
    let request = pb::ExportSnapshotRequest { format: format.into(), compression: compression.into(), mask_pii };
    let mut stream = client.export_snapshot(with_namespace(request, namespace)?).await?.into_inner();
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?,
    );
    let mut bytes = 0usize;
    while let Some(chunk) = stream.message().await? {
        bytes += chunk.data.len();
        file.write_all(&chunk.data)?;
    }
    file.flush()?;
    eprintln!("exported {bytes} bytes to {}", output.display());
    Ok(())
}

/// Sends `file` to the server, which applies it as one record of its difference.
pub async fn apply(remote: &Remote, namespace: &str, file: &Path) -> anyhow::Result<()> {
    let mut client = connect(remote).await?;
    let bytes = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let (chunks, receiver) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut bytes = std::io::BufReader::new(bytes);
        loop {
            let mut data = vec![0u8; 256 * 1024];
            match std::io::Read::read(&mut bytes, &mut data) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    data.truncate(n);
                    if chunks.blocking_send(pb::SnapshotChunk { data }).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let reply = client.apply_snapshot(with_namespace(stream, namespace)?).await?.into_inner();
    println!(
        "applied at LSN {}: vertices +{} -{} ~{}, edges +{} -{} ~{}",
        reply.lsn,
        reply.vertices_added,
        reply.vertices_removed,
        reply.vertices_modified,
        reply.edges_added,
        reply.edges_removed,
        reply.edges_modified
    );
    Ok(())
}

/// Reads a whole snapshot as elements, decoded on every core while this thread
/// decompresses (the comparison finds ids given twice).
pub fn read_elements(path: &Path) -> anyhow::Result<Vec<Element>> {
    let mut elements = Vec::new();
    let each = |element: Option<Element>| -> Result<(), prism_snapshots::SnapshotError> {
        elements.extend(element);
        Ok(())
    };
    let reader = SnapshotReader::open(path)?;
    (reader.for_each_parallel(crate::checkpoints::cores(), || SnapshotItem::into_element, each))
        .with_context(|| path.display().to_string())?;
    Ok(elements)
}

/// The difference between two snapshot files: counts, and with `output` the operations that
/// turn OLD into NEW, one JSON object a line (the shape `prism-graph record` takes).
pub fn diff(old: &Path, new: &Path, output: Option<&PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    let differences = snapshot_diff::diff(read_elements(old)?, read_elements(new)?)?;
    let counts = DiffCounts::of(&differences);
    println!(
        "vertices +{} -{} ~{}, edges +{} -{} ~{} ({:.2} s)",
        counts.vertices_added,
        counts.vertices_removed,
        counts.vertices_modified,
        counts.edges_added,
        counts.edges_removed,
        counts.edges_modified,
        started.elapsed().as_secs_f64()
    );
    if let Some(output) = output {
        let mut file = std::io::BufWriter::new(std::fs::File::create(output)?);
        for op in snapshot_diff::to_ops(differences) {
            serde_json::to_writer(&mut file, &prism_connectors::json::op_to_json(&op))?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
    }
    Ok(())
}

/// Loads `file` into an empty namespace through batch RPCs, many in flight, printing progress.
/// The file is read three times, streaming: first to check it whole (format, metadata counts,
/// ids once, edges between its own vertices) so that bad input changes nothing, then the
/// vertices, then the edges.
pub async fn load(remote: &Remote, namespace: &str, file: &Path) -> anyhow::Result<()> {
    let path = file.to_owned();
    let (vertices, edges) = tokio::task::spawn_blocking(move || check(&path)).await??;
    eprintln!("{}: {vertices} vertices, {edges} edges; loading", file.display());
    let client = connect(remote).await?;
    let started = Instant::now();
    for pass_edges in [false, true] {
        let total = if pass_edges { edges } else { vertices };
        let (batches, mut receiver) = tokio::sync::mpsc::channel::<Vec<SnapshotItem>>(LOAD_IN_FLIGHT);
        let path = file.to_owned();
        let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut batch = Vec::with_capacity(LOAD_BATCH);
            let mut bytes = 0;
            for item in SnapshotReader::open(&path)? {
                let item = item?;
                let size = match (&item, pass_edges) {
                    (SnapshotItem::Vertex(v), false) => v.id.len() + v.label.len() + v.properties.size_bytes(),
                    (SnapshotItem::Edge(e), true) => e.id.len() + e.label.len() + e.properties.size_bytes(),
                    _ => continue,
                };
                batch.push(item);
                bytes += size;
                let full = batch.len() == LOAD_BATCH || bytes >= LOAD_BATCH_BYTES;
                if full && batches.blocking_send(std::mem::take(&mut batch)).is_err() {
                    return Ok(());
                }
                if batch.is_empty() {
                    bytes = 0;
                }
            }
            if !batch.is_empty() {
                let _ = batches.blocking_send(batch);
            }
            Ok(())
        });
        let mut in_flight = tokio::task::JoinSet::new();
        let mut done = 0u64;
        let mut last_report = Instant::now();
        let namespace = Arc::new(namespace.to_owned());
        while let Some(batch) = receiver.recv().await {
            while in_flight.len() >= LOAD_IN_FLIGHT {
                done += in_flight.join_next().await.context("a batch")???;
            }
            in_flight.spawn(send_batch(client.clone(), namespace.clone(), batch));
            if last_report.elapsed() >= Duration::from_secs(1) {
                progress(pass_edges, done, total, started);
                last_report = Instant::now();
            }
        }
        while let Some(result) = in_flight.join_next().await {
            done += result??;
        }
        reader.await??;
        progress(pass_edges, done, total, started);
        eprintln!();
    }
    println!("loaded {vertices} vertices and {edges} edges in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn progress(edges: bool, done: u64, total: u64, started: Instant) {
    let what = if edges { "edges" } else { "vertices" };
    let width = 30;
    let filled = (done * width).checked_div(total).unwrap_or(width) as usize;
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    eprint!("\r{what:<8} [{}{}] {done}/{total} ({rate:.0}/s)", "#".repeat(filled), " ".repeat(width as usize - filled));
}

async fn send_batch(mut client: Client, namespace: Arc<String>, batch: Vec<SnapshotItem>) -> anyhow::Result<u64> {
    let count = batch.len() as u64;
    let mut vertices = Vec::new();
    let mut edges = Vec::new();
    for item in batch {
        match item {
            SnapshotItem::Vertex(v) => vertices.push(pb::CreateVertexRequest {
                id: v.id,
                label: v.label,
                properties: prism_connectors::codec::value::properties_to_proto(&v.properties),
            }),
            SnapshotItem::Edge(e) => edges.push(pb::CreateEdgeRequest {
                id: e.id,
                label: e.label,
                from_vertex_id: e.from,
                to_vertex_id: e.to,
                properties: prism_connectors::codec::value::properties_to_proto(&e.properties),
            }),
            SnapshotItem::Section(_) | SnapshotItem::Request(_) => {}
        }
    }
    if !vertices.is_empty() {
        client
            .batch_create_vertices(with_namespace(
                pb::BatchCreateVerticesRequest { vertices, atomic: true },
                &namespace,
            )?)
            .await?;
    }
    if !edges.is_empty() {
        client
            .batch_create_edges(with_namespace(pb::BatchCreateEdgesRequest { edges, atomic: true }, &namespace)?)
            .await?;
    }
    Ok(count)
}

/// Reads the whole file once: its format, and what `SnapshotCheck` checks. Returns the counts.
pub fn check(path: &Path) -> anyhow::Result<(u64, u64)> {
    let mut check = SnapshotCheck::new();
    for item in SnapshotReader::open(path)? {
        let item = item.with_context(|| path.display().to_string())?;
        check.item(&item).with_context(|| path.display().to_string())?;
    }
    check.finish().with_context(|| path.display().to_string())
}
