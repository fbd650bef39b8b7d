//! `serve --snapshot FILE`: each section of the file into its namespace (the default one when
//! it names none), before the server reports SERVING.
//!
//! The first pass checks all of the file (counts, ids once, edge ends: `SnapshotCheck`), so
//! that bad input is refused before anything is written, and keeps the first section as it
//! goes when that can go in bulk. Then each section goes into its namespace:
//! - empty, with the embedded log and checkpoints on: **in bulk**. The section is read whole
//!   and handed to every worker at once (`Engine::load_bulk`, which holds it to the limits
//!   and capacities first); the log gets one marker record, and a checkpoint written before
//!   SERVING makes the load durable. No record per element, and no rule decided one by one.
//! - empty otherwise (on Kafka the elements must reach the topic, for its replicas; in a
//!   cluster the whole graph would cross to every process at once): one pass
//!   streams its vertices and another its edges as atomic records through the log, several
//!   in flight, while the next records are parsed.
//! - holding a graph already (a restart, or a load cut short): as one record of its
//!   difference, so loading the same file again converges instead of failing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::TryStreamExt as _;
use prism_dataflows::{Batcher, Engine, Lsn, Namespace, WholeGraph, WriteRecord};
use prism_snapshots::{SnapshotItem, SnapshotReader};
use tokio::sync::mpsc;
use tonic::Status;

use crate::checkpoints::Elements;
use crate::config::WalBackend;
use crate::convert::now_micros;
use crate::snapshots::{apply_newer, read_ahead};
use crate::status;

/// Records written at once while loading.
const IN_FLIGHT: usize = 8;

/// One section of the file: its place (0 is what comes before the first metadata record)
/// and the namespace it names.
pub(crate) struct SectionPlace {
    pub index: usize,
    pub namespace: Namespace,
}

pub async fn load_at_start(engine: &Arc<Engine>, path: &Path, config: &crate::config::Config) -> Result<(), String> {
    let started = std::time::Instant::now();
    // Nothing in the log and no checkpoint: then a graph loaded in bulk is all there is.
    let fresh = engine.applied_lsn() == 0;
    // In bulk where a checkpoint can hold the load: the embedded log, checkpoints on. On
    // Kafka the records must reach the topic, for the replicas that follow it. In a cluster
    // the graph would cross to every other process whole, serialized, and be held there
    // while it is taken (6 GB a process for 10M edges, where streaming it needs 2.4).
    let in_bulk = matches!(config.wal.backend, WalBackend::Embedded)
        && !config.server.checkpoint_interval.is_zero()
        && config.cluster.as_ref().is_none_or(|cluster| cluster.processes == 1);
    let occupied = match in_bulk {
        true => {
            let sizes = engine.sizes(AT_START).await.map_err(|e| e.to_string())?;
            Some(sizes.into_iter().map(|size| size.namespace).collect::<Vec<_>>())
        }
        false => None,
    };
    let file = path.to_owned();
    let (sections, mut read) = tokio::task::spawn_blocking(move || crate::snapshot_first_pass::check(&file, occupied))
        .await
        .map_err(|e| e.to_string())??;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "checked the snapshot");
    // A fresh server that takes the file's one section in bulk holds exactly that graph at
    // the load's LSN: its checkpoint is written as it was read, not gathered back from the
    // workers (2-3 s for 10M edges). Written while the workers take it, it saved nothing:
    // they keep both cores busy.
    let whole = fresh && sections.len() == 1;
    let (mut loaded_in_bulk, mut as_read) = (false, None);
    for section in sections {
        let namespace = section.namespace.clone();
        let timeout = config.server.write_timeout;
        // Taken once: it says whether the namespace is empty, and is what a difference is from.
        let running = engine.namespace_graph(namespace.clone(), 0, timeout).await.map_err(|e| e.to_string())?;
        let written = if running.1.is_empty() && running.2.is_empty() && in_bulk {
            let read = read.take_if(|(index, _)| *index == section.index).map(|(_, graph)| graph);
            loaded_in_bulk = true;
            load_in_bulk(engine, path.to_owned(), &section, read).await.map(|(lsn, graph)| {
                let elements = (graph.vertices.len() + graph.edges.len()) as u64;
                as_read = whole.then_some((lsn, graph));
                elements
            })
        } else if running.1.is_empty() && running.2.is_empty() {
            // Records well within the log's limit, whatever the elements weigh.
            let sizes = (config.limits(namespace.as_str()).batch_size, config.record_limit() / 2);
            stream_into_empty(engine, path.to_owned(), &section, sizes, timeout).await
        } else {
            let (file, index) = (path.to_owned(), section.index);
            let items = read_ahead(move |take| each_in_section(&file, index, take).map_err(Status::invalid_argument));
            let applied = match items {
                Ok(items) => apply_newer(engine, namespace.clone(), running, items, timeout).await,
                Err(status) => Err(status),
            };
            applied.map(|a| {
                let changes = [a.vertices_added, a.vertices_removed, a.vertices_modified];
                let changes = changes.into_iter().chain([a.edges_added, a.edges_removed, a.edges_modified]);
                changes.sum::<i64>() as u64
            })
        };
        // Elements written into an empty namespace, or changes made to a running one.
        let written = written.map_err(|s| s.message().to_owned())?;
        tracing::info!(namespace = %namespace, written, elapsed_ms = started.elapsed().as_millis() as u64, "loaded the snapshot");
    }
    if loaded_in_bulk {
        // The log holds only the loads' markers: the graph is durable once this is written.
        let (lsn, graph) = match as_read {
            Some(as_read) => as_read,
            None => {
                let (lsn, graph) = engine.whole_graph(AT_START).await.map_err(|e| e.to_string())?;
                (lsn, Arc::new(graph))
            }
        };
        let dir = crate::checkpoints::dir(&config.server.data_dir);
        let written = crate::checkpoints::write_in_background(dir, lsn, graph).await?;
        tracing::info!(lsn, path = %written.path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "checkpointed the snapshot loaded in bulk");
    }
    Ok(())
}

/// How long a start-up load may wait for the engine: as long as the graph takes.
const AT_START: Duration = Duration::from_secs(24 * 3600);

/// Section `section` into its empty namespace at one LSN: read whole (checked by the first
/// pass, which read it already if it is the first), then handed to every worker at once
/// ([`Engine::load_bulk`]), each taking its own part, with no record per element. Returns
/// the load's LSN and the graph loaded. Durable once the checkpoint the caller writes
/// covers it.
async fn load_in_bulk(
    engine: &Arc<Engine>,
    path: PathBuf,
    section: &SectionPlace,
    read: Option<WholeGraph>,
) -> Result<(Lsn, Arc<WholeGraph>), Status> {
    let (namespace, index) = (section.namespace.clone(), section.index);
    let graph = match read {
        Some(graph) => graph,
        None => tokio::task::spawn_blocking(move || read_section(&path, index, &namespace))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::invalid_argument)?,
    };
    let graph = Arc::new(graph);
    let elements = (graph.vertices.len() + graph.edges.len()) as u64;
    tracing::info!(namespace = %section.namespace, elements, "read the section whole; the workers take it");
    let lsn = engine.load_bulk(graph.clone(), AT_START).await.map_err(status::from_engine)?;
    Ok((lsn, graph))
}

/// Section `index` of the file as a graph in `namespace`, every element created now (as a
/// load through the log would), each label held once.
fn read_section(path: &Path, index: usize, namespace: &Namespace) -> Result<WholeGraph, String> {
    let now = Some(now_micros());
    let mut elements = Elements::default();
    let mut graph = WholeGraph::default();
    each_in_section(path, index, &mut |item| {
        match item {
            SnapshotItem::Vertex(v) => graph.vertices.push((namespace.clone(), elements.vertex(v, now))),
            SnapshotItem::Edge(e) => graph.edges.push((namespace.clone(), elements.edge(e, now))),
            SnapshotItem::Section(_) | SnapshotItem::Request(_) => {}
        }
        true
    })?;
    // The parse's own garbage goes back now, not whenever this thread runs again.
    crate::memory::release();
    Ok(graph)
}

/// Calls `take` with every item of section `index` (until it returns false).
fn each_in_section(path: &Path, index: usize, take: &mut dyn FnMut(SnapshotItem) -> bool) -> Result<(), String> {
    let mut at = 0;
    for item in SnapshotReader::open(path).map_err(|e| e.to_string())? {
        // Checked by the first pass: an error now means the file changed since.
        let item = item.map_err(|e| format!("snapshot: {e} (the file changed while it was loaded?)"))?;
        if let SnapshotItem::Section(_) = item {
            at += 1;
        } else if at == index && !take(item) {
            break;
        }
    }
    Ok(())
}

/// Section `section` into its empty namespace: vertices, then edges, each kind streamed as
/// atomic records of at most `batch` operations and about `batch_bytes`, several in flight
/// (records of one kind do not depend on each other). Returns the elements written.
async fn stream_into_empty(
    engine: &Arc<Engine>,
    path: PathBuf,
    section: &SectionPlace,
    (batch, batch_bytes): (usize, usize),
    timeout: Duration,
) -> Result<u64, Status> {
    let mut written = 0u64;
    for edges in [false, true] {
        let (records, received) = mpsc::channel::<Vec<prism_dataflows::WriteOp>>(IN_FLIGHT);
        let (file, index) = (path.clone(), section.index);
        let parse = tokio::task::spawn_blocking(move || {
            let mut batcher = Batcher::new(batch, batch_bytes);
            // A send fails only when the writes stopped at an error, which is what is told.
            each_in_section(&file, index, &mut |item| {
                let wanted = matches!((&item, edges), (SnapshotItem::Vertex(_), false) | (SnapshotItem::Edge(_), true));
                match item.into_element().filter(|_| wanted) {
                    Some(element) => match batcher.push(element.into_create()) {
                        Some(ops) => records.blocking_send(ops).is_ok(),
                        None => true,
                    },
                    None => true,
                }
            })?;
            if let Some(ops) = batcher.finish() {
                let _ = records.blocking_send(ops);
            }
            Ok::<(), String>(())
        });
        let namespace = &section.namespace;
        let writes = futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(received), |ops| async move {
            let count = ops.len() as u64;
            let record = WriteRecord {
                namespace: namespace.clone(),
                atomic: true,
                timestamp: now_micros(),
                ops,
                ..Default::default()
            };
            let outcome = engine.write(record, timeout).await.map_err(status::from_engine)?;
            match outcome.results.iter().find_map(|r| r.as_ref().err()) {
                Some(rejection) => Err(status::from_rejection(rejection, "")),
                None => Ok(count),
            }
        });
        let counts: Vec<u64> = futures::StreamExt::buffer_unordered(writes, IN_FLIGHT).try_collect().await?;
        written += counts.iter().sum::<u64>();
        parse.await.map_err(|e| Status::internal(e.to_string()))?.map_err(Status::invalid_argument)?;
    }
    Ok(written)
}
