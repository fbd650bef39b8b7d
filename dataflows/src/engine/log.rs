//! The boundary between the engine and a write-ahead log.
//!
//! The engine does not know what a log is made of: it hands records to a [`WriteLog`], and
//! whatever follows the log (the embedded log's writer after fsync, a Kafka consumer) hands
//! records back, in log order with their LSNs, through a [`CommitSink`]. Records written by
//! this server carry the [`Ticket`] of the write waiting for them.

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use crate::engine::wake::Waker;
use crate::state::model::Lsn;
use crate::state::write::WriteRecord;

/// Identifies the write waiting for a record: the worker that holds its reply, and the
/// request's number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub(crate) origin: usize,
    pub(crate) request: u64,
}

impl Ticket {
    /// A ticket no request waits on, for logs driven outside the engine (tests, tools).
    pub fn unattached(request: u64) -> Ticket {
        Ticket { origin: usize::MAX, request }
    }
}

/// A write-ahead log the engine appends to.
pub trait WriteLog: Send + Sync + 'static {
    /// Appends `record`. Once it is durable, the log's follower passes it to
    /// [`CommitSink::committed`] with `ticket`; if it cannot be made durable, the log calls
    /// [`CommitSink::failed`].
    fn append(&self, record: WriteRecord, ticket: Ticket);
}

/// What a log's follower delivers through a [`CommitSink`].
#[derive(Debug)]
pub enum Committed {
    Record {
        lsn: Lsn,
        record: WriteRecord,
        ticket: Option<Ticket>,
    },
    /// A record that was not made durable: its write fails with `error`.
    Failed {
        ticket: Ticket,
        error: crate::engine::EngineError,
    },
    /// A checkpoint's graph: the state after the record at `lsn`.
    Restore {
        lsn: Lsn,
        graph: Box<crate::state::graph::WholeGraph>,
    },
}

/// Where a log's follower delivers durable records, in LSN order, to the apply stage.
#[derive(Clone)]
pub struct CommitSink {
    pub(crate) tx: Sender<Committed>,
    pub(crate) waker: Waker,
}

impl CommitSink {
    /// A sink not attached to an engine, and the receiving end of what it is given: for
    /// tools and tests that read a log without applying it.
    pub fn detached() -> (CommitSink, crossbeam_channel::Receiver<Committed>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (CommitSink { tx, waker: Waker::default() }, rx)
    }

    /// A durable record. `ticket` is the one passed to [`WriteLog::append`], if this server
    /// wrote the record; `None` for records replayed or written by another producer.
    pub fn committed(&self, lsn: Lsn, record: WriteRecord, ticket: Option<Ticket>) {
        // A send fails only once the engine is shut down; nothing waits for the record then.
        let _ = self.tx.send(Committed::Record { lsn, record, ticket });
        self.waker.wake();
    }

    /// A checkpoint's graph, the state the log up to `lsn` produced: handed over before the
    /// records after `lsn`, into an empty engine.
    pub fn restored(&self, lsn: Lsn, graph: crate::state::graph::WholeGraph) {
        let _ = self.tx.send(Committed::Restore { lsn, graph: Box::new(graph) });
        self.waker.wake();
    }

    /// A record that could not be made durable: its write fails with `error`.
    pub fn failed(&self, ticket: Ticket, error: String) {
        let _ = self.tx.send(Committed::Failed { ticket, error: crate::engine::EngineError::Log(error) });
        self.waker.wake();
    }

    /// A record the log refused for its size (`message` names the limit): nothing was written.
    pub fn too_large(&self, ticket: Ticket, message: String) {
        let _ = self.tx.send(Committed::Failed { ticket, error: crate::engine::EngineError::Limit(message) });
        self.waker.wake();
    }
}
