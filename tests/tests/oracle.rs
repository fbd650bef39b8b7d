//! Traverse, ShortestPath, AllPaths and DetectCycles over gRPC against the independent
//! oracle (tests/src/oracle.rs), on random graphs with random queries: one process with one
//! worker, one with two, and a cluster of two processes.

use std::collections::BTreeSet;

use prism_e2e::oracle::{self, Graph, Step, TestEdge, TraverseCase};
use prism_e2e::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_labels(rng: &mut StdRng) -> Vec<String> {
    match rng.random_range(0..3) {
        0 => vec![],
        1 => vec!["A".into()],
        _ => vec!["A".into(), "B".into()],
    }
}

fn vertex(rng: &mut StdRng, graph: &Graph) -> String {
    format!("v{:02}", rng.random_range(0..graph.vertices.len()))
}

async fn check_traverse(client: &mut Client, graph: &Graph, rng: &mut StdRng) {
    use pb::traversal_step::Direction;
    let start = vertex(rng, graph);
    let mut budget = 6u32;
    let mut steps = Vec::new();
    for _ in 0..rng.random_range(0..=3) {
        if budget == 0 {
            break;
        }
        let min_hops = rng.random_range(0..=1);
        let max_hops = rng.random_range(1..=(min_hops + 2).min(budget)).max(min_hops);
        budget -= max_hops;
        let direction = [Direction::Out, Direction::In, Direction::Both][rng.random_range(0..3)];
        steps.push(Step { direction, labels: random_labels(rng), min_hops, max_hops });
    }
    let edge_filter = rng.random_bool(0.3);
    let vertex_filter = rng.random_bool(0.3).then(|| rng.random_bool(0.5));
    let case = TraverseCase {
        start: start.clone(),
        steps: steps.clone(),
        edge_ok: &|e: &TestEdge| !edge_filter || e.weight < 7,
        vertex_ok: &|label: &str, age: i64| vertex_filter.is_none_or(|only_p| (!only_p || label == "P") && age >= 30),
        exclude: if rng.random_bool(0.3) { vec![start.clone()] } else { vec![] },
        rank_by_count: rng.random_bool(0.5),
        limit: rng.random_bool(0.3).then(|| rng.random_range(1..10)),
    };
    let predicate =
        |op: pb::value_predicate::Operator, value| pb::ValuePredicate { operator: op as i32, value: Some(value) };
    let request = pb::TraverseRequest {
        start_vertex_id: start,
        steps: steps
            .iter()
            .map(|s| pb::TraversalStep {
                direction: s.direction as i32,
                edge_labels: s.labels.clone(),
                min_hops: Some(s.min_hops as i32),
                max_hops: Some(s.max_hops as i32),
            })
            .collect(),
        max_depth: None,
        limit: case.limit.map(|l| l as i32),
        vertex_filter: vertex_filter.map(|only_p| pb::VertexFilter {
            labels: if only_p { vec!["P".into()] } else { vec![] },
            property_filters: [("age".to_string(), predicate(pb::value_predicate::Operator::Ge, int(30)))].into(),
        }),
        edge_filter: edge_filter.then(|| pb::EdgeFilter {
            labels: vec![],
            property_filters: [("w".to_string(), predicate(pb::value_predicate::Operator::Lt, int(7)))].into(),
        }),
        include_paths: false,
        exclude_vertex_ids: case.exclude.clone(),
        rank_by: if case.rank_by_count { pb::traverse_request::RankBy::PathCount as i32 } else { 0 },
    };
    let reply = client.traverse(request.clone()).await.unwrap().into_inner();
    let (want, followed) = oracle::traverse(graph, &case);
    let got: Vec<String> = reply.vertices.iter().map(|v| v.id.clone()).collect();
    assert_eq!(got, want.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>(), "{request:?}");
    if case.rank_by_count {
        assert_eq!(reply.path_counts, want.iter().map(|(_, c)| *c as i64).collect::<Vec<_>>(), "{request:?}");
    }
    let edges: BTreeSet<String> = reply.edges.iter().map(|e| e.id.clone()).collect();
    assert_eq!(edges, followed, "{request:?}");
}

/// Returns how many paths the queries found, so that the run is known not to be vacuous.
async fn check_paths(client: &mut Client, graph: &Graph, rng: &mut StdRng) -> usize {
    let (start, end) = (vertex(rng, graph), vertex(rng, graph));
    let labels = random_labels(rng);
    let max_hops = rng.random_range(1..=6);
    // A shortest path without a bound on hops, one time in three: the oracle then allows as
    // many hops as a simple path can have.
    let unbounded = rng.random_range(0..3) == 0;
    let shortest_hops = if unbounded { graph.vertices.len() as u32 } else { max_hops };
    let mut found = 0;

    let request = pb::ShortestPathRequest {
        start_vertex_id: start.clone(),
        end_vertex_id: end.clone(),
        max_hops: (!unbounded).then_some(max_hops as i32),
        weight_property: None,
        edge_labels: labels.clone(),
    };
    let reply = client.shortest_path(request.clone()).await.unwrap().into_inner();
    let path = reply.path.unwrap_or_default();
    let want = if start == end { Some(0) } else { oracle::fewest_hops(graph, &start, &end, &labels, shortest_hops) };
    assert_eq!((!path.vertex_ids.is_empty()).then_some(path.edge_ids.len()), want, "{request:?}");
    if !path.vertex_ids.is_empty() {
        oracle::check_path(graph, &path, &start, &end, &labels);
        found += 1;
    }

    let weighted = pb::ShortestPathRequest { weight_property: Some("w".into()), ..request };
    let reply = client.shortest_path(weighted.clone()).await.unwrap().into_inner();
    let path = reply.path.unwrap_or_default();
    let want = if start == end { Some(0.0) } else { oracle::least_weight(graph, &start, &end, &labels, shortest_hops) };
    assert_eq!((!path.vertex_ids.is_empty()).then_some(reply.total_weight), want, "{weighted:?}");
    if !path.vertex_ids.is_empty() {
        assert_eq!(oracle::check_path(graph, &path, &start, &end, &labels), reply.total_weight);
    }

    if start != end {
        let limit = rng.random_range(1..20);
        let request = pb::AllPathsRequest {
            start_vertex_id: start.clone(),
            end_vertex_id: end,
            max_hops: max_hops as i32,
            limit,
        };
        let reply = client.all_paths(request.clone()).await.unwrap().into_inner();
        let mut want =
            oracle::simple_paths(graph, &request.start_vertex_id, &request.end_vertex_id, &[], 1, max_hops as usize);
        want.truncate(limit as usize);
        let got: Vec<_> = reply.paths.iter().map(|p| (p.vertex_ids.clone(), p.edge_ids.clone())).collect();
        assert_eq!(got, want, "{request:?}");
        found += got.len();
    }

    let min_cycle_length = rng.random_range(0..=3);
    let request = pb::DetectCyclesRequest {
        start_vertex_id: start.clone(),
        edge_labels: labels.clone(),
        max_depth: max_hops.min(6) as i32,
        min_cycle_length,
    };
    let reply = client.detect_cycles(request.clone()).await.unwrap().into_inner();
    let want = oracle::simple_paths(
        graph,
        &start,
        &start,
        &labels,
        min_cycle_length.max(1) as usize,
        max_hops.min(6) as usize,
    );
    let got: Vec<_> = reply.cycles.iter().map(|p| (p.vertex_ids.clone(), p.edge_ids.clone())).collect();
    assert_eq!(got, want, "{request:?}");
    found + got.len()
}

async fn against_the_oracle(client: &mut Client, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let graph = oracle::random_graph(&mut rng, 20, 55);
    oracle::load(client, &graph).await;
    let mut found = 0;
    for _ in 0..30 {
        check_traverse(client, &graph, &mut rng).await;
        found += check_paths(client, &graph, &mut rng).await;
    }
    assert!(found >= 20, "the random queries found only {found} paths: the comparison would be vacuous");
}

#[tokio::test]
async fn queries_match_the_oracle_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 1);
    spec.extra_args = generous_limits(dir.path());
    let server = spec.start().await;
    against_the_oracle(&mut server.client().await, 1).await;
}

#[tokio::test]
async fn queries_match_the_oracle_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = generous_limits(dir.path());
    let server = spec.start().await;
    against_the_oracle(&mut server.client().await, 2).await;
}

#[tokio::test]
async fn queries_match_the_oracle_on_a_two_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster_with(dir.path(), 2, generous_limits(dir.path())).await;
    against_the_oracle(&mut servers[1].client().await, 3).await;
}
