//! Batcher chains that store each run of updates at one (time, diff) once.
//!
//! Differential's merge batcher holds every update it has not yet sealed as a `(data, time,
//! diff)` tuple: 16 bytes of time and diff beside 16–32 of data. A graph restored or loaded
//! in bulk enters the arrangements at one LSN with diff 1 and stays in the chains until that
//! LSN is complete, so for the whole load those 16 bytes repeat for every update of the
//! three arrangements that hold edges: 48 bytes an edge of a load's peak, a seventh of it.
//! A [`Stamped`] chunk keeps its data in one vector and its (time, diff) as runs beside it,
//! so a run at one stamp costs its data alone; the chunker, merger and builder input here
//! let differential's `MergeBatcher` and batch builders use it as they use a vector.

use std::collections::VecDeque;

use differential_dataflow::batcher::merge::{Extractor, Merger};
use differential_dataflow::consolidation::consolidate_updates;
use differential_dataflow::trace::implementations::ord_neu::BuilderInput;
use differential_dataflow::trace::implementations::BatchContainer;
use timely::container::{ContainerBuilder, DrainContainer, PushInto};
use timely::progress::frontier::{Antichain, AntichainRef};

use crate::state::model::Lsn;

/// How many updates a chunk holds: what the chunker sorts at once, and what a merge
/// writes before starting the next chunk.
const CHUNK: usize = if cfg!(test) { 8 } else { 4096 };

/// Sorted, consolidated updates: `data` in order, and beside it the runs of equal (time,
/// diff), each as the end of its run in `data`.
pub struct Stamped<D> {
    data: Vec<D>,
    runs: Vec<(u32, Lsn, isize)>,
}

impl<D> Default for Stamped<D> {
    fn default() -> Self {
        Stamped { data: Vec::new(), runs: Vec::new() }
    }
}

impl<D> Stamped<D> {
    fn with_capacity(capacity: usize) -> Self {
        Stamped { data: Vec::with_capacity(capacity), runs: Vec::new() }
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    fn push(&mut self, data: D, time: Lsn, diff: isize) {
        self.data.push(data);
        let end = self.data.len() as u32;
        match self.runs.last_mut() {
            Some((run_end, run_time, run_diff)) if *run_time == time && *run_diff == diff => *run_end = end,
            _ => self.runs.push((end, time, diff)),
        }
    }

    /// Every update by reference, in order.
    fn iter(&self) -> impl Iterator<Item = (&D, Lsn, isize)> {
        let mut start = 0usize;
        self.runs.iter().flat_map(move |&(end, time, diff)| {
            let run = &self.data[start..end as usize];
            start = end as usize;
            run.iter().map(move |data| (data, time, diff))
        })
    }

    /// Every update, moved out, in order; the chunk is left empty.
    fn take_all(&mut self) -> Drain<D> {
        Drain { data: std::mem::take(&mut self.data).into_iter(), runs: std::mem::take(&mut self.runs).into(), at: 0 }
    }
}

/// The updates of a chunk, moved out one at a time.
pub struct Drain<D> {
    data: std::vec::IntoIter<D>,
    runs: VecDeque<(u32, Lsn, isize)>,
    /// How many updates were taken.
    at: u32,
}

impl<D> Drain<D> {
    /// The next update's data and stamp, without taking it.
    fn peek(&self) -> Option<(&D, Lsn, isize)> {
        let data = self.data.as_slice().first()?;
        let &(_, time, diff) = self.runs.front()?;
        Some((data, time, diff))
    }
}

impl<D> Iterator for Drain<D> {
    type Item = (D, Lsn, isize);

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data.next()?;
        let &(end, time, diff) = self.runs.front()?;
        self.at += 1;
        if self.at == end {
            self.runs.pop_front();
        }
        Some((data, time, diff))
    }
}

impl<D: 'static> DrainContainer for Stamped<D> {
    type Item<'a> = (D, Lsn, isize);
    type DrainIter<'a> = Drain<D>;

    fn drain(&mut self) -> Drain<D> {
        self.take_all()
    }
}

/// Sorts and consolidates the updates given to an arrangement into [`Stamped`] chunks.
pub struct StampedChunker<D> {
    pending: Vec<(D, Lsn, isize)>,
    ready: VecDeque<Stamped<D>>,
    /// The chunk last handed out, which the batcher takes.
    out: Stamped<D>,
}

impl<D> Default for StampedChunker<D> {
    fn default() -> Self {
        StampedChunker { pending: Vec::new(), ready: VecDeque::new(), out: Stamped::default() }
    }
}

impl<D: Ord> StampedChunker<D> {
    /// Consolidates what is pending and ships it, unless `only_if_full` and consolidation
    /// left it less than half full (then it keeps gathering, as differential's chunker does).
    fn ship(&mut self, only_if_full: bool) {
        consolidate_updates(&mut self.pending);
        if self.pending.is_empty() || (only_if_full && self.pending.len() <= CHUNK / 2) {
            return;
        }
        let mut chunk = Stamped::with_capacity(self.pending.len());
        for (data, time, diff) in self.pending.drain(..) {
            chunk.push(data, time, diff);
        }
        self.ready.push_back(chunk);
    }
}

impl<'a, D: Ord> PushInto<&'a mut Vec<(D, Lsn, isize)>> for StampedChunker<D> {
    fn push_into(&mut self, updates: &'a mut Vec<(D, Lsn, isize)>) {
        if self.pending.capacity() < CHUNK {
            self.pending.reserve(CHUNK - self.pending.len());
        }
        for update in updates.drain(..) {
            self.pending.push(update);
            if self.pending.len() == CHUNK {
                self.ship(true);
            }
        }
    }
}

impl<D: Ord> ContainerBuilder for StampedChunker<D> {
    type Container = Stamped<D>;

    fn extract(&mut self) -> Option<&mut Stamped<D>> {
        self.out = self.ready.pop_front()?;
        Some(&mut self.out)
    }

    fn finish(&mut self) -> Option<&mut Stamped<D>> {
        self.ship(false);
        self.extract()
    }
}

/// Merges and splits chains of [`Stamped`] chunks for differential's `MergeBatcher`.
pub struct StampedMerger<D>(std::marker::PhantomData<D>);

impl<D> Default for StampedMerger<D> {
    fn default() -> Self {
        StampedMerger(std::marker::PhantomData)
    }
}

/// A chain's updates, moved out chunk by chunk (each chunk freed once read).
struct ChainReader<D> {
    chunks: std::vec::IntoIter<Stamped<D>>,
    current: Drain<D>,
}

impl<D> ChainReader<D> {
    fn new(chain: Vec<Stamped<D>>) -> Self {
        let mut chunks = chain.into_iter();
        let current = chunks.next().unwrap_or_default().take_all();
        let mut reader = ChainReader { chunks, current };
        reader.refill();
        reader
    }

    fn refill(&mut self) {
        while self.current.peek().is_none() {
            match self.chunks.next() {
                Some(mut chunk) => self.current = chunk.take_all(),
                None => return,
            }
        }
    }

    fn peek(&self) -> Option<(&D, Lsn, isize)> {
        self.current.peek()
    }

    fn take(&mut self) -> Option<(D, Lsn, isize)> {
        let update = self.current.next();
        self.refill();
        update
    }

    /// The rest after `out`: the current chunk's updates into it, then the other chunks whole.
    fn rest_into(mut self, mut out: Stamped<D>, output: &mut Vec<Stamped<D>>) {
        for (data, time, diff) in self.current.by_ref() {
            out.push(data, time, diff);
        }
        if out.len() > 0 {
            output.push(out);
        }
        output.extend(self.chunks.filter(|chunk| chunk.len() > 0));
    }
}

impl<D: Ord + 'static> Merger for StampedMerger<D> {
    type Chunk = Stamped<D>;

    fn merge(
        &mut self,
        list1: Vec<Stamped<D>>,
        list2: Vec<Stamped<D>>,
        output: &mut Vec<Stamped<D>>,
        _stash: &mut Vec<Stamped<D>>,
    ) {
        use std::cmp::Ordering;
        // Sized for what the merge can write, up to a chunk: most merges are of a write's
        // few updates.
        let total: usize = list1.iter().chain(&list2).map(Stamped::len).sum();
        let (mut one, mut two) = (ChainReader::new(list1), ChainReader::new(list2));
        let mut out = Stamped::with_capacity(total.min(CHUNK));
        loop {
            let order = match (one.peek(), two.peek()) {
                (Some((d1, t1, _)), Some((d2, t2, _))) => (d1, t1).cmp(&(d2, t2)),
                (Some(_), None) => return one.rest_into(out, output),
                (None, _) => return two.rest_into(out, output),
            };
            let taken = match order {
                Ordering::Less => one.take(),
                Ordering::Greater => two.take(),
                Ordering::Equal => match (one.take(), two.take()) {
                    (Some((data, time, diff)), Some((_, _, other))) => Some((data, time, diff + other)),
                    (taken, _) => taken,
                },
            };
            if let Some((data, time, diff)) = taken.filter(|(_, _, diff)| *diff != 0) {
                out.push(data, time, diff);
            }
            if out.len() == CHUNK {
                output.push(std::mem::replace(&mut out, Stamped::with_capacity(CHUNK)));
            }
        }
    }

    fn len(chunk: &Stamped<D>) -> usize {
        chunk.len()
    }
}

impl<D: Ord + 'static> Extractor for StampedMerger<D> {
    type Time = Lsn;

    fn extract(
        &mut self,
        merged: Vec<Stamped<D>>,
        upper: AntichainRef<Lsn>,
        frontier: &mut Antichain<Lsn>,
        readied: &mut Vec<Stamped<D>>,
        kept: &mut Vec<Stamped<D>>,
        _stash: &mut Vec<Stamped<D>>,
    ) {
        let (mut ready, mut keep) = (Stamped::default(), Stamped::default());
        for mut chunk in merged {
            let later = |&(_, time, _): &(u32, Lsn, isize)| upper.less_equal(&time);
            // A chunk wholly on one side moves whole: a bulk load's chunks are all ready at once.
            // What a split chunk left in `ready` or `keep` goes first, to keep each list sorted.
            if !chunk.runs.iter().any(later) {
                if ready.len() > 0 {
                    readied.push(std::mem::take(&mut ready));
                }
                readied.push(chunk);
                continue;
            }
            if chunk.runs.iter().all(later) {
                for &(_, time, _) in &chunk.runs {
                    frontier.insert(time);
                }
                if keep.len() > 0 {
                    kept.push(std::mem::take(&mut keep));
                }
                kept.push(chunk);
                continue;
            }
            for (data, time, diff) in chunk.take_all() {
                if upper.less_equal(&time) {
                    frontier.insert(time);
                    keep.push(data, time, diff);
                } else {
                    ready.push(data, time, diff);
                    if ready.len() == CHUNK {
                        readied.push(std::mem::take(&mut ready));
                    }
                }
            }
        }
        if ready.len() > 0 {
            readied.push(ready);
        }
        if keep.len() > 0 {
            kept.push(keep);
        }
    }
}

impl<K, KBC, V, VBC> BuilderInput<KBC, VBC> for Stamped<(K, V)>
where
    K: Ord + Clone + 'static,
    KBC: for<'a> BatchContainer<ReadItem<'a>: PartialEq<&'a K>>,
    V: Ord + Clone + 'static,
    VBC: for<'a> BatchContainer<ReadItem<'a>: PartialEq<&'a V>>,
{
    type Key<'a> = K;
    type Val<'a> = V;
    type Time = Lsn;
    type Diff = isize;

    fn into_parts<'a>(((key, val), time, diff): Self::Item<'a>) -> (Self::Key<'a>, Self::Val<'a>, Lsn, isize) {
        (key, val, time, diff)
    }

    fn key_eq(this: &K, other: KBC::ReadItem<'_>) -> bool {
        KBC::reborrow(other) == this
    }

    fn val_eq(this: &V, other: VBC::ReadItem<'_>) -> bool {
        VBC::reborrow(other) == this
    }

    fn key_val_upd_counts(chain: &[Self]) -> (usize, usize, usize) {
        let (mut keys, mut vals, mut upds) = (0, 0, 0);
        let mut previous: Option<&(K, V)> = None;
        for chunk in chain {
            for (pair, _, _) in chunk.iter() {
                match previous {
                    Some((key, _)) if *key != pair.0 => (keys, vals) = (keys + 1, vals + 1),
                    Some((_, val)) if *val != pair.1 => vals += 1,
                    Some(_) => {}
                    None => (keys, vals) = (1, 1),
                }
                upds += 1;
                previous = Some(pair);
            }
        }
        (keys, vals, upds)
    }
}

/// Sorted, consolidated updates as a chain of chunks.
#[cfg(test)]
pub(crate) fn chain_of<D>(updates: impl IntoIterator<Item = (D, Lsn, isize)>) -> Vec<Stamped<D>> {
    let mut chain = vec![Stamped::default()];
    for (data, time, diff) in updates {
        if chain.last().is_some_and(|chunk| chunk.len() == CHUNK) {
            chain.push(Stamped::default());
        }
        if let Some(chunk) = chain.last_mut() {
            chunk.push(data, time, diff);
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::batcher::merge::{MergeBatcher, Sealer};
    use differential_dataflow::batcher::{Batcher, Extract};
    use proptest::prelude::*;

    type Update = ((u8, u8), Lsn, isize);

    /// Hands a sealed chain back as the updates it holds, in order.
    struct Collect;

    impl Sealer<Stamped<(u8, u8)>> for Collect {
        type Output = Vec<Update>;

        fn seal(chain: &mut Vec<Stamped<(u8, u8)>>) -> Option<Vec<Update>> {
            let updates: Vec<Update> =
                chain.drain(..).flat_map(|mut chunk| chunk.take_all().collect::<Vec<_>>()).collect();
            (!updates.is_empty()).then_some(updates)
        }
    }

    type Tested = MergeBatcher<StampedChunker<(u8, u8)>, StampedMerger<(u8, u8)>, Collect>;

    #[test]
    fn a_run_at_one_stamp_is_stored_once_per_chunk() {
        let chain = chain_of((0..100u8).map(|i| ((i, 0), 5, 1)));
        assert!(chain.iter().all(|chunk| chunk.runs.len() == 1));
        let mut updates = chain_of([((1, 1), 1, 1), ((1, 2), 1, 1), ((1, 3), 2, 1), ((1, 4), 2, -1)]);
        assert_eq!(updates[0].runs, [(2, 1, 1), (3, 2, 1), (4, 2, -1)]);
        let drained: Vec<Update> = updates[0].take_all().collect();
        assert_eq!(drained, [((1, 1), 1, 1), ((1, 2), 1, 1), ((1, 3), 2, 1), ((1, 4), 2, -1)]);
    }

    proptest! {
        /// Fed in pieces and extracted at rising uppers, the batcher gives exactly the
        /// consolidated updates before each upper, in order, and holds back the first time
        /// of what is left.
        #[test]
        fn the_batcher_gives_what_a_consolidation_gives(
            steps in prop::collection::vec(
                (prop::collection::vec(((0u8..6, 0u8..6), 0u64..4, -2isize..3), 0..40), 0u64..4),
                1..12,
            ),
        ) {
            let mut batcher = Tested::new(None, 0);
            let mut pending: Vec<Update> = Vec::new();
            let mut upper = 0u64;
            for (piece, advance) in steps {
                let mut piece: Vec<Update> = piece.into_iter().map(|(data, offset, diff)| (data, upper + offset, diff)).collect();
                pending.extend(piece.iter().cloned());
                batcher.insert(&mut piece);
                upper += advance;
                let (batch, frontier) = batcher.extract(Antichain::from_elem(upper).borrow());
                let frontier: Vec<Lsn> = frontier.iter().cloned().collect();
                let (mut ready, mut kept): (Vec<Update>, Vec<Update>) = pending.drain(..).partition(|(_, time, _)| *time < upper);
                consolidate_updates(&mut ready);
                consolidate_updates(&mut kept);
                prop_assert_eq!(batch.unwrap_or_default(), ready);
                prop_assert_eq!(frontier, kept.iter().map(|(_, time, _)| *time).min().into_iter().collect::<Vec<_>>());
                pending = kept;
            }
            let (rest, _) = batcher.extract(Antichain::new().borrow());
            prop_assert_eq!(rest.unwrap_or_default(), pending);
        }
    }
}
