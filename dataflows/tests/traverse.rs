//! Traversals in the engine, without gRPC: the limits that keep a query on a dense graph
//! bounded. (Answers are checked against an independent oracle end to end, over gRPC, in
//! tests/tests/oracle.rs.)

mod common;

use common::{load_complete, start_engine, TIMEOUT};
use prism_dataflows::QueryError;
use prism_dataflows::{traverse, Step, Traversal, TraversalLimits};
use prism_dataflows::{Direction, Namespace};

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

#[tokio::test]
async fn limits_stop_a_traversal_of_a_dense_graph() {
    let engine = start_engine(2);
    // A complete directed graph on 60 vertices: 3,540 edges.
    load_complete(&engine, 60).await;
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
