//! A namespace's labels and property keys, each held once.
//!
//! A graph has millions of elements and a handful of distinct names: a copy of "follows" or
//! "email" in every edge and vertex would cost more than the numbers that say where they go.
//! The apply stage shares each name through the namespace's [`Names`] as it builds an
//! element, so every element holds a pointer to the one copy.

use std::collections::HashSet;

use foldhash::fast::FixedState;

use crate::state::model::{Name, Properties};

/// Past this many distinct names a namespace stops sharing new ones: names that are really
/// data (a property keyed by user id) must not grow a table that is never emptied.
const MAX_SHARED: usize = 1 << 16;

#[derive(Default)]
pub struct Names {
    shared: HashSet<Name, FixedState>,
}

impl Names {
    /// The namespace's copy of `name`: this one, kept, if it is the first.
    pub fn share(&mut self, name: &Name) -> Name {
        if let Some(shared) = self.shared.get(name) {
            return shared.clone();
        }
        if self.shared.len() < MAX_SHARED {
            self.shared.insert(name.clone());
        }
        name.clone()
    }

    /// An element's label and property keys, each replaced by the namespace's copy.
    pub fn share_in(&mut self, label: &mut Name, properties: &mut Properties) {
        *label = self.share(label);
        properties.share_keys(|key| self.share(key));
    }

    /// The namespace's copy of `name`, made if it is new.
    pub fn of(&mut self, name: &str) -> Name {
        match self.shared.get(name) {
            Some(shared) => shared.clone(),
            None => self.share(&Name::from(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_once_until_the_table_is_full() {
        let mut names = Names::default();
        let a = names.of("follows");
        let b = names.share(&Name::from("follows"));
        assert!(Name::ptr_eq(&a, &b));
        for i in 0..MAX_SHARED {
            names.of(&format!("k{i}"));
        }
        let late = names.of("late");
        assert!(!Name::ptr_eq(&late, &names.of("late")), "past the cap, names are not kept");
        assert!(Name::ptr_eq(&a, &names.of("follows")), "those kept still are");
    }
}
