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
use crate::state::model::{owner_of, Edge, Namespace, VertexKey, VertexNumber};

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
///
/// A graph that gives its edges' ends as places ([`WholeGraph::ends`]) gives each id once
/// (its reader checked so): its vertices are numbered in order with no index of their ids.
pub(super) fn numbering(graph: &WholeGraph, restore: &Restore, workers: usize) -> Numberings {
    let mut numberings = Numberings::default();
    let indexed = graph.ends_placed().is_none();
    numberings.vertices.reserve_exact(graph.vertices.len());
    for (namespace, vertex) in &graph.vertices {
        let numbering = match numberings.namespaces.get_mut(namespace) {
            Some(numbering) => Some(numbering),
            None => restore.starts(namespace).map(|starts| {
                let fresh = Numbering { numbers: IdTable::default(), taken: vec![0; workers], starts: starts.to_vec() };
                numberings.namespaces.entry(namespace.clone()).or_insert(fresh)
            }),
        };
        let number = numbering.and_then(|numbering| numbering.number(namespace, &vertex.id, workers, indexed));
        numberings.vertices.push(number.unwrap_or(VertexNumber::UNASSIGNED));
    }
    numberings
}

/// The numbers a restore gives.
#[derive(Default)]
pub(super) struct Numberings {
    pub namespaces: HashMap<Namespace, Numbering, RandomState>,
    /// Each of the graph's vertices' number, in its order: unassigned where its namespace
    /// is left out or its id was given before (the first keeps it). Not an `Option`, which
    /// takes twice the room: ends given as places are read here at random, a cache miss
    /// each once the array outgrows the cache.
    vertices: Vec<VertexNumber>,
}

impl Numberings {
    /// How many edges a restore looks up the ends of at once: two ids each.
    pub const EDGES_AT_ONCE: usize = IdTable::<VertexNumber>::LOOKUPS_AT_ONCE / 2;

    /// The number of the graph's vertex `at`, if it has one.
    pub fn vertex(&self, at: usize) -> Option<VertexNumber> {
        self.vertices.get(at).copied().filter(|&number| number != VertexNumber::UNASSIGNED)
    }

    /// The numbers of an edge's ends given as places in the graph's vertices: none where
    /// an end is missing or left out.
    pub fn placed(&self, [from, to]: [u32; 2]) -> Option<[VertexNumber; 2]> {
        let number = |place: u32| self.vertex(place as usize);
        number(from).zip(number(to)).map(|(from, to)| [from, to])
    }
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
    /// Numbers vertex `id`, unless it was numbered before (which only an `indexed`
    /// numbering sees).
    fn number(&mut self, namespace: &Namespace, id: &str, workers: usize, indexed: bool) -> Option<VertexNumber> {
        let owner = owner_of(VertexKey::route(namespace, id), workers);
        let start = self.starts.get(owner).copied().unwrap_or(0) as u64;
        let number = VertexNumber::new(start + self.taken[owner], owner, workers);
        (!indexed || self.numbers.insert(id, number)).then(|| {
            self.taken[owner] += 1;
            number
        })
    }

    /// The numbers of the ends of `edges` (none where the graph lacks an end), looked up at
    /// once in the table's order: one by one, each was a cache miss or two, a fifth of the
    /// workers' time in a bulk load.
    pub fn look_up_ends<'e>(&self, edges: impl Iterator<Item = &'e Edge>) -> Vec<Option<[VertexNumber; 2]>> {
        let ends: Vec<&str> = edges.flat_map(|edge| [edge.from.as_str(), edge.to.as_str()]).collect();
        let numbers = self.numbers.get_many(&ends);
        numbers.chunks(2).map(|pair| pair[0].zip(pair[1]).map(|(from, to)| [from, to])).collect()
    }

    /// How many vertices `owner` numbered.
    pub fn taken(&self, owner: usize) -> u64 {
        self.taken[owner]
    }
}
