//! ShortestPath, AllPaths and DetectCycles over gRPC: RFC-055's fraud-ring use case and the
//! status of every bad request.

use prism_e2e::*;
use tonic::Code;

/// Transfers: a -> b -> c -> a (a ring), c -> d, and a direct a -> c that costs more.
async fn transfers(client: &mut Client) {
    let vertices = ["a", "b", "c", "d", "lonely"].iter().map(|id| vertex_request(id, "Account", &[])).collect();
    client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();
    let edges =
        [("ab", "a", "b", 1), ("bc", "b", "c", 1), ("ca", "c", "a", 1), ("cd", "c", "d", 1), ("ac", "a", "c", 5)]
            .iter()
            .map(|(id, from, to, amount)| {
                let mut edge = edge_request(id, "TRANSFER", from, to);
                edge.properties.insert("amount".into(), int(*amount));
                edge
            })
            .collect();
    client.batch_create_edges(pb::BatchCreateEdgesRequest { edges, atomic: true }).await.unwrap();
}

fn ids(path: &pb::Path) -> Vec<&str> {
    path.vertex_ids.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn fraud_rings_paths_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = generous_limits(dir.path());
    let server = spec.start().await;
    let mut client = server.client().await;
    transfers(&mut client).await;

    let cycles = client
        .detect_cycles(pb::DetectCyclesRequest {
            start_vertex_id: "a".into(),
            edge_labels: vec!["TRANSFER".into()],
            max_depth: 5,
            min_cycle_length: 2,
        })
        .await
        .unwrap();
    assert!(lsn_of(&cycles) >= 2);
    let cycles = cycles.into_inner().cycles;
    let rings: Vec<Vec<&str>> = cycles.iter().map(ids).collect();
    assert_eq!(rings, [vec!["a", "c", "a"], vec!["a", "b", "c", "a"]]);

    let fewest =
        pb::ShortestPathRequest { start_vertex_id: "a".into(), end_vertex_id: "d".into(), ..Default::default() };
    let reply = client.shortest_path(fewest.clone()).await.unwrap().into_inner();
    assert_eq!(ids(&reply.path.unwrap()), ["a", "c", "d"]);
    assert_eq!(reply.total_weight, 2.0);
    let cheapest = pb::ShortestPathRequest { weight_property: Some("amount".into()), ..fewest.clone() };
    let reply = client.shortest_path(cheapest).await.unwrap().into_inner();
    assert_eq!(ids(&reply.path.unwrap()), ["a", "b", "c", "d"]);
    assert_eq!(reply.total_weight, 3.0);
    let too_short =
        pb::ShortestPathRequest { weight_property: Some("amount".into()), max_hops: Some(2), ..fewest.clone() };
    let reply = client.shortest_path(too_short).await.unwrap().into_inner();
    assert_eq!(reply.total_weight, 6.0, "within 2 hops only the direct a -> c -> d");

    // No path is an empty path, not an error.
    let none = pb::ShortestPathRequest { end_vertex_id: "lonely".into(), ..fewest.clone() };
    let reply = client.shortest_path(none).await.unwrap().into_inner();
    assert!(reply.path.unwrap_or_default().vertex_ids.is_empty());

    let all = client
        .all_paths(pb::AllPathsRequest {
            start_vertex_id: "a".into(),
            end_vertex_id: "d".into(),
            max_hops: 4,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.paths.iter().map(ids).collect::<Vec<_>>(), [vec!["a", "c", "d"], vec!["a", "b", "c", "d"]]);

    // Errors name the field, the edge or the limit.
    let missing = pb::ShortestPathRequest { end_vertex_id: "zed".into(), ..fewest.clone() };
    let status = client.shortest_path(missing).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("end_vertex_id"), "{status:?}");
    let mut negative = edge_request("neg", "TRANSFER", "d", "a");
    negative.properties.insert("amount".into(), int(-4));
    client.create_edge(negative).await.unwrap();
    let to_a = pb::ShortestPathRequest {
        start_vertex_id: "d".into(),
        end_vertex_id: "b".into(),
        weight_property: Some("amount".into()),
        ..Default::default()
    };
    let status = client.shortest_path(to_a).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("\"neg\""), "{status:?}");
    let text = pb::ShortestPathRequest { weight_property: Some("label".into()), ..fewest.clone() };
    assert_eq!(client.shortest_path(text).await.unwrap_err().code(), Code::InvalidArgument);
    let deep = pb::DetectCyclesRequest {
        start_vertex_id: "a".into(),
        edge_labels: vec![],
        max_depth: 50,
        min_cycle_length: 0,
    };
    let status = client.detect_cycles(deep).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("max_depth"), "{status:?}");
    let empty =
        pb::AllPathsRequest { start_vertex_id: String::new(), end_vertex_id: "d".into(), max_hops: 2, limit: 1 };
    let status = client.all_paths(empty).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("start_vertex_id"), "{status:?}");
}

#[tokio::test]
async fn shortest_paths_have_no_hop_cap_but_the_callers() {
    const LENGTH: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = generous_limits(dir.path());
    let server = spec.start().await;
    let mut client = server.client().await;
    // A chain c0 -> c1 -> ... -> c39 of weight 1 a link, and a direct c0 -> c39 of weight 100.
    let vertices = (0..LENGTH).map(|i| vertex_request(&format!("c{i}"), "Stop", &[])).collect();
    client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();
    let mut edges: Vec<pb::CreateEdgeRequest> = (1..LENGTH)
        .map(|i| {
            let mut edge = edge_request(&format!("l{i}"), "NEXT", &format!("c{}", i - 1), &format!("c{i}"));
            edge.properties.insert("w".into(), int(1));
            edge
        })
        .collect();
    let mut jump = edge_request("jump", "JUMP", "c0", &format!("c{}", LENGTH - 1));
    jump.properties.insert("w".into(), int(100));
    edges.push(jump);
    client.batch_create_edges(pb::BatchCreateEdgesRequest { edges, atomic: true }).await.unwrap();

    let along_the_chain = pb::ShortestPathRequest {
        start_vertex_id: "c0".into(),
        end_vertex_id: format!("c{}", LENGTH - 1),
        edge_labels: vec!["NEXT".into()],
        ..Default::default()
    };
    let reply = client.shortest_path(along_the_chain.clone()).await.unwrap().into_inner();
    assert_eq!(reply.path.unwrap().edge_ids.len(), LENGTH - 1, "39 hops, past the old cap of 16");
    let bounded = pb::ShortestPathRequest { max_hops: Some(20), ..along_the_chain.clone() };
    let reply = client.shortest_path(bounded).await.unwrap().into_inner();
    assert!(reply.path.unwrap_or_default().vertex_ids.is_empty(), "no path within the caller's 20 hops");

    let cheapest = pb::ShortestPathRequest {
        weight_property: Some("w".into()),
        edge_labels: Vec::new(),
        ..along_the_chain.clone()
    };
    let reply = client.shortest_path(cheapest.clone()).await.unwrap().into_inner();
    assert_eq!(reply.total_weight, (LENGTH - 1) as f64);
    assert_eq!(reply.path.unwrap().edge_ids.len(), LENGTH - 1);
    let within = pb::ShortestPathRequest { max_hops: Some(20), ..cheapest };
    let reply = client.shortest_path(within).await.unwrap().into_inner();
    assert_eq!(reply.total_weight, 100.0, "within 20 hops only the direct edge");
}
