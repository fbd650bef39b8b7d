//! The audit log: one JSON line per mutation a client asked for (who, from where, which
//! namespace, which operations on which ids, the LSN and the outcome), durable before the call
//! is answered.
//!
//! Lines go to `security.audit_log`, a file appended and fsynced (a group of lines per fsync,
//! as the write-ahead log commits records), or `stdout`. Property values never appear: an
//! operation is its kind and its element's id, and a rejection its kind, not its message.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::SystemTime;

use prism_dataflows::{Lsn, RecordOutcome, WriteOp};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Who made a call: the name of its token, which the access check puts in the request's
/// extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub String);

/// Who asked for a mutation: the token's name (when the server checks tokens) and the peer.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub token: Option<String>,
    pub peer: Option<SocketAddr>,
}

/// One operation as the audit log shows it.
#[derive(Serialize)]
pub struct Operation {
    pub kind: &'static str,
    pub id: String,
}

impl Operation {
    pub fn of(op: &WriteOp) -> Operation {
        let (kind, id) = match op {
            WriteOp::CreateVertex { id, .. } => ("create_vertex", id),
            WriteOp::UpdateVertex { id, .. } => ("update_vertex", id),
            WriteOp::DeleteVertex { id, .. } => ("delete_vertex", id),
            WriteOp::CreateEdge { id, .. } => ("create_edge", id),
            WriteOp::DeleteEdge { id } => ("delete_edge", id),
        };
        Operation { kind, id: id.clone() }
    }
}

/// What became of a mutation.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Written at `lsn`; `rejected` lists the operations the rules refused (by index and kind).
    Applied { lsn: Lsn, rejected: Vec<(usize, &'static str)> },
    /// Refused before or without being written: the status code's name.
    Failed { code: String },
}

impl Outcome {
    /// A call that failed with `status`.
    pub fn failed(status: &tonic::Status) -> Outcome {
        Outcome::Failed { code: format!("{:?}", status.code()) }
    }

    pub fn of(outcome: &RecordOutcome) -> Outcome {
        let rejected = outcome
            .results
            .iter()
            .enumerate()
            .filter_map(|(i, result)| result.as_ref().err().map(|rejection| (i, rejection.kind.name())))
            .collect();
        Outcome::Applied { lsn: outcome.lsn, rejected }
    }
}

/// What a mutation did: its operations one by one, or for an applied snapshot (whose
/// difference may hold millions) how many elements it added, removed and modified.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Changes {
    Operations {
        operations: Vec<Operation>,
    },
    /// Added, removed, modified.
    Snapshot {
        vertices: [i64; 3],
        edges: [i64; 3],
    },
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    token: Option<&'a str>,
    peer: Option<String>,
    method: &'a str,
    namespace: &'a str,
    #[serde(flatten)]
    changes: &'a Changes,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

type Entry = (Vec<u8>, oneshot::Sender<()>);

/// The audit log's writer: lines in, each acknowledged once durable.
#[derive(Clone)]
pub struct Audit {
    lines: mpsc::UnboundedSender<Entry>,
}

impl Audit {
    /// Opens `target` (`stdout`, or a file appended to) and starts its writer thread.
    pub fn open(target: &Path) -> std::io::Result<Audit> {
        let sink = if target == Path::new("stdout") {
            Sink::Stdout
        } else {
            Sink::File(std::fs::OpenOptions::new().create(true).append(true).open(target)?)
        };
        let (lines, received) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("audit-log".into()).spawn(move || sink.run(received))?;
        Ok(Audit { lines })
    }

    /// Writes one line and waits until it is durable.
    pub async fn record(&self, origin: &Origin, method: &str, namespace: &str, changes: &Changes, outcome: &Outcome) {
        let line = Line {
            time: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            token: origin.token.as_deref(),
            peer: origin.peer.map(|peer| peer.to_string()),
            method,
            namespace,
            changes,
            outcome,
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else { return };
        bytes.push(b'\n');
        let (done, durable) = oneshot::channel();
        if self.lines.send((bytes, done)).is_ok() {
            // The writer stops only with the process (or on a failed write, which panics).
            let _ = durable.await;
        }
    }
}

enum Sink {
    Stdout,
    File(File),
}

impl Sink {
    /// Writes what has arrived, makes it durable, acknowledges it; repeats.
    fn run(mut self, mut received: mpsc::UnboundedReceiver<Entry>) {
        let mut group = Vec::new();
        while let Some(first) = received.blocking_recv() {
            group.push(first);
            while let Ok(more) = received.try_recv() {
                group.push(more);
            }
            let written = match &mut self {
                Sink::Stdout => {
                    let mut out = std::io::stdout().lock();
                    group.iter().try_for_each(|(line, _)| out.write_all(line)).and_then(|()| out.flush())
                }
                Sink::File(file) => {
                    group.iter().try_for_each(|(line, _)| file.write_all(line)).and_then(|()| file.sync_data())
                }
            };
            // An audit log that cannot be written must not let mutations go unrecorded: the
            // process stops loudly (and a supervisor restarts it).
            if let Err(error) = written {
                panic!("the audit log cannot be written: {error}");
            }
            for (_, done) in group.drain(..) {
                let _ = done.send(());
            }
        }
    }
}
