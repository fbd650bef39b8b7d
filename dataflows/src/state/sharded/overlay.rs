//! The executor's view of the keys a batch touches: the state before the batch, as the
//! owners read it, with every change the batch's accepted operations made so far. An atomic
//! record journals what it changes, so that a rejection puts the view back exactly.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::state::ids::{NextNumbers, Numbered};
use crate::state::model::{Id, Namespace, NumberedEdge, Shared, Vertex, VertexNumber};
use crate::state::sharded::reads::Reads;

#[derive(Clone, Default)]
struct VertexView {
    /// Its number while it exists.
    number: Option<VertexNumber>,
    /// The vertex, where the batch needs it (it updates or deletes it, or created it).
    vertex: Option<Shared<Vertex>>,
    degree: u32,
    /// For a vertex a cascade of the batch may delete: the ids of the edges it had, and of
    /// those the batch added at it (some may be gone since).
    incident: Option<Vec<Id>>,
}

/// What a change replaced, to put back.
enum Undo {
    Vertex(Id, VertexView),
    Edge(Id, Option<NumberedEdge>),
    Took(usize, Numbered),
    Freed(usize),
    Count([u64; 2]),
}

/// The batch's view of one namespace.
#[derive(Default)]
pub(super) struct Space {
    workers: usize,
    vertices: HashMap<Id, VertexView, RandomState>,
    edges: HashMap<Id, Option<NumberedEdge>, RandomState>,
    /// The numbers each owner gives next.
    numbers: HashMap<usize, NextNumbers, RandomState>,
    count: [u64; 2],
    journal: Option<Vec<Undo>>,
}

/// What the executor keeps of a namespace between batches: the numbers each owner gives
/// next and how many elements it holds, which every create changes (so that owners need
/// not be asked, and batches that create on one owner need not wait for each other).
#[derive(Clone, Debug, Default)]
pub(super) struct Kept {
    pub numbers: HashMap<usize, NextNumbers, RandomState>,
    pub count: [u64; 2],
}

/// The batch's view of every namespace it writes.
pub(super) struct Overlay {
    workers: usize,
    spaces: HashMap<Namespace, Space, RandomState>,
    /// The executor's kept state of the namespaces the batch has not touched yet.
    kept: HashMap<Namespace, Kept, RandomState>,
}

impl Overlay {
    /// The view the owners' `reads` give over the executor's `kept` state, tracking the
    /// edges of the vertices in `cascades`.
    pub fn new(
        workers: usize,
        kept: HashMap<Namespace, Kept, RandomState>,
        reads: impl IntoIterator<Item = Reads>,
        cascades: &[(Namespace, Id)],
    ) -> Self {
        let mut overlay = Overlay { workers, spaces: HashMap::default(), kept };
        for reads in reads {
            for (ns, answers) in reads.namespaces {
                let space = overlay.space(&ns);
                space.vertices.reserve(answers.vertices.len());
                space.edges.reserve(answers.edges.len());
                for (id, read) in answers.vertices {
                    let mut view = VertexView::default();
                    if let Some(read) = read {
                        for edge in &read.incident {
                            space.edges.entry(edge.edge.id.clone()).or_insert_with(|| Some(edge.clone()));
                        }
                        view = VertexView {
                            number: Some(read.number),
                            vertex: read.vertex,
                            degree: read.degree,
                            incident: Some(read.incident.into_iter().map(|edge| edge.edge.id.clone()).collect()),
                        };
                    }
                    space.vertices.insert(id, view);
                }
                for (id, edge) in answers.edges {
                    space.edges.insert(id, edge);
                }
            }
        }
        for (ns, id) in cascades {
            let space = overlay.space(ns);
            space.vertices.entry(id.clone()).or_default().incident.get_or_insert_with(Vec::new);
        }
        overlay
    }

    /// The view of `ns`.
    pub fn space(&mut self, ns: &Namespace) -> &mut Space {
        let (workers, kept) = (self.workers, &mut self.kept);
        self.spaces.entry(ns.clone()).or_insert_with(|| {
            let Kept { numbers, count } = kept.remove(ns).unwrap_or_default();
            Space { workers, numbers, count, ..Space::default() }
        })
    }

    /// What the executor keeps after the batch.
    pub fn finish(self) -> HashMap<Namespace, Kept, RandomState> {
        let mut kept = self.kept;
        for (ns, space) in self.spaces {
            kept.insert(ns, Kept { numbers: space.numbers, count: space.count });
        }
        kept
    }
}

impl Space {
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
                Undo::Vertex(id, view) => {
                    self.vertices.insert(id, view);
                }
                Undo::Edge(id, edge) => {
                    self.edges.insert(id, edge);
                }
                Undo::Took(owner, numbered) => self.numbers.entry(owner).or_default().untake(numbered),
                Undo::Freed(owner) => self.numbers.entry(owner).or_default().unfree(),
                Undo::Count(count) => self.count = count,
            }
        }
    }

    fn journal(&mut self, undo: impl FnOnce() -> Undo) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push(undo());
        }
    }

    /// The number of vertex `id`, if it exists.
    pub fn number(&self, id: &str) -> Option<VertexNumber> {
        self.vertices.get(id)?.number
    }

    /// Vertex `id`, if it exists (the batch reads the vertices it updates or deletes).
    pub fn vertex(&self, id: &str) -> Option<&Shared<Vertex>> {
        let view = self.vertices.get(id)?;
        view.number.and(view.vertex.as_ref())
    }

    pub fn degree(&self, id: &str) -> u32 {
        self.vertices.get(id).map_or(0, |view| view.degree)
    }

    /// Sets vertex `id` (`None`: deleted). A new vertex has no edges yet.
    pub fn set_vertex(&mut self, id: &str, vertex: Option<Shared<Vertex>>) {
        let view = self.vertices.entry(id.into()).or_default();
        // Kept only for an atomic record, which may have to put it back.
        let before = self.journal.is_some().then(|| view.clone());
        let created = view.number.is_none();
        view.number = vertex.as_ref().map(|vertex| vertex.number);
        view.vertex = vertex;
        if created || view.number.is_none() {
            view.degree = 0;
            if let Some(incident) = view.incident.as_mut() {
                incident.clear();
            }
        }
        if let Some(before) = before {
            self.journal(|| Undo::Vertex(id.into(), before));
        }
    }

    pub fn edge(&self, id: &str) -> Option<&NumberedEdge> {
        self.edges.get(id)?.as_ref()
    }

    /// Adds `edge`, one more edge at each endpoint.
    pub fn add_edge(&mut self, edge: NumberedEdge) {
        let id = edge.edge.id.clone();
        self.endpoints_changed(&edge, |view, id| {
            view.degree += 1;
            if let Some(incident) = view.incident.as_mut() {
                incident.push(id.clone());
            }
        });
        let before = self.edges.insert(id.clone(), Some(edge));
        self.journal(|| Undo::Edge(id, before.flatten()));
    }

    /// Removes edge `id`, one edge fewer at each endpoint; the edge, if it was there.
    pub fn remove_edge(&mut self, id: &str) -> Option<NumberedEdge> {
        let edge = self.edges.get_mut(id)?.take()?;
        self.journal(|| Undo::Edge(id.into(), Some(edge.clone())));
        self.endpoints_changed(&edge, |view, _| view.degree = view.degree.saturating_sub(1));
        Some(edge)
    }

    /// Changes the views of `edge`'s endpoints this batch holds (a self-loop's once).
    fn endpoints_changed(&mut self, edge: &NumberedEdge, change: impl Fn(&mut VertexView, &Id)) {
        let ends = if edge.edge.from == edge.edge.to { 1 } else { 2 };
        for end in [&edge.edge.from, &edge.edge.to].into_iter().take(ends) {
            if let Some(view) = self.vertices.get_mut(end.as_str()) {
                let before = self.journal.is_some().then(|| view.clone());
                change(view, &edge.edge.id);
                if let Some(before) = before {
                    self.journal(|| Undo::Vertex(end.clone(), before));
                }
            }
        }
    }

    /// The edges at vertex `id` (numbered `number`) now, for a cascade: each once.
    pub fn edges_at(&self, id: &str, number: VertexNumber) -> Vec<Id> {
        let Some(incident) = self.vertices.get(id).and_then(|view| view.incident.as_ref()) else {
            return Vec::new();
        };
        let mut found: Vec<Id> = Vec::new();
        for edge_id in incident {
            let at_vertex = self.edge(edge_id).is_some_and(|edge| edge.from == number || edge.to == number);
            if at_vertex && !found.contains(edge_id) {
                found.push(edge_id.clone());
            }
        }
        found
    }

    /// A number for a new vertex on `owner`, as its slab will give it.
    pub fn take_number(&mut self, owner: usize) -> VertexNumber {
        let numbered = self.numbers.entry(owner).or_default().take();
        self.journal(|| Undo::Took(owner, numbered));
        VertexNumber::new(numbered.id() as u64, owner, self.workers)
    }

    pub fn free_number(&mut self, number: VertexNumber) {
        let (owner, index) = (number.owner(self.workers), number.index(self.workers) as u32);
        self.numbers.entry(owner).or_default().free(index);
        self.journal(|| Undo::Freed(owner));
    }

    /// How many vertices and edges the namespace holds now.
    pub fn count(&self) -> [u64; 2] {
        self.count
    }

    /// Adds `by` to the count of `kind` (0: vertices, 1: edges).
    pub fn add_count(&mut self, kind: usize, by: i64) {
        let before = self.count;
        self.count[kind] = self.count[kind].saturating_add_signed(by);
        self.journal(|| Undo::Count(before));
    }
}
