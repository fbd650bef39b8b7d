//! Shared by the engine's integration tests: an in-memory log, and graphs loaded into an
//! engine. (Random graphs and the oracle live with the end-to-end tests, tests/src/oracle.rs.)
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_dataflows::{
    CommitSink, Engine, EngineConfig, Lsn, Namespace, Ticket, Value, WriteLog, WriteOp, WriteRecord,
};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Commits every record at the next LSN, in order.
pub struct MemoryLog {
    sink: CommitSink,
    next: Mutex<u64>,
}

impl WriteLog for MemoryLog {
    fn append(&self, record: WriteRecord, ticket: Ticket) {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        self.sink.committed(*next, record, Some(ticket));
    }
}

/// An engine on `workers` workers with an in-memory log attached.
pub fn start_engine(workers: usize) -> Engine {
    let engine = Engine::start(EngineConfig { workers, ..Default::default() }).unwrap();
    engine.attach_log(Arc::new(MemoryLog { sink: engine.commit_sink(), next: Mutex::new(0) }));
    engine
}

/// Writes `vertices` and `edges` (id, label, from, to, property `w`) in one atomic record.
pub async fn load(engine: &Engine, vertices: &[String], edges: &[(String, &str, String, String, i64)]) {
    let mut ops: Vec<WriteOp> = vertices
        .iter()
        .map(|id| WriteOp::CreateVertex { id: id.clone(), label: "V".into(), properties: Default::default() })
        .collect();
    ops.extend(edges.iter().map(|(id, label, from, to, w)| WriteOp::CreateEdge {
        id: id.clone(),
        label: label.to_string(),
        from: from.clone(),
        to: to.clone(),
        properties: [("w".to_string(), Value::Int(*w))].into_iter().collect(),
    }));
    write(engine, ops).await;
}

/// Writes `ops` as one atomic record, which must be accepted whole; its LSN.
pub async fn write(engine: &Engine, ops: Vec<WriteOp>) -> Lsn {
    let record = WriteRecord { namespace: Namespace::default(), atomic: true, timestamp: 1, ops, ..Default::default() };
    let outcome = engine.write(record, TIMEOUT).await.unwrap();
    assert!(outcome.first_rejection().is_none(), "{outcome:?}");
    outcome.lsn
}

/// A complete directed graph on `n` vertices `v00`…: every ordered pair, label "A", w 1.
pub async fn load_complete(engine: &Engine, n: usize) {
    let vertices: Vec<String> = (0..n).map(|i| format!("v{i:02}")).collect();
    let mut edges = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                edges.push((format!("e{a}-{b}"), "A", vertices[a].clone(), vertices[b].clone(), 1));
            }
        }
    }
    load(engine, &vertices, &edges).await;
}
