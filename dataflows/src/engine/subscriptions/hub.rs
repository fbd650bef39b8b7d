//! A process's first worker's side of the subscriptions: notices new topics and hands every
//! completed LSN's changes to the subscription thread of its process.
//!
//! The inbox of that thread is bounded and never waited on: the worker applies the log, and a
//! write must not wait for subscribers. Should the thread fall that far behind (it takes its
//! inbox between slices of bounded work, so only a thread stuck for seconds does), every
//! topic is cut off: their subscribers are told, and subscribing again starts afresh.

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::registry::{FeedError, Registry, ToStanding, INBOX};
use super::thread;
use crate::state::graph::Change;
use crate::state::model::Lsn;

pub(crate) struct Hub {
    registry: Arc<Registry>,
    to_standing: Sender<ToStanding>,
    /// Every LSN through this one has completed (been handed over, or dropped while idle).
    complete: Lsn,
    /// What heartbeats were last told.
    processed: Lsn,
}

impl Hub {
    /// Starts the subscription thread; `None` if this registry's thread was started already.
    pub fn new(registry: Arc<Registry>) -> Option<Self> {
        let (to_standing, inbox) = registry.open_inbox()?;
        let thread_registry = registry.clone();
        let spawned = std::thread::Builder::new()
            .name("prism-subscriptions".into())
            .spawn(move || thread::run(&thread_registry, inbox));
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the subscription thread; subscriptions will fail");
        }
        Some(Hub { registry, to_standing, complete: 0, processed: 0 })
    }

    /// Whether no standing PageRank wants changes (then the operator drops them: a new one
    /// starts from a graph read after them).
    pub fn is_idle(&self) -> bool {
        self.registry.is_idle()
    }

    /// Whether topics started that wait to be noticed.
    pub fn has_starts(&self) -> bool {
        self.registry.has_starts()
    }

    /// Notices the topics subscribers started, once this worker takes every change from
    /// LSN `from` on (`None`: not yet) and every change up to it has completed: each takes
    /// the changes of every LSN after the last complete one, and its subscriber reads the
    /// graph at that LSN or later to start from.
    pub fn take_starts(&mut self, from: Option<Lsn>) {
        if from.is_none_or(|from| self.complete + 1 < from) {
            return;
        }
        for topic in self.registry.take_starts() {
            if topic.is_stopped() {
                continue;
            }
            match self.to_standing.try_send(ToStanding::Pending { topic: topic.clone(), after: self.complete }) {
                Ok(()) => topic.changes_after.send_replace(Some(self.complete)),
                Err(TrySendError::Full(_)) => {
                    self.overflowed();
                    None
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.registry.retire(
                        &topic,
                        FeedError::Closed("the subscription thread is not running (see the server log)".into()),
                    );
                    None
                }
            };
        }
    }

    /// One completed LSN's changes, in LSN order.
    pub fn completed(&mut self, lsn: Lsn, changes: Vec<Change>) {
        self.send(ToStanding::Changes(lsn, Arc::new(changes)));
    }

    /// Every LSN up to `lsn` is complete: heartbeats may claim it.
    pub fn processed_through(&mut self, lsn: Lsn) {
        self.complete = self.complete.max(lsn);
        if lsn > self.processed && !self.is_idle() {
            self.processed = lsn;
            self.send(ToStanding::Processed(lsn));
        }
    }

    fn send(&mut self, message: ToStanding) {
        if let Err(TrySendError::Full(_)) = self.to_standing.try_send(message) {
            self.overflowed();
        }
    }

    /// The thread missed changes: no standing PageRank is correct any more.
    fn overflowed(&self) {
        tracing::warn!(inbox = INBOX, "the subscription thread fell behind the log; cutting off every subscription");
        self.registry.retire_all(FeedError::Behind(format!(
            "the standing PageRanks fell more than {INBOX} LSNs behind the log and were stopped; subscribe again"
        )));
    }
}

impl Drop for Hub {
    /// Worker 0 stops: so does the subscription thread, once both ends of its inbox are gone.
    fn drop(&mut self) {
        self.registry.close_inbox();
    }
}
