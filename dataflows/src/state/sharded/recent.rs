//! What changed lately on this worker's keys, remembered for as long as a read may still ask
//! for an LSN before the change.
//!
//! Vertices and edges named by id are found through their owner's rule state (the vertex
//! index is ordered by number, and there is no index of edges by id), which is as of the last
//! batch applied here: ahead of the LSN a read asks for whenever a batch is applied here but
//! not yet everywhere, or when a multi-step query reads at its first level's LSN. Such a read
//! must still find a vertex by the number it had then (the index keeps that LSN's version),
//! an edge as it was then, and must not find an edge made after it. Reads below the
//! compaction frontier are refused, so what changed at or before it is forgotten.
//!
//! A restored graph's edges are not remembered as made: graphs are restored before the
//! server serves, so no read asks for an LSN before them.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

use crate::state::model::{Id, Lsn, NumberedEdge};

/// What each id left behind at its deletes: for a vertex its number, for an edge itself.
pub(super) struct Departed<T> {
    /// Each id's remains, in the order it was deleted.
    by_id: HashMap<Id, Vec<T>, RandomState>,
    /// Oldest delete first: what [`Departed::forget_through`] walks.
    order: VecDeque<(Lsn, Id)>,
}

impl<T> Default for Departed<T> {
    fn default() -> Self {
        Departed { by_id: HashMap::default(), order: VecDeque::new() }
    }
}

impl<T> Departed<T> {
    pub fn remember(&mut self, lsn: Lsn, id: &Id, remains: T) {
        self.by_id.entry(id.clone()).or_default().push(remains);
        self.order.push_back((lsn, id.clone()));
    }

    /// What `id` left at its deletes still remembered, oldest first.
    pub fn get(&self, id: &str) -> &[T] {
        self.by_id.get(id).map_or(&[], Vec::as_slice)
    }

    /// Forgets the deletes at or before `lsn`: no read asks for an LSN before them.
    pub fn forget_through(&mut self, lsn: Lsn) {
        while let Some((deleted, _)) = self.order.front() {
            if *deleted > lsn {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else { break };
            if let Some(remains) = self.by_id.get_mut(&id) {
                // Deletes of one id are remembered in order, so its oldest goes first.
                remains.remove(0);
                if remains.is_empty() {
                    self.by_id.remove(&id);
                }
            }
        }
        shrink_once_empty(&mut self.order, &mut self.by_id);
    }
}

/// An edge deleted here, with the LSNs between which it was live: it was made at `made`
/// (0 when that was before the compaction frontier) and deleted at `deleted`.
pub(super) struct DepartedEdge {
    pub made: Lsn,
    pub deleted: Lsn,
    pub edge: NumberedEdge,
}

/// When the edges held here were made, for those made after the compaction frontier: the
/// rule state keeps no LSN per edge (8 bytes each, for the few a read can ask about).
#[derive(Default)]
pub(super) struct Made {
    by_id: HashMap<Id, Lsn, RandomState>,
    /// Oldest first: what [`Made::forget_through`] walks.
    order: VecDeque<(Lsn, Id)>,
}

impl Made {
    pub fn remember(&mut self, lsn: Lsn, id: &Id) {
        self.by_id.insert(id.clone(), lsn);
        self.order.push_back((lsn, id.clone()));
    }

    /// The LSN edge `id` was last made at, or 0 when that was at or before the frontier.
    pub fn lsn(&self, id: &str) -> Lsn {
        self.by_id.get(id).copied().unwrap_or(0)
    }

    /// Forgets the makes at or before `lsn`: every read is at or after them.
    pub fn forget_through(&mut self, lsn: Lsn) {
        while let Some((made, _)) = self.order.front() {
            if *made > lsn {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else { break };
            // An id made again since is remembered at its later LSN.
            if self.by_id.get(&id).is_some_and(|made| *made <= lsn) {
                self.by_id.remove(&id);
            }
        }
        shrink_once_empty(&mut self.order, &mut self.by_id);
    }
}

/// Gives back the room of a burst of changes (a load through the log) once it is forgotten.
fn shrink_once_empty<V>(order: &mut VecDeque<(Lsn, Id)>, by_id: &mut HashMap<Id, V, RandomState>) {
    if order.is_empty() && order.capacity() > 1024 {
        order.shrink_to_fit();
        by_id.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_is_remembered_until_the_frontier_passes_it() {
        let mut departed = Departed::default();
        let a = Id::from("a");
        departed.remember(5, &a, 3u64);
        departed.remember(9, &a, 7u64);
        assert_eq!(departed.get("a"), [3, 7]);
        departed.forget_through(4);
        assert_eq!(departed.get("a").len(), 2, "a read at 4 needs the vertex deleted at 5");
        departed.forget_through(5);
        assert_eq!(departed.get("a"), [7]);
        departed.forget_through(100);
        assert!(departed.get("a").is_empty() && departed.by_id.is_empty());
    }

    #[test]
    fn a_make_is_remembered_at_its_latest_lsn_until_the_frontier_passes_it() {
        let mut made = Made::default();
        let a = Id::from("a");
        made.remember(5, &a);
        made.remember(9, &a);
        assert_eq!(made.lsn("a"), 9);
        made.forget_through(5);
        assert_eq!(made.lsn("a"), 9, "made again at 9, after the frontier");
        made.forget_through(9);
        assert_eq!(made.lsn("a"), 0);
        assert!(made.by_id.is_empty() && made.order.is_empty());
    }
}
