//! Traversals against an independent in-test oracle, on random graphs and random queries,
//! on 1, 2 and 3 workers.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::{load, random_graph, start_engine, Graph, TestEdge, TIMEOUT};
use prism_dataflows::filter::{Filter, Operator, Predicate};
use prism_dataflows::reader::QueryError;
use prism_dataflows::traverse::{traverse, Step, Traversal, TraversalLimits};
use prism_dataflows::{Direction, Namespace, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_traversal(rng: &mut StdRng, graph: &Graph) -> Traversal {
    let start = format!("v{:02}", rng.random_range(0..graph.vertices.len()));
    let mut budget = 6u32;
    let mut steps = Vec::new();
    for _ in 0..rng.random_range(0..=3) {
        if budget == 0 {
            break;
        }
        let min_hops = rng.random_range(0..=1);
        let max_hops = rng.random_range(1..=(min_hops + 2).min(budget)).max(min_hops);
        budget -= max_hops;
        steps.push(Step {
            direction: [Direction::Out, Direction::In, Direction::Both][rng.random_range(0..3)],
            labels: match rng.random_range(0..3) {
                0 => vec![],
                1 => vec!["A".into()],
                _ => vec!["A".into(), "B".into()],
            },
            min_hops,
            max_hops,
        });
    }
    let predicate = |operator, value| Predicate { operator, value };
    Traversal {
        start: start.clone(),
        steps,
        limit: rng.random_bool(0.3).then(|| rng.random_range(1..10)),
        vertex_filter: rng.random_bool(0.3).then(|| Filter {
            labels: if rng.random_bool(0.5) { vec!["P".into()] } else { vec![] },
            properties: vec![("age".into(), predicate(Operator::Ge, Value::Double(30.0)))],
        }),
        edge_filter: rng
            .random_bool(0.3)
            .then(|| Filter { labels: vec![], properties: vec![("w".into(), predicate(Operator::Lt, Value::Int(7)))] }),
        include_paths: rng.random_bool(0.5),
        exclude: if rng.random_bool(0.3) { vec![start] } else { vec![] },
        rank_by_path_count: rng.random_bool(0.5),
    }
}

/// The same semantics, written plainly over an edge list.
fn oracle(graph: &Graph, t: &Traversal) -> (Vec<(String, u64)>, BTreeSet<String>) {
    let edge_ok = |e: &TestEdge, labels: &[String]| {
        (labels.is_empty() || labels.contains(&e.label)) && t.edge_filter.as_ref().is_none_or(|_| e.weight < 7)
    };
    let mut level: HashMap<String, u64> = HashMap::from([(t.start.clone(), 1)]);
    let mut followed = BTreeSet::new();
    for step in &t.steps {
        let mut reached = if step.min_hops == 0 { level.clone() } else { HashMap::new() };
        let mut current = level.clone();
        for hop in 1..=step.max_hops {
            let mut next: HashMap<String, u64> = HashMap::new();
            for (v, count) in &current {
                for e in graph.edges.iter().filter(|e| edge_ok(e, &step.labels)) {
                    let out = matches!(step.direction, Direction::Out | Direction::Both) && &e.from == v;
                    let inn = matches!(step.direction, Direction::In | Direction::Both)
                        && &e.to == v
                        && !(step.direction == Direction::Both && e.from == e.to);
                    if out {
                        *next.entry(e.to.clone()).or_default() += count;
                        followed.insert(e.id.clone());
                    }
                    if inn {
                        *next.entry(e.from.clone()).or_default() += count;
                        followed.insert(e.id.clone());
                    }
                }
            }
            if hop >= step.min_hops {
                for (v, c) in &next {
                    *reached.entry(v.clone()).or_default() += c;
                }
            }
            current = next;
        }
        level = reached;
    }
    let mut result: Vec<(String, u64)> = level
        .into_iter()
        .filter(|(v, _)| !t.exclude.contains(v))
        .filter(|(v, _)| {
            t.vertex_filter.as_ref().is_none_or(|f| {
                let (label, age) = &graph.vertices[v];
                (f.labels.is_empty() || f.labels.contains(label)) && *age >= 30
            })
        })
        .collect();
    if t.rank_by_path_count {
        result.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    } else {
        result.sort();
    }
    if let Some(limit) = t.limit {
        result.truncate(limit);
    }
    (result, followed)
}

fn limits() -> TraversalLimits {
    TraversalLimits {
        max_depth: 6,
        max_frontier: 100_000,
        max_expanded_edges: 1_000_000,
        max_results: 100_000,
        max_paths: 1_000_000,
        timeout: TIMEOUT,
    }
}

async fn compare_with_oracle(workers: usize, seed: u64) {
    let engine = start_engine(workers);
    let mut rng = StdRng::seed_from_u64(seed);
    let graph = random_graph(&mut rng, 30, 80);
    load(&engine, &graph).await;
    for round in 0..60 {
        let t = random_traversal(&mut rng, &graph);
        let got = traverse(&engine, &Namespace::default(), &t, &limits(), 0).await.unwrap();
        let (want, followed) = oracle(&graph, &t);
        let got_pairs: Vec<(String, u64)> =
            got.vertices.iter().map(|v| v.id.clone()).zip(got.path_counts.iter().copied()).collect();
        assert_eq!(got_pairs, want, "round {round}: {t:?}");
        let got_edges: BTreeSet<String> = got.edges.iter().map(|e| e.id.clone()).collect();
        assert_eq!(got_edges, followed, "round {round}: edges of {t:?}");
        if t.include_paths {
            // Under the cap, every walk is a path: as many paths end at a vertex as its count.
            for (id, count) in &want {
                let ending = got.paths.iter().filter(|p| p.vertices.last() == Some(id)).count() as u64;
                assert_eq!(ending, *count, "round {round}: paths to {id} in {t:?}");
            }
            let by_id: HashMap<&str, &TestEdge> = graph.edges.iter().map(|e| (e.id.as_str(), e)).collect();
            for path in &got.paths {
                assert_eq!(path.vertices.first(), Some(&t.start));
                for (i, edge) in path.edges.iter().enumerate() {
                    let e = by_id[edge.as_str()];
                    let (a, b) = (&path.vertices[i], &path.vertices[i + 1]);
                    assert!((&e.from == a && &e.to == b) || (&e.to == a && &e.from == b), "path {path:?}");
                }
            }
        }
    }
    engine.shutdown();
}

#[tokio::test]
async fn traversals_match_the_oracle_on_one_worker() {
    compare_with_oracle(1, 7).await;
}

#[tokio::test]
async fn traversals_match_the_oracle_on_two_workers() {
    compare_with_oracle(2, 11).await;
}

#[tokio::test]
async fn traversals_match_the_oracle_on_three_workers() {
    compare_with_oracle(3, 13).await;
}

#[tokio::test]
async fn limits_stop_a_traversal_of_a_dense_graph() {
    let engine = start_engine(2);
    // A complete directed graph on 60 vertices: 3,540 edges.
    let n = 60;
    let vertices: BTreeMap<String, (String, i64)> =
        (0..n).map(|i| (format!("v{i:02}"), ("P".to_string(), 50))).collect();
    let mut edges = Vec::new();
    for a in 0..n {
        for b in 0..n {
            if a != b {
                edges.push(TestEdge {
                    id: format!("e{a}-{b}"),
                    label: "A".into(),
                    from: format!("v{a:02}"),
                    to: format!("v{b:02}"),
                    weight: 1,
                });
            }
        }
    }
    load(&engine, &Graph { vertices, edges }).await;
    let deep = Traversal {
        start: "v00".into(),
        steps: vec![Step { direction: Direction::Out, labels: vec![], min_hops: 1, max_hops: 4 }],
        ..Default::default()
    };
    let tight = TraversalLimits { max_expanded_edges: 5_000, ..limits() };
    match traverse(&engine, &Namespace::default(), &deep, &tight, 0).await {
        Err(QueryError::Limit { limit, .. }) => assert_eq!(limit, "max_expanded_edges"),
        other => panic!("expected the edge limit, got {other:?}"),
    }
    let narrow = TraversalLimits { max_frontier: 10, ..limits() };
    match traverse(&engine, &Namespace::default(), &deep, &narrow, 0).await {
        Err(QueryError::Limit { limit, .. }) => assert_eq!(limit, "max_frontier"),
        other => panic!("expected the frontier limit, got {other:?}"),
    }
    let too_deep = TraversalLimits { max_depth: 3, ..limits() };
    match traverse(&engine, &Namespace::default(), &deep, &too_deep, 0).await {
        Err(QueryError::Limit { limit, .. }) => assert_eq!(limit, "max_depth"),
        other => panic!("expected the depth limit, got {other:?}"),
    }
    let few = TraversalLimits { max_results: 5, ..limits() };
    match traverse(&engine, &Namespace::default(), &deep, &few, 0).await {
        Err(QueryError::Limit { limit, .. }) => assert_eq!(limit, "max_results"),
        other => panic!("expected the result limit, got {other:?}"),
    }
    let capped = Traversal { limit: Some(5), include_paths: true, ..deep.clone() };
    let paths = TraversalLimits { max_paths: 100, ..limits() };
    let got = traverse(&engine, &Namespace::default(), &capped, &paths, 0).await.unwrap();
    assert_eq!(got.vertices.len(), 5);
    assert!(got.paths.len() <= 100);
    let missing = Traversal { start: "nobody".into(), ..deep };
    assert!(matches!(
        traverse(&engine, &Namespace::default(), &missing, &limits(), 0).await,
        Err(QueryError::NotFound { .. })
    ));
    engine.shutdown();
}
