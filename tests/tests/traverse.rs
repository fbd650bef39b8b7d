//! Traverse over gRPC: RFC-055's friends-of-friends recommendation, filters, paths, and the
//! status of every bad request, on one process with two workers and on a two-process cluster.

use prism_e2e::*;
use tonic::Code;

fn step(direction: pb::traversal_step::Direction, labels: &[&str]) -> pb::TraversalStep {
    pb::TraversalStep {
        direction: direction as i32,
        edge_labels: labels.iter().map(|l| l.to_string()).collect(),
        min_hops: None,
        max_hops: None,
    }
}

/// alice follows bob and carol; bob and carol follow dave; carol follows erin; dave is a bot.
async fn social_graph(client: &mut Client) {
    let people =
        [("alice", "User", 30), ("bob", "User", 25), ("carol", "User", 41), ("dave", "Bot", 7), ("erin", "User", 35)];
    let vertices = people.iter().map(|(id, label, age)| vertex_request(id, label, &[("age", int(*age))])).collect();
    client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();
    let follows = [("alice", "bob"), ("alice", "carol"), ("bob", "dave"), ("carol", "dave"), ("carol", "erin")];
    let edges = follows.iter().map(|(a, b)| edge_request(&format!("{a}-{b}"), "FOLLOWS", a, b)).collect();
    client.batch_create_edges(pb::BatchCreateEdgesRequest { edges, atomic: true }).await.unwrap();
}

async fn traversal_contract(client: &mut Client) {
    social_graph(client).await;
    use pb::traversal_step::Direction::{In, Out};

    // Friends of friends, ranked by how many friends lead to them.
    let recommend = pb::TraverseRequest {
        start_vertex_id: "alice".into(),
        steps: vec![step(Out, &["FOLLOWS"]), step(Out, &["FOLLOWS"])],
        rank_by: pb::traverse_request::RankBy::PathCount as i32,
        exclude_vertex_ids: vec!["alice".into(), "bob".into(), "carol".into()],
        include_paths: true,
        ..Default::default()
    };
    let reply = client.traverse(recommend.clone()).await.unwrap();
    assert!(lsn_of(&reply) >= 2);
    let reply = reply.into_inner();
    let ranked: Vec<(&str, i64)> =
        reply.vertices.iter().map(|v| v.id.as_str()).zip(reply.path_counts.iter().copied()).collect();
    assert_eq!(ranked, [("dave", 2), ("erin", 1)]);
    let mut edge_ids: Vec<&str> = reply.edges.iter().map(|e| e.id.as_str()).collect();
    edge_ids.sort();
    assert_eq!(edge_ids, ["alice-bob", "alice-carol", "bob-dave", "carol-dave", "carol-erin"]);
    let mut paths: Vec<Vec<&str>> =
        reply.paths.iter().map(|p| p.vertex_ids.iter().map(String::as_str).collect()).collect();
    paths.sort();
    assert_eq!(paths, [vec!["alice", "bob", "dave"], vec!["alice", "carol", "dave"], vec!["alice", "carol", "erin"]]);

    // A vertex filter restricts what is returned; a limit caps it.
    let mut users = recommend.clone();
    users.vertex_filter = Some(pb::VertexFilter { labels: vec!["User".into()], property_filters: Default::default() });
    let reply = client.traverse(users).await.unwrap().into_inner();
    assert_eq!(reply.vertices.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["erin"]);
    let mut one = recommend.clone();
    one.limit = Some(1);
    assert_eq!(client.traverse(one).await.unwrap().into_inner().vertices.len(), 1);

    // An edge filter restricts every edge followed; IN follows edges backwards; hops ranges.
    let older = pb::ValuePredicate { operator: pb::value_predicate::Operator::Gt as i32, value: Some(int(30)) };
    let followers = pb::TraverseRequest {
        start_vertex_id: "dave".into(),
        steps: vec![pb::TraversalStep { min_hops: Some(1), max_hops: Some(2), ..step(In, &[]) }],
        vertex_filter: Some(pb::VertexFilter { labels: vec![], property_filters: [("age".to_string(), older)].into() }),
        ..Default::default()
    };
    let reply = client.traverse(followers).await.unwrap().into_inner();
    assert_eq!(reply.vertices.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["carol"]);

    // Bad requests name the field or the limit.
    let status = |r: Result<tonic::Response<pb::TraverseResponse>, tonic::Status>| r.unwrap_err();
    let missing = pb::TraverseRequest { start_vertex_id: "nobody".into(), ..Default::default() };
    let s = status(client.traverse(missing).await);
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let mut bad_hops = recommend.clone();
    bad_hops.steps[1].min_hops = Some(3);
    bad_hops.steps[1].max_hops = Some(2);
    let s = status(client.traverse(bad_hops).await);
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("steps[1].max_hops"), "{s:?}");
    let mut too_deep = recommend.clone();
    too_deep.steps = vec![pb::TraversalStep { min_hops: Some(1), max_hops: Some(7), ..step(Out, &[]) }];
    let s = status(client.traverse(too_deep).await);
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert!(s.message().contains("max_depth"), "{s:?}");
    let mut bad_filter = recommend;
    bad_filter.edge_filter = Some(pb::EdgeFilter {
        labels: vec![],
        property_filters: [(
            "w".to_string(),
            pb::ValuePredicate { operator: pb::value_predicate::Operator::In as i32, value: Some(int(1)) },
        )]
        .into(),
    });
    let s = status(client.traverse(bad_filter).await);
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().contains("edge_filter.property_filters.w.value"), "{s:?}");
}

#[tokio::test]
async fn traverse_on_one_process_with_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = generous_limits(dir.path());
    traversal_contract(&mut spec.start().await.client().await).await;
}

#[tokio::test]
async fn traverse_on_a_two_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster_with(dir.path(), 2, generous_limits(dir.path())).await;
    traversal_contract(&mut servers[1].client().await).await;
}

#[tokio::test]
async fn the_traversal_timeout_answers_deadline_exceeded_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prism.yaml");
    std::fs::write(&config, "namespaces:\n  - name: default\n    performance:\n      traversal_timeout: 0ms\n")
        .unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 1);
    spec.extra_args = vec!["--config".into(), config.display().to_string()];
    let server = spec.start().await;
    let mut client = server.client().await;
    social_graph(&mut client).await;
    let request = pb::TraverseRequest {
        start_vertex_id: "alice".into(),
        steps: vec![step(pb::traversal_step::Direction::Out, &[])],
        ..Default::default()
    };
    let status = client.traverse(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(status.message().contains("traversal_timeout"), "{status:?}");
    let status = client
        .shortest_path(pb::ShortestPathRequest {
            start_vertex_id: "alice".into(),
            end_vertex_id: "dave".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
}
