//! Batchers whose batches keep only the room they use.
//!
//! Differential's builders size a new batch's (time, diff) columns for every update the
//! batch will hold, then store an update that repeats the one before it as nothing. A batch
//! built at one time (a bulk load's graph, a restore, a large record) uses one slot of those
//! columns and keeps room for all: 16 bytes an update, as long as the batch lives. Merges
//! size their output by what their inputs use, so a small batch's room is gone at its first
//! merge, but a trace's largest batch is rarely merged: after a bulk load of 10M edges the
//! unused room was 48 bytes an edge over the three arrangements that hold edges, a fifth of
//! the server's memory. These batchers build each batch as differential's do and then give
//! the unused room back.

use std::marker::PhantomData;

use differential_dataflow::batcher::merge::{MergeBatcher, Sealer};
use differential_dataflow::trace::implementations::ord_neu::{OrdKeyBatch, OrdKeyBuilder, OrdValBatch, OrdValBuilder};

use crate::engine::stamped::{Stamped, StampedChunker, StampedMerger};
use crate::read::layout::{KeyLayout, ValLayout};

/// [`differential_dataflow::trace::implementations::KeyBatcher`], its chains
/// [`Stamped`] and its batches fitted.
pub type FittedKeyBatcher<K> = MergeBatcher<StampedChunker<(K, ())>, StampedMerger<(K, ())>, Fitted<KeyBuilder<K>>>;

/// [`differential_dataflow::trace::implementations::ValBatcher`], its chains
/// [`Stamped`] and its batches fitted.
pub type FittedValBatcher<K, V> = MergeBatcher<StampedChunker<(K, V)>, StampedMerger<(K, V)>, Fitted<ValBuilder<K, V>>>;

type KeyBuilder<K> = OrdKeyBuilder<KeyLayout<K>, Stamped<(K, ())>>;
type ValBuilder<K, V> = OrdValBuilder<ValLayout<K, V>, Stamped<(K, V)>>;

/// Seals a chain as the builder `B` does, then fits the batch's update columns.
pub struct Fitted<B>(PhantomData<B>);

impl<K: Ord + Clone + 'static> Sealer<Stamped<(K, ())>> for Fitted<KeyBuilder<K>> {
    type Output = OrdKeyBatch<KeyLayout<K>>;

    fn seal(chain: &mut Vec<Stamped<(K, ())>>) -> Option<Self::Output> {
        let mut batch = KeyBuilder::<K>::seal(chain)?;
        batch.storage.upds.times.shrink_to_fit();
        batch.storage.upds.diffs.shrink_to_fit();
        batch.storage.upds.offs.shrink_to_fit();
        Some(batch)
    }
}

impl<K: Ord + Clone + 'static, V: Ord + Clone + 'static> Sealer<Stamped<(K, V)>> for Fitted<ValBuilder<K, V>> {
    type Output = OrdValBatch<ValLayout<K, V>>;

    fn seal(chain: &mut Vec<Stamped<(K, V)>>) -> Option<Self::Output> {
        let mut batch = ValBuilder::<K, V>::seal(chain)?;
        batch.storage.upds.times.shrink_to_fit();
        batch.storage.upds.diffs.shrink_to_fit();
        batch.storage.upds.offs.shrink_to_fit();
        batch.storage.vals.offs.shrink_to_fit();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stamped::chain_of;
    use crate::state::model::Lsn;
    use differential_dataflow::trace::implementations::KeyBuilder as PlainKeyBuilder;

    #[test]
    fn a_batch_at_one_time_keeps_room_for_one_update_not_all() {
        let plain = |n: u64| vec![(0..n).map(|key| ((key, ()), 7u64, 1isize)).collect::<Vec<_>>()];
        let unfitted = PlainKeyBuilder::<u64, Lsn, isize>::seal(&mut plain(10_000)).expect("a batch");
        assert!(unfitted.storage.upds.times.capacity() >= 10_000, "differential's builder sizes for every update");
        let mut chain = chain_of((0..10_000u64).map(|key| ((key, ()), 7, 1)));
        let fitted = Fitted::<KeyBuilder<u64>>::seal(&mut chain).expect("a batch");
        assert_eq!(fitted.storage.upds.times.len(), 1, "one time, every other update repeats it");
        assert!(fitted.storage.upds.times.capacity() < 16 && fitted.storage.upds.diffs.capacity() < 16);
        assert_eq!(fitted.updates, 10_000);

        let mut pairs = chain_of((0..10_000u64).map(|key| ((key / 10, key), 7, 1)));
        let fitted = Fitted::<ValBuilder<u64, u64>>::seal(&mut pairs).expect("a batch");
        assert!(fitted.storage.upds.times.capacity() < 16 && fitted.storage.upds.diffs.capacity() < 16);
        assert_eq!(fitted.storage.vals.vals.len(), 10_000);
        assert_eq!(fitted.storage.upds.offs.spilled_bytes(), 0, "every value's update repeats the one before: no list");
        assert_eq!(fitted.storage.keys.len(), 1_000);
    }
}
