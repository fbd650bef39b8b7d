//! How the arrangements lay their batches out: differential's vectors for keys, values,
//! times and diffs, and [`Offsets`] for where each key's values and each value's updates
//! start.
//!
//! A batch keeps an offset for every value, saying where its updates start. In the batches
//! this engine keeps longest those offsets follow a pattern: a graph restored or loaded in
//! bulk, or any batch once compaction has advanced its times, holds every value with the
//! one update the value before it had, which differential stores as nothing, so the
//! offsets read `0, 1, 1, 1, …`; a batch of fresh writes gives each value an update of its
//! own, `0, 1, 2, 3, …`. Stored as a list those are 4 bytes a value, 8 bytes an edge over
//! the two adjacencies; stored as their pattern, nothing.

use std::rc::Rc;

use differential_dataflow::trace::implementations::ord_neu::{OrdKeyBatch, OrdValBatch};
use differential_dataflow::trace::implementations::spine_fueled::Spine;
use differential_dataflow::trace::implementations::{BatchContainer, OffsetList};
use serde::{Deserialize, Serialize};
use timely::container::PushInto;

use crate::state::model::Lsn;

/// The layout of a batch of `key -> value` updates at LSN times.
pub type ValLayout<K, V> = (Vec<K>, Vec<V>, Vec<Lsn>, Vec<isize>, Offsets);

/// The layout of a batch of keys with no value.
pub type KeyLayout<K> = ValLayout<K, ()>;

/// A spine of `key -> value` batches, as the adjacencies are.
pub type ValSpine<K, V> = Spine<Rc<OrdValBatch<ValLayout<K, V>>>>;

/// A spine of keys alone, as the vertex index is.
pub type KeySpine<K> = Spine<Rc<OrdKeyBatch<KeyLayout<K>>>>;

/// A non-decreasing list of offsets, stored as a pattern for as long as it follows one
/// (`0, s, 2s, …` then its last offset repeated), and as a list from where it departs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Offsets {
    pattern: Pattern,
    /// The offsets after the pattern, once one departed from it.
    spilled: OffsetList,
    /// How many offsets the batch being built expects: the room reserved for the list if
    /// the offsets depart from the pattern, so it does not grow by doubling.
    expected: usize,
}

impl Default for Offsets {
    fn default() -> Self {
        Offsets::expecting(0)
    }
}

/// The offsets' leading pattern.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Pattern {
    #[default]
    Empty,
    /// `count` offsets `0, stride, 2·stride, …` (`count` ≥ 1), then the last of them
    /// `repeats` more times.
    Strided { stride: usize, count: usize, repeats: usize },
}

impl Pattern {
    fn len(self) -> usize {
        match self {
            Pattern::Empty => 0,
            Pattern::Strided { count, repeats, .. } => count + repeats,
        }
    }

    fn at(self, index: usize) -> usize {
        match self {
            Pattern::Empty => unreachable!("an empty pattern has no offsets"),
            Pattern::Strided { stride, count, .. } => stride * index.min(count - 1),
        }
    }

    /// The pattern with `offset` after it, if it still is one.
    fn then(self, offset: usize) -> Option<Pattern> {
        match self {
            Pattern::Empty => (offset == 0).then_some(Pattern::Strided { stride: 0, count: 1, repeats: 0 }),
            Pattern::Strided { stride, count, repeats } => {
                let last = stride * (count - 1);
                if offset == last {
                    Some(Pattern::Strided { stride, count, repeats: repeats + 1 })
                } else if repeats == 0 && count == 1 {
                    Some(Pattern::Strided { stride: offset, count: 2, repeats: 0 })
                } else if repeats == 0 && offset == last + stride {
                    Some(Pattern::Strided { stride, count: count + 1, repeats: 0 })
                } else {
                    None
                }
            }
        }
    }
}

impl Offsets {
    fn expecting(expected: usize) -> Self {
        Offsets { pattern: Pattern::Empty, spilled: OffsetList::with_capacity(0), expected }
    }

    pub fn push(&mut self, offset: usize) {
        if self.spilled.len() == 0 {
            if let Some(pattern) = self.pattern.then(offset) {
                self.pattern = pattern;
                return;
            }
            self.spilled = OffsetList::with_capacity(self.expected.saturating_sub(self.pattern.len()));
        }
        self.spilled.push(offset);
    }

    pub fn at(&self, index: usize) -> usize {
        let patterned = self.pattern.len();
        if index < patterned {
            self.pattern.at(index)
        } else {
            self.spilled.index(index - patterned)
        }
    }

    pub fn len(&self) -> usize {
        self.pattern.len() + self.spilled.len()
    }

    /// Gives back the room the list did not use.
    pub fn shrink_to_fit(&mut self) {
        self.spilled.smol.shrink_to_fit();
        self.spilled.chonk.shrink_to_fit();
    }

    /// Bytes held beside the pattern.
    #[cfg(test)]
    pub(crate) fn spilled_bytes(&self) -> usize {
        self.spilled.smol.capacity() * 4 + self.spilled.chonk.capacity() * 8
    }
}

impl PushInto<usize> for Offsets {
    fn push_into(&mut self, item: usize) {
        self.push(item);
    }
}

impl BatchContainer for Offsets {
    type Owned = usize;
    type ReadItem<'a> = usize;

    #[inline(always)]
    fn into_owned<'a>(item: usize) -> usize {
        item
    }

    #[inline(always)]
    fn reborrow<'b, 'a: 'b>(item: usize) -> usize {
        item
    }

    fn push_ref(&mut self, item: usize) {
        self.push(item);
    }

    fn push_own(&mut self, item: &usize) {
        self.push(*item);
    }

    fn clear(&mut self) {
        *self = Offsets::expecting(self.expected);
    }

    /// Room is reserved only once the offsets depart from the pattern.
    fn with_capacity(size: usize) -> Self {
        Offsets::expecting(size)
    }

    fn merge_capacity(cont1: &Self, cont2: &Self) -> Self {
        Offsets::expecting(cont1.len() + cont2.len())
    }

    #[inline]
    fn index(&self, index: usize) -> usize {
        self.at(index)
    }

    fn len(&self) -> usize {
        Offsets::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offsets(list: &[usize]) -> Offsets {
        let mut offsets = Offsets::default();
        for &offset in list {
            offsets.push(offset);
        }
        offsets
    }

    #[test]
    fn a_batch_at_one_time_and_a_batch_of_fresh_updates_keep_no_list() {
        let one_time: Vec<usize> = std::iter::once(0).chain(std::iter::repeat_n(1, 100_000)).collect();
        let fresh: Vec<usize> = (0..100_000).collect();
        for list in [one_time, fresh] {
            let offsets = offsets(&list);
            assert_eq!(offsets.spilled_bytes(), 0);
            assert_eq!((0..list.len()).map(|i| offsets.at(i)).collect::<Vec<_>>(), list);
        }
    }

    #[test]
    fn a_list_that_departs_from_its_pattern_keeps_the_rest_as_a_list() {
        let list = [0, 2, 4, 4, 4, 5, 9, 9];
        let offsets = offsets(&list);
        assert_eq!(offsets.len(), 8);
        assert_eq!((0..8).map(|i| offsets.at(i)).collect::<Vec<_>>(), list);
        assert!(offsets.spilled_bytes() > 0);
    }

    proptest! {
        #[test]
        fn reads_back_any_list(steps in proptest::collection::vec(0usize..4, 0..300), first in 0usize..3) {
            let mut list = Vec::new();
            let mut at = first;
            for step in steps {
                list.push(at);
                at += step;
            }
            let offsets = offsets(&list);
            prop_assert_eq!(offsets.len(), list.len());
            for (i, &offset) in list.iter().enumerate() {
                prop_assert_eq!(offsets.at(i), offset);
            }
        }
    }
}
