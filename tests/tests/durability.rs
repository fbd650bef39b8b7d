//! Nothing acknowledged is lost: kill -9 under concurrent writes, restart, check; and the
//! write-ahead log's torn-tail and damage rules, seen from the binary.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_e2e::*;
use tokio::sync::Notify;
use tonic::Code;

const WRITERS: usize = 16;
const BATCH: usize = 5;

#[derive(Default)]
struct Acked {
    vertices: Mutex<Vec<(String, i64)>>,
    batches: Mutex<Vec<String>>,
    count: AtomicUsize,
}

/// Writes until the connection dies: single vertices and atomic batches, alternately.
async fn writer(mut client: Client, task: usize, acked: Arc<Acked>, reached: Arc<Notify>, threshold: usize) {
    for n in 0.. {
        let ok = if n % 2 == 0 {
            let id = format!("w{task}-{n}");
            let value = (task * 1_000_000 + n) as i64;
            let result = client.create_vertex(vertex_request(&id, "W", &[("n", int(value))])).await;
            if result.is_ok() {
                acked.vertices.lock().unwrap().push((id, value));
            }
            result.is_ok()
        } else {
            let prefix = format!("b{task}-{n}");
            let vertices = (0..BATCH).map(|i| vertex_request(&format!("{prefix}-{i}"), "B", &[])).collect();
            let result = client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await;
            if result.is_ok() {
                acked.batches.lock().unwrap().push(prefix);
            }
            result.is_ok()
        };
        if !ok {
            return;
        }
        if acked.count.fetch_add(1, Ordering::SeqCst) + 1 == threshold {
            reached.notify_one();
        }
    }
}

/// One writer per client, each until its connection dies.
struct Writers {
    acked: Arc<Acked>,
    reached: Arc<Notify>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threshold: usize,
}

impl Writers {
    fn start(clients: Vec<Client>, threshold: usize) -> Self {
        let (acked, reached) = (Arc::new(Acked::default()), Arc::new(Notify::new()));
        let tasks = clients
            .into_iter()
            .enumerate()
            .map(|(task, client)| tokio::spawn(writer(client, task, acked.clone(), reached.clone(), threshold)))
            .collect();
        Writers { acked, reached, tasks, threshold }
    }

    /// Once `threshold` writes are acknowledged, with the writers still going.
    async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Waits for every writer to stop (its server died): what they had acknowledged.
    async fn stopped(self) -> Acknowledged {
        let writers = self.tasks.len();
        for task in self.tasks {
            task.await.unwrap();
        }
        let vertices = self.acked.vertices.lock().unwrap().clone();
        let batches: HashSet<String> = self.acked.batches.lock().unwrap().iter().cloned().collect();
        assert!(vertices.len() + batches.len() >= self.threshold);
        Acknowledged { writers, vertices, batches }
    }
}

/// What stopped writers had acknowledged.
struct Acknowledged {
    writers: usize,
    vertices: Vec<(String, i64)>,
    batches: HashSet<String>,
}

impl Acknowledged {
    /// Checks through `client` (of the restarted server) that every acknowledged write is
    /// there and every batch any writer attempted is whole or absent.
    async fn check(&self, client: &mut Client) {
        let (vertices, batches) = (&self.vertices, &self.batches);
        for (id, value) in vertices {
            let vertex = exists(client, id).await.unwrap_or_else(|| panic!("acknowledged vertex {id} lost"));
            assert_eq!(vertex.properties["n"], int(*value));
        }
        for task in 0..self.writers {
            for n in (1..).step_by(2) {
                let prefix = format!("b{task}-{n}");
                let mut present = 0;
                for i in 0..BATCH {
                    present += exists(client, &format!("{prefix}-{i}")).await.is_some() as usize;
                }
                assert!(present == 0 || present == BATCH, "batch {prefix} half applied: {present} of {BATCH}");
                if present == 0 {
                    assert!(!batches.contains(&prefix), "acknowledged batch {prefix} lost");
                    break;
                }
            }
        }
    }
}

async fn exists(client: &mut Client, id: &str) -> Option<pb::Vertex> {
    match client.get_vertex(pb::GetVertexRequest { id: id.into(), include_edges: false }).await {
        Ok(reply) => reply.into_inner().vertex,
        Err(status) if status.code() == Code::NotFound => None,
        Err(status) => panic!("read of {id} failed: {status}"),
    }
}

#[tokio::test]
async fn kill_9_under_concurrent_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ServerSpec::new(&dir.path().join("data"), 2);
    let mut server = spec.start().await;

    let mut clients = Vec::new();
    for _ in 0..WRITERS {
        clients.push(server.client().await);
    }
    let writers = Writers::start(clients, 400);
    // Kill while the writers are still going.
    writers.reached().await;
    server.kill().await;
    let acknowledged = writers.stopped().await;

    let server = spec.start().await;
    acknowledged.check(&mut server.client().await).await;
}

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir.join("wal")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Starts a one-worker server on `data`, writes vertices v0..v19, kills it; returns the
/// spec to restart it with and the log segment, read into memory to damage.
async fn twenty_writes_then_kill(data: &Path) -> (ServerSpec, PathBuf, Vec<u8>) {
    let spec = ServerSpec::new(data, 1);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    for i in 0..20 {
        client.create_vertex(vertex_request(&format!("v{i}"), "V", &[("i", int(i))])).await.unwrap();
    }
    server.kill().await;
    let segment = segments(data).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    (spec, segment, bytes)
}

#[tokio::test]
async fn a_torn_tail_is_cut_with_a_log_line_and_the_rest_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, segment, mut bytes) = twenty_writes_then_kill(&dir.path().join("data")).await;

    // A write cut short by the crash: a valid frame header whose payload never made it.
    let head: Vec<u8> = bytes[..30].to_vec();
    bytes.extend_from_slice(&head);
    std::fs::write(&segment, &bytes).unwrap();

    let server = spec.start().await;
    let log = server.log();
    assert!(log.contains("torn write") && log.contains("dropped_bytes=30"), "log should report the cut:\n{log}");
    let mut client = server.client().await;
    for i in 0..20 {
        assert!(exists(&mut client, &format!("v{i}")).await.is_some(), "v{i} lost");
    }
    // Writing continues after the cut.
    client.create_vertex(vertex_request("after", "V", &[])).await.unwrap();
}

#[tokio::test]
async fn damage_in_the_middle_stops_the_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (spec, segment, mut bytes) = twenty_writes_then_kill(&dir.path().join("data")).await;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    let mut refused = spec.spawn().await.expect("the process starts and listens before recovery");
    assert_eq!(refused.wait_exit(Duration::from_secs(60)).await, Some(false), "a damaged log must stop the start");
    let log = refused.log();
    assert!(log.contains(&segment.display().to_string()) && log.contains("byte offset"), "{log}");

    // Asked to, the server cuts the log at the damage and serves what came before it.
    let mut truncating = spec.clone();
    truncating.extra_args.push("--wal-truncate-corrupt".into());
    let server = truncating.start().await;
    let mut client = server.client().await;
    assert!(exists(&mut client, "v0").await.is_some());
    assert!(exists(&mut client, "v19").await.is_none());
    client.create_vertex(vertex_request("after", "V", &[])).await.unwrap();
}

/// kill -9 of one process of a two-process cluster while 8 writers write through both: the
/// other process stops on its own (it must not hang waiting for its peer), and the
/// restarted cluster holds every acknowledged write and no half batch.
async fn kill_9_in_a_cluster(victim: usize) {
    const CLUSTER_WRITERS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut servers = start_cluster(dir.path(), 2).await;
    let mut clients = Vec::new();
    for task in 0..CLUSTER_WRITERS {
        clients.push(servers[task % 2].client().await);
    }
    let writers = Writers::start(clients, 200);
    writers.reached().await;
    servers[victim].kill().await;
    let survivor = &mut servers[1 - victim];
    let exited = survivor.wait_exit(Duration::from_secs(30)).await;
    assert!(exited.is_some(), "the surviving process still runs 30 s after its peer died:\n{}", survivor.log());
    let named = format!("lost the connection to cluster process {victim}");
    assert!(survivor.log().contains(&named), "the survivor's log does not say which peer it lost:\n{}", survivor.log());
    let acknowledged = writers.stopped().await;

    let servers = start_cluster(dir.path(), 2).await;
    acknowledged.check(&mut servers[victim].client().await).await;
}

#[tokio::test]
async fn kill_9_of_the_log_process_loses_no_acknowledged_write_and_stops_its_peer() {
    kill_9_in_a_cluster(0).await;
}

#[tokio::test]
async fn kill_9_of_the_other_process_loses_no_acknowledged_write_and_stops_its_peer() {
    kill_9_in_a_cluster(1).await;
}
