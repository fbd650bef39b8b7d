//! Dense ids: every vertex and edge of a namespace numbered `0..n` when it is created, and
//! the index from its string id (RFC-055's, what the API speaks) to that number.
//!
//! Numbers come from the log alone: a new element takes the most recently freed number, or
//! the next one past the end. Every server that applies the same records in the same order,
//! undoing a rejected atomic record's steps in reverse, numbers alike.
//!
//! The index stores only numbers: the string lives in the element the [`Slab`] holds, and
//! the table hashes it through the slab. So a string id is kept once, in the element.

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

#[cfg(test)]
use crate::state::model::{owner_of, Namespace, VertexKey, VertexNumber};

/// An element's number within its namespace.
pub type DenseId = u32;

/// Anything numbered by string id.
pub trait Keyed {
    fn key(&self) -> &str;
}

/// Elements by dense id, with the free numbers reused last-freed first.
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    /// Which number the next element takes: the rule another worker follows to number as
    /// this slab will ([`NextNumbers`]).
    numbers: NextNumbers,
    /// String id → dense id, hashing the string the slot holds.
    index: HashTable<DenseId>,
    hasher: FixedState,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            numbers: NextNumbers::default(),
            index: HashTable::new(),
            hasher: FixedState::default(),
        }
    }
}

/// How an element was numbered, so that undoing it restores the free list exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbered {
    /// A number past the end.
    Fresh(DenseId),
    /// The most recently freed number.
    Reused(DenseId),
}

impl Numbered {
    pub fn id(self) -> DenseId {
        match self {
            Numbered::Fresh(id) | Numbered::Reused(id) => id,
        }
    }
}

impl<T: Keyed> Slab<T> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// The dense id of the element with string id `key`.
    pub fn find(&self, key: &str) -> Option<DenseId> {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        self.index.find(hash, |&id| slots[id as usize].as_ref().is_some_and(|slot| slot.key() == key)).copied()
    }

    pub fn get(&self, id: DenseId) -> Option<&T> {
        self.slots.get(id as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, id: DenseId) -> Option<&mut T> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// Numbers `element`, whose string id must be new here.
    pub fn insert(&mut self, element: T) -> Numbered {
        let hash = self.hasher.hash_one(element.key());
        let numbered = self.numbers.take();
        match numbered {
            Numbered::Reused(id) => self.slots[id as usize] = Some(element),
            Numbered::Fresh(_) => self.slots.push(Some(element)),
        }
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, numbered.id(), |&id| rehash(slots, hasher, id));
        numbered
    }

    /// Numbers `element` past the end, leaving the free numbers for later inserts: what a
    /// restore gives ([`NextNumbers::extend`]). `None` if its string id is here already.
    pub fn push(&mut self, element: T) -> Option<DenseId> {
        let hash = self.hasher.hash_one(element.key());
        let id = self.numbers.end();
        let (slots, hasher) = (&self.slots, &self.hasher);
        let key = element.key();
        let same = |&other: &DenseId| slots[other as usize].as_ref().is_some_and(|slot| slot.key() == key);
        match self.index.entry(hash, same, |&id| rehash(slots, hasher, id)) {
            hashbrown::hash_table::Entry::Occupied(_) => return None,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(id);
            }
        }
        self.numbers.extend(1);
        self.slots.push(Some(element));
        Some(id)
    }

    /// Room for `additional` more elements without growing.
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.reserve(additional, |&id| rehash(slots, hasher, id));
    }

    /// Removes the element numbered `id`, freeing the number.
    pub fn remove(&mut self, id: DenseId) -> Option<T> {
        let element = self.slots.get_mut(id as usize)?.take()?;
        self.unindex(element.key(), id);
        self.numbers.free(id);
        Some(element)
    }

    #[cfg(test)]
    /// Undoes `insert`: the element goes and the number returns to where it came from.
    pub fn uninsert(&mut self, numbered: Numbered) -> Option<T> {
        let id = numbered.id();
        let element = self.slots.get_mut(id as usize)?.take()?;
        self.unindex(element.key(), id);
        if let Numbered::Fresh(_) = numbered {
            self.slots.pop();
        }
        self.numbers.untake(numbered);
        Some(element)
    }

    #[cfg(test)]
    /// Undoes `remove`: the element is back under its number, which was the last freed.
    pub fn unremove(&mut self, id: DenseId, element: T) {
        self.numbers.unfree();
        let hash = self.hasher.hash_one(element.key());
        self.slots[id as usize] = Some(element);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, id, |&id| rehash(slots, hasher, id));
    }

    #[cfg(test)]
    /// Every element with its dense id.
    pub fn iter(&self) -> impl Iterator<Item = (DenseId, &T)> {
        self.slots.iter().enumerate().filter_map(|(id, slot)| Some((id as DenseId, slot.as_ref()?)))
    }

    fn unindex(&mut self, key: &str, id: DenseId) {
        let hash = self.hasher.hash_one(key);
        if let Ok(entry) = self.index.find_entry(hash, |&candidate| candidate == id) {
            entry.remove();
        }
    }
}

/// The numbers a slab gives: the last freed first, then past the end. The slab numbers
/// through one, and a worker that takes and frees as the slab will gives the same numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NextNumbers {
    /// Freed numbers, the next taken last.
    free: Vec<DenseId>,
    end: DenseId,
}

impl NextNumbers {
    /// The number the next insert takes.
    pub fn take(&mut self) -> Numbered {
        match self.free.pop() {
            Some(id) => Numbered::Reused(id),
            None => {
                self.end += 1;
                Numbered::Fresh(self.end - 1)
            }
        }
    }

    pub fn free(&mut self, id: DenseId) {
        self.free.push(id);
    }

    /// The number past the end: the next one taken when none is free.
    pub fn end(&self) -> DenseId {
        self.end
    }

    /// Moves the end past `count` numbers taken there without the free ones (a restore's).
    pub fn extend(&mut self, count: DenseId) {
        self.end += count;
    }

    /// Undoes `take`.
    pub fn untake(&mut self, numbered: Numbered) {
        match numbered {
            Numbered::Fresh(_) => self.end -= 1,
            Numbered::Reused(id) => self.free.push(id),
        }
    }

    /// Undoes `free`.
    pub fn unfree(&mut self) {
        self.free.pop();
    }
}

#[cfg(test)]
/// Vertex numbers per owning worker ([`VertexNumber`]): each owner's indexes are dense,
/// the last freed given first, like a [`Slab`]'s.
pub struct VertexNumbers {
    workers: usize,
    /// Per owner: the next index past the end, and the freed ones.
    next: Vec<u64>,
    free: Vec<Vec<u64>>,
}

#[cfg(test)]
/// A number given, and whether it was past the end, so that giving it back is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub number: VertexNumber,
    fresh: bool,
}

#[cfg(test)]
impl VertexNumbers {
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        VertexNumbers { workers, next: vec![0; workers], free: vec![Vec::new(); workers] }
    }

    /// A number for vertex `id` of `namespace`, on the worker its key shards to.
    pub fn take_for(&mut self, namespace: &Namespace, id: &str) -> Taken {
        self.take(owner_of(VertexKey::route(namespace, id), self.workers))
    }

    /// A number on `owner`.
    pub fn take(&mut self, owner: usize) -> Taken {
        let (index, fresh) = match self.free[owner].pop() {
            Some(index) => (index, false),
            None => {
                self.next[owner] += 1;
                (self.next[owner] - 1, true)
            }
        };
        Taken { number: VertexNumber::new(index, owner, self.workers), fresh }
    }

    /// Frees `number` (its vertex was deleted).
    pub fn free(&mut self, number: VertexNumber) {
        let owner = number.owner(self.workers);
        self.free[owner].push(number.index(self.workers));
    }

    /// Undoes `take`.
    pub fn untake(&mut self, taken: Taken) {
        let owner = taken.number.owner(self.workers);
        if taken.fresh {
            self.next[owner] -= 1;
        } else {
            self.free[owner].push(taken.number.index(self.workers));
        }
    }

    /// Undoes `free`: `number` was the last freed on its owner.
    pub fn unfree(&mut self, number: VertexNumber) {
        let owner = number.owner(self.workers);
        debug_assert_eq!(self.free[owner].last(), Some(&number.index(self.workers)));
        self.free[owner].pop();
    }
}

fn rehash<T: Keyed>(slots: &[Option<T>], hasher: &FixedState, id: DenseId) -> u64 {
    slots[id as usize].as_ref().map_or(0, |slot| hasher.hash_one(slot.key()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(String);

    impl Keyed for Named {
        fn key(&self) -> &str {
            &self.0
        }
    }

    #[test]
    fn numbers_are_dense_reused_last_freed_first_and_undone_exactly() {
        let mut slab = Slab::default();
        let ids: Vec<Numbered> = ["a", "b", "c"].iter().map(|k| slab.insert(Named(k.to_string()))).collect();
        assert_eq!(ids, vec![Numbered::Fresh(0), Numbered::Fresh(1), Numbered::Fresh(2)]);
        assert_eq!(slab.find("b"), Some(1));
        slab.remove(0);
        slab.remove(2);
        assert_eq!((slab.find("a"), slab.len()), (None, 1));
        let d = slab.insert(Named("d".into()));
        assert_eq!(d, Numbered::Reused(2), "the last freed first");
        slab.uninsert(d);
        slab.unremove(2, Named("c".into()));
        assert_eq!(slab.insert(Named("e".into())), Numbered::Reused(0), "the free list as it was");
        assert_eq!((slab.find("c"), slab.find("e"), slab.find("d")), (Some(2), Some(0), None));
        let f = slab.insert(Named("f".into()));
        assert_eq!(f, Numbered::Fresh(3));
        slab.uninsert(f);
        assert_eq!(slab.insert(Named("g".into())), Numbered::Fresh(3), "a fresh number given back");
    }

    #[test]
    fn vertex_numbers_are_dense_per_owner_and_undone_exactly() {
        let mut numbers = VertexNumbers::new(3);
        let a = numbers.take(1);
        let b = numbers.take(1);
        let c = numbers.take(2);
        assert_eq!((a.number, b.number, c.number), (VertexNumber(1), VertexNumber(4), VertexNumber(2)));
        assert_eq!((b.number.owner(3), b.number.index(3)), (1, 1));
        numbers.free(a.number);
        let d = numbers.take(1);
        assert_eq!(d.number, a.number, "the freed number first");
        numbers.untake(d);
        numbers.unfree(a.number);
        numbers.untake(b);
        assert_eq!(numbers.take(1).number, VertexNumber(4), "a fresh number given back");
    }

    #[test]
    fn the_index_survives_growth() {
        let mut slab = Slab::default();
        for i in 0..10_000 {
            slab.insert(Named(format!("v{i}")));
        }
        for i in (0..10_000).step_by(3) {
            slab.remove(slab.find(&format!("v{i}")).unwrap());
        }
        for i in 0..10_000 {
            assert_eq!(slab.find(&format!("v{i}")).is_some(), i % 3 != 0, "v{i}");
        }
    }
}
