//! Shared by the engine's integration tests: an in-memory log, and random graphs loaded
//! into an engine.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_dataflows::{
    CommitSink, Engine, EngineConfig, Namespace, Properties, Ticket, Value, WriteLog, WriteOp, WriteRecord,
};
use rand::rngs::StdRng;
use rand::Rng;

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

#[derive(Clone, Debug)]
pub struct TestEdge {
    pub id: String,
    pub label: String,
    pub from: String,
    pub to: String,
    pub weight: i64,
}

/// Vertices (id -> label, age) and edges with a weight `w`.
pub struct Graph {
    pub vertices: BTreeMap<String, (String, i64)>,
    pub edges: Vec<TestEdge>,
}

pub fn random_graph(rng: &mut StdRng, n: usize, m: usize) -> Graph {
    let vertices = (0..n)
        .map(|i| {
            (format!("v{i:02}"), (if rng.random_bool(0.5) { "P" } else { "Q" }.to_string(), rng.random_range(0..100)))
        })
        .collect();
    let edges = (0..m)
        .map(|i| TestEdge {
            id: format!("e{i:03}"),
            label: if rng.random_bool(0.5) { "A" } else { "B" }.to_string(),
            from: format!("v{:02}", rng.random_range(0..n)),
            to: format!("v{:02}", rng.random_range(0..n)),
            weight: rng.random_range(0..10),
        })
        .collect();
    Graph { vertices, edges }
}

pub async fn load(engine: &Engine, graph: &Graph) {
    let mut ops: Vec<WriteOp> = graph
        .vertices
        .iter()
        .map(|(id, (label, age))| WriteOp::CreateVertex {
            id: id.clone(),
            label: label.clone(),
            properties: [("age".to_string(), Value::Int(*age))].into_iter().collect::<Properties>(),
        })
        .collect();
    ops.extend(graph.edges.iter().map(|e| WriteOp::CreateEdge {
        id: e.id.clone(),
        label: e.label.clone(),
        from: e.from.clone(),
        to: e.to.clone(),
        properties: [("w".to_string(), Value::Int(e.weight))].into_iter().collect(),
    }));
    let record = WriteRecord { namespace: Namespace::default(), atomic: true, timestamp: 1, ops };
    let outcome = engine.write(record, TIMEOUT).await.unwrap();
    assert!(outcome.first_rejection().is_none());
}

/// An engine on `workers` workers with an in-memory log attached.
pub fn start_engine(workers: usize) -> Engine {
    let engine = Engine::start(EngineConfig { workers, ..Default::default() }).unwrap();
    engine.attach_log(Arc::new(MemoryLog { sink: engine.commit_sink(), next: Mutex::new(0) }));
    engine
}
