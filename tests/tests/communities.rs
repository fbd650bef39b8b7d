//! CommunityDetection over gRPC against the references in tests/src/oracle.rs: weakly
//! connected components and label propagation, on one worker, two, and a two-process cluster.

use prism_e2e::oracle;
use prism_e2e::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tonic::Code;

fn groups(reply: pb::CommunityDetectionResponse) -> Vec<(String, Vec<String>)> {
    reply.communities.into_iter().map(|c| (c.community_id, c.vertex_ids)).collect()
}

async fn against_the_reference(client: &mut Client, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Sparse, so that there are several components.
    let graph = oracle::random_graph(&mut rng, 40, 30);
    oracle::load(client, &graph).await;
    let ask = |algorithm: &str, max_iterations: Option<i32>, vertex_filter: Option<pb::VertexFilter>| {
        pb::CommunityDetectionRequest { algorithm: algorithm.into(), vertex_filter, max_iterations }
    };

    let reply = client.community_detection(ask("connected_components", None, None)).await.unwrap();
    assert!(lsn_of(&reply) >= 2);
    let got = groups(reply.into_inner());
    let want = oracle::components(&graph, |_, _| true);
    assert!(want.len() > 3, "the graph should split: {}", want.len());
    assert_eq!(got, want);

    for iterations in [0, 1, 2, 5] {
        let reply = client.community_detection(ask("label_propagation", Some(iterations), None)).await.unwrap();
        assert_eq!(
            groups(reply.into_inner()),
            oracle::label_propagation(&graph, |_, _| true, iterations as u32),
            "{iterations} iterations"
        );
    }

    let only_p = pb::VertexFilter { labels: vec!["P".into()], property_filters: Default::default() };
    let reply = client.community_detection(ask("connected_components", None, Some(only_p.clone()))).await.unwrap();
    assert_eq!(groups(reply.into_inner()), oracle::components(&graph, |label, _| label == "P"));
    let reply = client.community_detection(ask("label_propagation", Some(3), Some(only_p))).await.unwrap();
    assert_eq!(groups(reply.into_inner()), oracle::label_propagation(&graph, |label, _| label == "P", 3));

    let status = client.community_detection(ask("girvan_newman", None, None)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("connected_components") && status.message().contains("louvain"), "{status:?}");
}

#[tokio::test]
async fn communities_match_the_reference_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 1).start().await;
    against_the_reference(&mut server.client().await, 11).await;
}

#[tokio::test]
async fn communities_match_the_reference_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 2).start().await;
    against_the_reference(&mut server.client().await, 12).await;
}

#[tokio::test]
async fn communities_match_the_reference_on_a_two_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    against_the_reference(&mut servers[1].client().await, 13).await;
}
