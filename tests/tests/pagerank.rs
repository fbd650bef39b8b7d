//! PageRank over gRPC against the reference (tests/src/oracle.rs) on random graphs with
//! dangling vertices, self-loops and parallel edges: one process with one worker, one with
//! two, and a two-process cluster.

use std::collections::HashMap;

use prism_e2e::oracle::{self, TestEdge};
use prism_e2e::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tonic::Code;

fn assert_close(got: &[pb::VertexScore], want: &HashMap<String, f64>) {
    for score in got {
        let expected = want[&score.vertex_id];
        assert!(
            (score.score - expected).abs() <= 1e-9 * expected,
            "{}: {} vs {expected}",
            score.vertex_id,
            score.score
        );
    }
}

async fn against_the_reference(client: &mut Client, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut graph = oracle::random_graph(&mut rng, 40, 120);
    // Dangling vertices (no out-edges), a self-loop, a parallel edge.
    graph.edges.retain(|e| e.from.as_str() < "v35");
    graph.edges.push(TestEdge {
        id: "self".into(),
        label: "A".into(),
        from: "v01".into(),
        to: "v01".into(),
        weight: 1,
    });
    let twin = graph.edges[0].clone();
    graph.edges.push(TestEdge { id: "twin".into(), ..twin });
    oracle::load(client, &graph).await;

    let all = client
        .page_rank(pb::PageRankRequest { vertex_filter: None, iterations: 20, damping_factor: 0.85, limit: 0 })
        .await
        .unwrap();
    assert!(lsn_of(&all) >= 2);
    let scores = all.into_inner().scores;
    let want = oracle::pagerank(&graph, |_, _| true, 20, 0.85);
    assert_eq!(scores.len(), want.len());
    assert_close(&scores, &want);
    let total: f64 = scores.iter().map(|s| s.score).sum();
    assert!((total - 1.0).abs() < 1e-9, "ranks sum to {total}");
    assert!(scores
        .windows(2)
        .all(|w| w[0].score > w[1].score || (w[0].score == w[1].score && w[0].vertex_id < w[1].vertex_id)));

    // limit: the top N, ties by id.
    let top = client
        .page_rank(pb::PageRankRequest { vertex_filter: None, iterations: 7, damping_factor: 0.6, limit: 5 })
        .await
        .unwrap();
    let top = top.into_inner().scores;
    let want = oracle::pagerank(&graph, |_, _| true, 7, 0.6);
    let mut ranked: Vec<(&String, &f64)> = want.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
    assert_eq!(
        top.iter().map(|s| &s.vertex_id).collect::<Vec<_>>(),
        ranked[..5].iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );

    // vertex_filter: the induced subgraph of label P and age >= 30.
    let older = pb::ValuePredicate { operator: pb::value_predicate::Operator::Ge as i32, value: Some(int(30)) };
    let filter = pb::VertexFilter { labels: vec!["P".into()], property_filters: [("age".to_string(), older)].into() };
    let filtered = client
        .page_rank(pb::PageRankRequest { vertex_filter: Some(filter), iterations: 10, damping_factor: 0.85, limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .scores;
    let want = oracle::pagerank(&graph, |label, age| label == "P" && age >= 30, 10, 0.85);
    assert_eq!(filtered.len(), want.len());
    assert_close(&filtered, &want);

    // Two at once share the loop without mixing: each matches its own reference.
    let mut other = client.clone();
    let (a, b) = tokio::join!(
        client.page_rank(pb::PageRankRequest { vertex_filter: None, iterations: 3, damping_factor: 0.85, limit: 0 }),
        other.page_rank(pb::PageRankRequest { vertex_filter: None, iterations: 9, damping_factor: 0.5, limit: 0 }),
    );
    assert_close(&a.unwrap().into_inner().scores, &oracle::pagerank(&graph, |_, _| true, 3, 0.85));
    assert_close(&b.unwrap().into_inner().scores, &oracle::pagerank(&graph, |_, _| true, 9, 0.5));

    // An empty namespace ranks nothing.
    let empty = client
        .page_rank(request(pb::PageRankRequest { iterations: 5, ..Default::default() }, Some("nobody-here")))
        .await;
    assert!(empty.unwrap().into_inner().scores.is_empty());

    // A read LSN that never comes: DEADLINE_EXCEEDED, not a hang.
    let mut future = request(pb::PageRankRequest { iterations: 5, ..Default::default() }, None);
    future.metadata_mut().insert("x-prism-min-lsn", "1000000".parse().unwrap());
    future.set_timeout(std::time::Duration::from_millis(1000));
    assert_eq!(client.page_rank(future).await.unwrap_err().code(), Code::DeadlineExceeded);

    // Bad parameters name the field.
    let status = client.page_rank(pb::PageRankRequest { iterations: -1, ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("iterations"), "{status:?}");
    let status = client
        .page_rank(pb::PageRankRequest { iterations: 5, damping_factor: 1.5, ..Default::default() })
        .await
        .unwrap_err();
    assert!(status.message().contains("damping_factor"), "{status:?}");
    // A limit past max_results is refused like 0 on a graph larger than it.
    let status =
        client.page_rank(pb::PageRankRequest { iterations: 1, limit: 10_001, ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("max_results"), "{status:?}");
}

#[tokio::test]
async fn pagerank_matches_the_reference_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 1).start().await;
    against_the_reference(&mut server.client().await, 1).await;
}

#[tokio::test]
async fn pagerank_matches_the_reference_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 2).start().await;
    against_the_reference(&mut server.client().await, 2).await;
}

#[tokio::test]
async fn pagerank_matches_the_reference_on_a_two_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    against_the_reference(&mut servers[1].client().await, 3).await;
}

#[tokio::test]
async fn a_run_past_its_callers_deadline_stops_on_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let config = "namespaces:\n  - name: default\n    performance:\n      max_iterations: 10000000\n";
    let server = ServerSpec::configured(dir.path(), config).start().await;
    let mut client = server.client().await;
    let graph = oracle::random_graph(&mut StdRng::seed_from_u64(4), 2000, 10_000);
    oracle::load(&mut client, &graph).await;

    // Ten million iterations take far longer than the call's second. (A short deadline
    // will not do: the server answers 10% early, so that the caller sees its
    // DEADLINE_EXCEEDED rather than the transport's cancellation, and on a loaded machine
    // a few milliseconds are not enough.)
    let mut long = request(pb::PageRankRequest { iterations: 10_000_000, ..Default::default() }, None);
    long.set_timeout(std::time::Duration::from_secs(1));
    assert_eq!(client.page_rank(long).await.unwrap_err().code(), Code::DeadlineExceeded);
    eventually("the run stopped", || server.log().contains("an algorithm run stopped")).await;

    // The loop is free for the next run.
    let quick = client.page_rank(pb::PageRankRequest { iterations: 2, limit: 3, ..Default::default() }).await.unwrap();
    assert_eq!(quick.into_inner().scores.len(), 3);
}
