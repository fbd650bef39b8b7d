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

use crate::state::model::{Micros, Namespace};
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

#[derive(Default)]
pub(crate) struct RequestIds {
    limits: RequestIdLimits,
    /// By namespace, then id: a retry is looked up by borrowed strings, with no key built.
    outcomes: HashMap<Namespace, HashMap<String, RecordOutcome, RandomState>, RandomState>,
    /// Keys with their record's timestamp, in log order.
    order: VecDeque<(Micros, Namespace, String)>,
}

impl RequestIds {
    pub fn new(limits: RequestIdLimits) -> Self {
        RequestIds { limits, ..Default::default() }
    }

    /// The first outcome of `request_id` in `namespace`, if it is remembered.
    pub fn first(&self, namespace: &Namespace, request_id: &str) -> Option<&RecordOutcome> {
        self.outcomes.get(namespace)?.get(request_id)
    }

    /// Remembers the outcome of a record that carried `request_id`, and forgets what is past
    /// the window or the capacity.
    pub fn remember(&mut self, namespace: &Namespace, request_id: &str, timestamp: Micros, outcome: RecordOutcome) {
        self.order.push_back((timestamp, namespace.clone(), request_id.to_owned()));
        self.outcomes.entry(namespace.clone()).or_default().insert(request_id.to_owned(), outcome);
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

    /// Every id remembered, oldest first: what a checkpoint keeps.
    pub fn remembered(&self) -> Vec<Remembered> {
        self.order
            .iter()
            .filter_map(|(timestamp, namespace, request_id)| {
                let outcome = self.first(namespace, request_id)?.clone();
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
        ids.remember(&ns, "a", 0, outcome(1));
        ids.remember(&ns, "b", 50, outcome(2));
        assert_eq!(ids.first(&ns, "a").map(|o| o.lsn), Some(1));
        ids.remember(&ns, "c", 120, outcome(3));
        assert!(ids.first(&ns, "a").is_none(), "older than the window");
        assert_eq!(ids.first(&ns, "b").map(|o| o.lsn), Some(2));
        ids.remember(&ns, "d", 121, outcome(4));
        ids.remember(&ns, "e", 122, outcome(5));
        assert!(ids.first(&ns, "b").is_none(), "past the capacity");
        assert_eq!(ids.remembered().len(), 3);
        assert!(ids.first(&Namespace::new("other"), "e").is_none(), "ids are per namespace");
    }
}
