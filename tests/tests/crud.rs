//! CRUD semantics and every error code, against a spawned server: one process with two
//! workers, and a cluster of two processes with one worker each.

use std::collections::HashMap;

use prism_e2e::*;
use tonic::Code;

/// The CRUD contract, run against `writer` (which may forward to another process) and read
/// back through `reader`.
async fn crud_contract(writer: &mut Client, reader: &mut Client) {
    // Create and read back, with timestamps fixed by the write.
    let created = writer
        .create_vertex(vertex_request("alice", "User", &[("name", string("Alice")), ("age", int(30))]))
        .await
        .unwrap();
    let write_lsn = lsn_of(&created);
    assert!(write_lsn >= 1);
    let created = created.into_inner().vertex.unwrap();
    assert!(created.created_at.is_some() && created.created_at == created.updated_at);
    // Read-your-writes: the read after the acknowledged write sees it.
    let mut get = request(pb::GetVertexRequest { id: "alice".into(), include_edges: false }, None);
    get.metadata_mut().insert("x-prism-min-lsn", write_lsn.to_string().parse().unwrap());
    let read = reader.get_vertex(get).await.unwrap();
    assert!(lsn_of(&read) >= write_lsn);
    assert_eq!(read.into_inner().vertex.unwrap(), created);

    // ALREADY_EXISTS, INVALID_ARGUMENT naming the field, NOT_FOUND.
    expect_code(writer.create_vertex(vertex_request("alice", "User", &[])).await, Code::AlreadyExists, "alice").await;
    expect_code(writer.create_vertex(vertex_request("", "User", &[])).await, Code::InvalidArgument, "id").await;
    let no_kind = pb::Value { value: None };
    expect_code(
        writer.create_vertex(vertex_request("bob", "User", &[("broken", no_kind)])).await,
        Code::InvalidArgument,
        "properties.broken",
    )
    .await;
    expect_code(
        reader.get_vertex(pb::GetVertexRequest { id: "nobody".into(), include_edges: false }).await,
        Code::NotFound,
        "nobody",
    )
    .await;

    // Edges need both endpoints.
    writer.create_vertex(vertex_request("bob", "User", &[])).await.unwrap();
    expect_code(
        writer.create_edge(edge_request("e0", "FOLLOWS", "alice", "carol")).await,
        Code::FailedPrecondition,
        "carol",
    )
    .await;
    let edge =
        writer.create_edge(edge_request("e1", "FOLLOWS", "alice", "bob")).await.unwrap().into_inner().edge.unwrap();
    expect_code(writer.create_edge(edge_request("e1", "FOLLOWS", "bob", "alice")).await, Code::AlreadyExists, "e1")
        .await;
    writer.create_edge(edge_request("e2", "FOLLOWS", "bob", "alice")).await.unwrap();
    writer.create_edge(edge_request("loop", "LIKES", "bob", "bob")).await.unwrap();
    let got = reader.get_edge(pb::GetEdgeRequest { id: "e1".into() }).await.unwrap().into_inner().edge.unwrap();
    assert_eq!(got, edge);
    let bob =
        reader.get_vertex(pb::GetVertexRequest { id: "bob".into(), include_edges: true }).await.unwrap().into_inner();
    let mut edge_ids: Vec<String> = bob.edges.iter().map(|e| e.id.clone()).collect();
    edge_ids.sort();
    assert_eq!(edge_ids, ["e1", "e2", "loop"], "out, in, and the self-loop once");

    // Update: merge keeps other keys, replace drops them.
    let merged = writer
        .update_vertex(pb::UpdateVertexRequest {
            id: "alice".into(),
            properties: [("age".to_string(), int(31))].into(),
            merge: true,
        })
        .await
        .unwrap()
        .into_inner()
        .vertex
        .unwrap();
    assert_eq!(merged.properties["name"], string("Alice"));
    assert_eq!(merged.properties["age"], int(31));
    assert_eq!(merged.created_at, created.created_at);
    let replaced = writer
        .update_vertex(pb::UpdateVertexRequest {
            id: "alice".into(),
            properties: [("x".to_string(), int(1))].into(),
            merge: false,
        })
        .await
        .unwrap();
    let replace_lsn = lsn_of(&replaced);
    assert_eq!(replaced.into_inner().vertex.unwrap().properties.keys().collect::<Vec<_>>(), ["x"]);
    expect_code(
        writer
            .update_vertex(pb::UpdateVertexRequest { id: "ghost".into(), properties: HashMap::new(), merge: true })
            .await,
        Code::NotFound,
        "ghost",
    )
    .await;
    let mut get = request(pb::GetVertexRequest { id: "alice".into(), include_edges: false }, None);
    get.metadata_mut().insert("x-prism-min-lsn", replace_lsn.to_string().parse().unwrap());
    let alice = reader.get_vertex(get).await.unwrap().into_inner().vertex.unwrap();
    assert_eq!(alice.properties.keys().collect::<Vec<_>>(), ["x"]);

    // Delete: edges block it without cascade; with cascade they go in the same record.
    expect_code(
        writer.delete_vertex(pb::DeleteVertexRequest { id: "alice".into(), cascade: false }).await,
        Code::FailedPrecondition,
        "cascade",
    )
    .await;
    writer.delete_edge(pb::DeleteEdgeRequest { id: "e2".into() }).await.unwrap();
    expect_code(writer.delete_edge(pb::DeleteEdgeRequest { id: "e2".into() }).await, Code::NotFound, "e2").await;
    // A deleted edge's id can be taken again: reads see the new edge, never the old one.
    let again = writer.create_edge(edge_request("e2", "BLOCKS", "bob", "bob")).await.unwrap();
    let mut get = request(pb::GetEdgeRequest { id: "e2".into() }, None);
    get.metadata_mut().insert("x-prism-min-lsn", lsn_of(&again).to_string().parse().unwrap());
    let got = reader.get_edge(get).await.unwrap().into_inner().edge.unwrap();
    assert_eq!((got.label.as_str(), got.from_vertex_id.as_str()), ("BLOCKS", "bob"));
    let deleted = writer.delete_vertex(pb::DeleteVertexRequest { id: "alice".into(), cascade: true }).await.unwrap();
    let delete_lsn = lsn_of(&deleted);
    assert_eq!(deleted.into_inner().edges_deleted, 1);
    let mut get = request(pb::GetEdgeRequest { id: "e1".into() }, None);
    get.metadata_mut().insert("x-prism-min-lsn", delete_lsn.to_string().parse().unwrap());
    expect_code(reader.get_edge(get).await, Code::NotFound, "e1").await;
    expect_code(
        writer.delete_vertex(pb::DeleteVertexRequest { id: "alice".into(), cascade: true }).await,
        Code::NotFound,
        "alice",
    )
    .await;

    // Namespaces are separate graphs.
    writer.create_vertex(request(vertex_request("bob", "Other", &[]), Some("tenant-b"))).await.unwrap();
    let other = reader
        .get_vertex(request(pb::GetVertexRequest { id: "bob".into(), include_edges: true }, Some("tenant-b")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.vertex.unwrap().label, "Other");
    assert!(other.edges.is_empty());

    // A read waiting for an LSN that never comes gives up at its deadline.
    let mut get = request(pb::GetVertexRequest { id: "bob".into(), include_edges: false }, None);
    get.metadata_mut().insert("x-prism-min-lsn", "1000000".parse().unwrap());
    get.set_timeout(std::time::Duration::from_millis(1000));
    let result = reader.get_vertex(get).await;
    assert_eq!(result.unwrap_err().code(), Code::DeadlineExceeded);
}

async fn batches(client: &mut Client) {
    // Atomic: all or nothing, with the failing item's index in the status.
    let atomic = pb::BatchCreateVerticesRequest {
        vertices: vec![vertex_request("b1", "B", &[]), vertex_request("b2", "B", &[]), vertex_request("b1", "B", &[])],
        atomic: true,
    };
    expect_code(client.batch_create_vertices(atomic).await, Code::AlreadyExists, "vertices[2]").await;
    expect_code(
        client.get_vertex(pb::GetVertexRequest { id: "b2".into(), include_edges: false }).await,
        Code::NotFound,
        "b2",
    )
    .await;
    let invalid = pb::BatchCreateVerticesRequest {
        vertices: vec![vertex_request("b1", "B", &[]), vertex_request("", "B", &[])],
        atomic: true,
    };
    expect_code(client.batch_create_vertices(invalid).await, Code::InvalidArgument, "vertices[1].id").await;

    // Not atomic: each failure an ItemError at its index, the rest written.
    let partial = pb::BatchCreateVerticesRequest {
        vertices: vec![
            vertex_request("b1", "B", &[]),
            vertex_request("", "B", &[]),
            vertex_request("b1", "B", &[]),
            vertex_request("b3", "B", &[]),
        ],
        atomic: false,
    };
    let reply = client.batch_create_vertices(partial).await.unwrap().into_inner();
    assert_eq!(reply.vertices.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["b1", "b3"]);
    let errors: Vec<(i32, &str)> = reply.errors.iter().map(|e| (e.index, e.code.as_str())).collect();
    assert_eq!(errors, [(1, "INVALID_ARGUMENT"), (2, "ALREADY_EXISTS")]);

    let edges = pb::BatchCreateEdgesRequest {
        edges: vec![edge_request("be1", "L", "b1", "b3"), edge_request("be2", "L", "b1", "missing")],
        atomic: false,
    };
    let reply = client.batch_create_edges(edges).await.unwrap().into_inner();
    assert_eq!(reply.edges.len(), 1);
    assert_eq!(reply.errors[0].index, 1);
    assert_eq!(reply.errors[0].code, "FAILED_PRECONDITION");
    let edges = pb::BatchCreateEdgesRequest {
        edges: vec![edge_request("be3", "L", "b3", "b1"), edge_request("be4", "L", "b1", "missing")],
        atomic: true,
    };
    expect_code(client.batch_create_edges(edges).await, Code::FailedPrecondition, "edges[1]").await;
    expect_code(client.get_edge(pb::GetEdgeRequest { id: "be3".into() }).await, Code::NotFound, "be3").await;
}

/// Every Value kind survives the write, the log and the read.
async fn value_round_trip(client: &mut Client) {
    use pb::value::Value as V;
    let v = |value| pb::Value { value: Some(value) };
    let nested = v(V::MapValue(pb::MapValue {
        fields: [
            (
                "list".to_string(),
                v(V::ListValue(pb::ListValue { values: vec![v(V::IntValue(1)), v(V::StringValue("two".into()))] })),
            ),
            (
                "inner".to_string(),
                v(V::MapValue(pb::MapValue { fields: [("deep".to_string(), v(V::BoolValue(false)))].into() })),
            ),
        ]
        .into(),
    }));
    let props = [
        ("s", v(V::StringValue("héllo".into()))),
        ("i", v(V::IntValue(i64::MIN))),
        ("d", v(V::DoubleValue(-1.5e300))),
        ("b", v(V::BoolValue(true))),
        ("bytes", v(V::BytesValue(vec![0, 1, 254, 255]))),
        ("empty_list", v(V::ListValue(pb::ListValue { values: vec![] }))),
        ("nested", nested),
    ];
    let created =
        client.create_vertex(vertex_request("kinds", "K", &props)).await.unwrap().into_inner().vertex.unwrap();
    let read = client.get_vertex(pb::GetVertexRequest { id: "kinds".into(), include_edges: false }).await.unwrap();
    let read = read.into_inner().vertex.unwrap();
    assert_eq!(read.properties, created.properties);
    for (key, value) in props {
        assert_eq!(read.properties[key], value, "{key}");
    }
}

#[tokio::test]
async fn crud_on_one_process_with_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 2).start().await;
    let mut client = server.client().await;
    let mut reader = server.client().await;
    crud_contract(&mut client, &mut reader).await;
    batches(&mut client).await;
    value_round_trip(&mut client).await;
}

#[tokio::test]
async fn crud_on_a_two_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    // Writes through process 1 travel to the log on process 0; reads through each.
    let mut via_p1 = servers[1].client().await;
    let mut via_p0 = servers[0].client().await;
    crud_contract(&mut via_p1, &mut via_p0).await;
    batches(&mut via_p0).await;
    value_round_trip(&mut via_p1).await;
}

/// An atomic batch whose vertices and edges live on both processes of a cluster (their
/// keys shard to both) is decided whole: one edge to a missing vertex refuses every edge,
/// seen from either process, and without it every edge is written, seen from either.
#[tokio::test]
async fn an_atomic_batch_across_both_processes_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    let mut via_p0 = servers[0].client().await;
    let mut via_p1 = servers[1].client().await;
    let vertices: Vec<_> = (0..20).map(|i| vertex_request(&format!("x{i}"), "X", &[])).collect();
    via_p1.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap();

    let ring = |with_missing: bool| {
        let mut edges: Vec<_> = (0..20)
            .map(|i| edge_request(&format!("r{i}"), "NEXT", &format!("x{i}"), &format!("x{}", (i + 1) % 20)))
            .collect();
        if with_missing {
            edges.insert(10, edge_request("r-missing", "NEXT", "x3", "nowhere"));
        }
        pb::BatchCreateEdgesRequest { edges, atomic: true }
    };
    expect_code(via_p0.batch_create_edges(ring(true)).await, Code::FailedPrecondition, "edges[10]").await;
    for client in [&mut via_p0, &mut via_p1] {
        for i in 0..20 {
            let id = format!("r{i}");
            expect_code(client.get_edge(pb::GetEdgeRequest { id: id.clone() }).await, Code::NotFound, &id).await;
        }
        // Every vertex still has no edge: none was half written.
        let reply = client.get_vertex(pb::GetVertexRequest { id: "x3".into(), include_edges: true }).await.unwrap();
        assert!(reply.into_inner().edges.is_empty());
    }

    let written = via_p1.batch_create_edges(ring(false)).await.unwrap();
    let lsn = lsn_of(&written);
    assert_eq!(written.into_inner().edges.len(), 20);
    for client in [&mut via_p0, &mut via_p1] {
        for i in 0..20 {
            let mut request = tonic::Request::new(pb::GetEdgeRequest { id: format!("r{i}") });
            request.metadata_mut().insert("x-prism-min-lsn", lsn.to_string().parse().unwrap());
            let edge = client.get_edge(request).await.unwrap().into_inner().edge.expect("an edge");
            assert_eq!(edge.to_vertex_id, format!("x{}", (i + 1) % 20));
        }
    }
}
