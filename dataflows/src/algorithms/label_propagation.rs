//! Community detection by label propagation, as LDBC Graphalytics' CDLP: synchronous rounds
//! in which every vertex takes the most frequent label among its in- and out-neighbours
//! (ties to the smallest), for exactly the requested number of rounds.

use crate::state::model::Id;
use std::collections::BTreeMap;

/// The label a vertex takes after hearing its neighbours': the most frequent (ties to the
/// smallest); none when it heard nothing (it keeps its own).
pub(crate) fn next_label(heard: Vec<Id>) -> Option<Id> {
    let mut counts: BTreeMap<Id, usize> = BTreeMap::new();
    for label in heard {
        *counts.entry(label).or_default() += 1;
    }
    // BTreeMap iterates in label order, so the first of the most frequent is the smallest.
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(label, _)| label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_frequent_ties_to_the_smallest() {
        let heard = |v: &[&str]| v.iter().map(|s| Id::from(*s)).collect::<Vec<_>>();
        assert_eq!(next_label(heard(&["b", "c", "c", "b", "a"])), Some("b".into()));
        assert_eq!(next_label(heard(&[])), None);
    }
}
