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
use prism_snapshots::{CheckError, SnapshotCheck, SnapshotItem, SnapshotReader};
use tokio::sync::mpsc;
use tonic::Status;

use crate::checkpoints::{cores, Elements, Read};
use crate::config::WalBackend;
use crate::convert::now_micros;
use crate::snapshots::{apply_newer, read_ahead, Refused};
use crate::status;

/// Records written at once while loading.
const IN_FLIGHT: usize = 8;

/// One section of the file: its place (0 is what comes before the first metadata record)
/// and the namespace it names.
struct SectionPlace {
    index: usize,
    namespace: Namespace,
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
    let (sections, mut read) =
        tokio::task::spawn_blocking(move || check(&file, occupied)).await.map_err(|e| e.to_string())??;
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

/// The records of the first pass, in order: checked, counted by section, and the section
/// read kept as a graph.
struct FirstPass {
    check: SnapshotCheck,
    /// Each section and its elements; the first is what comes before any metadata.
    sections: Vec<(SectionPlace, u64)>,
    /// The namespaces a section may not be read for (none when nothing is read), and the
    /// section read once the first record says which is first.
    occupied: Option<Vec<Namespace>>,
    reading: Option<usize>,
    first: bool,
    graph: WholeGraph,
}

impl FirstPass {
    fn new(occupied: Option<Vec<Namespace>>) -> Self {
        // The check looks every edge's ends up: a graph read keeps where they are, so that
        // the workers number them without looking them up again.
        let check = match occupied {
            Some(_) => SnapshotCheck::new().keeping_ends(),
            None => SnapshotCheck::new(),
        };
        FirstPass {
            check,
            sections: vec![(SectionPlace { index: 0, namespace: Namespace::default() }, 0)],
            occupied,
            reading: None,
            first: true,
            graph: WholeGraph::default(),
        }
    }

    fn take(&mut self, read: Read) -> Result<(), CheckError> {
        if std::mem::take(&mut self.first) {
            // The first section is 1 when the file opens with its metadata, as files
            // written here do, else 0 (elements before any metadata go to the default
            // namespace).
            let (index, namespace) = match &read {
                Read::Section(namespace, _) => (1, namespace.clone()),
                _ => (0, Namespace::default()),
            };
            self.reading = self.occupied.as_ref().filter(|occupied| !occupied.contains(&namespace)).map(|_| index);
        }
        let at = self.sections.len() - 1;
        let here = self.reading == Some(at);
        match read {
            Read::Section(namespace, section) => {
                self.check.section(&section)?;
                if here {
                    self.graph.ends = self.check.take_ends();
                }
                if self.reading == Some(at + 1) {
                    // Grown element by element, the vectors were copied over and over.
                    let [vertices, edges] = section.room();
                    self.graph.vertices.reserve(vertices);
                    self.graph.edges.reserve(edges);
                }
                self.sections.push((SectionPlace { index: at + 1, namespace }, 0));
            }
            Read::Vertex(vertex) => {
                self.check.vertex(vertex.id.as_str())?;
                self.sections[at].1 += 1;
                if here {
                    self.graph.vertices.push((self.sections[at].0.namespace.clone(), vertex));
                }
            }
            Read::Edge(edge) => {
                self.check.edge(edge.id.as_str(), edge.from.as_str(), edge.to.as_str())?;
                self.sections[at].1 += 1;
                if here {
                    self.graph.edges.push((self.sections[at].0.namespace.clone(), edge));
                }
            }
            Read::Request(_) => self.check.request(),
        }
        Ok(())
    }

    /// The sections, and the one read: `(its index, the graph)`. The section before the
    /// first metadata record counts only when it holds something or is the only one.
    fn finish(mut self) -> Result<Passed, CheckError> {
        self.check.finish()?;
        if self.reading == Some(self.sections.len() - 1) {
            self.graph.ends = self.check.take_ends();
        }
        if self.sections.len() > 1 && self.sections[0].1 == 0 {
            self.sections.remove(0);
        }
        let read = self.reading.map(|index| (index, self.graph));
        Ok((self.sections.into_iter().map(|(place, _)| place).collect(), read))
    }
}

/// What the first pass gives: the file's sections, and the one read with its index.
type Passed = (Vec<SectionPlace>, Option<(usize, WholeGraph)>);

/// Records handed to the keeping thread at once.
const KEPT_AT_ONCE: usize = 4096;

/// The first pass: the whole file checked, and its sections. With `occupied` (the load may
/// go in bulk), the first section is read as a graph in the same pass unless its namespace
/// is among them, every element created now.
///
/// The records are decoded on every core while this thread decompresses them, and checked
/// and kept by one more. A check and a read of their own, each a thread decompressing and
/// decoding the whole file, took 15 s for a 10M-edge file; one pass checking on the
/// decompressing thread, 13 s, that thread the one always busy.
fn check(path: &Path, occupied: Option<Vec<Namespace>>) -> Result<Passed, String> {
    let refuse = |e: &dyn std::fmt::Display| format!("snapshot: {e}; the graph is unchanged");
    let (now, elements) = (Some(now_micros()), Elements::default());
    let converter = || {
        let mut elements = elements.sharing();
        move |item| elements.read(item, now)
    };
    let reader = SnapshotReader::open(path).map_err(|e| refuse(&e))?;
    let (passed, kept) = std::thread::scope(|scope| {
        let (keep, kept) = std::sync::mpsc::sync_channel::<Vec<Read>>(4);
        let keeper = scope.spawn(move || {
            let mut pass = FirstPass::new(occupied);
            for read in kept.into_iter().flatten() {
                pass.take(read)?;
            }
            let finished = pass.finish();
            // The parse's own garbage goes back now, not whenever this thread runs again.
            crate::memory::release();
            finished
        });
        let mut batch = Vec::with_capacity(KEPT_AT_ONCE);
        let passed = reader.for_each_parallel(cores(), converter, |read| -> Result<(), Refused> {
            batch.push(read);
            if batch.len() == KEPT_AT_ONCE {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(KEPT_AT_ONCE));
                keep.send(full).map_err(|_| Refused::Stopped)?;
            }
            Ok(())
        });
        if passed.is_ok() && !batch.is_empty() {
            // Refused or not, the keeper says so when joined.
            let _ = keep.send(batch);
        }
        drop(keep);
        let kept = keeper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (passed, kept)
    });
    crate::memory::release();
    // The keeper saw only records before any the stream refused: its refusal comes first.
    let kept = kept.map_err(|e| refuse(&e))?;
    passed.map_err(|e| refuse(&e))?;
    Ok(kept)
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

#[cfg(test)]
mod tests {
    use prism_snapshots::{Compression, Encoding, Section, SnapshotEdge, SnapshotVertex, SnapshotWriter};

    use super::*;

    /// A file of `vertices` vertices `v0, v1, …` in namespace `a`, one of them named twice
    /// when `repeated` says which, and a ring of edges through them from the last down,
    /// then the same in namespace `b`.
    fn file(dir: &Path, vertices: usize, repeated: Option<usize>) -> PathBuf {
        let path = dir.join("graph.snap");
        let sink = std::fs::File::create(&path).unwrap();
        let mut writer = SnapshotWriter::new(sink, Encoding::Protobuf, Compression::Zstd).unwrap();
        for namespace in ["a", "b"] {
            let section = Section { namespace: Some(namespace.into()), ..Default::default() };
            writer.write(&SnapshotItem::Section(section)).unwrap();
            for i in 0..vertices {
                let i = if Some(i) == repeated.map(|r| r + 1) { i - 1 } else { i };
                let vertex = SnapshotVertex { id: format!("v{i}"), label: "V".into(), ..Default::default() };
                writer.write(&SnapshotItem::Vertex(vertex)).unwrap();
            }
            for i in (0..vertices).rev() {
                let (from, to) = (format!("v{i}"), format!("v{}", (i + 1) % vertices));
                let edge = SnapshotEdge { id: format!("e{i}"), label: "E".into(), from, to, ..Default::default() };
                writer.write(&SnapshotItem::Edge(edge)).unwrap();
            }
        }
        writer.finish().unwrap();
        path
    }

    #[test]
    fn the_first_pass_keeps_the_first_free_section_and_lists_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 10, None);
        let (sections, read) = check(&path, Some(vec![])).unwrap();
        let names: Vec<_> = sections.iter().map(|s| (s.index, s.namespace.to_string())).collect();
        assert_eq!(names, [(1, "a".to_string()), (2, "b".to_string())]);
        let (index, graph) = read.expect("the first section is read");
        assert_eq!(index, 1);
        assert_eq!(graph.vertices.len(), 10);
        assert!(graph.vertices.iter().all(|(namespace, _)| namespace.as_str() == "a"));
        // Its edges' ends as the check found them: places among its vertices.
        let ends: Vec<_> = (0..10u32).rev().map(|i| [i, (i + 1) % 10]).collect();
        assert_eq!(graph.ends_placed(), Some(&ends[..]));
        // Its namespace holds a graph already: nothing is read.
        let (_, read) = check(&path, Some(vec![Namespace::new("a")])).unwrap();
        assert!(read.is_none());
    }

    #[test]
    fn the_first_pass_names_the_earliest_record_it_refuses_however_far_the_read_went() {
        let dir = tempfile::tempdir().unwrap();
        // Far more records than the keeper is handed at once, so the read is still going
        // when the keeper stops.
        let path = file(dir.path(), 20 * KEPT_AT_ONCE, Some(3));
        let refused = check(&path, Some(vec![])).err().expect("a repeated id is refused");
        // Record 1 is the section, so vertex `v3` is record 5, repeated at 6.
        assert!(refused.contains("record 6: vertex \"v3\" appears twice"), "{refused}");
    }
}
