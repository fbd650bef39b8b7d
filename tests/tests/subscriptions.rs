//! SubscribePageRank over gRPC: the first result and every change against the reference
//! PageRank (tests/src/oracle.rs) of the graph at the message's LSN, heartbeats, many
//! subscribers, a subscriber that stops reading, either process of a cluster, and the
//! errors.

use std::collections::HashMap;
use std::path::Path;

use prism_e2e::oracle::{self, Graph, TestEdge};
use prism_e2e::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::{Code, Streaming};

/// Iterations of the reference: converged far below the 1e-4 bound.
const CONVERGED: u32 = 200;

/// A server whose default namespace has these `performance` settings.
async fn server_with(dir: &Path, performance: &str) -> Server {
    ServerSpec::configured(dir, &format!("namespaces:\n  - name: default\n    performance:\n{performance}"))
        .start()
        .await
}

fn subscribe_request(top_k: i32, filter: Option<pb::VertexFilter>) -> pb::SubscribePageRankRequest {
    pb::SubscribePageRankRequest { damping_factor: 0.0, tolerance: 0.0, vertex_filter: filter, top_k }
}

async fn next(stream: &mut Streaming<pb::PageRankUpdate>) -> pb::PageRankUpdate {
    let message = tokio::time::timeout(std::time::Duration::from_secs(30), stream.message()).await;
    message.expect("a message within 30 s").expect("the stream goes on").expect("the stream is open")
}

/// The first result as of `lsn` or later (heartbeats skipped).
async fn result_at(stream: &mut Streaming<pb::PageRankUpdate>, lsn: u64) -> pb::PageRankUpdate {
    loop {
        let update = next(stream).await;
        if !update.heartbeat && update.lsn >= lsn {
            return update;
        }
    }
}

fn assert_within(update: &pb::PageRankUpdate, want: &HashMap<String, f64>, top_k: usize) {
    assert_eq!(update.error_bound, 1e-4, "the default tolerance");
    let expected = if top_k == 0 { want.len() } else { top_k.min(want.len()) };
    assert_eq!(update.scores.len(), expected, "entries at LSN {}", update.lsn);
    for score in &update.scores {
        let exact = want[&score.vertex_id];
        let relative = (score.score - exact).abs() / exact;
        assert!(relative <= update.error_bound, "{}: {} vs {exact} ({relative:.2e})", score.vertex_id, score.score);
    }
    let mut ranked: Vec<f64> = want.values().copied().collect();
    ranked.sort_by(|a, b| b.total_cmp(a));
    for (got, best) in update.scores.iter().zip(&ranked) {
        assert!((got.score - best).abs() <= 2.0 * update.error_bound * best, "ranked out of order: {update:?}");
    }
}

fn edge(id: String, from: String, to: String) -> TestEdge {
    TestEdge { id, label: "A".into(), from, to, weight: 1 }
}

#[tokio::test]
async fn a_subscription_follows_inserts_and_deletes_and_ends_at_the_final_graphs_page_rank() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "      subscription_heartbeat: 100ms\n").await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(5);
    let mut graph: Graph = oracle::random_graph(&mut rng, 40, 120);
    // Dangling vertices, a self-loop and a parallel edge.
    graph.edges.retain(|e| e.from.as_str() < "v35");
    graph.edges.push(edge("self".into(), "v01".into(), "v01".into()));
    let twin = graph.edges[0].clone();
    graph.edges.push(TestEdge { id: "twin".into(), ..twin });
    oracle::load(&mut client, &graph).await;

    let older = pb::ValuePredicate { operator: pb::value_predicate::Operator::Ge as i32, value: Some(int(30)) };
    let filter = pb::VertexFilter { labels: vec!["P".into()], property_filters: [("age".to_string(), older)].into() };
    let keep = |label: &str, age: i64| label == "P" && age >= 30;
    let all = client.subscribe_page_rank(subscribe_request(0, None)).await.unwrap();
    let first_lsn = lsn_of(&all);
    let mut all = all.into_inner();
    let mut top = client.subscribe_page_rank(subscribe_request(5, Some(filter))).await.unwrap().into_inner();

    let first = result_at(&mut all, 0).await;
    assert_eq!(first.lsn, first_lsn, "the first message is the state the reply header names");
    assert!(!first.heartbeat);
    assert_within(&first, &oracle::pagerank(&graph, |_, _| true, CONVERGED, 0.85), 0);
    assert_within(&result_at(&mut top, 0).await, &oracle::pagerank(&graph, keep, CONVERGED, 0.85), 5);

    for step in 0..30 {
        let lsn = if step % 3 == 2 {
            let gone = graph.edges.swap_remove(rng.random_range(0..graph.edges.len()));
            let reply = client.delete_edge(pb::DeleteEdgeRequest { id: gone.id }).await.unwrap();
            lsn_of(&reply)
        } else {
            // Some from dangling vertices, which then start sending.
            let from = format!("v{:02}", rng.random_range(0..40));
            let to = format!("v{:02}", rng.random_range(0..40));
            let new = edge(format!("n{step}"), from.clone(), to.clone());
            graph.edges.push(new);
            let reply = client.create_edge(edge_request(&format!("n{step}"), "A", &from, &to)).await.unwrap();
            lsn_of(&reply)
        };
        // Every change to the whole graph changes its result: one message per change.
        let update = result_at(&mut all, 0).await;
        assert_eq!(update.lsn, lsn, "one message per change, at its LSN");
        assert_within(&update, &oracle::pagerank(&graph, |_, _| true, CONVERGED, 0.85), 0);
    }
    // The filtered top-k: its latest result before a heartbeat past the last change is the
    // final graph's (changes to vertices outside the subgraph send nothing).
    let last =
        lsn_of(&client.get_vertex(pb::GetVertexRequest { id: "v00".into(), include_edges: false }).await.unwrap());
    let mut latest = None;
    loop {
        let update = next(&mut top).await;
        if update.heartbeat && update.lsn >= last {
            break;
        }
        if !update.heartbeat {
            latest = Some(update);
        }
    }
    let latest = latest.expect("changes inside the subgraph sent results");
    assert_within(&latest, &oracle::pagerank(&graph, keep, CONVERGED, 0.85), 5);
}

#[tokio::test]
async fn either_process_of_a_cluster_serves_a_subscription_that_follows_writes_through_both() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    let mut clients = [servers[0].client().await, servers[1].client().await];
    let mut rng = StdRng::seed_from_u64(12);
    let mut graph: Graph = oracle::random_graph(&mut rng, 30, 80);
    oracle::load(&mut clients[0], &graph).await;

    let mut streams = Vec::new();
    for client in &mut clients {
        streams.push(client.subscribe_page_rank(subscribe_request(0, None)).await.unwrap().into_inner());
    }
    let want = oracle::pagerank(&graph, |_, _| true, CONVERGED, 0.85);
    for stream in &mut streams {
        assert_within(&result_at(stream, 0).await, &want, 0);
    }
    for step in 0..10 {
        let (from, to) = (format!("v{:02}", rng.random_range(0..30)), format!("v{:02}", rng.random_range(0..30)));
        graph.edges.push(edge(format!("n{step}"), from.clone(), to.clone()));
        let through = &mut clients[step % 2];
        let lsn = lsn_of(&through.create_edge(edge_request(&format!("n{step}"), "A", &from, &to)).await.unwrap());
        let want = oracle::pagerank(&graph, |_, _| true, CONVERGED, 0.85);
        for (process, stream) in streams.iter_mut().enumerate() {
            let update = result_at(stream, lsn).await;
            assert_eq!(update.lsn, lsn, "process {process}: one message per change, at its LSN");
            assert_within(&update, &want, 0);
        }
    }
}

#[tokio::test]
async fn a_subscription_started_on_another_process_under_writes_misses_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    let mut rng = StdRng::seed_from_u64(21);
    let mut graph: Graph = oracle::random_graph(&mut rng, 30, 60);
    oracle::load(&mut servers[0].client().await, &graph).await;
    let added: Vec<TestEdge> = (0..60)
        .map(|i| {
            edge(
                format!("w{i}"),
                format!("v{:02}", rng.random_range(0..30)),
                format!("v{:02}", rng.random_range(0..30)),
            )
        })
        .collect();

    // Writes through process 0, one after another, while process 1 starts the topic: the
    // changes around its start come from both processes' workers.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let mut writer = servers[0].client().await;
    let writes = added.clone();
    let writing = tokio::spawn(async move {
        let mut started = Some(started_tx);
        let mut last = 0;
        for (i, e) in writes.iter().enumerate() {
            if i == 10 {
                started.take().map(|tx| tx.send(()));
            }
            last = lsn_of(&writer.create_edge(edge_request(&e.id, "A", &e.from, &e.to)).await.unwrap());
        }
        last
    });
    started_rx.await.unwrap();
    let mut stream =
        servers[1].client().await.subscribe_page_rank(subscribe_request(0, None)).await.unwrap().into_inner();
    let last = writing.await.unwrap();
    graph.edges.extend(added);
    let update = result_at(&mut stream, last).await;
    assert_eq!(update.lsn, last, "the last write's message");
    assert_within(&update, &oracle::pagerank(&graph, |_, _| true, CONVERGED, 0.85), 0);
}

#[tokio::test]
async fn heartbeats_carry_the_applied_lsn_while_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "      subscription_heartbeat: 100ms\n").await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("a", "P", &[])).await.unwrap();
    let mut stream = client.subscribe_page_rank(subscribe_request(0, None)).await.unwrap().into_inner();
    let first = next(&mut stream).await;
    assert_eq!(first.scores.len(), 1);

    // A write elsewhere changes nothing here: heartbeats move past its LSN, with no scores.
    let elsewhere = client.create_vertex(request(vertex_request("b", "P", &[]), Some("other"))).await.unwrap();
    let lsn = lsn_of(&elsewhere);
    loop {
        let update = next(&mut stream).await;
        assert!(update.heartbeat, "nothing changed in this namespace: {update:?}");
        assert!(update.scores.is_empty());
        assert_eq!(update.error_bound, 1e-4);
        if update.lsn >= lsn {
            break;
        }
    }
}

#[tokio::test]
async fn a_hundred_subscribers_get_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "      subscription_heartbeat: 60s\n").await;
    let mut client = server.client().await;
    let mut rng = StdRng::seed_from_u64(9);
    let graph = oracle::random_graph(&mut rng, 30, 90);
    oracle::load(&mut client, &graph).await;

    let mut streams = Vec::new();
    for _ in 0..100 {
        streams.push(client.subscribe_page_rank(subscribe_request(3, None)).await.unwrap().into_inner());
    }
    let mut firsts = Vec::new();
    for stream in &mut streams {
        firsts.push(next(stream).await);
    }
    assert!(firsts.windows(2).all(|w| w[0] == w[1]), "every subscriber starts from the same result");

    let lsn = lsn_of(&client.create_edge(edge_request("hot", "A", "v01", "v02")).await.unwrap());
    let mut updates = Vec::new();
    for stream in &mut streams {
        updates.push(result_at(stream, lsn).await);
    }
    assert!(updates.windows(2).all(|w| w[0] == w[1]), "every subscriber gets the same change");
    assert_eq!(updates[0].lsn, lsn);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_with_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "      subscription_buffer: 2\n      subscription_heartbeat: 60s\n").await;
    let mut client = server.client().await;
    // 5000 vertices: each full result is a message of about 100 KB.
    let vertices: Vec<_> = (0..5000).map(|i| vertex_request(&format!("v{i:04}"), "P", &[])).collect();
    client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();
    let mut slow = client.subscribe_page_rank(subscribe_request(0, None)).await.unwrap().into_inner();

    // Changes pile up while the subscriber reads nothing: far more than the transport's
    // windows and the two results the buffer holds.
    for i in 0..150 {
        let (from, to) = (format!("v{:04}", i), format!("v{:04}", i + 1));
        client.create_edge(edge_request(&format!("e{i}"), "A", &from, &to)).await.unwrap();
    }
    let status = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(30), slow.message()).await.expect("an answer") {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("subscription_buffer"), "{status:?}");

    // The server goes on serving other subscribers.
    let mut fresh = client.subscribe_page_rank(subscribe_request(1, None)).await.unwrap().into_inner();
    assert_eq!(next(&mut fresh).await.scores.len(), 1);
}

fn refused<T>(result: Result<T, tonic::Status>) -> tonic::Status {
    match result {
        Ok(_) => panic!("the subscription was accepted"),
        Err(status) => status,
    }
}

#[tokio::test]
async fn bad_parameters_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), "      max_results: 100\n").await;
    let mut client = server.client().await;
    let cases = [
        (
            pb::SubscribePageRankRequest { damping_factor: 1.0, ..subscribe_request(0, None) },
            Code::InvalidArgument,
            "damping_factor",
        ),
        (
            pb::SubscribePageRankRequest { damping_factor: 0.995, ..subscribe_request(0, None) },
            Code::InvalidArgument,
            "damping_factor",
        ),
        (
            pb::SubscribePageRankRequest { tolerance: -1.0, ..subscribe_request(0, None) },
            Code::InvalidArgument,
            "tolerance",
        ),
        (
            pb::SubscribePageRankRequest { tolerance: 1e-7, ..subscribe_request(0, None) },
            Code::InvalidArgument,
            "tolerance",
        ),
        (subscribe_request(-1, None), Code::InvalidArgument, "top_k"),
        (subscribe_request(101, None), Code::ResourceExhausted, "top_k"),
    ];
    for (message, code, field) in cases {
        let status = refused(client.subscribe_page_rank(message).await);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
    }
    // top_k 0 on more vertices than max_results.
    let vertices: Vec<_> = (0..101).map(|i| vertex_request(&format!("v{i}"), "P", &[])).collect();
    client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();
    let status = refused(client.subscribe_page_rank(subscribe_request(0, None)).await);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("top_k"), "{status:?}");
}

/// A server with `server:` settings of its own.
async fn server_configured(dir: &Path, server: &str) -> Server {
    ServerSpec::configured(dir, &format!("server:\n{server}")).start().await
}

#[tokio::test]
async fn an_expensive_subscription_delays_no_other_and_stops_with_its_subscriber() {
    const VERTICES: usize = 10_000;
    const EDGES: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let server = server_configured(dir.path(), "  workers: 2\n").await;
    let mut client = server.client().await;
    for chunk in (0..VERTICES).collect::<Vec<_>>().chunks(5000) {
        let vertices = chunk.iter().map(|i| vertex_request(&format!("v{i}"), "P", &[])).collect();
        client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();
    }
    // No dangling vertex: a ring, and random edges besides.
    let mut rng = StdRng::seed_from_u64(11);
    let pairs: Vec<(usize, usize)> = (0..EDGES)
        .map(|i| {
            if i < VERTICES {
                (i, (i + 1) % VERTICES)
            } else {
                (rng.random_range(0..VERTICES), rng.random_range(0..VERTICES))
            }
        })
        .collect();
    for (c, chunk) in pairs.chunks(5000).enumerate() {
        let edges = chunk
            .iter()
            .enumerate()
            .map(|(i, (from, to))| edge_request(&format!("e{c}-{i}"), "A", &format!("v{from}"), &format!("v{to}")))
            .collect();
        client.batch_create_edges(pb::BatchCreateEdgesRequest { edges, atomic: true }).await.unwrap();
    }

    // The most expensive parameters allowed: its pushes take about ten times the work of the
    // other's start, so with the thread's time shared the other is served long before.
    let expensive =
        pb::SubscribePageRankRequest { damping_factor: 0.99, tolerance: 1e-6, ..subscribe_request(10, None) };
    let mut expensive_client = server.client().await;
    let expensive = tokio::spawn(async move { expensive_client.subscribe_page_rank(expensive).await });

    // Another subscription beside it gets its first result and its changes.
    let mut normal = client.subscribe_page_rank(subscribe_request(5, None)).await.unwrap().into_inner();
    assert_eq!(next(&mut normal).await.scores.len(), 5);
    let lsn = lsn_of(&client.create_edge(edge_request("hot", "A", "v1", "v2")).await.unwrap());
    assert_eq!(result_at(&mut normal, lsn).await.lsn, lsn);
    assert!(
        !expensive.is_finished(),
        "the expensive subscription settled before the other was served: its pushes were not sliced"
    );

    // Its subscriber goes: its work stops.
    expensive.abort();
    let _ = expensive.await;
    eventually("the expensive standing PageRank dropped", || {
        server.log().matches("standing PageRank dropped").count() >= 1
    })
    .await;
    let lsn = lsn_of(&client.create_edge(edge_request("hot2", "A", "v3", "v4")).await.unwrap());
    assert_eq!(result_at(&mut normal, lsn).await.lsn, lsn);
}

#[tokio::test]
async fn standing_page_ranks_are_capped_and_subscribers_of_one_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_configured(dir.path(), "  max_standing_page_ranks: 2\n").await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("a", "P", &[])).await.unwrap();
    let first = client.subscribe_page_rank(subscribe_request(1, None)).await.unwrap().into_inner();
    let second = client.subscribe_page_rank(subscribe_request(2, None)).await.unwrap().into_inner();
    let status = refused(client.subscribe_page_rank(subscribe_request(3, None)).await);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_standing_page_ranks"), "{status:?}");
    // The parameters of a running one join it.
    let mut joined = client.subscribe_page_rank(subscribe_request(1, None)).await.unwrap().into_inner();
    assert_eq!(next(&mut joined).await.scores.len(), 1);

    // Once one ends (its only subscriber gone), a new parameter set fits.
    drop(second);
    let mut retries = tokio::time::interval(std::time::Duration::from_millis(20));
    let third = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            retries.tick().await;
            match client.subscribe_page_rank(subscribe_request(3, None)).await {
                Ok(stream) => break stream.into_inner(),
                Err(status) if status.code() == Code::ResourceExhausted => continue,
                Err(status) => panic!("{status:?}"),
            }
        }
    })
    .await
    .expect("room for a new standing PageRank once one ended");
    drop((first, third));
}
