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

use differential_dataflow::batcher::merge::chunker::ContainerChunker;
use differential_dataflow::batcher::merge::vec::VecMerger;
use differential_dataflow::batcher::merge::{MergeBatcher, Sealer};
use differential_dataflow::trace::implementations::ord_neu::{OrdKeyBatch, OrdValBatch};
use differential_dataflow::trace::implementations::{KeyBuilder, ValBuilder, Vector};

use crate::state::model::Lsn;

/// [`differential_dataflow::trace::implementations::KeyBatcher`], its batches fitted.
pub type FittedKeyBatcher<K> = MergeBatcher<
    ContainerChunker<Vec<KeyUpdate<K>>>,
    VecMerger<(K, ()), Lsn, isize>,
    Fitted<KeyBuilder<K, Lsn, isize>>,
>;

/// [`differential_dataflow::trace::implementations::ValBatcher`], its batches fitted.
pub type FittedValBatcher<K, V> = MergeBatcher<
    ContainerChunker<Vec<ValUpdate<K, V>>>,
    VecMerger<(K, V), Lsn, isize>,
    Fitted<ValBuilder<K, V, Lsn, isize>>,
>;

type KeyUpdate<K> = ((K, ()), Lsn, isize);
type ValUpdate<K, V> = ((K, V), Lsn, isize);

/// Seals a chain as the builder `B` does, then fits the batch's update columns.
pub struct Fitted<B>(PhantomData<B>);

impl<K: Ord + Clone + 'static> Sealer<Vec<KeyUpdate<K>>> for Fitted<KeyBuilder<K, Lsn, isize>> {
    type Output = OrdKeyBatch<Vector<KeyUpdate<K>>>;

    fn seal(chain: &mut Vec<Vec<KeyUpdate<K>>>) -> Option<Self::Output> {
        let mut batch = KeyBuilder::<K, Lsn, isize>::seal(chain)?;
        batch.storage.upds.times.shrink_to_fit();
        batch.storage.upds.diffs.shrink_to_fit();
        Some(batch)
    }
}

impl<K: Ord + Clone + 'static, V: Ord + Clone + 'static> Sealer<Vec<ValUpdate<K, V>>>
    for Fitted<ValBuilder<K, V, Lsn, isize>>
{
    type Output = OrdValBatch<Vector<ValUpdate<K, V>>>;

    fn seal(chain: &mut Vec<Vec<ValUpdate<K, V>>>) -> Option<Self::Output> {
        let mut batch = ValBuilder::<K, V, Lsn, isize>::seal(chain)?;
        batch.storage.upds.times.shrink_to_fit();
        batch.storage.upds.diffs.shrink_to_fit();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_at_one_time_keeps_room_for_one_update_not_all() {
        let chain = |n: u64| vec![(0..n).map(|key| ((key, ()), 7u64, 1isize)).collect::<Vec<_>>()];
        let unfitted = KeyBuilder::<u64, Lsn, isize>::seal(&mut chain(10_000)).expect("a batch");
        assert!(unfitted.storage.upds.times.capacity() >= 10_000, "differential's builder sizes for every update");
        let fitted = Fitted::<KeyBuilder<u64, Lsn, isize>>::seal(&mut chain(10_000)).expect("a batch");
        assert_eq!(fitted.storage.upds.times.len(), 1, "one time, every other update repeats it");
        assert!(fitted.storage.upds.times.capacity() < 16 && fitted.storage.upds.diffs.capacity() < 16);
        assert_eq!(fitted.updates, 10_000);

        let mut pairs = vec![(0..10_000u64).map(|key| ((key / 10, key), 7u64, 1isize)).collect::<Vec<_>>()];
        let fitted = Fitted::<ValBuilder<u64, u64, Lsn, isize>>::seal(&mut pairs).expect("a batch");
        assert!(fitted.storage.upds.times.capacity() < 16 && fitted.storage.upds.diffs.capacity() < 16);
        assert_eq!(fitted.storage.vals.vals.len(), 10_000);
    }
}
