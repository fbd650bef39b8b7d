//! The synchronous label exchange that connected components and label propagation share:
//! each round every member sends its label to its neighbours' owners, then takes a new label
//! from what it heard by its algorithm's rule ([`super::components`],
//! [`super::label_propagation`]).
//!
//! Components stop when a round changes nothing anywhere, so each round also tells every
//! worker how many labels changed on the sender (a cap on rounds, when given, stops them
//! earlier). Label propagation runs exactly its number of rounds.

use super::{components, label_propagation, CommunityAlgorithm, CommunityParams, Shard};
use crate::state::model::Id;

/// A worker's labels and the round it is at.
pub(crate) struct LabelRounds {
    components: bool,
    max_rounds: u32,
    labels: Vec<Id>,
    round: u32,
}

/// What a round does next.
pub(crate) enum Round {
    /// Send these labels, (member index at the owner, label) per owner; with components,
    /// also tell every worker how many labels changed here.
    Send { labels: Vec<Vec<(u32, Id)>>, changed: Option<u64> },
    /// Done: every member's (id, label).
    Finished(Vec<(Id, Id)>),
}

impl LabelRounds {
    /// Every member starts labelled by its own id. Louvain is not a label exchange; it gets
    /// label propagation's zero rounds.
    pub fn new(params: &CommunityParams, shard: &Shard) -> Self {
        LabelRounds {
            components: params.algorithm == CommunityAlgorithm::ConnectedComponents,
            max_rounds: params.max_iterations,
            labels: shard.ids.clone(),
            round: 0,
        }
    }

    /// Folds in the labels heard last round (`heard[member]`) and the changes every worker
    /// counted in it, and says what this round does.
    pub fn step(&mut self, shard: &Shard, heard: Vec<Vec<Id>>, changed_last: u64) -> Round {
        let mut changed = None;
        let finished = if self.round == 0 {
            // Nothing is known to be stable before the first round.
            changed = self.components.then_some(1);
            !self.components && self.max_rounds == 0
        } else if self.components && self.round > 1 && changed_last == 0 {
            true
        } else {
            let mut count = 0u64;
            for (label, heard) in self.labels.iter_mut().zip(heard) {
                let next = if self.components {
                    components::next_label(label, heard)
                } else {
                    label_propagation::next_label(heard)
                };
                if let Some(next) = next.filter(|next| next != label) {
                    *label = next;
                    count += 1;
                }
            }
            if self.components {
                changed = Some(count);
                // A cap on rounds (0: none); every worker reaches it at the same round.
                self.max_rounds > 0 && self.round >= self.max_rounds
            } else {
                self.round >= self.max_rounds
            }
        };
        if finished {
            return Round::Finished(shard.ids.iter().cloned().zip(self.labels.iter().cloned()).collect());
        }
        let mut labels: Vec<Vec<(u32, Id)>> = vec![Vec::new(); shard.counts.len()];
        for (label, neighbours) in self.labels.iter().zip(&shard.neighbours) {
            for (owner, index) in neighbours {
                labels[*owner].push((*index, label.clone()));
            }
        }
        self.round += 1;
        Round::Send { labels, changed }
    }
}
