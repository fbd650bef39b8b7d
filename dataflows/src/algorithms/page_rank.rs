//! One-shot PageRank over every worker's [`Shard`], a synchronous round at a time, as LDBC
//! Graphalytics defines it: `rank = (1 - d) / N + d * (incoming + dangling / N)`, where a
//! member with no out-edges (dangling) spreads its rank over every vertex.
//!
//! Each round a worker sends each owner a dense array of the shares (`rank / out-degree`
//! per edge) for that owner's members, and its dangling rank to every worker; the next round
//! folds in what arrived.

use super::{PageRankParams, Shard};
use crate::state::model::Id;

/// A worker's ranks and the round it is at.
pub(crate) struct PageRank {
    damping: f64,
    iterations: u32,
    limit: usize,
    ranks: Vec<f64>,
    round: u32,
}

/// What one round sends: per worker, the shares for its members; and the dangling rank.
pub(crate) struct Shares {
    pub to_owner: Vec<Vec<f64>>,
    pub dangling: f64,
}

impl PageRank {
    pub fn new(params: &PageRankParams, shard: &Shard) -> Self {
        let start = 1.0 / shard.total().max(1) as f64;
        PageRank {
            damping: params.damping,
            iterations: params.iterations,
            limit: params.limit,
            ranks: vec![start; shard.ids.len()],
            round: 0,
        }
    }

    /// Folds in the last round's shares (each an array over this worker's members) and
    /// dangling ranks. Nothing arrives before the first round.
    pub fn receive(&mut self, shard: &Shard, shares: Vec<Vec<f64>>, dangling: f64) {
        if self.round == 0 {
            return;
        }
        let n = shard.total().max(1) as f64;
        let d = self.damping;
        let mut incoming = vec![0.0; self.ranks.len()];
        for list in shares {
            for (slot, share) in incoming.iter_mut().zip(list) {
                *slot += share;
            }
        }
        for (rank, incoming) in self.ranks.iter_mut().zip(incoming) {
            *rank = (1.0 - d) / n + d * (incoming + dangling / n);
        }
    }

    /// Whether every round has run.
    pub fn finished(&self) -> bool {
        self.round == self.iterations
    }

    /// This round's shares, and on to the next round.
    pub fn send(&mut self, shard: &Shard) -> Shares {
        let mut to_owner = shard.per_member(0.0);
        let mut dangling = 0.0;
        for (rank, targets) in self.ranks.iter().zip(&shard.neighbours) {
            if targets.is_empty() {
                dangling += rank;
                continue;
            }
            let share = rank / targets.len() as f64;
            for (owner, index) in targets {
                to_owner[*owner][*index as usize] += share;
            }
        }
        self.round += 1;
        Shares { to_owner, dangling }
    }

    /// This worker's top scores (all of them when the limit is 0).
    pub fn scores(&self, shard: &Shard) -> Vec<(Id, f64)> {
        top(shard.ids.iter().cloned().zip(self.ranks.iter().copied()).collect(), self.limit)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The `limit` highest scores (all when 0), ties by id.
pub(crate) fn top(mut scores: Vec<(Id, f64)>, limit: usize) -> Vec<(Id, f64)> {
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if limit > 0 {
        scores.truncate(limit);
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_of_a_cycle_with_a_dangling_vertex_sum_to_one() {
        // One worker: a → b, b → a, c dangling.
        let shard = Shard {
            ids: vec!["a".into(), "b".into(), "c".into()],
            neighbours: vec![vec![(0, 1)], vec![(0, 0)], vec![]],
            counts: vec![3],
        };
        let params = PageRankParams { iterations: 30, damping: 0.85, filter: None, limit: 0 };
        let mut rank = PageRank::new(&params, &shard);
        while !rank.finished() {
            let Shares { mut to_owner, dangling } = rank.send(&shard);
            rank.receive(&shard, vec![to_owner.remove(0)], dangling);
        }
        let scores = rank.scores(&shard);
        let sum: f64 = scores.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{sum}");
        assert_eq!(scores[2].0, "c", "the dangling vertex has no in-edges: lowest");
        assert!((scores[0].1 - scores[1].1).abs() < 1e-12, "a and b are symmetric");
    }
}
