//! A standing PageRank: one namespace's graph (or the subgraph a vertex filter induces) with
//! its PageRank kept current, change by change, and the ranking subscribers read from it.
//!
//! It follows the changes of the vertex and edge collections one LSN at a time
//! ([`StandingPageRank::apply`]) and keeps three things in step:
//! - the vertex ids, as dense slots (the push state works on indexes, not strings);
//! - with a filter, every edge of the namespace by both ends (the mirror), so that a vertex
//!   whose properties make it join or leave the subgraph brings or takes its edges;
//! - the [`IncrementalPageRank`] of the members, and a ranking of them by estimate, repaired
//!   only for the vertices whose estimate moved.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::algorithms::incremental_page_rank::IncrementalPageRank;
use crate::read::filter::Filter;
use crate::state::graph::Change;
use crate::state::model::{Edge, Id, Lsn, Namespace, Shared, Vertex};

/// What a subscriber asks for; subscribers asking the same share one standing PageRank.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionParams {
    pub namespace: Namespace,
    /// In (0, 1).
    pub damping: f64,
    /// The relative error each score is guaranteed within (> 0).
    pub error_bound: f64,
    /// The subgraph induced by the vertices passing it.
    pub filter: Option<Filter>,
    /// Top this many by score (ties by id); all when 0.
    pub top_k: usize,
}

impl SubscriptionParams {
    /// Equal parameters give equal keys (the filter's values printed exactly).
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}

/// One message of a subscription: the ranking as of an LSN.
#[derive(Clone, Debug, PartialEq)]
pub struct RankUpdate {
    pub lsn: Lsn,
    /// Highest score first, ties by id.
    pub scores: Vec<(Arc<str>, f64)>,
    pub error_bound: f64,
}

/// A total order on estimates, highest first in the ranking.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Every edge of the namespace by both ends, members or not (kept only with a filter).
#[derive(Default)]
struct Mirror {
    out: Vec<Vec<u32>>,
    into: Vec<Vec<u32>>,
}

impl Mirror {
    fn add(&mut self, from: u32, to: u32) {
        let needed = from.max(to) as usize + 1;
        if self.out.len() < needed {
            self.out.resize_with(needed, Vec::new);
            self.into.resize_with(needed, Vec::new);
        }
        self.out[from as usize].push(to);
        self.into[to as usize].push(from);
    }

    fn remove(&mut self, from: u32, to: u32) {
        remove_one(&mut self.out[from as usize], to);
        remove_one(&mut self.into[to as usize], from);
    }

    /// The edges at `vertex`, each once (a self-loop from the out-list only).
    fn incident(&self, vertex: u32) -> Vec<(u32, u32)> {
        let v = vertex as usize;
        let out = self.out.get(v).into_iter().flatten().map(|&to| (vertex, to));
        let into = self.into.get(v).into_iter().flatten().filter(|&&from| from != vertex).map(|&from| (from, vertex));
        out.chain(into).collect()
    }
}

/// A vertex id an LSN touched, with its version afterwards (none: deleted).
type VertexAfter<'a> = (&'a Id, Option<&'a Shared<Vertex>>);

/// One LSN's changes in `namespace`, netted (a record may create and delete the same thing):
/// each touched vertex id with the version it has afterwards (none: deleted), and each edge
/// with its net count.
fn net_changes<'a>(namespace: &Namespace, changes: &'a [Change]) -> (Vec<VertexAfter<'a>>, Vec<(&'a Edge, isize)>) {
    let mut vertices: HashMap<*const Vertex, (&'a Id, &'a Shared<Vertex>, isize), RandomState> = HashMap::default();
    let mut edges: HashMap<*const Edge, (&'a Edge, isize), RandomState> = HashMap::default();
    for change in changes {
        match change {
            Change::Vertex(ns, vertex, diff) if ns == namespace => {
                vertices.entry(Shared::as_ptr(vertex)).or_insert((&vertex.id, vertex, 0)).2 += diff;
            }
            Change::Edge(ns, edge, diff) if ns == namespace => {
                edges.entry(Shared::as_ptr(&edge.edge)).or_insert((&edge.edge, 0)).1 += diff;
            }
            _ => {}
        }
    }
    let mut after: Vec<VertexAfter<'a>> = Vec::new();
    let mut position: HashMap<&str, usize, RandomState> = HashMap::default();
    for (id, vertex, diff) in vertices.into_values().filter(|(_, _, diff)| *diff != 0) {
        let version = (diff > 0).then_some(vertex);
        match position.get(id.as_str()) {
            Some(&i) => after[i].1 = after[i].1.or(version),
            None => {
                position.insert(id.as_str(), after.len());
                after.push((id, version));
            }
        }
    }
    let edges = edges.into_values().filter(|(_, diff)| *diff != 0).collect();
    (after, edges)
}

fn remove_one(list: &mut Vec<u32>, item: u32) {
    if let Some(position) = list.iter().position(|&x| x == item) {
        list.swap_remove(position);
    }
}

pub struct StandingPageRank {
    params: SubscriptionParams,
    ranks: IncrementalPageRank,
    slots: HashMap<Arc<str>, u32, RandomState>,
    ids: Vec<Option<Arc<str>>>,
    member: Vec<bool>,
    free: Vec<u32>,
    mirror: Option<Mirror>,
    /// Members by estimate, highest first, ties by id; `ranked` holds the estimate each
    /// member was filed under.
    ranking: BTreeSet<(Reverse<Score>, Arc<str>)>,
    ranked: Vec<f64>,
    changed: Vec<u32>,
    /// Edge visits of the pushes since the last changes were applied.
    last_work: u64,
    /// Whether the ranking has been filled (once the start's pushes are done).
    ranked_all: bool,
}

impl StandingPageRank {
    /// The standing PageRank of the namespace's `vertices` and `edges` (those of other
    /// namespaces must already be left out), settled and ranked.
    pub fn build(params: SubscriptionParams, vertices: &[Shared<Vertex>], edges: &[Shared<Edge>]) -> Self {
        let mut standing = Self::start(params, vertices, edges);
        standing.settle(u64::MAX);
        standing
    }

    /// As [`StandingPageRank::build`], with the pushes that follow the start's power
    /// iterations still to run: [`StandingPageRank::settle`] runs them, a budget at a time,
    /// and fills the ranking once they are done.
    pub fn start(params: SubscriptionParams, vertices: &[Shared<Vertex>], edges: &[Shared<Edge>]) -> Self {
        let mut slots: HashMap<Arc<str>, u32, RandomState> = HashMap::default();
        let mut ids = Vec::with_capacity(vertices.len());
        let mut member = Vec::with_capacity(vertices.len());
        for vertex in vertices {
            let id: Arc<str> = Arc::from(vertex.id.as_str());
            slots.insert(id.clone(), ids.len() as u32);
            ids.push(Some(id));
            member.push(params.filter.as_ref().is_none_or(|f| f.matches_vertex(vertex)));
        }
        let mut mirror = params.filter.as_ref().map(|_| Mirror::default());
        let mut member_edges = Vec::with_capacity(edges.len());
        for edge in edges {
            let (Some(&from), Some(&to)) = (slots.get(edge.from.as_str()), slots.get(edge.to.as_str())) else {
                continue;
            };
            if let Some(mirror) = mirror.as_mut() {
                mirror.add(from, to);
            }
            if member[from as usize] && member[to as usize] {
                member_edges.push((from, to));
            }
        }
        let members = (0..ids.len() as u32).filter(|&v| member[v as usize]);
        let tolerance = IncrementalPageRank::tolerance_for(params.error_bound, params.damping);
        let ranks = IncrementalPageRank::unsettled(members, member_edges, params.damping, tolerance);
        StandingPageRank {
            params,
            ranks,
            slots,
            ids,
            member,
            free: Vec::new(),
            mirror,
            ranking: BTreeSet::new(),
            ranked: Vec::new(),
            changed: Vec::new(),
            last_work: 0,
            ranked_all: false,
        }
    }

    pub fn params(&self) -> &SubscriptionParams {
        &self.params
    }

    /// Edges visited by the pushes since the last changes were applied.
    pub fn last_work(&self) -> u64 {
        self.last_work
    }

    fn is_member(&self, vertex: u32) -> bool {
        self.member.get(vertex as usize).copied().unwrap_or(false)
    }

    fn slot_of(&mut self, id: &str) -> u32 {
        if let Some(&slot) = self.slots.get(id) {
            return slot;
        }
        let id: Arc<str> = Arc::from(id);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.ids[slot as usize] = Some(id.clone());
                slot
            }
            None => {
                self.ids.push(Some(id.clone()));
                self.member.push(false);
                (self.ids.len() - 1) as u32
            }
        };
        self.slots.insert(id, slot);
        slot
    }

    /// Applies one LSN's changes (all of them, in any order) and settles. Returns whether
    /// anything in this namespace changed.
    pub fn apply(&mut self, changes: &[Change]) -> bool {
        let changed = self.apply_changes(changes);
        self.settle(u64::MAX);
        changed
    }

    /// Applies one LSN's changes (all of them, in any order) to the graph and the push
    /// invariant, leaving the pushes to [`StandingPageRank::settle`]. Returns whether anything
    /// in this namespace changed. The changes of several LSNs may be applied before settling:
    /// the result is then that of the last.
    pub fn apply_changes(&mut self, changes: &[Change]) -> bool {
        self.last_work = 0;
        let (vertices, edges) = net_changes(&self.params.namespace, changes);
        if vertices.is_empty() && edges.is_empty() {
            return false;
        }

        // Edges go before their vertices leave and come after they join, so the push state
        // only ever holds edges between members.
        for &(edge, diff) in &edges {
            if diff < 0 {
                self.edge_changed(edge, false);
            }
        }
        let wants = |vertex: &Vertex| self.params.filter.as_ref().is_none_or(|f| f.matches_vertex(vertex));
        let verdicts: Vec<(&str, bool, bool)> = vertices
            .iter()
            .map(|(id, after)| (id.as_str(), after.is_some(), after.is_some_and(|v| wants(v))))
            .collect();
        for &(id, exists, joins) in &verdicts {
            let slot = self.slot_of(id);
            match (self.is_member(slot), joins) {
                (true, false) => self.leave(slot),
                (false, true) => self.join(slot),
                _ => {}
            }
            if !exists {
                self.release(slot);
            }
        }
        for &(edge, diff) in &edges {
            if diff > 0 {
                self.edge_changed(edge, true);
            }
        }
        true
    }

    /// Runs pushes for about `budget` edge visits at most; once none are left, brings the
    /// ranking up to date and returns true. Until then the ranking is that of the last
    /// settled state.
    pub fn settle(&mut self, budget: u64) -> bool {
        let (visits, settled) = self.ranks.settle_within(budget);
        self.last_work += visits;
        if !settled {
            return false;
        }
        let mut changed = std::mem::take(&mut self.changed);
        self.ranks.take_changed(&mut changed);
        if self.ranked_all {
            for &vertex in &changed {
                self.rerank(vertex);
            }
        } else {
            for vertex in 0..self.ids.len() as u32 {
                self.rerank(vertex);
            }
            self.ranked_all = true;
        }
        changed.clear();
        self.changed = changed;
        true
    }

    fn edge_changed(&mut self, edge: &Edge, inserted: bool) {
        let (Some(&from), Some(&to)) = (self.slots.get(edge.from.as_str()), self.slots.get(edge.to.as_str())) else {
            tracing::warn!(edge = %edge.id, "an edge change names a vertex the standing PageRank does not know");
            return;
        };
        if let Some(mirror) = self.mirror.as_mut() {
            if inserted {
                mirror.add(from, to);
            } else {
                mirror.remove(from, to);
            }
        }
        if self.is_member(from) && self.is_member(to) {
            if inserted {
                self.ranks.insert_edge(from, to);
            } else {
                self.ranks.remove_edge(from, to);
            }
        }
    }

    fn join(&mut self, vertex: u32) {
        self.member[vertex as usize] = true;
        self.ranks.insert_vertex(vertex);
        let incident = self.mirror.as_ref().map(|m| m.incident(vertex)).unwrap_or_default();
        for (from, to) in incident {
            if self.is_member(from) && self.is_member(to) {
                self.ranks.insert_edge(from, to);
            }
        }
    }

    fn leave(&mut self, vertex: u32) {
        let incident = self.mirror.as_ref().map(|m| m.incident(vertex)).unwrap_or_default();
        for (from, to) in incident {
            if self.is_member(from) && self.is_member(to) {
                self.ranks.remove_edge(from, to);
            }
        }
        self.ranks.remove_vertex(vertex);
        self.member[vertex as usize] = false;
    }

    /// Frees a deleted vertex's slot (its edges are gone by the graph's rules).
    fn release(&mut self, vertex: u32) {
        // Out of the ranking while its id still names its entry there.
        self.rerank(vertex);
        if let Some(id) = self.ids[vertex as usize].take() {
            self.slots.remove(&id);
            self.free.push(vertex);
        }
    }

    /// Files `vertex` in the ranking under its current estimate (or takes it out).
    fn rerank(&mut self, vertex: u32) {
        let v = vertex as usize;
        if self.ranked.len() <= v {
            self.ranked.resize(v + 1, f64::NAN);
        }
        let id = self.ids[v].clone();
        let old = self.ranked[v];
        if !old.is_nan() {
            if let Some(id) = &id {
                self.ranking.remove(&(Reverse(Score(old)), id.clone()));
            }
            self.ranked[v] = f64::NAN;
        }
        if let (Some(id), true) = (id, self.is_member(vertex)) {
            let estimate = self.ranks.estimate(vertex);
            self.ranking.insert((Reverse(Score(estimate)), id));
            self.ranked[v] = estimate;
        }
    }

    /// The top `top_k` scores (all when 0), normalised, as of `lsn`.
    pub fn top(&self, lsn: Lsn) -> RankUpdate {
        let take = if self.params.top_k == 0 { usize::MAX } else { self.params.top_k };
        let scores = self
            .ranking
            .iter()
            .take(take)
            .filter_map(|(_, id)| {
                let slot = *self.slots.get(id)?;
                Some((id.clone(), self.ranks.score(slot)?))
            })
            .collect();
        RankUpdate { lsn, scores, error_bound: self.ranks.error_bound() }
    }

    /// How many vertices are in the subgraph.
    pub fn members(&self) -> usize {
        self.ranking.len()
    }
}
