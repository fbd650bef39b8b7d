//! A worker's part of the graph a one-shot algorithm runs on: its member vertices numbered
//! densely, and each member's neighbours as (owning worker, index there), so that rounds
//! exchange arrays of numbers rather than ids.
//!
//! The numbering is made per run in three steps: each worker reads its members and their
//! neighbours' ids ([`Unresolved`]), asks each neighbour's owner for that neighbour's index
//! ([`Unresolved::questions`], answered by [`Unresolved::indexes_of`] there), and resolves
//! ([`Unresolved::resolve`]); a neighbour its owner does not know is not a member (it failed
//! the filter), so its edge is not in the induced subgraph.

use std::collections::HashMap;

/// Answers for an id that is not a member.
const NOT_A_MEMBER: u32 = u32::MAX;

/// Members and their neighbours' ids, before the owners have numbered them.
#[derive(Default)]
pub(crate) struct Unresolved {
    /// Member ids, sorted: a member's index is its position.
    ids: Vec<String>,
    /// Per member, its neighbours' ids and owning workers.
    neighbours: Vec<Vec<(String, usize)>>,
    /// What this worker asked each owner, in the order asked.
    asked: HashMap<usize, Vec<String>>,
}

impl Unresolved {
    /// `ids` must be sorted, and `neighbours` given per member in the same order.
    pub fn new(ids: Vec<String>, neighbours: Vec<Vec<(String, usize)>>) -> Self {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        Unresolved { ids, neighbours, asked: HashMap::new() }
    }

    pub fn members(&self) -> usize {
        self.ids.len()
    }

    /// Each owner's neighbour ids to number, each asked once; remembered for `resolve`.
    pub fn questions(&mut self) -> Vec<(usize, Vec<String>)> {
        let mut asks: HashMap<usize, Vec<String>> = HashMap::new();
        for targets in &self.neighbours {
            for (id, owner) in targets {
                asks.entry(*owner).or_default().push(id.clone());
            }
        }
        asks.into_iter()
            .map(|(owner, mut ids)| {
                ids.sort();
                ids.dedup();
                self.asked.insert(owner, ids.clone());
                (owner, ids)
            })
            .collect()
    }

    /// The local index of each of `ids` (another worker's question), in order.
    pub fn indexes_of(&self, ids: &[String]) -> Vec<u32> {
        ids.iter().map(|id| self.ids.binary_search(id).map_or(NOT_A_MEMBER, |i| i as u32)).collect()
    }

    /// The shard, given each owner's answer (`answers[owner]`, in the order asked) and the
    /// members on every worker.
    pub fn resolve(self, answers: HashMap<usize, Vec<u32>>, counts: Vec<u64>) -> Shard {
        let mut asked = self.asked;
        let at_owner: HashMap<usize, HashMap<String, u32>> = answers
            .into_iter()
            .map(|(owner, indexes)| {
                (owner, asked.remove(&owner).unwrap_or_default().into_iter().zip(indexes).collect())
            })
            .collect();
        let neighbours = self
            .neighbours
            .iter()
            .map(|targets| {
                targets
                    .iter()
                    .filter_map(|(id, owner)| {
                        let index = *at_owner.get(owner)?.get(id)?;
                        (index != NOT_A_MEMBER).then_some((*owner, index))
                    })
                    .collect()
            })
            .collect();
        Shard { ids: self.ids, neighbours, counts }
    }
}

/// A worker's members, numbered, with their neighbours resolved.
#[derive(Default)]
pub(crate) struct Shard {
    /// Member ids, sorted: a member's index is its position.
    pub ids: Vec<String>,
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
    fn neighbours_resolve_to_their_owners_indexes_and_non_members_drop() {
        // Worker 0 holds a, c; worker 1 holds b. a → b, a → x (x failed the filter), c → a.
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut zero =
            Unresolved::new(ids(&["a", "c"]), vec![vec![("b".into(), 1), ("x".into(), 1)], vec![("a".into(), 0)]]);
        let one = Unresolved::new(ids(&["b"]), vec![vec![]]);
        let mut answers = HashMap::new();
        for (owner, asked) in zero.questions() {
            let answer = if owner == 0 { zero.indexes_of(&asked) } else { one.indexes_of(&asked) };
            answers.insert(owner, answer);
        }
        let shard = zero.resolve(answers, vec![2, 1]);
        assert_eq!(shard.neighbours, vec![vec![(1, 0)], vec![(0, 0)]]);
        assert_eq!(shard.total(), 3);
    }
}
