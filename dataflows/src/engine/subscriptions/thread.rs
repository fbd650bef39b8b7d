//! The subscription thread: keeps every topic's [`StandingPageRank`] and shares its time
//! fairly between them.
//!
//! Each topic queues the changes of the LSNs it has not taken yet. Topics with work take
//! turns: a turn takes every queued LSN's changes into the state at once (a topic that fell
//! behind catches up in one go, and publishes the result of the latest LSN), then pushes for
//! at most [`SLICE_VISITS`] edge visits. So a topic whose pushes are expensive (a damping near
//! 1, a tight tolerance, a change that moves much rank) delays the others by one slice, not by
//! all its pushes; and a topic whose last subscriber left stops before its next slice. A topic
//! that falls more than [`MAX_WAITING_CHANGES`] behind is cut off, so the queues are bounded.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};

use super::registry::{FeedError, Registry, ToStanding, Topic, INBOX};
use crate::algorithms::standing_page_rank::{RankUpdate, StandingPageRank};
use crate::state::graph::Change;
use crate::state::model::Lsn;

/// Edge visits one topic's pushes may take before the next topic's turn (about a
/// millisecond of work).
pub(crate) const SLICE_VISITS: u64 = 50_000;

/// Changes a topic may have queued before it is cut off (RESOURCE_EXHAUSTED for its
/// subscribers): what bounds the thread's memory when a topic cannot keep up.
pub(crate) const MAX_WAITING_CHANGES: usize = 1_000_000;

/// One topic on the thread.
struct Live {
    topic: Arc<Topic>,
    /// The LSN of the graph it started from (changes up to it are in the state already);
    /// before it starts, the LSN after which its changes are kept.
    from: Lsn,
    /// `None` until the graph it starts from arrives.
    state: Option<StandingPageRank>,
    /// The last result published (none before the first).
    last: Option<Arc<RankUpdate>>,
    /// Changes not taken into the state yet, by LSN.
    waiting: VecDeque<(Lsn, Arc<Vec<Change>>)>,
    waiting_changes: usize,
    /// The LSN whose changes the state holds; its pushes run while `settled` is false.
    applied: Lsn,
    settled: bool,
}

impl Live {
    fn has_work(&self) -> bool {
        self.state.is_some() && (!self.settled || !self.waiting.is_empty())
    }

    /// Queues an LSN's changes if any is in the topic's namespace; false if that makes the
    /// topic fall too far behind.
    fn queue(&mut self, lsn: Lsn, changes: &Arc<Vec<Change>>) -> bool {
        let namespace = &self.topic.params.namespace;
        let touches = changes.iter().any(|change| match change {
            Change::Vertex(ns, _, _) | Change::Edge(ns, _, _) => ns == namespace,
        });
        if lsn > self.from && touches {
            self.waiting.push_back((lsn, changes.clone()));
            self.waiting_changes += changes.len();
        }
        self.waiting_changes <= MAX_WAITING_CHANGES
    }

    /// One turn (see the module's doc); every LSN up to `complete` was handed over.
    fn turn(&mut self, complete: Lsn) {
        let Some(state) = self.state.as_mut() else { return };
        if self.settled {
            let mut changed = false;
            while let Some((lsn, changes)) = self.waiting.pop_front() {
                changed |= state.apply_changes(&changes);
                self.applied = lsn;
            }
            self.waiting_changes = 0;
            self.settled = !changed;
        }
        if !self.settled && state.settle(SLICE_VISITS) {
            self.settled = true;
            let update = state.top(self.applied);
            if self.last.as_ref().is_none_or(|last| last.scores != update.scores) {
                let update = Arc::new(update);
                self.last = Some(update.clone());
                self.topic.publish(update);
            }
        }
        self.claim(complete);
    }

    /// Tells heartbeats how far the published result holds: with nothing waiting, up to
    /// `complete`, every LSN handed over.
    fn claim(&self, complete: Lsn) {
        if self.last.is_none() || !self.settled {
            return;
        }
        let through = if self.waiting.is_empty() { self.applied.max(complete) } else { self.applied };
        self.topic.processed.fetch_max(through.max(self.from), Ordering::AcqRel);
    }
}

/// Runs until worker 0 drops its end of the inbox.
pub(crate) fn run(registry: &Registry, inbox: Receiver<ToStanding>) {
    let mut live: Vec<Live> = Vec::new();
    let mut next_turn = 0;
    let mut complete: Lsn = 0;
    loop {
        // Block only when no topic has work; otherwise take what has arrived and go on.
        let first = if live.iter().any(Live::has_work) {
            match inbox.try_recv() {
                Ok(message) => Some(message),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            }
        } else {
            match inbox.recv() {
                Ok(message) => Some(message),
                Err(_) => return,
            }
        };
        let arrived = first.into_iter().chain(inbox.try_iter().take(INBOX));
        for message in arrived {
            match message {
                ToStanding::Pending { topic, after } => live.push(Live {
                    topic,
                    from: after,
                    state: None,
                    last: None,
                    waiting: VecDeque::new(),
                    waiting_changes: 0,
                    applied: after,
                    settled: false,
                }),
                ToStanding::Start { topic, from, vertices, edges } => {
                    if crate::engine::fault_injected("subscriptions") {
                        panic!("the subscription thread: PRISM_FAULT_PANIC asked for a panic on a new topic");
                    }
                    let Some(entry) = live.iter_mut().find(|entry| entry.topic.id == topic.id) else { continue };
                    let started = std::time::Instant::now();
                    entry.state = Some(StandingPageRank::start(topic.params.clone(), &vertices, &edges));
                    drop((vertices, edges));
                    // Changes up to `from` are in the graph it started from.
                    while entry.waiting.front().is_some_and(|(lsn, _)| *lsn <= from) {
                        if let Some((_, changes)) = entry.waiting.pop_front() {
                            entry.waiting_changes -= changes.len();
                        }
                    }
                    entry.from = from;
                    entry.applied = from;
                    tracing::info!(
                        topic = topic.id,
                        lsn = from,
                        seconds = started.elapsed().as_secs_f64(),
                        "standing PageRank started; its pushes follow in slices"
                    );
                }
                ToStanding::Changes(lsn, changes) => {
                    for entry in &mut live {
                        if !entry.queue(lsn, &changes) {
                            registry.retire(
                                &entry.topic,
                                FeedError::Behind(format!(
                                    "the standing PageRank fell more than {MAX_WAITING_CHANGES} changes behind the \
                                     log and was stopped; subscribe again, or with a looser tolerance"
                                )),
                            );
                        }
                    }
                }
                ToStanding::Wake => {}
                ToStanding::Processed(lsn) => {
                    complete = complete.max(lsn);
                    for entry in &live {
                        entry.claim(complete);
                    }
                }
            }
        }
        live.retain(|entry| {
            let stopped = entry.topic.is_stopped();
            if stopped {
                tracing::info!(topic = entry.topic.id, "standing PageRank dropped: no subscriber left, or cut off");
            }
            !stopped
        });
        registry.standing.send_if_modified(|count| std::mem::replace(count, live.len()) != live.len());
        // One turn, for the next topic with work.
        let turn = (0..live.len()).map(|k| (next_turn + k) % live.len()).find(|&i| live[i].has_work());
        if let Some(i) = turn {
            live[i].turn(complete);
            next_turn = i + 1;
        }
    }
}
