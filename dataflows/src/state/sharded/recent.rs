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
use smallvec::SmallVec;

use crate::state::model::{Edge, Id, Lsn, Shared};

/// What each id left behind at its changes lately, oldest first: for a deleted vertex its
/// number, for a deleted edge itself, for an edge made the LSN it was made at.
pub(super) struct Recent<T> {
    /// Most ids change once within the hold: the first change is held inline, with no
    /// allocation (one a change on the write path otherwise).
    by_id: HashMap<Id, SmallVec<[T; 1]>, RandomState>,
    /// Oldest change first: what [`Recent::forget_through`] walks.
    order: VecDeque<(Lsn, Id)>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent { by_id: HashMap::default(), order: VecDeque::new() }
    }
}

impl<T> Recent<T> {
    pub fn remember(&mut self, lsn: Lsn, id: &Id, left: T) {
        self.by_id.entry(id.clone()).or_default().push(left);
        self.order.push_back((lsn, id.clone()));
    }

    /// What `id` left at its changes still remembered, oldest first.
    pub fn get(&self, id: &str) -> &[T] {
        self.by_id.get(id).map_or(&[], |left| left.as_slice())
    }

    /// Forgets the changes at or before `lsn`: no read asks for an LSN before them.
    pub fn forget_through(&mut self, lsn: Lsn) {
        while let Some((changed, _)) = self.order.front() {
            if *changed > lsn {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else { break };
            if let Some(left) = self.by_id.get_mut(&id) {
                // Changes of one id are remembered in order, so its oldest goes first.
                left.remove(0);
                if left.is_empty() {
                    self.by_id.remove(&id);
                }
            }
        }
        // Gives back the room of a burst of changes (a load through the log) once forgotten.
        if self.order.is_empty() && self.order.capacity() > 1024 {
            self.order.shrink_to_fit();
            self.by_id.shrink_to_fit();
        }
    }
}

/// An edge deleted here, with the LSNs between which it was live: it was made at `made`
/// (0 when that was before the compaction frontier) and deleted at `deleted`.
pub(super) struct DepartedEdge {
    pub made: Lsn,
    pub deleted: Lsn,
    pub edge: Shared<Edge>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_is_remembered_until_the_frontier_passes_it() {
        let mut departed = Recent::default();
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
        let mut made: Recent<Lsn> = Recent::default();
        let latest = |made: &Recent<Lsn>| made.get("a").last().copied().unwrap_or(0);
        let a = Id::from("a");
        made.remember(5, &a, 5);
        made.remember(9, &a, 9);
        assert_eq!(latest(&made), 9);
        made.forget_through(5);
        assert_eq!(latest(&made), 9, "made again at 9, after the frontier");
        made.forget_through(9);
        assert_eq!(latest(&made), 0);
        assert!(made.by_id.is_empty() && made.order.is_empty());
    }
}
