//! Path queries: shortest path (fewest hops, or least weight), all simple paths, and the
//! simple cycles through a vertex. Edges are followed from source to target.
//!
//! Like traversals, they proceed level by level through the request dataflow at one LSN,
//! within the query's deadline, with the number of partial paths, expanded edges and results
//! bounded by [`PathLimits`]. A shortest path costs O(edges) whatever its length, so only
//! time and expanded edges bound it (and the caller's `max_hops`, if given); all paths and
//! cycles, whose number grows exponentially with their length, keep a cap on hops too.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use crate::engine::Engine;
use crate::read::query::Direction;
use crate::read::reader::{limit, Move, QueryError, Reader};
use crate::read::traverse::{Path, Walk};
use crate::state::model::{Edge, Id, Lsn, Namespace, Value, VertexNumber};

/// The bounds a path query runs under.
#[derive(Clone, Debug, PartialEq)]
pub struct PathLimits {
    /// Most hops an AllPaths path or a cycle may have (not a shortest path).
    pub max_hops: u32,
    /// Most vertices (shortest path) or partial paths (all paths, cycles) in one level.
    pub max_frontier: usize,
    /// Most edges the query may expand in all.
    pub max_expanded_edges: usize,
    /// Most paths or cycles returned.
    pub max_paths: usize,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShortestPath {
    pub start: String,
    pub end: String,
    /// Most edges the path may have; unbounded when absent.
    pub max_hops: Option<u32>,
    /// A numeric edge property to minimise the sum of; fewest hops when absent.
    pub weight_property: Option<String>,
    /// Any label when empty.
    pub labels: Vec<String>,
}

/// A query's paths, consistent with `lsn`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FoundPaths {
    pub lsn: Lsn,
    pub paths: Vec<Path>,
}

/// Runs the shortest-path query; no path is an empty list, not an error.
pub async fn shortest_path(
    engine: &Engine,
    namespace: &Namespace,
    query: &ShortestPath,
    limits: &PathLimits,
    min_lsn: Lsn,
) -> Result<FoundPaths, QueryError> {
    let mut search = Search::new(engine, namespace, limits);
    let (lsn, start, end) = search.endpoints(&query.start, Some(&query.end), min_lsn).await?;
    let path = if start == end {
        Some(Path { vertices: vec![query.start.as_str().into()], edges: Vec::new(), weight: 0.0 })
    } else {
        match (&query.weight_property, query.max_hops) {
            (None, max_hops) => search.fewest_hops(query, [start, end], max_hops, lsn).await?,
            (Some(property), Some(max_hops)) => {
                search.least_weight(query, [start, end], property, max_hops, lsn).await?
            }
            (Some(property), None) => search.dijkstra(query, [start, end], property, lsn).await?,
        }
    };
    Ok(FoundPaths { lsn, paths: path.into_iter().collect() })
}

/// All simple paths from `start` to `end`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllPaths {
    pub start: String,
    pub end: String,
    /// Most edges a path may have; the server's limit when absent.
    pub max_hops: Option<u32>,
    /// Most paths returned; the server's limit when absent.
    pub limit: Option<usize>,
}

/// The simple cycles through `start`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cycles {
    pub start: String,
    /// Any label when empty.
    pub labels: Vec<String>,
    /// Most edges a cycle may have; the server's limit when absent.
    pub max_depth: Option<u32>,
    /// Fewest edges a cycle may have (a self-loop has one).
    pub min_length: u32,
}

/// The simple paths from `start` to `end` of at most `max_hops` edges, shortest first, at
/// most `limit` of them.
pub async fn all_paths(
    engine: &Engine,
    namespace: &Namespace,
    query: &AllPaths,
    limits: &PathLimits,
    min_lsn: Lsn,
) -> Result<FoundPaths, QueryError> {
    let (start, end) = (query.start.as_str(), query.end.as_str());
    let max_hops = hop_cap("max_hops", query.max_hops, limits)?;
    let wanted = query.limit.unwrap_or(limits.max_paths).min(limits.max_paths);
    let mut search = Search::new(engine, namespace, limits);
    let (lsn, start_number, end_number) = search.endpoints(start, Some(end), min_lsn).await?;
    if start == end {
        let trivial = Path { vertices: vec![start.into()], edges: Vec::new(), weight: 0.0 };
        return Ok(FoundPaths { lsn, paths: vec![trivial] });
    }
    let paths = search.simple_paths([start_number, end_number], &[], max_hops, 1, wanted, lsn).await?;
    Ok(FoundPaths { lsn, paths })
}

/// The simple cycles through `start` of `min_length..=max_depth` edges along `labels`,
/// each once, written from `start` back to it.
pub async fn detect_cycles(
    engine: &Engine,
    namespace: &Namespace,
    query: &Cycles,
    limits: &PathLimits,
    min_lsn: Lsn,
) -> Result<FoundPaths, QueryError> {
    let (start, labels, min_length) = (query.start.as_str(), &query.labels, query.min_length);
    let max_depth = hop_cap("max_depth", query.max_depth, limits)?;
    let mut search = Search::new(engine, namespace, limits);
    let (lsn, start, _) = search.endpoints(start, None, min_lsn).await?;
    let paths =
        search.simple_paths([start, start], labels, max_depth, min_length.max(1), limits.max_paths, lsn).await?;
    Ok(FoundPaths { lsn, paths })
}

fn hop_cap(field: &'static str, asked: Option<u32>, limits: &PathLimits) -> Result<u32, QueryError> {
    match asked {
        None => Ok(limits.max_hops),
        Some(hops) if hops > limits.max_hops => {
            Err(limit("max_hops", format!("{field}: {hops} exceeds the server's limit of {} hops", limits.max_hops)))
        }
        Some(hops) => Ok(hops),
    }
}

/// One side of a bidirectional search: vertex -> (depth, (its neighbour toward the side's
/// root, the edge between them)).
type Parents = HashMap<VertexNumber, (u32, Option<(VertexNumber, Id)>)>;

/// One relaxation round: vertex -> (distance, (previous vertex, edge, round of the previous)).
type Round = HashMap<VertexNumber, (f64, Option<(VertexNumber, Id, usize)>)>;

/// State shared by the searches: the reader and the edge budget.
struct Search<'a> {
    reader: Reader<'a>,
    limits: &'a PathLimits,
    expanded: usize,
}

impl<'a> Search<'a> {
    fn new(engine: &'a Engine, namespace: &'a Namespace, limits: &'a PathLimits) -> Self {
        Search { reader: Reader::new(engine, namespace, limits.timeout), limits, expanded: 0 }
    }

    /// Checks that the endpoints exist; returns the LSN every later read uses and their
    /// numbers (the start's twice when there is no end).
    async fn endpoints(
        &self,
        start: &str,
        end: Option<&str>,
        min_lsn: Lsn,
    ) -> Result<(Lsn, VertexNumber, VertexNumber), QueryError> {
        let mut ids = vec![Id::from(start)];
        ids.extend(end.filter(|e| *e != start).map(Id::from));
        let (lsn, found) = self.reader.vertices(&ids, None, min_lsn).await?;
        let number_of = |id: &str| found.iter().find(|v| v.id == id).map(|v| v.number);
        let Some(start_number) = number_of(start) else {
            return Err(QueryError::NotFound { field: "start_vertex_id", id: start.to_owned() });
        };
        let end_number = match end {
            Some(end) => {
                number_of(end).ok_or_else(|| QueryError::NotFound { field: "end_vertex_id", id: end.to_owned() })?
            }
            None => start_number,
        };
        Ok((lsn, start_number, end_number))
    }

    /// One hop from `frontier`, charged against the edge budget.
    async fn hop(
        &mut self,
        frontier: impl Iterator<Item = VertexNumber>,
        direction: Direction,
        labels: &[String],
        lsn: Lsn,
    ) -> Result<Vec<Move>, QueryError> {
        let budget = self.limits.max_expanded_edges - self.expanded;
        let edges = self.reader.expand(frontier, direction, labels, None, lsn, budget).await?;
        self.expanded += edges.len();
        Ok(edges)
    }

    fn check_frontier(&self, size: usize) -> Result<(), QueryError> {
        if size > self.limits.max_frontier {
            return Err(limit(
                "max_frontier",
                format!("max_frontier: a level reached {size}; the limit is {}", self.limits.max_frontier),
            ));
        }
        Ok(())
    }

    /// Bidirectional breadth-first search: each round grows the smaller side by one level.
    async fn fewest_hops(
        &mut self,
        query: &ShortestPath,
        [start, end]: [VertexNumber; 2],
        max_hops: Option<u32>,
        lsn: Lsn,
    ) -> Result<Option<Path>, QueryError> {
        let mut sides: [Parents; 2] = [HashMap::from([(start, (0, None))]), HashMap::from([(end, (0, None))])];
        let mut frontiers = [vec![start], vec![end]];
        let mut depths = [0u32, 0u32];
        let within = |depths: &[u32; 2]| max_hops.is_none_or(|max| depths[0] + depths[1] < max);
        while within(&depths) && !frontiers[0].is_empty() && !frontiers[1].is_empty() {
            let side = if frontiers[0].len() <= frontiers[1].len() { 0 } else { 1 };
            let direction = if side == 0 { Direction::Out } else { Direction::In };
            let edges = self.hop(frontiers[side].iter().copied(), direction, &query.labels, lsn).await?;
            depths[side] += 1;
            let mut next = Vec::new();
            for Move { source, neighbour, edge } in edges {
                if !sides[side].contains_key(&neighbour) {
                    sides[side].insert(neighbour, (depths[side], Some((source, edge.id.clone()))));
                    next.push(neighbour);
                }
            }
            self.check_frontier(next.len())?;
            let other = 1 - side;
            // Of the vertices where the sides meet, the one nearest the other side's root,
            // the least id among equals.
            let meetings: Vec<(u32, VertexNumber)> =
                next.iter().filter_map(|v| sides[other].get(v).map(|(d, _)| (*d, *v))).collect();
            let ids = self.reader.ids_of(&meetings.iter().map(|(_, v)| *v).collect::<Vec<_>>());
            let meeting = meetings.iter().zip(&ids).map(|((d, v), id)| (*d, id, *v)).min();
            if let Some((_, _, meet)) = meeting {
                return Ok(Some(join(&sides[0], &sides[1], meet).into_path(&self.reader)));
            }
            frontiers[side] = next;
        }
        Ok(None)
    }

    /// Least total weight over paths of at most `max_hops` edges: synchronous rounds of
    /// relaxation (hop-bounded Bellman-Ford), each round one level, history kept per round
    /// so that the path read back has at most `max_hops` edges.
    async fn least_weight(
        &mut self,
        query: &ShortestPath,
        [start, end]: [VertexNumber; 2],
        property: &str,
        max_hops: u32,
        lsn: Lsn,
    ) -> Result<Option<Path>, QueryError> {
        let mut rounds: Vec<Round> = vec![HashMap::from([(start, (0.0, None))])];
        let mut best: HashMap<VertexNumber, (f64, usize)> = HashMap::from([(start, (0.0, 0))]);
        for round in 1..=max_hops as usize {
            let previous = &rounds[round - 1];
            if previous.is_empty() {
                break;
            }
            let edges = self.hop(previous.keys().copied(), Direction::Out, &query.labels, lsn).await?;
            let bound = best.get(&end).map_or(f64::INFINITY, |(d, _)| *d);
            let mut improved: Round = HashMap::new();
            for Move { source, neighbour, edge } in edges {
                let weight = edge_weight(&edge, property)?;
                let Some((from_distance, _)) = previous.get(&source) else { continue };
                let candidate = from_distance + weight;
                let known = best.get(&neighbour).map_or(f64::INFINITY, |(d, _)| *d);
                let this_round = improved.get(&neighbour).map_or(f64::INFINITY, |(d, _)| *d);
                if candidate < known && candidate < this_round && candidate < bound {
                    improved.insert(neighbour, (candidate, Some((source, edge.id.clone(), round - 1))));
                }
            }
            self.check_frontier(improved.len())?;
            for (vertex, (distance, _)) in &improved {
                best.insert(*vertex, (*distance, round));
            }
            rounds.push(improved);
        }
        let Some(&(total, mut round)) = best.get(&end) else { return Ok(None) };
        let mut walk = Walk::from(end);
        let mut at = end;
        while let Some((_, Some((previous, edge, previous_round)))) = rounds[round].get(&at) {
            walk.edges.push(edge.clone());
            walk.vertices.push(*previous);
            at = *previous;
            round = *previous_round;
        }
        walk.vertices.reverse();
        walk.edges.reverse();
        Ok(Some(Path { weight: total, ..walk.into_path(&self.reader) }))
    }

    /// Least total weight with no bound on hops: Dijkstra, reading the out-edges of the
    /// nearest unsettled vertices in batches, one round trip each, and settling as far as
    /// the edges read allow. Exact: a vertex is settled only from the top of the queue.
    async fn dijkstra(
        &mut self,
        query: &ShortestPath,
        [start, end]: [VertexNumber; 2],
        property: &str,
        lsn: Lsn,
    ) -> Result<Option<Path>, QueryError> {
        /// Vertices whose out-edges one round trip reads.
        const BATCH: usize = 128;
        let mut distance: HashMap<VertexNumber, f64> = HashMap::from([(start, 0.0)]);
        let mut parent: HashMap<VertexNumber, (VertexNumber, Id)> = HashMap::new();
        let mut settled: HashSet<VertexNumber> = HashSet::new();
        // Ties between equal distances are broken by id, as the answer's order is.
        let start_id = Id::from(query.start.as_str());
        let mut queue: BinaryHeap<Reverse<(Weight, Id, VertexNumber)>> =
            BinaryHeap::from([Reverse((Weight(0.0), start_id, start))]);
        // Out-edges read so far: vertex -> (target, its id, edge, weight).
        let mut out: HashMap<VertexNumber, Vec<(VertexNumber, Id, Id, f64)>> = HashMap::new();
        loop {
            while let Some(Reverse((Weight(d), _, vertex))) = queue.peek() {
                let (d, vertex) = (*d, *vertex);
                if settled.contains(&vertex) || distance.get(&vertex).is_some_and(|best| *best < d) {
                    queue.pop();
                    continue;
                }
                if vertex == end {
                    let path = walk_back(&parent, start, end).into_path(&self.reader);
                    return Ok(Some(Path { weight: d, ..path }));
                }
                let Some(edges) = out.get(&vertex) else { break };
                queue.pop();
                for (to, to_id, edge, weight) in edges {
                    let candidate = d + weight;
                    if !settled.contains(to) && distance.get(to).is_none_or(|best| candidate < *best) {
                        distance.insert(*to, candidate);
                        parent.insert(*to, (vertex, edge.clone()));
                        queue.push(Reverse((Weight(candidate), to_id.clone(), *to)));
                    }
                }
                settled.insert(vertex);
            }
            if queue.is_empty() {
                return Ok(None);
            }
            // The nearest vertices whose edges are not read yet, in one read.
            let mut taken = Vec::new();
            let mut wanted = Vec::new();
            while let Some(Reverse((weight, id, vertex))) = queue.pop() {
                if !settled.contains(&vertex) && !out.contains_key(&vertex) && !wanted.contains(&vertex) {
                    wanted.push(vertex);
                }
                taken.push(Reverse((weight, id, vertex)));
                if wanted.len() == BATCH {
                    break;
                }
            }
            queue.extend(taken);
            self.check_frontier(wanted.len())?;
            for vertex in &wanted {
                out.insert(*vertex, Vec::new());
            }
            for Move { source, neighbour, edge } in
                self.hop(wanted.iter().copied(), Direction::Out, &query.labels, lsn).await?
            {
                let weight = edge_weight(&edge, property)?;
                if let Some(edges) = out.get_mut(&source) {
                    edges.push((neighbour, edge.to.clone(), edge.id.clone(), weight));
                }
            }
        }
    }

    /// Simple walks from `start` that reach `end` after `min_length..=max_length` edges,
    /// shortest first, at most `wanted` (a cycle when `start == end`).
    async fn simple_paths(
        &mut self,
        [start, end]: [VertexNumber; 2],
        labels: &[String],
        max_length: u32,
        min_length: u32,
        wanted: usize,
        lsn: Lsn,
    ) -> Result<Vec<Path>, QueryError> {
        let mut partial = vec![Walk::from(start)];
        let mut found = Vec::new();
        for length in 1..=max_length {
            if partial.is_empty() || found.len() >= wanted {
                break;
            }
            let ends: HashSet<VertexNumber> = partial.iter().filter_map(|walk| walk.vertices.last().copied()).collect();
            let edges = self.hop(ends.into_iter(), Direction::Out, labels, lsn).await?;
            // Each vertex's way on, in the order of the neighbours' ids and then the edges'.
            let mut out: HashMap<VertexNumber, Vec<(Id, Id, VertexNumber)>> = HashMap::new();
            for Move { source, neighbour, edge } in edges {
                out.entry(source).or_default().push((edge.to.clone(), edge.id.clone(), neighbour));
            }
            for next in out.values_mut() {
                next.sort();
            }
            let mut extended = Vec::new();
            let mut reached = Vec::new();
            for walk in &partial {
                let Some(last) = walk.vertices.last() else { continue };
                for (_, edge, neighbour) in out.get(last).into_iter().flatten() {
                    let longer = walk.then(edge, *neighbour);
                    if *neighbour == end {
                        if length >= min_length {
                            reached.push(longer.into_path(&self.reader));
                        }
                    } else if !walk.vertices.contains(neighbour) {
                        extended.push(longer);
                    }
                }
            }
            self.check_frontier(extended.len())?;
            reached.sort_by(|a, b| a.vertices.cmp(&b.vertices).then_with(|| a.edges.cmp(&b.edges)));
            found.extend(reached);
            partial = extended;
        }
        found.truncate(wanted);
        Ok(found)
    }
}

/// An edge weight ordered for the queue (weights are never NaN: `edge_weight` refuses them).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Weight(f64);

impl Eq for Weight {}

impl PartialOrd for Weight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Weight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The walk from `start` to `end` that `parent` (vertex -> (previous, edge)) records.
fn walk_back(parent: &HashMap<VertexNumber, (VertexNumber, Id)>, start: VertexNumber, end: VertexNumber) -> Walk {
    let mut walk = Walk::from(end);
    let mut at = end;
    while at != start {
        let Some((previous, edge)) = parent.get(&at) else { break };
        walk.edges.push(edge.clone());
        walk.vertices.push(*previous);
        at = *previous;
    }
    walk.vertices.reverse();
    walk.edges.reverse();
    walk
}

/// The walk through `meet` from the forward side's root to the backward side's root.
fn join(forward: &Parents, backward: &Parents, meet: VertexNumber) -> Walk {
    let mut walk = Walk::from(meet);
    let mut at = meet;
    while let Some((_, Some((previous, edge)))) = forward.get(&at) {
        walk.vertices.push(*previous);
        walk.edges.push(edge.clone());
        at = *previous;
    }
    walk.vertices.reverse();
    walk.edges.reverse();
    let mut at = meet;
    while let Some((_, Some((next, edge)))) = backward.get(&at) {
        walk.vertices.push(*next);
        walk.edges.push(edge.clone());
        at = *next;
    }
    walk
}

/// An edge's weight: its numeric, non-negative `property`.
fn edge_weight(edge: &Edge, property: &str) -> Result<f64, QueryError> {
    let weight = match edge.properties.get(property) {
        Some(Value::Int(i)) => *i as f64,
        Some(Value::Double(d)) if !d.is_nan() => *d,
        _ => {
            return Err(QueryError::InvalidArgument(format!(
                "weight_property: edge {:?} has no numeric property {property:?}",
                edge.id
            )))
        }
    };
    if weight < 0.0 {
        return Err(QueryError::InvalidArgument(format!("weight_property: edge {:?} has a negative weight", edge.id)));
    }
    Ok(weight)
}
