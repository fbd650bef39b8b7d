//! Shortest paths, all paths and cycles against plain in-test implementations, on random
//! graphs and random queries, on 1 and 2 workers.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{load, random_graph, start_engine, Graph, TestEdge};
use prism_dataflows::paths::{all_paths, detect_cycles, shortest_path, AllPaths, Cycles, PathLimits, ShortestPath};
use prism_dataflows::reader::QueryError;
use prism_dataflows::traverse::Path;
use prism_dataflows::{Engine, Namespace};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn limits() -> PathLimits {
    PathLimits {
        max_hops: 8,
        max_frontier: 1_000_000,
        max_expanded_edges: 10_000_000,
        max_paths: 100_000,
        timeout: Duration::from_secs(20),
    }
}

fn allowed<'g>(graph: &'g Graph, labels: &'g [String]) -> impl Iterator<Item = &'g TestEdge> {
    graph.edges.iter().filter(move |e| labels.is_empty() || labels.contains(&e.label))
}

/// Fewest hops from `start` to `end` within `max_hops`, by plain BFS.
fn bfs_hops(graph: &Graph, start: &str, end: &str, labels: &[String], max_hops: u32) -> Option<usize> {
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

/// Least weight over paths of at most `max_hops` edges, by plain dynamic programming.
fn least_weight(graph: &Graph, start: &str, end: &str, labels: &[String], max_hops: u32) -> Option<f64> {
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

/// Every simple path from `start` reaching `end` with `min..=max` edges, by DFS; a cycle
/// when `start == end`. Sorted shortest first, then by vertices and edges.
fn simple_paths(graph: &Graph, start: &str, end: &str, labels: &[String], min: usize, max: usize) -> Vec<Path> {
    fn walk(graph: &Graph, labels: &[String], path: &mut Path, end: &str, min: usize, max: usize, out: &mut Vec<Path>) {
        if path.edges.len() == max {
            return;
        }
        let last = path.vertices.last().cloned().unwrap_or_default();
        for e in graph.edges.iter().filter(|e| (labels.is_empty() || labels.contains(&e.label)) && e.from == last) {
            if e.to == end {
                if path.edges.len() + 1 >= min {
                    let mut found = path.clone();
                    found.vertices.push(e.to.clone());
                    found.edges.push(e.id.clone());
                    out.push(found);
                }
            } else if !path.vertices.contains(&e.to) {
                path.vertices.push(e.to.clone());
                path.edges.push(e.id.clone());
                walk(graph, labels, path, end, min, max, out);
                path.vertices.pop();
                path.edges.pop();
            }
        }
    }
    let mut out = Vec::new();
    let mut path = Path { vertices: vec![start.to_owned()], edges: vec![], weight: 0.0 };
    walk(graph, labels, &mut path, end, min, max, &mut out);
    out.sort_by(|a, b| a.edges.len().cmp(&b.edges.len()).then(a.vertices.cmp(&b.vertices)).then(a.edges.cmp(&b.edges)));
    out
}

/// Checks that `path` runs from `start` to `end` along existing edges with allowed labels.
fn assert_valid(graph: &Graph, path: &Path, start: &str, end: &str, labels: &[String]) -> f64 {
    let by_id: HashMap<&str, &TestEdge> = graph.edges.iter().map(|e| (e.id.as_str(), e)).collect();
    assert_eq!(path.vertices.first().map(String::as_str), Some(start));
    assert_eq!(path.vertices.last().map(String::as_str), Some(end));
    assert_eq!(path.vertices.len(), path.edges.len() + 1);
    let mut weight = 0.0;
    for (i, id) in path.edges.iter().enumerate() {
        let e = by_id[id.as_str()];
        assert!(labels.is_empty() || labels.contains(&e.label));
        assert_eq!((&e.from, &e.to), (&path.vertices[i], &path.vertices[i + 1]), "{path:?}");
        weight += e.weight as f64;
    }
    weight
}

fn random_labels(rng: &mut StdRng) -> Vec<String> {
    match rng.random_range(0..3) {
        0 => vec![],
        1 => vec!["A".into()],
        _ => vec!["B".into()],
    }
}

fn vertex(rng: &mut StdRng, graph: &Graph) -> String {
    format!("v{:02}", rng.random_range(0..graph.vertices.len()))
}

async fn check_paths(engine: &Engine, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let graph = random_graph(&mut rng, 16, 40);
    load(engine, &graph).await;
    let ns = Namespace::default();
    // How many queries found something: the comparisons must not be vacuous.
    let (mut paths_seen, mut all_seen, mut cycles_seen) = (0, 0, 0);
    for round in 0..40 {
        let (start, end) = (vertex(&mut rng, &graph), vertex(&mut rng, &graph));
        let labels = random_labels(&mut rng);
        let max_hops = rng.random_range(1..=6);

        let query = ShortestPath {
            start: start.clone(),
            end: end.clone(),
            max_hops: Some(max_hops),
            weight_property: None,
            labels: labels.clone(),
        };
        let found = shortest_path(engine, &ns, &query, &limits(), 0).await.unwrap();
        let want = if start == end { Some(0) } else { bfs_hops(&graph, &start, &end, &labels, max_hops) };
        assert_eq!(found.paths.first().map(|p| p.edges.len()), want, "round {round}: {query:?}");
        paths_seen += found.paths.len();
        if let Some(path) = found.paths.first() {
            assert_valid(&graph, path, &start, &end, &labels);
        }

        let weighted = ShortestPath { weight_property: Some("w".into()), ..query.clone() };
        let found = shortest_path(engine, &ns, &weighted, &limits(), 0).await.unwrap();
        let want = if start == end { Some(0.0) } else { least_weight(&graph, &start, &end, &labels, max_hops) };
        assert_eq!(found.paths.first().map(|p| p.weight), want, "round {round}: {weighted:?}");
        if let Some(path) = found.paths.first() {
            assert_eq!(assert_valid(&graph, path, &start, &end, &labels), path.weight);
            assert!(path.edges.len() <= max_hops as usize);
        }

        if start != end {
            let limit = rng.random_range(1..20);
            let query =
                AllPaths { start: start.clone(), end: end.clone(), max_hops: Some(max_hops), limit: Some(limit) };
            let found = all_paths(engine, &ns, &query, &limits(), 0).await.unwrap();
            let mut want = simple_paths(&graph, &start, &end, &[], 1, max_hops as usize);
            want.truncate(limit);
            let strip = |p: &Path| (p.vertices.clone(), p.edges.clone());
            assert_eq!(
                found.paths.iter().map(strip).collect::<Vec<_>>(),
                want.iter().map(strip).collect::<Vec<_>>(),
                "round {round}: {query:?}"
            );
            all_seen += found.paths.len();
        }

        let min_length = rng.random_range(0..=3);
        let query = Cycles { start: start.clone(), labels: labels.clone(), max_depth: Some(max_hops), min_length };
        let found = detect_cycles(engine, &ns, &query, &limits(), 0).await.unwrap();
        let want = simple_paths(&graph, &start, &start, &labels, min_length.max(1) as usize, max_hops as usize);
        let strip = |p: &Path| (p.vertices.clone(), p.edges.clone());
        assert_eq!(
            found.paths.iter().map(strip).collect::<Vec<_>>(),
            want.iter().map(strip).collect::<Vec<_>>(),
            "round {round}: {query:?}"
        );
        let unique: HashSet<_> = found.paths.iter().map(|p| p.edges.clone()).collect();
        assert_eq!(unique.len(), found.paths.len(), "each cycle once");
        cycles_seen += found.paths.len();
    }
    assert!(paths_seen >= 10 && all_seen >= 10 && cycles_seen >= 5, "{paths_seen} {all_seen} {cycles_seen}");
}

#[tokio::test]
async fn paths_match_the_oracle_on_one_worker() {
    let engine = start_engine(1);
    check_paths(&engine, 3).await;
    engine.shutdown();
}

#[tokio::test]
async fn paths_match_the_oracle_on_two_workers() {
    let engine = start_engine(2);
    check_paths(&engine, 5).await;
    engine.shutdown();
}

#[tokio::test]
async fn missing_endpoints_bad_weights_and_limits() {
    let engine = start_engine(2);
    let mut rng = StdRng::seed_from_u64(9);
    let mut graph = random_graph(&mut rng, 10, 30);
    graph.edges.push(TestEdge {
        id: "neg".into(),
        label: "N".into(),
        from: "v00".into(),
        to: "v01".into(),
        weight: -2,
    });
    load(&engine, &graph).await;
    let ns = Namespace::default();
    let query = ShortestPath { start: "v00".into(), end: "nobody".into(), ..Default::default() };
    match shortest_path(&engine, &ns, &query, &limits(), 0).await {
        Err(QueryError::NotFound { field, .. }) => assert_eq!(field, "end_vertex_id"),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    }
    let negative = ShortestPath {
        start: "v00".into(),
        end: "v01".into(),
        weight_property: Some("w".into()),
        labels: vec!["N".into()],
        max_hops: Some(3),
    };
    match shortest_path(&engine, &ns, &negative, &limits(), 0).await {
        Err(QueryError::InvalidArgument(message)) => assert!(message.contains("\"neg\""), "{message}"),
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    let too_far = ShortestPath { max_hops: Some(9), ..query };
    assert!(matches!(
        shortest_path(&engine, &ns, &too_far, &limits(), 0).await,
        Err(QueryError::Limit { limit: "max_hops", .. })
    ));
    let narrow = PathLimits { max_frontier: 2, ..limits() };
    let all = AllPaths { start: "v00".into(), end: "v05".into(), max_hops: Some(6), limit: None };
    assert!(matches!(
        all_paths(&engine, &ns, &all, &narrow, 0).await,
        Err(QueryError::Limit { limit: "max_frontier", .. })
    ));
    engine.shutdown();
}
