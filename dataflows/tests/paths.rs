//! Path queries in the engine, without gRPC: missing endpoints, bad weights and limits.
//! (Answers are checked against an independent oracle end to end, over gRPC, in
//! tests/tests/oracle.rs.)

mod common;

use std::time::Duration;

use common::{load, load_complete, start_engine};
use prism_dataflows::Namespace;
use prism_dataflows::QueryError;
use prism_dataflows::{all_paths, shortest_path, AllPaths, PathLimits, ShortestPath};

fn limits() -> PathLimits {
    PathLimits {
        max_hops: 8,
        max_frontier: 1_000_000,
        max_expanded_edges: 10_000_000,
        max_paths: 100_000,
        timeout: Duration::from_secs(20),
    }
}

#[tokio::test]
async fn missing_endpoints_bad_weights_and_limits() {
    let engine = start_engine(2);
    // A dense graph, and one edge with a negative weight.
    load_complete(&engine, 10).await;
    load(&engine, &[], &[("neg".into(), "N", "v00".into(), "v01".into(), -2)]).await;
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
    // All paths keep a cap on hops (their number grows exponentially with it); a shortest
    // path does not.
    let too_far = AllPaths { start: "v00".into(), end: "v05".into(), max_hops: Some(9), limit: None };
    assert!(matches!(
        all_paths(&engine, &ns, &too_far, &limits(), 0).await,
        Err(QueryError::Limit { limit: "max_hops", .. })
    ));
    let far = ShortestPath { start: "v00".into(), end: "v05".into(), max_hops: Some(9), ..Default::default() };
    let found = shortest_path(&engine, &ns, &far, &limits(), 0).await.unwrap();
    assert_eq!(found.paths[0].edges.len(), 1);
    let narrow = PathLimits { max_frontier: 2, ..limits() };
    let all = AllPaths { start: "v00".into(), end: "v05".into(), max_hops: Some(6), limit: None };
    assert!(matches!(
        all_paths(&engine, &ns, &all, &narrow, 0).await,
        Err(QueryError::Limit { limit: "max_frontier", .. })
    ));
    engine.shutdown();
}
