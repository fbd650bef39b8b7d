//! Weakly connected components by label propagation of the minimum: every vertex starts
//! labelled by its own id and takes the smallest label among its own and its neighbours'
//! (both ways), until a round changes nothing on any worker. A component is named by its
//! smallest vertex id.

use crate::state::model::Id;

/// The label a vertex takes after hearing its neighbours': the smallest.
pub(crate) fn next_label(current: &str, heard: Vec<Id>) -> Option<Id> {
    heard.into_iter().filter(|label| label.as_str() < current).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_smallest_or_keeps_its_own() {
        assert_eq!(next_label("c", vec!["d".into(), "b".into()]), Some("b".into()));
        assert_eq!(next_label("a", vec!["d".into(), "b".into()]), None);
        assert_eq!(next_label("a", vec![]), None);
    }
}
