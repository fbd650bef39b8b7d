//! A whole graph put into empty namespaces at one LSN, each worker taking its own part: a
//! checkpoint at recovery, or a snapshot loaded in bulk.
//!
//! No rule is checked: a checkpoint was a valid graph, and a bulk snapshot was checked whole
//! before it was handed over. The executor only says where each owner's numbers start in
//! each namespace ([`Restore`]); from that and the graph's order, every worker numbers
//! every vertex alike ([`numbering`]), so the owner of an edge finds its ends' numbers
//! without asking theirs, and no worker waits for another. Each then keeps its own vertices
//! and edges and counts the degrees of its own vertices.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::state::graph::WholeGraph;
use crate::state::id_table::IdTable;
use crate::state::ids::DenseId;
use crate::state::model::{owner_of, Namespace, VertexKey, VertexNumber};

/// Where a restore's numbers start: per namespace restored, the first index each owner
/// gives (its slab's end). A namespace the graph names but that is not listed was not
/// empty, and is left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Restore {
    pub starts: Vec<(Namespace, Vec<DenseId>)>,
}

impl Restore {
    pub(super) fn starts(&self, namespace: &Namespace) -> Option<&[DenseId]> {
        self.starts.iter().find(|(ns, _)| ns == namespace).map(|(_, starts)| starts.as_slice())
    }
}

/// Every vertex's number in the namespaces `restore` lists, by namespace and id, and how
/// many each owner numbered there: vertices in the graph's order, each owner's from its
/// start, one after another. A vertex given twice keeps its first number.
pub(super) fn numbering(
    graph: &WholeGraph,
    restore: &Restore,
    workers: usize,
) -> HashMap<Namespace, Numbering, RandomState> {
    let mut numberings: HashMap<Namespace, Numbering, RandomState> = HashMap::default();
    for (key, _) in &graph.vertices {
        let numbering = match numberings.get_mut(&key.namespace) {
            Some(numbering) => numbering,
            None => {
                let Some(starts) = restore.starts(&key.namespace) else { continue };
                let fresh = Numbering { numbers: IdTable::default(), taken: vec![0; workers], starts: starts.to_vec() };
                numberings.entry(key.namespace.clone()).or_insert(fresh)
            }
        };
        numbering.number(&key.namespace, &key.id, workers);
    }
    numberings
}

/// One namespace's vertex numbers.
pub(super) struct Numbering {
    /// By a copy of the id, not a pointer to the vertex's: an id of up to 15 bytes is then
    /// compared where the table holds it; every worker looks up every edge's ends, many at
    /// a time in the table's order.
    numbers: IdTable<VertexNumber>,
    /// Per owner, how many it numbered.
    taken: Vec<u64>,
    starts: Vec<DenseId>,
}

impl Numbering {
    fn number(&mut self, namespace: &Namespace, id: &str, workers: usize) {
        let owner = owner_of(VertexKey::route(namespace, id), workers);
        let start = self.starts.get(owner).copied().unwrap_or(0) as u64;
        if self.numbers.insert(id, VertexNumber::new(start + self.taken[owner], owner, workers)) {
            self.taken[owner] += 1;
        }
    }

    pub fn get(&self, id: &str) -> Option<VertexNumber> {
        self.numbers.get(id)
    }

    /// The numbers of `ids`, in the order asked.
    pub fn get_many(&self, ids: &[&str]) -> Vec<Option<VertexNumber>> {
        self.numbers.get_many(ids)
    }

    /// How many vertices `owner` numbered.
    pub fn taken(&self, owner: usize) -> u64 {
        self.taken[owner]
    }
}
