//! The executor's view of the keys a batch touches: the state before the batch, as the
//! owners read it, with every change the batch's accepted operations made so far. An atomic
//! record journals what it changes, so that a rejection puts the view back exactly.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::state::ids::{NextNumbers, Numbered};
use crate::state::model::{Id, Namespace, NumberedEdge, Vertex, VertexNumber};
use crate::state::sharded::reads::Reads;

type Key = (Namespace, Id);

#[derive(Clone, Default)]
struct VertexView {
    vertex: Option<Arc<Vertex>>,
    degree: u32,
    /// For a vertex a cascade of the batch may delete: the ids of the edges it had, and of
    /// those the batch added at it (some may be gone since).
    incident: Option<Vec<Id>>,
}

/// What a change replaced, to put back.
enum Undo {
    Vertex(Key, VertexView),
    Edge(Key, Option<NumberedEdge>),
    Took(Namespace, usize, Numbered),
    Freed(Namespace, usize),
    Count(Namespace, [u64; 2]),
}

pub(super) struct Overlay {
    workers: usize,
    vertices: HashMap<Key, VertexView, RandomState>,
    edges: HashMap<Key, Option<NumberedEdge>, RandomState>,
    numbers: HashMap<(Namespace, usize), NextNumbers, RandomState>,
    counts: HashMap<Namespace, [u64; 2], RandomState>,
    journal: Option<Vec<Undo>>,
}

impl Overlay {
    /// The view the owners' `reads` give, tracking the edges of the vertices in `cascades`.
    pub fn new(workers: usize, reads: impl IntoIterator<Item = (usize, Reads)>, cascades: &[Key]) -> Self {
        let mut overlay = Overlay {
            workers,
            vertices: HashMap::default(),
            edges: HashMap::default(),
            numbers: HashMap::default(),
            counts: HashMap::default(),
            journal: None,
        };
        for (owner, reads) in reads {
            for (ns, id, read) in reads.vertices {
                let mut view = VertexView::default();
                if let Some(read) = read {
                    for edge in &read.incident {
                        overlay.edges.entry((ns.clone(), edge.edge.id.clone())).or_insert_with(|| Some(edge.clone()));
                    }
                    view = VertexView {
                        vertex: Some(read.vertex),
                        degree: read.degree,
                        incident: Some(read.incident.into_iter().map(|edge| edge.edge.id.clone()).collect()),
                    };
                }
                overlay.vertices.insert((ns, id), view);
            }
            for (ns, id, edge) in reads.edges {
                overlay.edges.insert((ns, id), edge);
            }
            for (ns, next) in reads.numbers {
                overlay.numbers.insert((ns, owner), next);
            }
            for (ns, [vertices, edges]) in reads.counts {
                let count = overlay.counts.entry(ns).or_default();
                count[0] += vertices;
                count[1] += edges;
            }
        }
        for key in cascades {
            let view = overlay.vertices.entry(key.clone()).or_default();
            view.incident.get_or_insert_with(Vec::new);
        }
        overlay
    }

    /// Journals every change from now, until `commit` or `rollback`.
    pub fn begin(&mut self) {
        self.journal = Some(Vec::new());
    }

    pub fn commit(&mut self) {
        self.journal = None;
    }

    /// Puts back everything changed since `begin`, last first.
    pub fn rollback(&mut self) {
        let Some(journal) = self.journal.take() else { return };
        for undo in journal.into_iter().rev() {
            match undo {
                Undo::Vertex(key, view) => {
                    self.vertices.insert(key, view);
                }
                Undo::Edge(key, edge) => {
                    self.edges.insert(key, edge);
                }
                Undo::Took(ns, owner, numbered) => self.next_numbers(ns, owner).untake(numbered),
                Undo::Freed(ns, owner) => self.next_numbers(ns, owner).unfree(),
                Undo::Count(ns, count) => {
                    self.counts.insert(ns, count);
                }
            }
        }
    }

    fn journal(&mut self, undo: impl FnOnce() -> Undo) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push(undo());
        }
    }

    fn key(ns: &Namespace, id: &str) -> Key {
        (ns.clone(), id.into())
    }

    pub fn vertex(&self, ns: &Namespace, id: &str) -> Option<&Arc<Vertex>> {
        self.vertices.get(&Self::key(ns, id))?.vertex.as_ref()
    }

    pub fn degree(&self, ns: &Namespace, id: &str) -> u32 {
        self.vertices.get(&Self::key(ns, id)).map_or(0, |view| view.degree)
    }

    /// Sets vertex `id` (`None`: deleted). A new vertex has no edges yet.
    pub fn set_vertex(&mut self, ns: &Namespace, id: &str, vertex: Option<Arc<Vertex>>) {
        let key = Self::key(ns, id);
        let view = self.vertices.entry(key.clone()).or_default();
        let before = view.clone();
        let created = view.vertex.is_none();
        view.vertex = vertex;
        if created || view.vertex.is_none() {
            view.degree = 0;
            if let Some(incident) = view.incident.as_mut() {
                incident.clear();
            }
        }
        self.journal(|| Undo::Vertex(key, before));
    }

    pub fn edge(&self, ns: &Namespace, id: &str) -> Option<&NumberedEdge> {
        self.edges.get(&Self::key(ns, id))?.as_ref()
    }

    /// Adds `edge`, one more edge at each endpoint.
    pub fn add_edge(&mut self, ns: &Namespace, edge: NumberedEdge) {
        let key = Self::key(ns, &edge.edge.id);
        self.endpoints_changed(ns, &edge, |view, id| {
            view.degree += 1;
            if let Some(incident) = view.incident.as_mut() {
                incident.push(id.clone());
            }
        });
        let before = self.edges.insert(key.clone(), Some(edge));
        self.journal(|| Undo::Edge(key, before.flatten()));
    }

    /// Removes edge `id`, one edge fewer at each endpoint; the edge, if it was there.
    pub fn remove_edge(&mut self, ns: &Namespace, id: &str) -> Option<NumberedEdge> {
        let key = Self::key(ns, id);
        let edge = self.edges.get_mut(&key)?.take()?;
        self.journal(|| Undo::Edge(key, Some(edge.clone())));
        self.endpoints_changed(ns, &edge, |view, _| view.degree = view.degree.saturating_sub(1));
        Some(edge)
    }

    /// Changes the views of `edge`'s endpoints this batch holds (a self-loop's once).
    fn endpoints_changed(&mut self, ns: &Namespace, edge: &NumberedEdge, change: impl Fn(&mut VertexView, &Id)) {
        let ends = if edge.edge.from == edge.edge.to { 1 } else { 2 };
        for end in [&edge.edge.from, &edge.edge.to].into_iter().take(ends) {
            let key = (ns.clone(), end.clone());
            if let Some(view) = self.vertices.get_mut(&key) {
                let before = view.clone();
                change(view, &edge.edge.id);
                self.journal(|| Undo::Vertex(key, before));
            }
        }
    }

    /// The edges at vertex `id` (numbered `number`) now, for a cascade: each once.
    pub fn edges_at(&self, ns: &Namespace, id: &str, number: VertexNumber) -> Vec<Id> {
        let Some(incident) = self.vertices.get(&Self::key(ns, id)).and_then(|view| view.incident.as_ref()) else {
            return Vec::new();
        };
        let mut found: Vec<Id> = Vec::new();
        for edge_id in incident {
            let at_vertex = self.edge(ns, edge_id).is_some_and(|edge| edge.from == number || edge.to == number);
            if at_vertex && !found.contains(edge_id) {
                found.push(edge_id.clone());
            }
        }
        found
    }

    fn next_numbers(&mut self, ns: Namespace, owner: usize) -> &mut NextNumbers {
        self.numbers.entry((ns, owner)).or_default()
    }

    /// A number for a new vertex on `owner`, as its slab will give it.
    pub fn take_number(&mut self, ns: &Namespace, owner: usize) -> VertexNumber {
        let numbered = self.next_numbers(ns.clone(), owner).take();
        self.journal(|| Undo::Took(ns.clone(), owner, numbered));
        VertexNumber::new(numbered.id() as u64, owner, self.workers)
    }

    pub fn free_number(&mut self, ns: &Namespace, number: VertexNumber) {
        let (owner, index) = (number.owner(self.workers), number.index(self.workers) as u32);
        self.next_numbers(ns.clone(), owner).free(index);
        self.journal(|| Undo::Freed(ns.clone(), owner));
    }

    /// How many vertices and edges `ns` holds now.
    pub fn count(&self, ns: &Namespace) -> [u64; 2] {
        self.counts.get(ns).copied().unwrap_or_default()
    }

    /// Adds `by` to the count of `kind` (0: vertices, 1: edges).
    pub fn add_count(&mut self, ns: &Namespace, kind: usize, by: i64) {
        let count = self.counts.entry(ns.clone()).or_default();
        let before = *count;
        count[kind] = count[kind].saturating_add_signed(by);
        self.journal(|| Undo::Count(ns.clone(), before));
    }
}
