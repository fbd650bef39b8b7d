//! Traversals: RFC-055's `Traverse`, computed level by level over the arranged adjacency.
//!
//! The coordinator runs beside the RPC that asked. Each hop sends the current frontier, split
//! by owning worker, as `Expand` queries through the request dataflow (so it works across
//! processes); every level reads at the LSN of the first, so the answer is one consistent
//! state. Frontier, expanded edges and kept paths are capped, and the deadline is checked
//! before every level, so a query on a dense graph stops instead of growing without bound.
//!
//! Steps are set-based: each maps the frontier to the vertices reached by `min_hops..=max_hops`
//! hops along edges of its labels and direction. The edge filter restricts every edge
//! followed; the vertex filter and the excluded ids restrict the vertices returned. A path
//! count is the number of walks from the start that reach a vertex through the steps.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::Engine;
use crate::read::filter::Filter;
use crate::read::query::Direction;
use crate::read::reader::{limit, Move, QueryError, Reader};
use crate::state::model::{Edge, Id, Lsn, Namespace, Shared, Vertex, VertexNumber};

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub direction: Direction,
    /// Any label when empty.
    pub labels: Vec<String>,
    pub min_hops: u32,
    pub max_hops: u32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Traversal {
    pub start: String,
    pub steps: Vec<Step>,
    pub limit: Option<usize>,
    pub vertex_filter: Option<Filter>,
    pub edge_filter: Option<Filter>,
    pub include_paths: bool,
    pub exclude: Vec<String>,
    pub rank_by_path_count: bool,
}

/// The bounds a traversal runs under.
#[derive(Clone, Debug, PartialEq)]
pub struct TraversalLimits {
    /// Most hops in all (the sum of the steps' `max_hops`).
    pub max_depth: u32,
    /// Most vertices in one level's frontier.
    pub max_frontier: usize,
    /// Most edges expanded by the whole traversal.
    pub max_expanded_edges: usize,
    /// Most vertices returned when no smaller `limit` is asked for.
    pub max_results: usize,
    /// Most paths kept and returned.
    pub max_paths: usize,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Path {
    pub vertices: Vec<Id>,
    pub edges: Vec<Id>,
    /// The total weight of a weighted shortest path; otherwise the number of edges.
    pub weight: f64,
}

/// A traversal's answer, consistent with `lsn`.
#[derive(Clone, Debug, Default)]
pub struct Traversed {
    pub lsn: Lsn,
    pub vertices: Vec<Shared<Vertex>>,
    /// Parallel to `vertices`.
    pub path_counts: Vec<u64>,
    /// The edges on the walks from the start to the returned vertices, by id.
    pub edges: Vec<Shared<Edge>>,
    /// Paths ending at the returned vertices (when asked), at most `max_paths`.
    pub paths: Vec<Path>,
}

/// Runs `traversal` in `namespace`, once `min_lsn` is applied.
pub async fn traverse(
    engine: &Engine,
    namespace: &Namespace,
    traversal: &Traversal,
    limits: &TraversalLimits,
    min_lsn: Lsn,
) -> Result<Traversed, QueryError> {
    let hops: u32 = traversal.steps.iter().map(|s| s.max_hops).sum();
    if hops > limits.max_depth {
        return Err(limit(
            "max_depth",
            format!("max_depth: the steps take up to {hops} hops; the limit is {}", limits.max_depth),
        ));
    }
    let reader = Reader::new(engine, namespace, limits.timeout);

    // The first hop also checks that the start exists: one round trip instead of two.
    let first_step = traversal.steps.first().filter(|s| s.max_hops >= 1);
    let (lsn, start, mut first_hop) = match first_step {
        Some(step) => {
            let filter = traversal.edge_filter.as_ref();
            let budget = limits.max_expanded_edges;
            let (lsn, start, edges) =
                reader.expand_start(&traversal.start, step.direction, &step.labels, filter, min_lsn, budget).await?;
            (lsn, start, Some(edges))
        }
        None => {
            let (lsn, start) = reader.vertices(&[traversal.start.as_str().into()], None, min_lsn).await?;
            let Some(start) = start.first() else {
                return Err(QueryError::NotFound { field: "start_vertex_id", id: traversal.start.clone() });
            };
            (lsn, start.number, None)
        }
    };

    let mut level = Level::start(start, traversal.include_paths);
    let mut history: Vec<StepHistory> = Vec::with_capacity(traversal.steps.len());
    let mut expanded = 0usize;
    for step in &traversal.steps {
        let mut reached = if step.min_hops == 0 { level.clone() } else { Level::default() };
        let mut record = StepHistory { min_hops: step.min_hops, hops: Vec::new() };
        let mut current = level;
        for hop in 1..=step.max_hops {
            if current.counts.is_empty() {
                break;
            }
            let edges = match first_hop.take() {
                Some(edges) => edges,
                None => {
                    let budget = limits.max_expanded_edges - expanded;
                    let filter = traversal.edge_filter.as_ref();
                    let frontier = current.counts.keys().copied();
                    reader.expand(frontier, step.direction, &step.labels, filter, lsn, budget).await?
                }
            };
            expanded += edges.len();
            let next = current.advance(&edges, limits.max_paths);
            if next.counts.len() > limits.max_frontier {
                return Err(limit(
                    "max_frontier",
                    format!(
                        "max_frontier: a level reached {} vertices; the limit is {}",
                        next.counts.len(),
                        limits.max_frontier
                    ),
                ));
            }
            if hop >= step.min_hops {
                reached.absorb(&next, limits.max_paths);
            }
            record.hops.push(edges);
            current = next;
        }
        history.push(record);
        level = reached;
    }

    // The vertices returned: reached by the last step, not excluded, passing the filter.
    let excluded: HashSet<&str> = traversal.exclude.iter().map(String::as_str).collect();
    let candidates: Vec<VertexNumber> = level.counts.keys().copied().collect();
    let bodies = reader.vertices_numbered(&candidates, lsn).await?;
    let mut found: Vec<(Shared<Vertex>, u64)> = bodies
        .into_iter()
        .filter(|v| !excluded.contains(v.id.as_str()))
        .filter(|v| traversal.vertex_filter.as_ref().is_none_or(|f| f.matches_vertex(v)))
        .map(|v| {
            let count = level.counts.get(&v.number).copied().unwrap_or(0);
            (v, count)
        })
        .collect();
    if traversal.rank_by_path_count {
        found.sort_by(|(a, ca), (b, cb)| cb.cmp(ca).then_with(|| a.id.cmp(&b.id)));
    } else {
        found.sort_by(|(a, _), (b, _)| a.id.cmp(&b.id));
    }
    let wanted = traversal.limit.unwrap_or(usize::MAX);
    if wanted > limits.max_results && found.len() > limits.max_results {
        return Err(limit(
            "max_results",
            format!(
                "max_results: {} vertices match; the limit is {} (ask for fewer with limit)",
                found.len(),
                limits.max_results
            ),
        ));
    }
    found.truncate(wanted);

    let returned: HashSet<VertexNumber> = found.iter().map(|(v, _)| v.number).collect();
    let paths = if traversal.include_paths {
        (level.walks.into_iter())
            .filter(|walk| walk.vertices.last().is_some_and(|number| returned.contains(number)))
            .map(|walk| walk.into_path(&reader))
            .collect()
    } else {
        Vec::new()
    };
    let mut edges = edges_to(&history, returned);
    edges.sort_by(|a, b| a.id.cmp(&b.id));
    let (vertices, path_counts) = found.into_iter().unzip();
    Ok(Traversed { lsn, vertices, path_counts, edges, paths })
}

/// What one step did: per hop, the moves made.
struct StepHistory {
    min_hops: u32,
    hops: Vec<Vec<Move>>,
}

/// The edges on walks that end at one of `targets`, found by walking the history backwards:
/// at each hop keep the moves into a vertex needed there (a target, at a hop whose level
/// counts, or the start of a move kept one hop later), and need their sources one hop earlier.
///
/// No level sets are kept: a target not reached at some hop has no move into it there. For
/// the same reason a step of `min_hops` 0 can pass all its targets back: one not in its input
/// was never in the previous step's counted levels.
fn edges_to(history: &[StepHistory], mut targets: HashSet<VertexNumber>) -> Vec<Shared<Edge>> {
    let mut kept: HashMap<&str, &Shared<Edge>> = HashMap::new();
    for step in history.iter().rev() {
        let mut sources: HashSet<VertexNumber> = HashSet::new();
        for (index, moves) in step.hops.iter().enumerate().rev() {
            let counts = index as u32 + 1 >= step.min_hops;
            let arriving = std::mem::take(&mut sources);
            for Move { source, neighbour, edge } in moves {
                if arriving.contains(neighbour) || (counts && targets.contains(neighbour)) {
                    kept.insert(&edge.id, edge);
                    sources.insert(*source);
                }
            }
        }
        if step.min_hops == 0 {
            sources.extend(targets);
        }
        targets = sources;
    }
    kept.into_values().cloned().collect()
}

/// A path as a query walks it: its vertices by number.
#[derive(Clone, Debug, Default)]
pub(crate) struct Walk {
    pub vertices: Vec<VertexNumber>,
    pub edges: Vec<Id>,
}

impl Walk {
    pub(crate) fn from(start: VertexNumber) -> Walk {
        Walk { vertices: vec![start], edges: Vec::new() }
    }

    /// The walk one edge further, to `to`.
    pub(crate) fn then(&self, edge: &Id, to: VertexNumber) -> Walk {
        let mut longer = self.clone();
        longer.vertices.push(to);
        longer.edges.push(edge.clone());
        longer
    }

    /// The path it is, its vertices named by id and weighing its number of edges.
    pub(crate) fn into_path(self, reader: &Reader<'_>) -> Path {
        let weight = self.edges.len() as f64;
        Path { vertices: reader.ids_of(&self.vertices), edges: self.edges, weight }
    }
}

/// One level of a traversal: the vertices in it with their path counts, and (when paths
/// are asked for) the walks reaching them, capped.
#[derive(Clone, Default)]
struct Level {
    counts: HashMap<VertexNumber, u64>,
    walks: Vec<Walk>,
    keep_paths: bool,
}

impl Level {
    fn start(start: VertexNumber, keep_paths: bool) -> Level {
        let walks = if keep_paths { vec![Walk::from(start)] } else { Vec::new() };
        Level { counts: HashMap::from([(start, 1)]), walks, keep_paths }
    }

    /// The level one hop further along `edges`.
    fn advance(&self, edges: &[Move], max_paths: usize) -> Level {
        let mut next = Level { keep_paths: self.keep_paths, ..Level::default() };
        let mut walks_ending_at: HashMap<VertexNumber, Vec<usize>> = HashMap::new();
        if self.keep_paths {
            for (i, walk) in self.walks.iter().enumerate() {
                if let Some(last) = walk.vertices.last() {
                    walks_ending_at.entry(*last).or_default().push(i);
                }
            }
        }
        for Move { source, neighbour, edge } in edges {
            let count = self.counts.get(source).copied().unwrap_or(0);
            let slot = next.counts.entry(*neighbour).or_insert(0);
            *slot = slot.saturating_add(count);
            for &i in walks_ending_at.get(source).into_iter().flatten() {
                if next.walks.len() >= max_paths {
                    break;
                }
                next.walks.push(self.walks[i].then(&edge.id, *neighbour));
            }
        }
        next
    }

    /// Adds `other`'s vertices (summing counts) and walks to this level.
    fn absorb(&mut self, other: &Level, max_paths: usize) {
        for (number, count) in &other.counts {
            let slot = self.counts.entry(*number).or_insert(0);
            *slot = slot.saturating_add(*count);
        }
        let room = max_paths.saturating_sub(self.walks.len());
        self.walks.extend(other.walks.iter().take(room).cloned());
        self.keep_paths |= other.keep_paths;
    }
}
