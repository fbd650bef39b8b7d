//! The difference between two versions of a graph, told by fingerprints of their elements (a
//! vertex or an edge, keyed by id): only the elements whose fingerprints changed are compared
//! whole and named added, removed or modified, so the work beyond hashing follows the size of
//! the change, and only the difference is ever written to the log.
//!
//! Two snapshots ([`diff`]) go through a differential dataflow: both enter one collection, the
//! old version with weight −1 and the new with +1, and whatever is the same cancels as it
//! consolidates. A snapshot against the running graph ([`RunningPrints`]) is a sorted merge
//! instead: the running side is in memory already, and the newer one is then never held
//! whole.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use differential_dataflow::input::Input;
use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::probe::Handle;
use timely::dataflow::operators::{Inspect, Probe};

use crate::state::model::{Edge, Properties, Shared, Vertex};
use crate::state::write::WriteOp;

/// A vertex or an edge as a snapshot has it (no timestamps).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Element {
    Vertex { id: String, label: String, properties: Properties },
    Edge { id: String, label: String, from: String, to: String, properties: Properties },
}

impl Element {
    /// Vertices and edges have ids of their own: the key is (is an edge, id).
    fn key(&self) -> (bool, String) {
        match self {
            Element::Vertex { id, .. } => (false, id.clone()),
            Element::Edge { id, .. } => (true, id.clone()),
        }
    }
}

/// One element's change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Difference {
    Added(Element),
    Removed(Element),
    Modified { old: Element, new: Element },
}

/// Counts of a difference, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffCounts {
    pub vertices_added: u64,
    pub vertices_removed: u64,
    pub vertices_modified: u64,
    pub edges_added: u64,
    pub edges_removed: u64,
    pub edges_modified: u64,
}

impl DiffCounts {
    pub fn of(differences: &[Difference]) -> DiffCounts {
        let mut counts = DiffCounts::default();
        for difference in differences {
            let (element, slot) = match difference {
                Difference::Added(e) => (e, 0),
                Difference::Removed(e) => (e, 1),
                Difference::Modified { new, .. } => (new, 2),
            };
            let counter = match (element, slot) {
                (Element::Vertex { .. }, 0) => &mut counts.vertices_added,
                (Element::Vertex { .. }, 1) => &mut counts.vertices_removed,
                (Element::Vertex { .. }, _) => &mut counts.vertices_modified,
                (Element::Edge { .. }, 0) => &mut counts.edges_added,
                (Element::Edge { .. }, 1) => &mut counts.edges_removed,
                (Element::Edge { .. }, _) => &mut counts.edges_modified,
            };
            *counter += 1;
        }
        counts
    }
}

/// Why two versions cannot be compared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("{kind} {id:?} appears more than once in the {side} version")]
    Duplicate { kind: &'static str, id: String, side: &'static str },
    #[error("edge {edge:?} names vertex {end:?}, which the newer version does not hold")]
    MissingEnd { edge: String, end: String },
    #[error("the diff's workers: {0}")]
    Workers(String),
}

/// A fixed-seed hasher: the same fingerprints on every worker and every run. foldhash's
/// quality variant rather than SipHash, which took a tenth of an ApplySnapshot's time; with
/// fixed keys neither would be a defence against input crafted to collide.
fn hasher() -> impl Hasher {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x7072_6973_6d20_6466).build_hasher()
}

/// The fingerprint of an element's key (kind and id).
fn key_print(is_edge: bool, id: &str) -> u64 {
    let mut hasher = hasher();
    (is_edge, id).hash(&mut hasher);
    hasher.finish()
}

/// The fingerprint of an element's content (ends empty for a vertex). Computed from borrowed
/// parts, so the running graph's vertices and edges need no copy to be fingerprinted.
fn content_print(is_edge: bool, id: &str, label: &str, ends: (&str, &str), properties: &Properties) -> u64 {
    let mut hasher = hasher();
    (is_edge, id, label, ends, properties).hash(&mut hasher);
    hasher.finish()
}

impl Element {
    fn key_print(&self) -> u64 {
        match self {
            Element::Vertex { id, .. } => key_print(false, id),
            Element::Edge { id, .. } => key_print(true, id),
        }
    }

    fn prints(&self) -> (u64, u64) {
        match self {
            Element::Vertex { id, label, properties } => {
                (key_print(false, id), content_print(false, id, label, ("", ""), properties))
            }
            Element::Edge { id, label, from, to, properties } => {
                (key_print(true, id), content_print(true, id, label, (from, to), properties))
            }
        }
    }
}

fn vertex_prints(v: &Vertex) -> (u64, u64) {
    (key_print(false, &v.id), content_print(false, &v.id, &v.label, ("", ""), &v.properties))
}

fn edge_prints(e: &Edge) -> (u64, u64) {
    (key_print(true, &e.id), content_print(true, &e.id, &e.label, (&e.from, &e.to), &e.properties))
}

/// The keys whose elements differ between the versions, and the keys given more than once in
/// the new one: both versions enter one collection as (key, content) fingerprints, old −1,
/// new +1, on one timely worker per core, and what survives consolidation has changed.
fn changed_keys(old: Vec<(u64, u64)>, new: Vec<(u64, u64)>) -> Result<(HashSet<u64>, HashSet<u64>), DiffError> {
    let prints = Arc::new((old, new));
    let changed = Arc::new(Mutex::new(HashSet::<u64>::new()));
    let twice = Arc::new(Mutex::new(HashSet::<u64>::new()));
    let (changed_out, twice_out) = (changed.clone(), twice.clone());
    let workers = cores().min(4);
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let probe = Handle::new();
        let (changed, twice) = (changed_out.clone(), twice_out.clone());
        let (mut versions_in, mut new_keys_in) = worker.dataflow::<u32, _, _>(|scope| {
            let (versions_in, versions) = scope.new_collection::<(u64, u64), isize>();
            let (new_keys_in, new_keys) = scope.new_collection::<u64, isize>();
            versions
                .consolidate()
                .inner
                .inspect(move |((key, _), _, _)| {
                    if let Ok(mut changed) = changed.lock() {
                        changed.insert(*key);
                    }
                })
                .probe_with(&probe);
            new_keys
                .count()
                .inner
                .inspect(move |((key, count), _, _)| {
                    if *count > 1 {
                        if let Ok(mut twice) = twice.lock() {
                            twice.insert(*key);
                        }
                    }
                })
                .probe_with(&probe);
            (versions_in, new_keys_in)
        });
        let (old, new) = &*prints;
        for print in old.iter().skip(index).step_by(peers) {
            versions_in.update(*print, -1);
        }
        for print in new.iter().skip(index).step_by(peers) {
            new_keys_in.update(print.0, 1);
            versions_in.update(*print, 1);
        }
        versions_in.advance_to(1);
        new_keys_in.advance_to(1);
        versions_in.flush();
        new_keys_in.flush();
        while probe.less_than(versions_in.time()) {
            worker.step();
        }
    });
    drop(guards.map_err(DiffError::Workers)?.join());
    let poisoned = || DiffError::Workers("a worker panicked".into());
    let changed = std::mem::take(&mut *changed.lock().map_err(|_| poisoned())?);
    let twice = std::mem::take(&mut *twice.lock().map_err(|_| poisoned())?);
    Ok((changed, twice))
}

/// Names the differences among the elements whose keys changed (or may repeat): `old` holds
/// the old version's elements of changed keys, `new` the whole new version.
fn classify(
    old: impl Iterator<Item = Element>,
    new: Vec<Element>,
    changed: &HashSet<u64>,
    twice: &HashSet<u64>,
) -> Result<Vec<Difference>, DiffError> {
    let mut sides: BTreeMap<(bool, String), (Option<Element>, Option<Element>)> = BTreeMap::new();
    for element in old {
        let key = element.key();
        sides.entry(key).or_default().0 = Some(element);
    }
    for element in new {
        let print = element.key_print();
        if !changed.contains(&print) && !twice.contains(&print) {
            continue;
        }
        let key = element.key();
        let entry = sides.entry(key.clone()).or_default();
        if entry.1.is_some() {
            return Err(duplicate(&element));
        }
        entry.1 = Some(element);
    }
    // In key order: vertices before edges, then by id.
    let differences: Vec<Difference> = sides
        .into_values()
        .filter_map(|sides| match sides {
            (Some(old), Some(new)) if old == new => None,
            (Some(old), Some(new)) => Some(Difference::Modified { old, new }),
            (None, Some(new)) => Some(Difference::Added(new)),
            (Some(old), None) => Some(Difference::Removed(old)),
            (None, None) => None,
        })
        .collect();
    Ok(differences)
}

/// The difference from `old` to `new`, sorted (vertices before edges, then by id). An id
/// twice in `new` is an error.
///
/// The dataflow works on fingerprints (`changed_keys`); only the elements of keys that
/// changed are then compared whole, so the work beyond hashing follows the size of the
/// change. (A changed element whose 64-bit content fingerprint collides with its old one
/// would be missed: odds of about 2⁻⁶⁴ per changed element.)
pub fn diff(old: Vec<Element>, new: Vec<Element>) -> Result<Vec<Difference>, DiffError> {
    let old_prints: Vec<(u64, u64)> = old.iter().map(Element::prints).collect();
    let new_prints: Vec<(u64, u64)> = new.iter().map(Element::prints).collect();
    let (changed, twice) = changed_keys(old_prints, new_prints)?;
    let old = old.into_iter().filter(|e| changed.contains(&e.key_print()));
    classify(old, new, &changed, &twice)
}

/// The running graph's fingerprints, against which a newer version is told apart as it is
/// read: an element equal to the running one is dropped, so only the difference is ever held
/// (and a chunk of the newer version), and the running keys the newer version never gave are
/// the ones it removed. A join rather than [`diff`]'s dataflow: one side is already in memory,
/// and the other is then never held whole.
///
/// A sorted merge rather than a hash join: the running prints are sorted by key once, and
/// each chunk of newer elements, sorted too, is merged into them from the front, so the
/// probes walk memory forwards. (A hash map of 11M prints took one cache and TLB miss per
/// probe: over half a microsecond each, and most of an ApplySnapshot's time.)
///
/// It also finds an id the newer version gives twice, so its reader need not keep a set of
/// the ids for that. Ids compare by their 64-bit prints here, as everywhere in the diff.
pub struct RunningPrints {
    vertices: Vec<Shared<Vertex>>,
    edges: Vec<Shared<Edge>>,
    /// (key print, content print, place), sorted by key; places number the vertices, then
    /// the edges.
    sorted: Vec<(u64, u64, usize)>,
    /// Whether the newer version gave the key at each position of `sorted`.
    seen: Vec<bool>,
    /// Keys the newer version gave that the running graph lacks.
    added: HashSet<u64, FixedState>,
    /// The places of running elements whose newer version differs.
    changed: Vec<usize>,
    /// Newer elements not yet compared (each taken once, in key order), and their (key,
    /// content) prints with their places here.
    pending: Vec<Option<Element>>,
    pending_prints: Vec<(u64, u64, usize)>,
    chunk: usize,
    /// The newer elements that differ.
    kept: Vec<Element>,
}

/// Newer elements compared at once: the larger the chunk, the closer its probes fall in the
/// running prints (about 5 apart at 10M elements, a cache line or two), for a chunk's worth
/// of elements held. 2M rather than 512k: a 1% apply of 10M edges 11.6 -> 10.8 s, its peak
/// 180 MB higher.
const CHUNK: usize = 1 << 21;

impl RunningPrints {
    /// The prints of the running graph's vertices and edges (the apply stage's, shared).
    pub fn new(vertices: Vec<Shared<Vertex>>, edges: Vec<Shared<Edge>>) -> Self {
        Self::comparing_in_chunks_of(vertices, edges, CHUNK)
    }

    fn comparing_in_chunks_of(vertices: Vec<Shared<Vertex>>, edges: Vec<Shared<Edge>>, chunk: usize) -> Self {
        let sorted = running_prints(&vertices, &edges);
        RunningPrints {
            vertices,
            edges,
            seen: vec![false; sorted.len()],
            sorted,
            added: HashSet::default(),
            changed: Vec::new(),
            pending: Vec::with_capacity(chunk),
            pending_prints: Vec::with_capacity(chunk),
            chunk,
            kept: Vec::new(),
        }
    }

    /// Takes the next element of the newer version. An id given twice is an error, found
    /// here or by [`RunningPrints::difference`].
    pub fn push(&mut self, element: Element) -> Result<(), DiffError> {
        let (key, content) = element.prints();
        self.pending_prints.push((key, content, self.pending.len()));
        self.pending.push(Some(element));
        if self.pending.len() >= self.chunk {
            self.compare_pending()?;
        }
        Ok(())
    }

    /// Merges the pending elements, in key order, into the running prints.
    fn compare_pending(&mut self) -> Result<(), DiffError> {
        let mut prints = std::mem::take(&mut self.pending_prints);
        prints.sort_unstable_by_key(|&(key, _, _)| key);
        let pending = &mut self.pending;
        let mut take = |index: usize| pending[index].take().expect("each pending element is taken once");
        let mut at = 0;
        for (key, content, index) in prints.drain(..) {
            at = seek(&self.sorted, at, key);
            match self.sorted.get(at) {
                Some(&(running_key, running_content, place)) if running_key == key => {
                    if std::mem::replace(&mut self.seen[at], true) {
                        return Err(duplicate(&take(index)));
                    }
                    if running_content != content {
                        self.changed.push(place);
                        self.kept.push(take(index));
                    }
                }
                _ => {
                    if !self.added.insert(key) {
                        return Err(duplicate(&take(index)));
                    }
                    self.kept.push(take(index));
                }
            }
        }
        self.pending.clear();
        self.pending_prints = prints;
        Ok(())
    }

    /// The difference from the running graph to the newer version; only the running
    /// elements of changed keys are copied (found by their places: the running graph is not
    /// hashed again).
    pub fn difference(mut self) -> Result<Vec<Difference>, DiffError> {
        self.compare_pending()?;
        self.check_ends()?;
        let RunningPrints { vertices, edges, sorted, seen, mut changed, kept, .. } = self;
        let mut keys: HashSet<u64> = kept.iter().map(Element::key_print).collect();
        for (&(key, _, place), seen) in sorted.iter().zip(seen) {
            if !seen {
                keys.insert(key);
                changed.push(place);
            }
        }
        let old = changed.into_iter().map(|place| match vertices.get(place) {
            Some(vertex) => Element::of_vertex(vertex),
            None => Element::of_edge(&edges[place - vertices.len()]),
        });
        classify(old, kept, &keys, &HashSet::new())
    }
}

impl RunningPrints {
    /// Every edge of the newer version names two of its vertices. Only the differences are
    /// looked at: an edge the newer version keeps as it runs has the ends it runs with, so
    /// it is refused only if one of them is gone, which is looked for when some vertex is.
    /// (Looking up both ends of every edge as it was read was a third of the reading
    /// thread's time.)
    fn check_ends(&self) -> Result<(), DiffError> {
        let missing = |edge: &str, end: &str| DiffError::MissingEnd { edge: edge.to_owned(), end: end.to_owned() };
        for element in &self.kept {
            if let Element::Edge { id, from, to, .. } = element {
                if let Some(end) = [from, to].into_iter().find(|end| !self.newer_holds_vertex(end)) {
                    return Err(missing(id, end));
                }
            }
        }
        let vertices = self.vertices.len();
        let gone: HashSet<&str> = self
            .sorted
            .iter()
            .zip(&self.seen)
            .filter(|&(&(_, _, place), seen)| !seen && place < vertices)
            .map(|(&(_, _, place), _)| &*self.vertices[place].id)
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let changed: HashSet<usize> = self.changed.iter().copied().collect();
        for (&(_, _, place), seen) in self.sorted.iter().zip(&self.seen) {
            if *seen && place >= vertices && !changed.contains(&place) {
                let edge = &self.edges[place - vertices];
                if let Some(end) = [&edge.from, &edge.to].into_iter().find(|end| gone.contains(&***end)) {
                    return Err(missing(&edge.id, end));
                }
            }
        }
        Ok(())
    }

    /// Whether the newer version gives vertex `id`, running or added (by print, as
    /// everywhere in the diff).
    fn newer_holds_vertex(&self, id: &str) -> bool {
        let key = key_print(false, id);
        let at = self.sorted.partition_point(|&(held, _, _)| held < key);
        match self.sorted.get(at) {
            Some(&(held, _, place)) if held == key && place < self.vertices.len() => self.seen[at],
            _ => self.added.contains(&key),
        }
    }
}

/// Every running element's prints with its place (vertices, then edges), sorted by key.
/// Taken a part a core, each part sorted on its thread, then the sorted parts merged (a
/// stable sort finds them as runs): one thread took seconds for 10M edges while the newer
/// version's reader, a million elements ahead, waited for it.
fn running_prints(vertices: &[Shared<Vertex>], edges: &[Shared<Edge>]) -> Vec<(u64, u64, usize)> {
    let total = vertices.len() + edges.len();
    let part = total.div_ceil(cores()).max(1);
    let mut sorted = vec![(0, 0, 0); total];
    std::thread::scope(|scope| {
        for (index, out) in sorted.chunks_mut(part).enumerate() {
            scope.spawn(move || {
                for (place, slot) in (index * part..).zip(out.iter_mut()) {
                    let (key, content) = match vertices.get(place) {
                        Some(vertex) => vertex_prints(vertex),
                        None => edge_prints(&edges[place - vertices.len()]),
                    };
                    *slot = (key, content, place);
                }
                out.sort_unstable_by_key(|&(key, _, _)| key);
            });
        }
    });
    sorted.sort_by_key(|&(key, _, _)| key);
    sorted
}

/// The threads a comparison spreads its work over: one a core.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The first position at or after `from` whose key is at least `key`: a gallop forwards
/// from `from`, then a binary search in the last step, so nearby keys cost a few compares.
fn seek(sorted: &[(u64, u64, usize)], from: usize, key: u64) -> usize {
    let rest = &sorted[from.min(sorted.len())..];
    let (mut low, mut step) = (0, 1);
    while low + step < rest.len() && rest[low + step].0 < key {
        low += step;
        step *= 2;
    }
    let high = (low + step + 1).min(rest.len());
    from + low + rest[low..high].partition_point(|&(held, _, _)| held < key)
}

/// An id the newer version gives twice.
fn duplicate(element: &Element) -> DiffError {
    let (is_edge, id) = element.key();
    let kind = if is_edge { "edge" } else { "vertex" };
    DiffError::Duplicate { kind, id, side: "new" }
}

/// The write operations that turn the old version into the new one, in an order the apply
/// stage accepts as one atomic record: edges out, vertices out, vertices changed, vertices
/// in, edges in. A modified edge is deleted and created again (edges have no update).
pub fn to_ops(differences: Vec<Difference>) -> Vec<WriteOp> {
    let mut edges_out = Vec::new();
    let mut vertices_out = Vec::new();
    let mut vertices_changed = Vec::new();
    let mut vertices_in = Vec::new();
    let mut edges_in = Vec::new();
    for difference in differences {
        match difference {
            Difference::Removed(Element::Edge { id, .. }) => edges_out.push(WriteOp::DeleteEdge { id }),
            Difference::Removed(Element::Vertex { id, .. }) => {
                vertices_out.push(WriteOp::DeleteVertex { id, cascade: false })
            }
            Difference::Modified { old, new } => match (old, new) {
                (Element::Vertex { label: old_label, .. }, Element::Vertex { id, label, properties }) => {
                    let label = (label != old_label).then_some(label);
                    vertices_changed.push(WriteOp::UpdateVertex { id, properties, merge: false, label });
                }
                (_, new) => {
                    if let Element::Edge { id, .. } = &new {
                        edges_out.push(WriteOp::DeleteEdge { id: id.clone() });
                    }
                    edges_in.push(new.into_create());
                }
            },
            Difference::Added(element @ Element::Vertex { .. }) => vertices_in.push(element.into_create()),
            Difference::Added(element) => edges_in.push(element.into_create()),
        }
    }
    [edges_out, vertices_out, vertices_changed, vertices_in, edges_in].into_iter().flatten().collect()
}

impl Element {
    /// The operation that creates it.
    pub fn into_create(self) -> WriteOp {
        match self {
            Element::Vertex { id, label, properties } => WriteOp::CreateVertex { id, label, properties },
            Element::Edge { id, label, from, to, properties } => {
                WriteOp::CreateEdge { id, label, from, to, properties }
            }
        }
    }

    pub fn of_vertex(vertex: &crate::state::model::Vertex) -> Element {
        Element::Vertex {
            id: vertex.id.to_string(),
            label: vertex.label.to_string(),
            properties: vertex.properties.clone(),
        }
    }

    pub fn of_edge(edge: &crate::state::model::Edge) -> Element {
        Element::Edge {
            id: edge.id.to_string(),
            label: edge.label.to_string(),
            from: edge.from.to_string(),
            to: edge.to.to_string(),
            properties: edge.properties.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{Value, VertexNumber};

    fn vertex(id: &str, label: &str, age: i64) -> Element {
        let properties = [("age".to_string(), Value::Int(age))].into_iter().collect();
        Element::Vertex { id: id.into(), label: label.into(), properties }
    }

    fn edge(id: &str, from: &str, to: &str) -> Element {
        Element::Edge {
            id: id.into(),
            label: "E".into(),
            from: from.into(),
            to: to.into(),
            properties: Properties::new(),
        }
    }

    #[test]
    fn names_what_was_added_removed_and_modified_and_nothing_else() {
        let old = vec![
            vertex("a", "U", 1),
            vertex("b", "U", 2),
            vertex("c", "U", 3),
            edge("e1", "a", "b"),
            edge("e2", "b", "c"),
        ];
        let new = vec![
            vertex("a", "U", 1),
            vertex("b", "U", 20),
            vertex("d", "U", 4),
            edge("e1", "a", "b"),
            edge("e2", "b", "a"),
            edge("e3", "a", "d"),
        ];
        let differences = diff(old, new).unwrap();
        assert_eq!(
            differences,
            vec![
                Difference::Modified { old: vertex("b", "U", 2), new: vertex("b", "U", 20) },
                Difference::Removed(vertex("c", "U", 3)),
                Difference::Added(vertex("d", "U", 4)),
                Difference::Modified { old: edge("e2", "b", "c"), new: edge("e2", "b", "a") },
                Difference::Added(edge("e3", "a", "d")),
            ]
        );
        let counts = DiffCounts::of(&differences);
        assert_eq!((counts.vertices_added, counts.vertices_removed, counts.vertices_modified), (1, 1, 1));
        assert_eq!((counts.edges_added, counts.edges_removed, counts.edges_modified), (1, 0, 1));
        assert_eq!(diff(vec![vertex("a", "U", 1)], vec![vertex("a", "U", 1)]).unwrap(), vec![]);
    }

    #[test]
    fn the_running_graph_fingerprints_like_its_elements() {
        let vertex = |id: &str, age: i64| {
            let properties = [("age".to_string(), Value::Int(age))].into_iter().collect();
            Shared::new(Vertex {
                number: VertexNumber::UNASSIGNED,
                id: id.into(),
                label: "U".into(),
                properties,
                created_at: 1,
                updated_at: 2,
            })
        };
        let edge = Shared::new(Edge {
            id: "e1".into(),
            label: "E".into(),
            from: "a".into(),
            to: "b".into(),
            properties: Properties::new(),
            created_at: 3,
        });
        let graph = (vec![vertex("a", 1), vertex("b", 2)], vec![edge.clone()]);
        let same = vec![vertex_element("a", 1), vertex_element("b", 2), Element::of_edge(&edge)];
        let against = |newer: Vec<Element>| {
            let mut prints = RunningPrints::new(graph.0.clone(), graph.1.clone());
            newer.into_iter().for_each(|e| prints.push(e).unwrap());
            prints.difference().unwrap()
        };
        assert_eq!(against(same), vec![]);
        // An edge kept as it runs, or added, to a vertex the newer version lacks.
        let missing = |edge: &str, end: &str| Err(DiffError::MissingEnd { edge: edge.into(), end: end.into() });
        let try_against = |newer: Vec<Element>| {
            let mut prints = RunningPrints::new(graph.0.clone(), graph.1.clone());
            newer.into_iter().try_for_each(|e| prints.push(e)).and_then(|()| prints.difference())
        };
        assert_eq!(try_against(vec![vertex_element("a", 1), Element::of_edge(&edge)]), missing("e1", "b"));
        let added = vec![
            vertex_element("a", 1),
            vertex_element("b", 2),
            Element::of_edge(&edge),
            super::tests::edge("e2", "b", "z"),
        ];
        assert_eq!(try_against(added), missing("e2", "z"));
        let changed = vec![vertex_element("a", 1), vertex_element("b", 5), vertex_element("c", 3)];
        assert_eq!(
            against(changed),
            vec![
                Difference::Modified { old: vertex_element("b", 2), new: vertex_element("b", 5) },
                Difference::Added(vertex_element("c", 3)),
                Difference::Removed(Element::of_edge(&edge)),
            ]
        );
    }

    fn vertex_element(id: &str, age: i64) -> Element {
        vertex(id, "U", age)
    }

    #[test]
    fn an_id_the_newer_version_gives_twice_is_an_error_whether_it_was_running_or_not() {
        let running = |id: &str| {
            let properties = [("age".to_string(), Value::Int(1))].into_iter().collect();
            let vertex = Vertex {
                number: VertexNumber::UNASSIGNED,
                id: id.into(),
                label: "U".into(),
                properties,
                created_at: 1,
                updated_at: 1,
            };
            Shared::new(vertex)
        };
        let duplicate = |id: &str| DiffError::Duplicate { kind: "vertex", id: id.into(), side: "new" };
        // In one chunk and across two.
        for chunk in [1, 2, 8] {
            let twice = |first: Element, second: Element| {
                let mut prints = RunningPrints::comparing_in_chunks_of(vec![running("a")], vec![], chunk);
                [first, second].into_iter().try_for_each(|e| prints.push(e)).and_then(|()| prints.difference())
            };
            // Equal to the running one, then changed; changed, then equal; new twice.
            assert_eq!(twice(vertex_element("a", 1), vertex_element("a", 2)), Err(duplicate("a")), "chunk {chunk}");
            assert_eq!(twice(vertex_element("a", 2), vertex_element("a", 1)), Err(duplicate("a")), "chunk {chunk}");
            assert_eq!(twice(vertex_element("b", 1), vertex_element("b", 1)), Err(duplicate("b")), "chunk {chunk}");
            let shared = twice(vertex_element("x", 1), edge("x", "x", "x")).unwrap();
            assert_eq!(shared.len(), 3, "a vertex and an edge may share an id: {shared:?}");
        }
    }

    #[test]
    fn a_duplicate_id_in_the_new_version_is_an_error() {
        let error = diff(vec![], vec![vertex("a", "U", 1), vertex("a", "V", 1)]).unwrap_err();
        assert_eq!(error, DiffError::Duplicate { kind: "vertex", id: "a".into(), side: "new" });
    }

    /// A version of a small graph: vertex ids to ages, edge ids to their ends.
    type Version = (BTreeMap<u8, i64>, BTreeMap<u8, (u8, u8)>);

    fn version() -> impl proptest::strategy::Strategy<Value = Version> {
        (
            proptest::collection::btree_map(0u8..24, 0i64..3, 0..24),
            proptest::collection::btree_map(0u8..24, (0u8..4, 0u8..4), 0..24),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Against the running graph, the difference is the one between two snapshots.
        #[test]
        fn the_running_graph_gives_the_difference_two_snapshots_give(old in version(), new in version(), chunk in 1usize..8, dangling in proptest::bool::ANY) {
            // A running graph's edges have their ends; a newer version's may lack them.
            let valid = |(vertices, mut edges): Version| {
                edges.retain(|_, (from, to)| vertices.contains_key(from) && vertices.contains_key(to));
                (vertices, edges)
            };
            let old = valid(old);
            let new = if dangling { new } else { valid(new) };
            let elements = |(vertices, edges): &Version| {
                let vertices = vertices.iter().map(|(id, age)| vertex(&format!("v{id}"), "U", *age));
                let edges = edges.iter().map(|(id, (from, to))| edge(&format!("e{id}"), &format!("v{from}"), &format!("v{to}")));
                vertices.chain(edges).collect::<Vec<_>>()
            };
            let running_vertices = old.0.iter().map(|(id, age)| {
                let properties = [("age".to_string(), Value::Int(*age))].into_iter().collect();
                Shared::new(Vertex { number: VertexNumber::UNASSIGNED, id: format!("v{id}").into(), label: "U".into(), properties, created_at: 1, updated_at: 1 })
            });
            let running_edges = old.1.iter().map(|(id, (from, to))| Shared::new(Edge {
                id: format!("e{id}").into(),
                label: "E".into(),
                from: format!("v{from}").into(),
                to: format!("v{to}").into(),
                properties: Properties::new(),
                created_at: 1,
            }));
            let mut prints = RunningPrints::comparing_in_chunks_of(running_vertices.collect(), running_edges.collect(), chunk);
            // Newest first, so that places and arrival orders differ.
            elements(&new).into_iter().rev().for_each(|e| prints.push(e).unwrap());
            let ends_held = new.1.values().all(|(from, to)| new.0.contains_key(from) && new.0.contains_key(to));
            match prints.difference() {
                Ok(difference) => {
                    proptest::prop_assert!(ends_held, "an edge to a vertex the newer version lacks was let through");
                    proptest::prop_assert_eq!(difference, diff(elements(&old), elements(&new)).unwrap());
                }
                Err(error) => {
                    proptest::prop_assert!(!ends_held, "refused a valid version: {}", error);
                    proptest::prop_assert!(matches!(error, DiffError::MissingEnd { .. }), "{}", error);
                }
            }
        }
    }
}
