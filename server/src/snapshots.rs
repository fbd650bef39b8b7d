//! ExportSnapshot and ApplySnapshot: a namespace's graph as a snapshot file's bytes, and a
//! newer snapshot applied as its difference from the running graph in one atomic record.
//!
//! Both stream: the bytes pass through a bounded channel between the gRPC stream and a
//! blocking thread that encodes or decodes them (prism-snapshots reads and writes `std::io`).

use std::io::{Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prism_dataflows::snapshot_diff::{self, DiffCounts, DiffError, RunningPrints};
use prism_dataflows::{Engine, Lsn, Namespace, NamespaceGraph, Properties, RecordOutcome, Value, WriteRecord};
use prism_proto::graph::{ApplySnapshotResponse, SnapshotChunk};
use prism_snapshots::{
    Compression, Encoding, Section, SnapshotCheck, SnapshotEdge, SnapshotItem, SnapshotReader, SnapshotVertex,
    SnapshotWriter,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use crate::convert::now_micros;
use crate::status::{self, invalid};

/// Bytes per chunk of an export.
const CHUNK_BYTES: usize = 256 * 1024;

pub type ChunkStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

/// Hands written bytes to the reply stream, a chunk at a time (waits while the client lags).
struct ChunkWriter {
    chunks: mpsc::Sender<Result<SnapshotChunk, Status>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let data = std::mem::take(&mut self.buffer);
        self.chunks
            .blocking_send(Ok(SnapshotChunk { data }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

pub fn parse_format(format: &str, compression: &str) -> Result<(Encoding, Compression), Status> {
    let encoding = match format {
        "" | "protobuf" => Encoding::Protobuf,
        "jsonlines" => Encoding::JsonLines,
        other => return Err(invalid("format", format!("unknown format {other:?}; valid: protobuf, jsonlines"))),
    };
    let compression = match compression {
        "" | "zstd" => Compression::Zstd,
        "gzip" => Compression::Gzip,
        "none" => Compression::None,
        other => return Err(invalid("compression", format!("unknown compression {other:?}; valid: zstd, gzip, none"))),
    };
    Ok((encoding, compression))
}

/// What a masked property value is written as.
pub const MASKED: &str = "***";

/// `properties` with the value of every key in `masked` written as [`MASKED`].
fn mask(mut properties: Properties, masked: &[String]) -> Properties {
    for key in masked {
        if properties.get(key).is_some() {
            properties.insert(key.as_str(), Value::String(MASKED.into()));
        }
    }
    properties
}

/// The namespace's graph, streamed as a snapshot, the values of the `masked` properties
/// written as [`MASKED`].
pub async fn export(
    engine: &Engine,
    namespace: Namespace,
    (encoding, compression): (Encoding, Compression),
    masked: Vec<String>,
    timeout: Duration,
) -> Result<(Lsn, ChunkStream), Status> {
    let (lsn, mut vertices, mut edges) =
        engine.namespace_graph(namespace, 0, timeout).await.map_err(status::from_engine)?;
    let (chunks, receiver) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let failed = chunks.clone();
        let write = move || -> Result<(), prism_snapshots::SnapshotError> {
            vertices.sort_by(|a, b| a.id.cmp(&b.id));
            edges.sort_by(|a, b| a.id.cmp(&b.id));
            let sink = ChunkWriter { chunks, buffer: Vec::with_capacity(CHUNK_BYTES) };
            let mut writer = SnapshotWriter::new(sink, encoding, compression)?;
            writer.write(&SnapshotItem::Section(Section {
                namespace: None,
                snapshot_id: format!("lsn-{lsn}"),
                timestamp: now_micros(),
                vertex_count: Some(vertices.len() as u64),
                edge_count: Some(edges.len() as u64),
                lsn,
            }))?;
            for vertex in &vertices {
                let mut vertex = SnapshotVertex::of(vertex);
                vertex.properties = mask(vertex.properties, &masked);
                writer.write(&SnapshotItem::Vertex(vertex))?;
            }
            for edge in &edges {
                let mut edge = SnapshotEdge::of(edge);
                edge.properties = mask(edge.properties, &masked);
                writer.write(&SnapshotItem::Edge(edge))?;
            }
            writer.finish()
        };
        if let Err(error) = write() {
            let _ = failed.blocking_send(Err(Status::internal(format!("writing the snapshot: {error}"))));
        }
    });
    Ok((lsn, Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
}

/// Reads the chunks of a request stream as one byte stream (on a blocking thread).
struct ChunkReader {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let read = self.current.read(out)?;
            if read > 0 || out.is_empty() {
                return Ok(read);
            }
            match self.chunks.recv() {
                Ok(chunk) => self.current = std::io::Cursor::new(chunk),
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Items of a newer version, in batches, as a thread of their own reads them: the difference
/// is told on another thread meanwhile (reading and checking a 10M-edge file is about as much
/// work as fingerprinting and comparing it).
pub type Items = std::sync::mpsc::Receiver<Result<Vec<SnapshotItem>, Status>>;

/// Items per batch handed from the reading thread.
const ITEMS_PER_BATCH: usize = 4096;

/// Batches the reading thread may run ahead (about a million items, 200 MB): enough to keep
/// it reading while the running graph is gathered and fingerprinted (4-5 s for 10M edges;
/// with 4 batches it waited, and the apply took 3 s longer).
const BATCHES_AHEAD: usize = 256;

/// Starts `read` on a thread of its own, handing what it gives (until it returns false) to
/// the returned [`Items`], a batch at a time; its error, if any, comes last. It stops early
/// when the receiver goes.
pub fn read_ahead<F>(read: F) -> Result<Items, Status>
where
    F: FnOnce(&mut dyn FnMut(SnapshotItem) -> bool) -> Result<(), Status> + Send + 'static,
{
    let (sender, items) = std::sync::mpsc::sync_channel(BATCHES_AHEAD);
    std::thread::Builder::new()
        .name("snapshot-read".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(ITEMS_PER_BATCH);
            let send = |batch: &mut Vec<SnapshotItem>| {
                sender.send(Ok(std::mem::replace(batch, Vec::with_capacity(ITEMS_PER_BATCH)))).is_ok()
            };
            let read = read(&mut |item| {
                batch.push(item);
                batch.len() < ITEMS_PER_BATCH || send(&mut batch)
            });
            match read {
                Ok(()) if !batch.is_empty() => drop(send(&mut batch)),
                Ok(()) => {}
                Err(status) => drop(sender.send(Err(status))),
            }
            crate::memory::release();
        })
        .map_err(|e| Status::internal(format!("starting the snapshot's reader: {e}")))?;
    Ok(items)
}

/// Every item of a snapshot read from `reader`, checked as they pass (`SnapshotCheck`:
/// counts, vertex ids once; the edges, ids once and ends held, are left to
/// [`apply_newer`]'s comparison, which holds every id anyway), so that bad input is refused
/// before anything is written. Every section's elements, whatever namespace it names: an applied snapshot
/// goes to the namespace of the call.
///
/// The records are decoded on every core while this thread decompresses and checks them:
/// one thread doing all of it was the slower side of an apply.
fn checked(reader: impl Read + Send + 'static, take: &mut dyn FnMut(SnapshotItem) -> bool) -> Result<(), Status> {
    let refuse = |e: &dyn std::fmt::Display| Status::invalid_argument(format!("snapshot: {e}; the graph is unchanged"));
    let reader = SnapshotReader::new(reader).map_err(|e| refuse(&e))?;
    let mut check = SnapshotCheck::leaving_edges_to_the_caller();
    let read = reader.for_each_parallel(
        crate::checkpoints::cores(),
        || |item| item,
        |item| {
            check.item(&item)?;
            match take(item) {
                true => Ok(()),
                false => Err(Refused::Stopped),
            }
        },
    );
    match read {
        Ok(()) => check.finish().map(|_| ()).map_err(|e| refuse(&e)),
        // The receiver went: no one waits for the rest.
        Err(Refused::Stopped) => Ok(()),
        Err(refused) => Err(refuse(&refused)),
    }
}

/// Why a snapshot's read stopped short.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Read(#[from] prism_snapshots::SnapshotError),
    #[error(transparent)]
    Check(#[from] prism_snapshots::CheckError),
    /// Whoever takes the records stopped taking them (having refused one, or gone).
    #[error("the records' taker stopped")]
    Stopped,
}

/// Applies the snapshot in `chunks` to `namespace` as one record of its difference.
pub async fn apply(
    engine: &Arc<Engine>,
    namespace: Namespace,
    mut chunks: Streaming<SnapshotChunk>,
    timeout: Duration,
) -> Result<ApplySnapshotResponse, Status> {
    let (bytes, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    let items = read_ahead(move |take| {
        checked(ChunkReader { chunks: received, current: std::io::Cursor::new(Vec::new()) }, take)
    })?;
    let started = std::time::Instant::now();
    let pump = async move {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            let bytes = bytes.clone();
            // The reader may have stopped at an error: then its answer says why.
            if tokio::task::spawn_blocking(move || bytes.send(chunk.data)).await.ok().and_then(Result::ok).is_none() {
                break;
            }
        }
        let received_ms = started.elapsed().as_millis() as u64;
        tracing::info!(received_ms, "received the newer version");
        Ok::<(), Status>(())
    };
    let applying = async {
        let running = engine.namespace_graph(namespace.clone(), 0, timeout).await.map_err(status::from_engine)?;
        let (vertices, edges) = (running.1.len(), running.2.len());
        let gathered_ms = started.elapsed().as_millis() as u64;
        tracing::info!(vertices, edges, gathered_ms, "gathered the running graph to tell the difference from");
        apply_newer(engine, namespace, running, items, timeout).await
    };
    let (applied, pumped) = tokio::join!(applying, pump);
    pumped?;
    applied
}

/// Writes the difference between `running` (the namespace's graph, as
/// `Engine::namespace_graph` gave it) and a newer version, its `items`, as one atomic record.
/// The running graph's prints are taken while the first items are read; then the elements
/// equal to their running versions are dropped a chunk at a time, so only the difference
/// (and a chunk) is held.
/// An id given twice, or an edge whose end the newer version lacks, is refused here (the
/// items' check may leave edges to it).
pub async fn apply_newer(
    engine: &Arc<Engine>,
    namespace: Namespace,
    (lsn, vertices, edges): NamespaceGraph,
    items: Items,
    timeout: Duration,
) -> Result<ApplySnapshotResponse, Status> {
    let started = std::time::Instant::now();
    let differences = tokio::task::spawn_blocking(move || {
        let mut prints = RunningPrints::new(vertices, edges);
        let refuse = |e: DiffError| Status::invalid_argument(format!("snapshot: {e}; the graph is unchanged"));
        for batch in items {
            for element in batch?.into_iter().filter_map(SnapshotItem::into_element) {
                prints.push(element).map_err(refuse)?;
            }
        }
        prints.difference().map_err(refuse)
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))??;
    let diffed = started.elapsed();
    let counts = DiffCounts::of(&differences);
    let ops = snapshot_diff::to_ops(differences);
    let lsn = if ops.is_empty() {
        lsn
    } else {
        let record = WriteRecord { namespace, atomic: true, timestamp: now_micros(), ops, ..Default::default() };
        let outcome: RecordOutcome = engine.write(record, timeout).await.map_err(status::from_engine)?;
        if let Some(rejection) = outcome.results.iter().find_map(|r| r.as_ref().err()) {
            return Err(status::from_rejection(rejection, "snapshot: the graph is unchanged: "));
        }
        outcome.lsn
    };
    let ms = |d: Duration| d.as_millis() as u64;
    tracing::info!(
        read_and_diff_ms = ms(diffed),
        write_ms = ms(started.elapsed() - diffed),
        "applied a snapshot's difference"
    );
    let n = |x: u64| x as i64;
    Ok(ApplySnapshotResponse {
        lsn,
        vertices_added: n(counts.vertices_added),
        vertices_removed: n(counts.vertices_removed),
        vertices_modified: n(counts.vertices_modified),
        edges_added: n(counts.edges_added),
        edges_removed: n(counts.edges_removed),
        edges_modified: n(counts.edges_modified),
    })
}
