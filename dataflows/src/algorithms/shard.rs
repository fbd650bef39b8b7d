//! A worker's part of the graph a one-shot algorithm runs on: its member vertices numbered
//! densely, and each member's neighbours as (owning worker, index there), so that rounds
//! exchange arrays of numbers rather than ids.
//!
//! Vertex numbers already name each neighbour's owner and its index there
//! ([`VertexNumber`]); what a worker cannot know alone is which of another worker's
//! numbers are members (a filter, or a number not in use at the run's LSN). So each worker
//! sends every other its membership, a bit per index ([`Unresolved::membership`]), and a
//! member's position is the count of members before it: a few bytes per vertex, once per
//! run, instead of asking for every neighbour by id.

use crate::state::model::{Id, VertexNumber};

/// Members and their neighbours' numbers, before every worker's membership is known.
#[derive(Default)]
pub(crate) struct Unresolved {
    /// Member ids, in number order: a member's position is its index here.
    ids: Vec<Id>,
    /// A bit per index on this worker: set for members.
    membership: Vec<u64>,
    /// Per member, its neighbours' numbers.
    neighbours: Vec<Vec<VertexNumber>>,
    workers: usize,
}

impl Unresolved {
    /// `members` (numbers owned here, with their ids) must be in number order, and
    /// `neighbours` given per member in the same order.
    pub fn new(workers: usize, members: Vec<(VertexNumber, Id)>, neighbours: Vec<Vec<VertexNumber>>) -> Self {
        debug_assert!(members.windows(2).all(|w| w[0].0 < w[1].0));
        let workers = workers.max(1);
        let mut membership = Vec::new();
        let mut ids = Vec::with_capacity(members.len());
        for (number, id) in members {
            let index = number.index(workers) as usize;
            if membership.len() <= index / 64 {
                membership.resize(index / 64 + 1, 0);
            }
            membership[index / 64] |= 1 << (index % 64);
            ids.push(id);
        }
        Unresolved { ids, membership, neighbours, workers }
    }

    /// Which indexes on this worker are members, a bit each, for every other worker.
    pub fn membership(&self) -> &[u64] {
        &self.membership
    }

    /// The shard, given every worker's membership (`memberships[worker]`): neighbours that
    /// are not members are dropped (their edges are not in the induced subgraph).
    pub fn resolve(self, memberships: Vec<Vec<u64>>) -> Shard {
        let positions: Vec<Positions> = memberships.into_iter().map(Positions::new).collect();
        let workers = self.workers;
        let neighbours = self
            .neighbours
            .iter()
            .map(|targets| {
                targets
                    .iter()
                    .filter_map(|number| {
                        let owner = number.owner(workers);
                        Some((owner, positions.get(owner)?.of(number.index(workers))?))
                    })
                    .collect()
            })
            .collect();
        let counts = positions.iter().map(|p| p.count).collect();
        Shard { ids: self.ids, neighbours, counts }
    }
}

/// A worker's membership, with the members before each word counted: a member's position
/// in two lookups.
struct Positions {
    words: Vec<u64>,
    before: Vec<u32>,
    count: u64,
}

impl Positions {
    fn new(words: Vec<u64>) -> Self {
        let mut before = Vec::with_capacity(words.len());
        let mut count = 0u64;
        for word in &words {
            before.push(count as u32);
            count += u64::from(word.count_ones());
        }
        Positions { words, before, count }
    }

    /// The position of index `index` among the members, if it is one.
    fn of(&self, index: u64) -> Option<u32> {
        let (word, bit) = ((index / 64) as usize, index % 64);
        let bits = *self.words.get(word)?;
        if bits & (1 << bit) == 0 {
            return None;
        }
        Some(self.before[word] + (bits & ((1u64 << bit) - 1)).count_ones())
    }
}

/// A worker's members, numbered, with their neighbours resolved.
#[derive(Default)]
pub(crate) struct Shard {
    /// Member ids, sorted: a member's index is its position.
    pub ids: Vec<Id>,
    /// Per member, its neighbours as (owning worker, index there).
    pub neighbours: Vec<Vec<(usize, u32)>>,
    /// Members on each worker.
    pub counts: Vec<u64>,
}

impl Shard {
    /// Members on all workers.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Per worker, an array with a slot for each of its members.
    pub fn per_member<T: Clone>(&self, zero: T) -> Vec<Vec<T>> {
        self.counts.iter().map(|n| vec![zero.clone(); *n as usize]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_resolve_to_their_owners_positions_and_non_members_drop() {
        // Two workers. Worker 0 holds a (index 0) and c (index 2); index 1 (x) failed the
        // filter. Worker 1 holds b (index 0). a → b, a → x, c → a.
        let (a, x, c, b) = (
            VertexNumber::new(0, 0, 2),
            VertexNumber::new(1, 0, 2),
            VertexNumber::new(2, 0, 2),
            VertexNumber::new(0, 1, 2),
        );
        let zero = Unresolved::new(2, vec![(a, "a".into()), (c, "c".into())], vec![vec![b, x], vec![a]]);
        let one = Unresolved::new(2, vec![(b, "b".into())], vec![vec![]]);
        let memberships = vec![zero.membership().to_vec(), one.membership().to_vec()];
        let shard = zero.resolve(memberships);
        assert_eq!(shard.neighbours, vec![vec![(1, 0)], vec![(0, 0)]]);
        assert_eq!(shard.counts, vec![2, 1]);
        assert_eq!(shard.ids, vec!["a", "c"]);
    }

    #[test]
    fn positions_count_members_across_words() {
        let numbers: Vec<VertexNumber> = [3u64, 64, 65, 200].iter().map(|&i| VertexNumber::new(i, 0, 1)).collect();
        let members = numbers.iter().map(|n| (*n, Id::from(n.0.to_string()))).collect();
        let unresolved = Unresolved::new(1, members, vec![numbers.clone(); 4]);
        let membership = unresolved.membership().to_vec();
        let shard = unresolved.resolve(vec![membership]);
        assert_eq!(shard.neighbours[0], vec![(0, 0), (0, 1), (0, 2), (0, 3)]);
        assert_eq!(shard.total(), 4);
    }
}
