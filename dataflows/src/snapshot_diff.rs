//! The difference between two versions of a graph (a snapshot and the running graph, or two
//! snapshots), computed as a differential dataflow.
//!
//! Both versions enter one collection keyed by element (a vertex or an edge, by id): the old
//! version with weight −1, the new with +1. Whatever is the same in both cancels out as the
//! collection consolidates; a `reduce` per key then sees only what changed and names it
//! added, removed or modified. So the work and the output follow the size of the change, and
//! only the difference is ever written to the log.

use std::cell::RefCell;
use std::rc::Rc;

use differential_dataflow::input::Input;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::probe::Handle;
use timely::dataflow::operators::{Inspect, Probe};

use crate::model::Properties;
use crate::write::WriteOp;

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
}

/// The difference from `old` to `new`, sorted (vertices before edges, then by id). An id
/// twice in `new` is an error (`old`, the running graph, cannot have one).
pub fn diff(old: Vec<Element>, new: Vec<Element>) -> Result<Vec<Difference>, DiffError> {
    let found = timely::execute_directly(move |worker| {
        let found: Rc<RefCell<Vec<Result<Difference, DiffError>>>> = Rc::default();
        let output = found.clone();
        let duplicates = found.clone();
        let probe = Handle::new();
        let (mut versions_in, mut new_keys_in) = worker.dataflow::<u32, _, _>(|scope| {
            let (versions_in, versions) = scope.new_collection::<((bool, String), Element), isize>();
            let (new_keys_in, new_keys) = scope.new_collection::<(bool, String), isize>();
            new_keys
                .count()
                .inner
                .inspect(move |(((is_edge, id), count), _, _)| {
                    if *count > 1 {
                        let kind = if *is_edge { "edge" } else { "vertex" };
                        duplicates.borrow_mut().push(Err(DiffError::Duplicate { kind, id: id.clone(), side: "new" }));
                    }
                })
                .probe_with(&probe);
            versions
                .reduce(|_key, versions, output| {
                    // Consolidated: what is the same in both versions has cancelled; the rest
                    // is the old version (weight −1) and the new one (+1).
                    let old = versions.iter().find(|(_, w)| *w < 0).map(|(e, _)| (*e).clone());
                    let new = versions.iter().find(|(_, w)| *w > 0).map(|(e, _)| (*e).clone());
                    let difference = match (old, new) {
                        (Some(old), Some(new)) => Difference::Modified { old, new },
                        (None, Some(new)) => Difference::Added(new),
                        (Some(old), None) => Difference::Removed(old),
                        (None, None) => return,
                    };
                    output.push((difference, 1));
                })
                .inner
                .inspect(move |((_, difference), _, _)| output.borrow_mut().push(Ok(difference.clone())))
                .probe_with(&probe);
            (versions_in, new_keys_in)
        });
        for element in old {
            versions_in.update((element.key(), element), -1);
        }
        for element in new {
            new_keys_in.update(element.key(), 1);
            versions_in.update((element.key(), element), 1);
        }
        versions_in.advance_to(1);
        new_keys_in.advance_to(1);
        versions_in.flush();
        new_keys_in.flush();
        while probe.less_than(versions_in.time()) {
            worker.step();
        }
        drop((versions_in, new_keys_in));
        found.take()
    });
    let mut differences = found.into_iter().collect::<Result<Vec<_>, _>>()?;
    differences.sort();
    Ok(differences)
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
                    edges_in.push(create(new));
                }
            },
            Difference::Added(element @ Element::Vertex { .. }) => vertices_in.push(create(element)),
            Difference::Added(element) => edges_in.push(create(element)),
        }
    }
    [edges_out, vertices_out, vertices_changed, vertices_in, edges_in].into_iter().flatten().collect()
}

fn create(element: Element) -> WriteOp {
    match element {
        Element::Vertex { id, label, properties } => WriteOp::CreateVertex { id, label, properties },
        Element::Edge { id, label, from, to, properties } => WriteOp::CreateEdge { id, label, from, to, properties },
    }
}

impl Element {
    pub fn of_vertex(vertex: &crate::model::Vertex) -> Element {
        Element::Vertex { id: vertex.id.clone(), label: vertex.label.clone(), properties: vertex.properties.clone() }
    }

    pub fn of_edge(edge: &crate::model::Edge) -> Element {
        Element::Edge {
            id: edge.id.clone(),
            label: edge.label.clone(),
            from: edge.from.clone(),
            to: edge.to.clone(),
            properties: edge.properties.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

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
                Difference::Added(vertex("d", "U", 4)),
                Difference::Modified { old: vertex("b", "U", 2), new: vertex("b", "U", 20) },
                Difference::Removed(vertex("c", "U", 3)),
                Difference::Added(edge("e3", "a", "d")),
                Difference::Modified { old: edge("e2", "b", "c"), new: edge("e2", "b", "a") },
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        let counts = DiffCounts::of(&differences);
        assert_eq!((counts.vertices_added, counts.vertices_removed, counts.vertices_modified), (1, 1, 1));
        assert_eq!((counts.edges_added, counts.edges_removed, counts.edges_modified), (1, 0, 1));
        assert_eq!(diff(vec![vertex("a", "U", 1)], vec![vertex("a", "U", 1)]).unwrap(), vec![]);
    }

    #[test]
    fn a_duplicate_id_in_the_new_version_is_an_error() {
        let error = diff(vec![], vec![vertex("a", "U", 1), vertex("a", "V", 1)]).unwrap_err();
        assert_eq!(error, DiffError::Duplicate { kind: "vertex", id: "a".into(), side: "new" });
    }
}
