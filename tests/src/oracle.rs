//! Independent answers to graph queries, written plainly over an edge list, to check the
//! server against: random graphs, and what Traverse, ShortestPath, AllPaths and DetectCycles
//! must return for them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::rngs::StdRng;
use rand::Rng;

use crate::{edge_request, int, pb, request, vertex_request, Client};

#[derive(Clone, Debug)]
pub struct TestEdge {
    pub id: String,
    pub label: String,
    pub from: String,
    pub to: String,
    /// The edge's property `w`.
    pub weight: i64,
}

/// Vertices (id -> label, property `age`) and edges.
pub struct Graph {
    pub vertices: BTreeMap<String, (String, i64)>,
    pub edges: Vec<TestEdge>,
}

/// `n` vertices labelled P or Q, `m` edges labelled A or B (parallel edges and self-loops
/// happen), weights 0..10.
pub fn random_graph(rng: &mut StdRng, n: usize, m: usize) -> Graph {
    let vertices = (0..n)
        .map(|i| {
            (format!("v{i:02}"), (if rng.random_bool(0.5) { "P" } else { "Q" }.to_string(), rng.random_range(0..100)))
        })
        .collect();
    let edges = (0..m)
        .map(|i| TestEdge {
            id: format!("e{i:03}"),
            label: if rng.random_bool(0.5) { "A" } else { "B" }.to_string(),
            from: format!("v{:02}", rng.random_range(0..n)),
            to: format!("v{:02}", rng.random_range(0..n)),
            weight: rng.random_range(0..10),
        })
        .collect();
    Graph { vertices, edges }
}

/// Writes `graph` through the API.
pub async fn load(client: &mut Client, graph: &Graph) {
    load_into(client, graph, None).await
}

/// Writes `graph` through the API into `namespace` (the default when none).
pub async fn load_into(client: &mut Client, graph: &Graph, namespace: Option<&str>) {
    let vertices =
        graph.vertices.iter().map(|(id, (label, age))| vertex_request(id, label, &[("age", int(*age))])).collect();
    client
        .batch_create_vertices(request(pb::BatchCreateVerticesRequest { vertices, atomic: true }, namespace))
        .await
        .expect("load vertices");
    let edges = graph
        .edges
        .iter()
        .map(|e| {
            let mut request = edge_request(&e.id, &e.label, &e.from, &e.to);
            request.properties.insert("w".into(), int(e.weight));
            request
        })
        .collect();
    client
        .batch_create_edges(request(pb::BatchCreateEdgesRequest { edges, atomic: true }, namespace))
        .await
        .expect("load edges");
}

/// The edges with one of `labels` (any when empty).
fn allowed<'g>(graph: &'g Graph, labels: &'g [String]) -> impl Iterator<Item = &'g TestEdge> {
    graph.edges.iter().filter(move |e| labels.is_empty() || labels.contains(&e.label))
}

/// A Traverse step as the oracle reads it.
#[derive(Clone, Debug)]
pub struct Step {
    pub direction: pb::traversal_step::Direction,
    pub labels: Vec<String>,
    pub min_hops: u32,
    pub max_hops: u32,
}

/// A Traverse request as the oracle reads it; the filters as predicates.
pub struct TraverseCase<'a> {
    pub start: String,
    pub steps: Vec<Step>,
    pub edge_ok: &'a dyn Fn(&TestEdge) -> bool,
    /// Given a vertex's label and age.
    pub vertex_ok: &'a dyn Fn(&str, i64) -> bool,
    pub exclude: Vec<String>,
    pub rank_by_count: bool,
    pub limit: Option<usize>,
}

/// One edge followed: (from, edge id, to).
type Move = (String, String, String);

/// What Traverse returns: (vertex, path count) in the response's order, and the edges on the
/// walks from the start to the returned vertices.
pub fn traverse(graph: &Graph, case: &TraverseCase) -> (Vec<(String, u64)>, BTreeSet<String>) {
    use pb::traversal_step::Direction;
    let TraverseCase { start, steps, edge_ok, vertex_ok, exclude, rank_by_count, limit } = case;
    let mut level: HashMap<String, u64> = HashMap::from([(start.clone(), 1)]);
    // Per step: its input vertices, and per hop the moves made.
    let mut moves: Vec<(BTreeSet<String>, Vec<Vec<Move>>)> = Vec::new();
    for step in steps {
        let mut reached = if step.min_hops == 0 { level.clone() } else { HashMap::new() };
        let mut current = level.clone();
        let mut hops = Vec::new();
        for hop in 1..=step.max_hops {
            let mut made = Vec::new();
            let mut next: HashMap<String, u64> = HashMap::new();
            for (v, count) in &current {
                for e in allowed(graph, &step.labels).filter(|e| edge_ok(e)) {
                    let out = matches!(step.direction, Direction::Out | Direction::Both) && &e.from == v;
                    let back = matches!(step.direction, Direction::In | Direction::Both)
                        && &e.to == v
                        && !(step.direction == Direction::Both && e.from == e.to);
                    if out {
                        *next.entry(e.to.clone()).or_default() += count;
                        made.push((v.clone(), e.id.clone(), e.to.clone()));
                    }
                    if back {
                        *next.entry(e.from.clone()).or_default() += count;
                        made.push((v.clone(), e.id.clone(), e.from.clone()));
                    }
                }
            }
            if hop >= step.min_hops {
                for (v, c) in &next {
                    *reached.entry(v.clone()).or_default() += c;
                }
            }
            hops.push(made);
            current = next;
        }
        moves.push((level.keys().cloned().collect(), hops));
        level = reached;
    }
    let mut result: Vec<(String, u64)> = level
        .into_iter()
        .filter(|(v, _)| !exclude.contains(v))
        .filter(|(v, _)| graph.vertices.get(v).is_some_and(|(label, age)| vertex_ok(label, *age)))
        .collect();
    if *rank_by_count {
        result.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    } else {
        result.sort();
    }
    if let Some(limit) = limit {
        result.truncate(*limit);
    }
    // A move is on a walk to a result if it arrives where a result stands (at a hop that
    // counts) or where a later kept move starts.
    let mut followed = BTreeSet::new();
    let mut wanted: BTreeSet<String> = result.iter().map(|(v, _)| v.clone()).collect();
    for ((input, hops), step) in moves.iter().zip(steps).rev() {
        let mut starts: BTreeSet<String> = BTreeSet::new();
        for (index, made) in hops.iter().enumerate().rev() {
            let counts = index as u32 + 1 >= step.min_hops;
            let mut next_starts = BTreeSet::new();
            for (from, edge, to) in made {
                if starts.contains(to) || (counts && wanted.contains(to)) {
                    followed.insert(edge.clone());
                    next_starts.insert(from.clone());
                }
            }
            starts = next_starts;
        }
        if step.min_hops == 0 {
            starts.extend(wanted.iter().filter(|w| input.contains(*w)).cloned());
        }
        wanted = starts;
    }
    (result, followed)
}

/// Fewest hops from `start` to `end` within `max_hops`, following edges forward.
pub fn fewest_hops(graph: &Graph, start: &str, end: &str, labels: &[String], max_hops: u32) -> Option<usize> {
    let mut depth: HashMap<&str, usize> = HashMap::from([(start, 0)]);
    let mut frontier = vec![start];
    for d in 1..=max_hops as usize {
        let mut next = Vec::new();
        for v in frontier {
            for e in allowed(graph, labels).filter(|e| e.from == v) {
                if !depth.contains_key(e.to.as_str()) {
                    depth.insert(&e.to, d);
                    next.push(e.to.as_str());
                }
            }
        }
        frontier = next;
    }
    depth.get(end).copied()
}

/// Least total `w` over paths of at most `max_hops` edges.
pub fn least_weight(graph: &Graph, start: &str, end: &str, labels: &[String], max_hops: u32) -> Option<f64> {
    let mut best: HashMap<&str, f64> = HashMap::from([(start, 0.0)]);
    for _ in 0..max_hops {
        let mut next = best.clone();
        for e in allowed(graph, labels) {
            if let Some(d) = best.get(e.from.as_str()) {
                let c = d + e.weight as f64;
                if next.get(e.to.as_str()).is_none_or(|x| c < *x) {
                    next.insert(&e.to, c);
                }
            }
        }
        best = next;
    }
    best.get(end).copied()
}

/// A path as (vertices, edges).
pub type PathIds = (Vec<String>, Vec<String>);

/// Every simple path from `start` reaching `end` with `min..=max` edges (a cycle when
/// `start == end`), shortest first, then by vertices and edges.
pub fn simple_paths(graph: &Graph, start: &str, end: &str, labels: &[String], min: usize, max: usize) -> Vec<PathIds> {
    fn walk(
        graph: &Graph,
        labels: &[String],
        path: &mut PathIds,
        bounds: (&str, usize, usize),
        out: &mut Vec<PathIds>,
    ) {
        let (end, min, max) = bounds;
        if path.1.len() == max {
            return;
        }
        let last = path.0.last().cloned().unwrap_or_default();
        for e in allowed(graph, labels).filter(|e| e.from == last) {
            if e.to == end {
                if path.1.len() + 1 >= min {
                    let mut found = path.clone();
                    found.0.push(e.to.clone());
                    found.1.push(e.id.clone());
                    out.push(found);
                }
            } else if !path.0.contains(&e.to) {
                path.0.push(e.to.clone());
                path.1.push(e.id.clone());
                walk(graph, labels, path, bounds, out);
                path.0.pop();
                path.1.pop();
            }
        }
    }
    let mut out = Vec::new();
    let mut path = (vec![start.to_owned()], Vec::new());
    walk(graph, labels, &mut path, (end, min, max), &mut out);
    out.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    out
}

/// Checks that `path` runs from `start` to `end` along edges with allowed labels; returns
/// its total weight.
pub fn check_path(graph: &Graph, path: &pb::Path, start: &str, end: &str, labels: &[String]) -> f64 {
    let by_id: HashMap<&str, &TestEdge> = graph.edges.iter().map(|e| (e.id.as_str(), e)).collect();
    assert_eq!(path.vertex_ids.first().map(String::as_str), Some(start), "{path:?}");
    assert_eq!(path.vertex_ids.last().map(String::as_str), Some(end), "{path:?}");
    assert_eq!(path.vertex_ids.len(), path.edge_ids.len() + 1, "{path:?}");
    let mut weight = 0.0;
    for (i, id) in path.edge_ids.iter().enumerate() {
        let e = by_id[id.as_str()];
        assert!(labels.is_empty() || labels.contains(&e.label), "{path:?}");
        assert_eq!((&e.from, &e.to), (&path.vertex_ids[i], &path.vertex_ids[i + 1]), "{path:?}");
        weight += e.weight as f64;
    }
    weight
}

/// PageRank as LDBC Graphalytics defines it, over the vertices `keep` accepts and the edges
/// between them: ranks start at 1/N, dangling rank is spread over all vertices, exactly
/// `iterations` iterations; each parallel edge and self-loop carries its own share.
pub fn pagerank(
    graph: &Graph,
    keep: impl Fn(&str, i64) -> bool,
    iterations: u32,
    damping: f64,
) -> HashMap<String, f64> {
    let members: Vec<&String> =
        graph.vertices.iter().filter(|(_, (label, age))| keep(label, *age)).map(|(id, _)| id).collect();
    let n = members.len() as f64;
    let mut rank: HashMap<&str, f64> = members.iter().map(|v| (v.as_str(), 1.0 / n)).collect();
    let induced: Vec<(&str, &str)> = graph
        .edges
        .iter()
        .filter(|e| rank.contains_key(e.from.as_str()) && rank.contains_key(e.to.as_str()))
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    let mut degree: HashMap<&str, usize> = HashMap::new();
    for (from, _) in &induced {
        *degree.entry(from).or_default() += 1;
    }
    for _ in 0..iterations {
        let dangling: f64 = rank.iter().filter(|(v, _)| !degree.contains_key(*v)).map(|(_, r)| r).sum();
        let mut next: HashMap<&str, f64> =
            rank.keys().map(|v| (*v, (1.0 - damping) / n + damping * dangling / n)).collect();
        for (from, to) in &induced {
            let share = damping * rank[from] / degree[from] as f64;
            if let Some(slot) = next.get_mut(to) {
                *slot += share;
            }
        }
        rank = next;
    }
    rank.into_iter().map(|(v, r)| (v.to_string(), r)).collect()
}

/// Each member's neighbours' ids, out-neighbours then in-neighbours, with multiplicity, over
/// the edges between members.
fn neighbours<'g>(graph: &'g Graph, members: &[&'g String]) -> HashMap<&'g str, Vec<&'g str>> {
    let mut around: HashMap<&str, Vec<&str>> = members.iter().map(|m| (m.as_str(), Vec::new())).collect();
    for e in &graph.edges {
        if around.contains_key(e.from.as_str()) && around.contains_key(e.to.as_str()) {
            if let Some(n) = around.get_mut(e.from.as_str()) {
                n.push(e.to.as_str());
            }
            if let Some(n) = around.get_mut(e.to.as_str()) {
                n.push(e.from.as_str());
            }
        }
    }
    around
}

/// Communities as (label, sorted members), sorted by label, from a vertex -> label map.
fn grouped(labels: HashMap<&str, String>) -> Vec<(String, Vec<String>)> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (v, label) in labels {
        groups.entry(label).or_default().push(v.to_owned());
    }
    groups
        .into_iter()
        .map(|(label, mut members)| {
            members.sort();
            (label, members)
        })
        .collect()
}

/// Weakly connected components of the induced subgraph, each named by its smallest id.
pub fn components(graph: &Graph, keep: impl Fn(&str, i64) -> bool) -> Vec<(String, Vec<String>)> {
    let members: Vec<&String> = graph.vertices.iter().filter(|(_, (l, a))| keep(l, *a)).map(|(id, _)| id).collect();
    let around = neighbours(graph, &members);
    let mut label: HashMap<&str, String> = HashMap::new();
    for start in &members {
        if label.contains_key(start.as_str()) {
            continue;
        }
        // Breadth-first over the component; name it by its smallest id.
        let mut seen = vec![start.as_str()];
        let mut i = 0;
        while i < seen.len() {
            for n in &around[seen[i]] {
                if !seen.contains(n) {
                    seen.push(n);
                }
            }
            i += 1;
        }
        let name = seen.iter().min().map(|s| s.to_string()).unwrap_or_default();
        for v in seen {
            label.insert(v, name.clone());
        }
    }
    grouped(label)
}

/// Graphalytics CDLP: synchronous, the most frequent neighbour label (ties to the smallest),
/// exactly `iterations` rounds.
pub fn label_propagation(
    graph: &Graph,
    keep: impl Fn(&str, i64) -> bool,
    iterations: u32,
) -> Vec<(String, Vec<String>)> {
    let members: Vec<&String> = graph.vertices.iter().filter(|(_, (l, a))| keep(l, *a)).map(|(id, _)| id).collect();
    let around = neighbours(graph, &members);
    let mut label: HashMap<&str, String> = members.iter().map(|m| (m.as_str(), m.to_string())).collect();
    for _ in 0..iterations {
        let mut next = label.clone();
        for (v, ns) in &around {
            let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
            for n in ns {
                *counts.entry(&label[n]).or_default() += 1;
            }
            if let Some(best) = counts.values().max().copied() {
                if let Some((l, _)) = counts.iter().find(|(_, c)| **c == best) {
                    next.insert(v, (*l).clone());
                }
            }
        }
        label = next;
    }
    grouped(label)
}
