//! Request ids: what makes a write safe to retry.
//!
//! A client unsure whether a write landed (its call timed out, the connection dropped) sends
//! it again with the same request id. The apply stage remembers the outcome of every record
//! that carried one, for a window of record time and up to a number of ids; a record whose
//! id it remembers changes nothing and answers with the first outcome, LSN included. The
//! ids live in the log (each record carries its own) and in checkpoints, so replay and every
//! replica decide alike, and a retry after a restart is still recognised.
//!
//! Forgetting is deterministic: oldest first, in log order, once older than the window by
//! the timestamp of the record being remembered, or past the capacity. The state is the
//! sequence of ids remembered, which a checkpoint keeps in order.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::state::model::{Lsn, Micros, Namespace};
use crate::state::write::RecordOutcome;

/// How long and how many request ids are remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestIdLimits {
    /// Record time, in microseconds, an id is remembered after its record.
    pub window: Micros,
    /// Most ids remembered; past it the oldest go first.
    pub capacity: usize,
}

impl Default for RequestIdLimits {
    fn default() -> Self {
        RequestIdLimits { window: 10 * 60 * 1_000_000, capacity: 100_000 }
    }
}

/// A remembered write: its request id, its record's timestamp and what it did (the outcome
/// names the LSN it was applied at).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    pub namespace: Namespace,
    pub request_id: String,
    pub timestamp: Micros,
    pub outcome: RecordOutcome,
}

/// What is known of a remembered write: its outcome, or, while its record is being decided,
/// its LSN.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum First {
    Deciding(Lsn),
    Decided(RecordOutcome),
}

#[derive(Default)]
pub(crate) struct RequestIds {
    limits: RequestIdLimits,
    /// By namespace, then id: a retry is looked up by borrowed strings, with no key built.
    outcomes: HashMap<Namespace, HashMap<String, First, RandomState>, RandomState>,
    /// Keys with their record's timestamp, in log order.
    order: VecDeque<(Micros, Namespace, String)>,
}

impl RequestIds {
    pub fn new(limits: RequestIdLimits) -> Self {
        RequestIds { limits, ..Default::default() }
    }

    /// What is known of the first write with `request_id` in `namespace`, if it is remembered.
    pub fn first(&self, namespace: &Namespace, request_id: &str) -> Option<&First> {
        self.outcomes.get(namespace)?.get(request_id)
    }

    /// The first outcome of `request_id` in `namespace`, if it is remembered and decided.
    pub fn outcome(&self, namespace: &Namespace, request_id: &str) -> Option<&RecordOutcome> {
        match self.first(namespace, request_id)? {
            First::Decided(outcome) => Some(outcome),
            First::Deciding(_) => None,
        }
    }

    /// The outcome of the record at `lsn`, which carried `request_id`, once decided: kept if
    /// the id is still remembered for that record.
    pub fn decided(&mut self, namespace: &Namespace, request_id: &str, outcome: RecordOutcome) {
        let first = self.outcomes.get_mut(namespace).and_then(|ids| ids.get_mut(request_id));
        if let Some(first) = first.filter(|first| **first == First::Deciding(outcome.lsn)) {
            *first = First::Decided(outcome);
        }
    }

    /// Remembers a record that carried `request_id` (its outcome, or its LSN while it is being
    /// decided), and forgets what is past the window or the capacity. What is forgotten
    /// depends on the records remembered alone, not on when their outcomes are known, so
    /// every server following the log forgets alike.
    pub fn remember(&mut self, namespace: &Namespace, request_id: &str, timestamp: Micros, first: First) {
        self.order.push_back((timestamp, namespace.clone(), request_id.to_owned()));
        self.outcomes.entry(namespace.clone()).or_default().insert(request_id.to_owned(), first);
        let expired = timestamp.saturating_sub(self.limits.window);
        while let Some((timestamp, _, _)) = self.order.front() {
            if *timestamp >= expired && self.order.len() <= self.limits.capacity {
                break;
            }
            let Some((_, namespace, request_id)) = self.order.pop_front() else { break };
            if let Some(ids) = self.outcomes.get_mut(&namespace) {
                ids.remove(&request_id);
                if ids.is_empty() {
                    self.outcomes.remove(&namespace);
                }
            }
        }
    }

    /// Every id remembered of the records through `lsn`, oldest first: what a checkpoint
    /// of the graph at `lsn` keeps.
    pub fn remembered(&self, lsn: Lsn) -> Vec<Remembered> {
        self.order
            .iter()
            .filter_map(|(timestamp, namespace, request_id)| {
                let outcome = self.outcome(namespace, request_id).filter(|outcome| outcome.lsn <= lsn)?.clone();
                Some(Remembered {
                    namespace: namespace.clone(),
                    request_id: request_id.clone(),
                    timestamp: *timestamp,
                    outcome,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(lsn: u64) -> RecordOutcome {
        RecordOutcome { lsn, results: Vec::new() }
    }

    #[test]
    fn forgets_the_oldest_past_the_window_or_the_capacity() {
        let ns = Namespace::default();
        let mut ids = RequestIds::new(RequestIdLimits { window: 100, capacity: 3 });
        ids.remember(&ns, "a", 0, First::Decided(outcome(1)));
        ids.remember(&ns, "b", 50, First::Decided(outcome(2)));
        assert_eq!(ids.outcome(&ns, "a").map(|o| o.lsn), Some(1));
        ids.remember(&ns, "c", 120, First::Deciding(3));
        assert!(ids.first(&ns, "a").is_none(), "older than the window");
        assert_eq!(ids.outcome(&ns, "b").map(|o| o.lsn), Some(2));
        ids.remember(&ns, "d", 121, First::Deciding(4));
        ids.decided(&ns, "c", outcome(3));
        ids.remember(&ns, "e", 122, First::Decided(outcome(5)));
        assert!(ids.first(&ns, "b").is_none(), "past the capacity");
        assert_eq!(ids.remembered(5).len(), 2, "d is still being decided");
        assert_eq!(ids.remembered(3).len(), 1, "only those through the LSN");
        assert!(ids.first(&Namespace::new("other"), "e").is_none(), "ids are per namespace");
    }
}
