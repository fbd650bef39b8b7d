//! Vertices deleted lately, remembered by id for as long as a read may still ask for an LSN
//! before their delete.
//!
//! The vertex index is ordered by number, and an id is found through its owner's rule
//! state, which is as of the last batch applied here: ahead of the LSN a read asks for
//! whenever a delete is applied here but not yet everywhere, or when a multi-step query
//! reads at its first level's LSN. Such a read must still find the vertex, by the number it
//! had; the index keeps that LSN's version. Reads below the compaction frontier are refused,
//! so what was deleted at or before it is forgotten.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

use crate::state::model::{Id, Lsn, VertexNumber};

#[derive(Default)]
pub(super) struct Departed {
    /// Each id's numbers, in the order they were deleted.
    by_id: HashMap<Id, Vec<VertexNumber>, RandomState>,
    /// Oldest delete first: what [`Departed::forget_through`] walks.
    order: VecDeque<(Lsn, Id)>,
}

impl Departed {
    pub fn remember(&mut self, lsn: Lsn, id: &Id, number: VertexNumber) {
        self.by_id.entry(id.clone()).or_default().push(number);
        self.order.push_back((lsn, id.clone()));
    }

    /// The numbers vertex `id` had before its deletes still remembered.
    pub fn numbers(&self, id: &str) -> &[VertexNumber] {
        self.by_id.get(id).map_or(&[], Vec::as_slice)
    }

    /// Forgets the deletes at or before `lsn`: no read asks for an LSN before them.
    pub fn forget_through(&mut self, lsn: Lsn) {
        while let Some((deleted, _)) = self.order.front() {
            if *deleted > lsn {
                break;
            }
            let Some((_, id)) = self.order.pop_front() else { break };
            if let Some(numbers) = self.by_id.get_mut(&id) {
                // Deletes of one id are remembered in order, so its oldest goes first.
                numbers.remove(0);
                if numbers.is_empty() {
                    self.by_id.remove(&id);
                }
            }
        }
        if self.order.is_empty() && self.order.capacity() > 1024 {
            self.order.shrink_to_fit();
            self.by_id.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_is_remembered_until_the_frontier_passes_it() {
        let mut departed = Departed::default();
        let a = Id::from("a");
        departed.remember(5, &a, VertexNumber(3));
        departed.remember(9, &a, VertexNumber(7));
        assert_eq!(departed.numbers("a"), [VertexNumber(3), VertexNumber(7)]);
        departed.forget_through(4);
        assert_eq!(departed.numbers("a").len(), 2, "a read at 4 needs the vertex deleted at 5");
        departed.forget_through(5);
        assert_eq!(departed.numbers("a"), [VertexNumber(7)]);
        departed.forget_through(100);
        assert!(departed.numbers("a").is_empty() && departed.by_id.is_empty());
    }
}
