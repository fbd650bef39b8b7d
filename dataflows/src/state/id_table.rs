//! A table keyed by string id, for the passes that look up millions of ids at once: the
//! snapshot check (is each edge's end a vertex of the file?) and a restore (what number
//! does each edge's end have?).
//!
//! Each id is held inline in its slot (up to 15 bytes, [`Id`]), so a lookup that finds it
//! touches that slot alone. Ids asked many at a time are looked up in the order of the
//! table's buckets rather than as given: a walk forwards through the table instead of a
//! cache and TLB miss per id, which was most of the time both passes took.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use crate::state::model::Id;

/// Ids and what each maps to.
pub struct IdTable<V> {
    table: HashTable<(Id, V)>,
    hasher: FixedState,
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        IdTable { table: HashTable::new(), hasher: FixedState::default() }
    }
}

impl<V: Copy> IdTable<V> {
    /// How many ids a pass asks of [`IdTable::get_many`] or [`IdTable::insert_many`] at
    /// once: enough that the sorted ids walk the table forwards, few enough that the order
    /// and answers stay in the cache.
    pub const LOOKUPS_AT_ONCE: usize = 1 << 15;

    /// Maps `id` to `value`; false, leaving its first value, when `id` was there already.
    pub fn insert(&mut self, id: &str, value: V) -> bool {
        let hasher = &self.hasher;
        match self.table.entry(hasher.hash_one(id), |(held, _)| held == id, |(held, _)| hasher.hash_one(held.as_str()))
        {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((Id::from(id), value));
                true
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<V> {
        self.table.find(self.hasher.hash_one(id), |(held, _)| held == id).map(|(_, value)| *value)
    }

    /// What each of `ids` maps to, in the order asked, looked up in the order of the
    /// buckets they land in.
    pub fn get_many(&self, ids: &[&str]) -> Vec<Option<V>> {
        let mut found = vec![None; ids.len()];
        for (hash, at) in self.bucket_order(ids) {
            let id = ids[at];
            found[at] = self.table.find(hash, |(held, _)| held == id).map(|(_, value)| *value);
        }
        found
    }

    /// Maps each of `ids` to `value`, in the order of the buckets they land in; answers, in
    /// the order asked, whether each was new (an id given twice is new the first time).
    pub fn insert_many(&mut self, ids: &[&str], value: V) -> Vec<bool> {
        // Room first: growing midway would move the buckets the order was sorted by.
        self.reserve(ids.len());
        let mut inserted = vec![false; ids.len()];
        for (hash, at) in self.bucket_order(ids) {
            let id = ids[at];
            let hasher = &self.hasher;
            if let hashbrown::hash_table::Entry::Vacant(slot) =
                self.table.entry(hash, |(held, _)| held == id, |(held, _)| hasher.hash_one(held.as_str()))
            {
                slot.insert((Id::from(id), value));
                inserted[at] = true;
            }
        }
        inserted
    }

    /// Each id's hash and place in `ids`, sorted by the bucket it lands in and then by its
    /// place (so of an id given twice, the first comes first).
    fn bucket_order(&self, ids: &[&str]) -> Vec<(u64, usize)> {
        // The buckets are a power of two, at most 8/7 of the capacity, picked by the hash's
        // low bits: shifting those to the top sorts by bucket.
        let buckets = (self.table.capacity() * 8 / 7).max(2).next_power_of_two();
        let shift = 64 - buckets.trailing_zeros();
        let mut order: Vec<(u64, u64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(at, id)| {
                let hash = self.hasher.hash_one(id);
                (hash << shift, hash, at as u32)
            })
            .collect();
        order.sort_unstable_by_key(|&(bucket, _, at)| (bucket, at));
        order.into_iter().map(|(_, hash, at)| (hash, at as usize)).collect()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// Room for `more` ids, so that growing does not rehash them all.
    pub fn reserve(&mut self, more: usize) {
        let hasher = &self.hasher;
        self.table.reserve(more, |(held, _)| hasher.hash_one(held.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_one_or_many_at_a_time_in_the_order_asked() {
        let mut table = IdTable::default();
        table.reserve(1000);
        for i in 0..50_000u32 {
            assert!(table.insert(&format!("v{i}"), i));
        }
        assert!(!table.insert("v49999", 7) && !table.insert("v0", 7), "the first value stays");
        assert!(table.insert("", 99) && !table.insert("", 1), "the empty id is an id");
        assert_eq!((table.get("v123"), table.get("v0"), table.get("v50000")), (Some(123), Some(0), None));
        let asked: Vec<String> = (0..70_000).rev().step_by(7).map(|i| format!("v{i}")).collect();
        let asked: Vec<&str> = asked.iter().map(String::as_str).chain(["", "a-longer-id-on-the-heap"]).collect();
        let one_by_one: Vec<Option<u32>> = asked.iter().map(|id| table.get(id)).collect();
        assert_eq!(table.get_many(&asked), one_by_one);
        assert_eq!(table.len(), 50_001);
        // Many at once: new ones, ones held already, and one given twice in the batch.
        let batch = ["n1", "v7", "n2", "n1", "", "n3"];
        assert_eq!(table.insert_many(&batch, 5), [true, false, true, false, false, true]);
        assert_eq!((table.get("n1"), table.get("v7"), table.get("n3")), (Some(5), Some(7), Some(5)));
        let many: Vec<String> = (0..100_000).map(|i| format!("m{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(table.insert_many(&many, 1).iter().all(|new| *new));
        assert_eq!(table.len(), 150_004);
        assert!(many.iter().all(|id| table.get(id) == Some(1)));
        table.clear();
        assert!(table.is_empty() && table.get("v1").is_none() && table.insert("v1", 1));
    }
}
