//! Checkpoints: the whole graph written as a snapshot that records the LSN it covers, so that
//! recovery is the newest checkpoint plus the log after it, and the embedded log before it
//! can go.
//!
//! A checkpoint is `checkpoints/checkpoint-<lsn>.snap` under the data directory: zstd
//! protobuf, one section a namespace (its metadata naming the namespace, the counts and the
//! LSN), vertices and edges with their timestamps, and the request ids still remembered for
//! retries. It is written beside its final name and renamed into place after an fsync, so a
//! crash leaves the previous checkpoint whole.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::fast::RandomState;

use prism_connectors::EmbeddedWal;
use prism_dataflows::RecordOutcome;
use prism_dataflows::Remembered;
use prism_dataflows::WholeGraph;
use prism_dataflows::{Edge, Engine, Lsn, Micros, Name, Namespace, Shared, Vertex};
use prism_snapshots::{
    Compression, Encoding, SnapshotEdge, SnapshotItem, SnapshotReader, SnapshotRequest, SnapshotVertex, SnapshotWriter,
};

/// One namespace's part of a checkpoint.
type Section<'a> = (Vec<&'a Vertex>, Vec<&'a Edge>, Vec<&'a Remembered>);

/// Checkpoints kept: the newest, and the one before in case the newest is found damaged.
const KEEP: usize = 2;

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("checkpoints")
}

/// The checkpoints in `dir`, oldest first.
fn list(dir: &Path) -> Vec<(Lsn, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(Lsn, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let lsn = name.to_str()?.strip_prefix("checkpoint-")?.strip_suffix(".snap")?.parse().ok()?;
            Some((lsn, entry.path()))
        })
        .collect();
    found.sort();
    found
}

pub fn newest(dir: &Path) -> Option<(Lsn, PathBuf)> {
    list(dir).pop()
}

/// The newest checkpoint that reads back whole, trying older ones when a newer one is
/// damaged (each failure logged); `None` when there is none, or none readable.
pub fn newest_readable(dir: &Path) -> Option<(Lsn, WholeGraph, PathBuf)> {
    for (named, path) in list(dir).into_iter().rev() {
        match read(&path) {
            Ok((lsn, graph)) => return Some((lsn, graph, path)),
            Err(error) => tracing::error!(
                %error,
                lsn = named,
                "a checkpoint is unreadable; falling back to the one before it (the log after that one is kept)"
            ),
        }
    }
    None
}

/// Snapshot records as the engine's vertices and edges, keyed in their namespace, each
/// label read once: elements share one copy, as the engine keeps them, so that it takes them
/// without copying. `created`, when given, replaces the records' timestamps (a load writes
/// everything at once; a checkpoint keeps what it had). Threads reading one file each take
/// their own ([`Elements::sharing`]), and still share each label.
#[derive(Default)]
pub(crate) struct Elements {
    /// The labels every thread's elements share.
    shared: Arc<Mutex<HashMap<String, Name, RandomState>>>,
    /// This thread's copy of the ones it met: the lock is taken for a label's first time only.
    labels: HashMap<String, Name, RandomState>,
}

impl Elements {
    /// Another thread's, sharing these labels.
    pub fn sharing(&self) -> Elements {
        Elements { shared: self.shared.clone(), labels: HashMap::default() }
    }

    fn label(&mut self, label: String) -> Name {
        if let Some(name) = self.labels.get(&label) {
            return name.clone();
        }
        let name = {
            let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            shared.entry(label.clone()).or_insert_with_key(|label| Name::from(label.as_str())).clone()
        };
        self.labels.insert(label, name.clone());
        name
    }

    pub fn vertex(&mut self, mut v: SnapshotVertex, created: Option<Micros>) -> Shared<Vertex> {
        let label = self.label(std::mem::take(&mut v.label));
        let mut vertex = Vertex { label, ..Vertex::from(v) };
        if let Some(now) = created {
            (vertex.created_at, vertex.updated_at) = (now, now);
        }
        Shared::new(vertex)
    }

    pub fn edge(&mut self, mut e: SnapshotEdge, created: Option<Micros>) -> Shared<Edge> {
        let label = self.label(std::mem::take(&mut e.label));
        let created_at = created.unwrap_or(e.created_at);
        Shared::new(Edge { label, created_at, ..Edge::from(e) })
    }

    /// Any record, its elements made as [`Elements::vertex`] and [`Elements::edge`] make them.
    pub fn read(&mut self, item: SnapshotItem, created: Option<Micros>) -> Read {
        match item {
            SnapshotItem::Section(section) => {
                Read::Section(Namespace::new(section.namespace.as_deref().unwrap_or("")), section)
            }
            SnapshotItem::Vertex(v) => Read::Vertex(self.vertex(v, created)),
            SnapshotItem::Edge(e) => Read::Edge(self.edge(e, created)),
            SnapshotItem::Request(r) => Read::Request(r),
        }
    }
}

/// Threads that decode a snapshot beside the one that decompresses it (a checkpoint at
/// recovery, a file loaded or applied), or write a checkpoint's parts (each compressing on
/// a thread of its own too): one a core.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A snapshot's record as the engine takes it.
pub(crate) enum Read {
    Section(Namespace, prism_snapshots::Section),
    Vertex(Shared<Vertex>),
    Edge(Shared<Edge>),
    Request(SnapshotRequest),
}

/// Reads a checkpoint back: its LSN and graph. The records are decoded on several threads.
pub fn read(path: &Path) -> Result<(Lsn, WholeGraph), String> {
    let mut graph = WholeGraph::default();
    let mut namespace = Namespace::default();
    let mut lsn = None;
    let elements = Elements::default();
    let converter = || {
        let mut elements = elements.sharing();
        move |item| elements.read(item, None)
    };
    let reader = SnapshotReader::open(path).map_err(|e| e.to_string())?;
    reader
        .for_each_parallel(cores(), converter, |read| {
            match read {
                Read::Section(next, section) => {
                    namespace = next;
                    lsn = Some(section.lsn);
                    // Grown element by element, the vectors were copied over and over.
                    let [vertices, edges] = section.room();
                    graph.vertices.reserve(vertices);
                    graph.edges.reserve(edges);
                }
                Read::Vertex(vertex) => graph.vertices.push((namespace.clone(), vertex)),
                Read::Edge(edge) => graph.edges.push((namespace.clone(), edge)),
                Read::Request(r) => graph.request_ids.push(Remembered {
                    namespace: namespace.clone(),
                    request_id: r.request_id,
                    timestamp: r.timestamp,
                    outcome: RecordOutcome { lsn: r.lsn, results: r.results },
                }),
            }
            Ok::<_, prism_snapshots::SnapshotError>(())
        })
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Remembered in log order (which is LSN order), whatever their sections' order: the order
    // decides which are forgotten first, alike on every server.
    graph.request_ids.sort_by_key(|r| r.outcome.lsn);
    // Every checkpoint opens with a section, even of an empty graph: without one it was cut
    // short or is not a checkpoint.
    let lsn = lsn.ok_or_else(|| format!("{}: no metadata record, so no LSN", path.display()))?;
    Ok((lsn, graph))
}

/// What a checkpoint write leaves: its path, and the LSN of the oldest checkpoint kept (the
/// log after it must stay, for recovery to fall back to it if the newest is found damaged).
pub struct Written {
    pub path: PathBuf,
    pub oldest_kept: Lsn,
}

/// [`write`] on a blocking thread. The graph is then dropped on a thread of its own, which
/// gives the pages it freed back (the graph's vectors: hundreds of MB for 10M edges), after
/// the write is answered: a load waited 0.4 s more for it before SERVING.
pub async fn write_in_background<G>(dir: PathBuf, lsn: Lsn, graph: G) -> Result<Written, String>
where
    G: std::borrow::Borrow<WholeGraph> + Send + 'static,
{
    let written = tokio::task::spawn_blocking(move || {
        let written = write(&dir, lsn, graph.borrow());
        crate::memory::release();
        tokio::task::spawn_blocking(move || {
            drop(graph);
            crate::memory::release();
        });
        written
    });
    written.await.map_err(|e| format!("the checkpoint writer failed: {e}"))?
}

/// Writes the checkpoint of `graph` at `lsn` into `dir`, then drops all but the newest few.
/// On failure nothing is renamed into place and the partial file is removed.
pub fn write(dir: &Path, lsn: Lsn, graph: &WholeGraph) -> Result<Written, String> {
    let path = dir.join(format!("checkpoint-{lsn:020}.snap"));
    let partial = path.with_extension("partial");
    let written = write_into(dir, &partial, &path, lsn, graph, cores());
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written?;
    let all = list(dir);
    let drop = all.len().saturating_sub(KEEP);
    for (_, old) in &all[..drop] {
        let _ = std::fs::remove_file(old);
    }
    // With one checkpoint only, the whole log stays: it is the fallback.
    let oldest_kept = if all.len() - drop >= 2 { all[drop].0 } else { 0 };
    Ok(Written { path, oldest_kept })
}

fn write_into(
    dir: &Path,
    partial: &Path,
    path: &Path,
    lsn: Lsn,
    graph: &WholeGraph,
    writers: usize,
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("checkpoint at LSN {lsn}: {e}");
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let default = Namespace::default();
    let mut sections: BTreeMap<&Namespace, Section<'_>> = BTreeMap::new();
    // An empty graph still gets a section: it is what carries the LSN.
    sections.insert(&default, Default::default());
    for (namespace, vertex) in &graph.vertices {
        sections.entry(namespace).or_default().0.push(vertex);
    }
    for (namespace, edge) in &graph.edges {
        sections.entry(namespace).or_default().1.push(edge);
    }
    for remembered in &graph.request_ids {
        sections.entry(&remembered.namespace).or_default().2.push(remembered);
    }
    let sections: Vec<(&Namespace, Section<'_>)> = sections.into_iter().collect();
    // The records in order, cut into a part a core, each written and compressed on threads of
    // its own into a zstd frame; the frames, one after the other, are one stream that reads
    // back as if one thread had written it (the same records, the same sections).
    let records: usize = sections.iter().map(|(_, (v, e, r))| 1 + v.len() + e.len() + r.len()).sum();
    let parts = if records < RECORDS_TO_SPLIT { 1 } else { writers.max(1) };
    let part_path = |part: usize| partial.with_extension(format!("part{part}"));
    let written = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..parts)
            .map(|part| {
                let (sections, sink) = (&sections, if part == 0 { partial.to_owned() } else { part_path(part) });
                let range = records * part / parts..records * (part + 1) / parts;
                scope.spawn(move || write_part(&sink, sections, lsn, range))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|handle| handle.join().unwrap_or_else(|_| Err("a part's writer panicked".into())))
    });
    let appended = written.and_then(|()| {
        let mut file = std::fs::OpenOptions::new().append(true).open(partial).map_err(|e| e.to_string())?;
        for part in 1..parts {
            let mut frame = std::fs::File::open(part_path(part)).map_err(|e| e.to_string())?;
            std::io::copy(&mut frame, &mut file).map_err(|e| e.to_string())?;
        }
        file.sync_all().map_err(|e| e.to_string())
    });
    for part in 1..parts {
        let _ = std::fs::remove_file(part_path(part));
    }
    appended.map_err(|e| fail(&e))?;
    std::fs::rename(partial, path).map_err(|e| fail(&e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail(&e))
}

/// Fewer records than this are written by one thread: splitting them saves nothing.
const RECORDS_TO_SPLIT: usize = 1 << 16;

/// Writes the records numbered `range` of `sections` (each namespace's section, then its
/// vertices, edges and request ids, one after the other) into a new file at `path`, as a
/// compressed stream of its own.
fn write_part(
    path: &Path,
    sections: &[(&Namespace, Section<'_>)],
    lsn: Lsn,
    range: std::ops::Range<usize>,
) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut writer = SnapshotWriter::new(file, Encoding::Protobuf, Compression::Zstd).map_err(|e| e.to_string())?;
    // The records of `range` among the `count` that start at record `at`, as indexes.
    let within =
        |at: usize, count: usize| range.start.saturating_sub(at).min(count)..range.end.saturating_sub(at).min(count);
    let mut at = 0;
    for (namespace, (vertices, edges, request_ids)) in sections {
        if range.contains(&at) {
            writer
                .write(&SnapshotItem::Section(prism_snapshots::Section {
                    namespace: Some(namespace.as_str().to_owned()),
                    snapshot_id: format!("checkpoint-{lsn}"),
                    timestamp: crate::convert::now_micros(),
                    vertex_count: Some(vertices.len() as u64),
                    edge_count: Some(edges.len() as u64),
                    lsn,
                }))
                .map_err(|e| e.to_string())?;
        }
        at += 1;
        for vertex in &vertices[within(at, vertices.len())] {
            writer.write_vertex(vertex).map_err(|e| e.to_string())?;
        }
        at += vertices.len();
        for edge in &edges[within(at, edges.len())] {
            writer.write_edge(edge).map_err(|e| e.to_string())?;
        }
        at += edges.len();
        for remembered in &request_ids[within(at, request_ids.len())] {
            let request = SnapshotRequest {
                request_id: remembered.request_id.clone(),
                lsn: remembered.outcome.lsn,
                timestamp: remembered.timestamp,
                results: remembered.outcome.results.clone(),
            };
            writer.write(&SnapshotItem::Request(request)).map_err(|e| e.to_string())?;
        }
        at += request_ids.len();
    }
    writer.finish().map_err(|e| e.to_string())
}

/// Writes a checkpoint every `interval` while the graph moves, and deletes the embedded log's
/// segments it covers. Runs until the server stops.
pub async fn run(engine: Arc<Engine>, dir: PathBuf, interval: Duration, wal: Option<Arc<EmbeddedWal>>, mut last: Lsn) {
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        if engine.applied_lsn() <= last {
            continue;
        }
        let (lsn, graph) = match engine.whole_graph(interval.max(Duration::from_secs(10))).await {
            Ok(taken) => taken,
            Err(error) => {
                tracing::warn!(%error, "could not take the graph for a checkpoint");
                continue;
            }
        };
        let started = std::time::Instant::now();
        match write_in_background(dir.clone(), lsn, graph).await {
            Ok(Written { path, oldest_kept }) => {
                last = lsn;
                metrics::histogram!("prism_checkpoint_seconds").record(started.elapsed().as_secs_f64());
                metrics::gauge!("prism_checkpoint_lsn").set(lsn as f64);
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                metrics::gauge!("prism_checkpoint_unix_seconds").set(now.as_secs_f64());
                // Only what the oldest kept checkpoint covers goes: should the newest be found
                // damaged at the next start, recovery falls back to that one and its log.
                let removed = wal.as_ref().map(|wal| wal.truncate_before(oldest_kept));
                tracing::info!(
                    lsn,
                    path = %path.display(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    segments_removed = ?removed.as_ref().map(|r| r.as_ref().ok()),
                    "wrote a checkpoint"
                );
            }
            Err(error) => tracing::error!(%error, "could not write a checkpoint"),
        }
    }
}

#[cfg(test)]
mod tests {
    use prism_dataflows::{OpEffect, Properties, VertexNumber};
    use prism_snapshots::SnapshotCheck;

    use super::*;

    fn graph() -> WholeGraph {
        let mut graph = WholeGraph::default();
        for (namespace, vertices) in [("a", 50_000), ("b", 10)] {
            let namespace = Namespace::new(namespace);
            for i in 0..vertices {
                let vertex = Vertex {
                    number: VertexNumber::UNASSIGNED,
                    id: format!("v{i}").into(),
                    label: Name::from("V"),
                    properties: Properties::new(),
                    created_at: i,
                    updated_at: i,
                };
                graph.vertices.push((namespace.clone(), Shared::new(vertex)));
            }
            for i in 0..vertices {
                let edge = Edge {
                    id: format!("e{i}").into(),
                    label: Name::from("E"),
                    from: format!("v{i}").into(),
                    to: format!("v{}", (i + 1) % vertices).into(),
                    properties: Properties::new(),
                    created_at: i,
                };
                graph.edges.push((namespace.clone(), Shared::new(edge)));
            }
            graph.request_ids.push(Remembered {
                namespace: namespace.clone(),
                request_id: format!("r-{namespace}"),
                timestamp: 7,
                outcome: RecordOutcome { lsn: 3, results: vec![Ok(OpEffect::EdgeDeleted)] },
            });
        }
        graph
    }

    /// Written in parts on several threads, a checkpoint reads back whole, and read as one
    /// snapshot it holds a section a namespace with that namespace's counts: the parts are
    /// one stream.
    #[test]
    fn a_checkpoint_written_in_parts_reads_back_as_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let graph = graph();
        let (partial, path) = (dir.path().join("c.partial"), dir.path().join("c.snap"));
        write_into(dir.path(), &partial, &path, 42, &graph, 3).unwrap();
        let names = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>();
        assert_eq!(names, ["c.snap"], "the parts are gone once appended");
        let bytes = std::fs::read(&path).unwrap();
        let frames = bytes.windows(4).filter(|w| *w == [0x28, 0xb5, 0x2f, 0xfd]).count();
        assert!(frames >= 3, "a zstd frame a part, found {frames}");

        let (lsn, read) = read(&path).unwrap();
        assert_eq!(lsn, 42);
        let ids = |g: &WholeGraph| -> Vec<(String, String)> {
            let vertices = g.vertices.iter().map(|(ns, v)| (ns.to_string(), v.id.to_string()));
            let edges = g.edges.iter().map(|(ns, e)| (ns.to_string(), format!("{}:{}->{}", e.id, e.from, e.to)));
            vertices.chain(edges).collect()
        };
        assert_eq!(ids(&read), ids(&graph));
        let requests: Vec<_> =
            read.request_ids.iter().map(|r| (r.namespace.to_string(), r.request_id.clone())).collect();
        assert_eq!(requests, [("a".to_string(), "r-a".to_string()), ("b".to_string(), "r-b".to_string())]);

        let mut sections = Vec::new();
        let mut check = SnapshotCheck::new();
        for item in SnapshotReader::open(&path).unwrap() {
            let item = item.unwrap();
            check.item(&item).unwrap();
            if let SnapshotItem::Section(section) = item {
                sections.push((section.namespace.unwrap_or_default(), section.vertex_count, section.edge_count));
            }
        }
        assert_eq!(check.finish().unwrap(), (50_010, 50_010));
        let sections: Vec<_> = sections.iter().map(|(ns, v, e)| (ns.as_str(), *v, *e)).collect();
        assert_eq!(
            sections,
            [("a", Some(50_000), Some(50_000)), ("b", Some(10), Some(10)), ("default", Some(0), Some(0))]
        );
    }
}
