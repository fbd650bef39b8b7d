//! What is acknowledged restarts and reads back: every entrance refuses values nested past
//! the one limit and elements or records past the configured sizes, before anything is
//! written; what is accepted survives kill -9, a checkpoint and a restart.

use prism_dataflows::limits::MAX_VALUE_DEPTH;
use prism_e2e::*;
use prism_snapshots::{Compression, Encoding, SnapshotItem, SnapshotVertex, SnapshotWriter};
use tonic::Code;

/// A wire value of `levels` levels: maps inside maps around an int.
fn nested(levels: usize) -> pb::Value {
    (1..levels).fold(int(7), |inner, _| pb::Value {
        value: Some(pb::value::Value::MapValue(pb::MapValue { fields: [("k".to_string(), inner)].into() })),
    })
}

/// The same value as JSON.
fn nested_json(levels: usize) -> serde_json::Value {
    (1..levels).fold(serde_json::json!(7), |inner, _| serde_json::json!({ "k": inner }))
}

fn engine_nested(levels: usize) -> prism_dataflows::Value {
    (1..levels).fold(prism_dataflows::Value::Int(7), |inner, _| {
        prism_dataflows::Value::Map(Box::new([("k".to_string(), inner)].into_iter().collect()))
    })
}

async fn get(client: &mut Client, id: &str) -> Result<pb::Vertex, tonic::Status> {
    let reply = client.get_vertex(pb::GetVertexRequest { id: id.into(), include_edges: false }).await?;
    Ok(reply.into_inner().vertex.expect("a vertex"))
}

/// The applied LSN, as the health of a read says it: a read of a vertex that must exist.
async fn lsn(client: &mut Client) -> u64 {
    lsn_of(&client.get_vertex(pb::GetVertexRequest { id: "anchor".into(), include_edges: false }).await.unwrap())
}

#[tokio::test]
async fn values_nested_past_the_limit_are_refused_at_every_entrance_and_what_is_accepted_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ServerSpec::configured(dir.path(), "server:\n  checkpoint_interval: 200ms\n");
    let mut server = spec.start().await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("anchor", "A", &[])).await.unwrap();

    // gRPC: one past the limit, and far past it (beyond what protobuf decoders take), are
    // INVALID_ARGUMENT naming the limit; at the limit it is accepted.
    for levels in [MAX_VALUE_DEPTH + 1, 60] {
        let status = client.create_vertex(vertex_request("deep", "D", &[("p", nested(levels))])).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{levels} levels: {status:?}");
        assert!(status.message().contains("max_value_depth"), "{levels} levels: {}", status.message());
    }
    let at_limit = nested(MAX_VALUE_DEPTH);
    let created = client.create_vertex(vertex_request("deep", "D", &[("p", at_limit.clone())])).await.unwrap();
    let written = lsn_of(&created);

    // A JSON-lines snapshot through `snapshot apply`, and a protobuf one: refused, the
    // graph unchanged.
    let json = dir.path().join("deep.jsonl");
    let line = serde_json::json!({"type": "vertex", "id": "j", "label": "J", "properties": {"p": nested_json(60)}});
    std::fs::write(&json, format!("{line}\n")).unwrap();
    let protobuf = dir.path().join("deep.snap");
    let mut writer =
        SnapshotWriter::new(std::fs::File::create(&protobuf).unwrap(), Encoding::Protobuf, Compression::Zstd).unwrap();
    let properties = [("p".to_string(), engine_nested(MAX_VALUE_DEPTH + 1))].into_iter().collect();
    let vertex = SnapshotVertex { id: "q".into(), label: "Q".into(), properties, ..Default::default() };
    writer.write(&SnapshotItem::Vertex(vertex)).unwrap();
    writer.finish().unwrap();
    for file in [&json, &protobuf] {
        let address = server.address.to_string();
        let (ok, out, err) = cli(&["snapshot", "apply", file.to_str().unwrap(), "--server", &address]).await;
        assert!(!ok && err.contains("max_value_depth"), "{}: {out}{err}", file.display());
        let (ok, out, err) = cli(&["snapshot", "load", file.to_str().unwrap(), "--server", &address]).await;
        assert!(!ok && err.contains("max_value_depth"), "{}: {out}{err}", file.display());
    }
    assert_eq!(lsn(&mut client).await, written, "nothing was written");

    // A record written by hand as JSON.
    let record = dir.path().join("deep.json");
    let operation =
        serde_json::json!({"type": "create_vertex", "id": "r", "label": "R", "properties": {"p": nested_json(60)}});
    std::fs::write(&record, serde_json::json!({ "operations": [operation] }).to_string()).unwrap();
    let (ok, out, err) = cli(&["record", "encode", record.to_str().unwrap()]).await;
    assert!(!ok && out.is_empty() && err.contains("max_value_depth"), "{out}{err}");

    // What was accepted survives a checkpoint, kill -9 and a restart.
    eventually("a checkpoint past the write", || newest_checkpoint(&spec.data_dir).is_some_and(|lsn| lsn >= written))
        .await;
    server.kill().await;
    let server = spec.start().await;
    let mut client = server.client().await;
    assert_eq!(get(&mut client, "deep").await.unwrap().properties["p"], at_limit);
}

#[tokio::test]
async fn an_element_or_record_past_its_size_limit_is_refused_and_a_merge_cannot_grow_one_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec =
        ServerSpec::configured(dir.path(), "server:\n  max_element_bytes: 65536\nwal:\n  max_record_bytes: 262144\n");
    let mut server = spec.start().await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("anchor", "A", &[])).await.unwrap();

    let text = |n: usize| string(&"x".repeat(n));
    client.create_vertex(vertex_request("big", "B", &[("a", text(40_000))])).await.unwrap();
    let before = lsn(&mut client).await;

    // A merge that would take the vertex past the limit is refused as the rules decide it:
    // RESOURCE_EXHAUSTED naming the limit, the vertex as it was.
    let merge =
        pb::UpdateVertexRequest { id: "big".into(), properties: [("b".into(), text(40_000))].into(), merge: true };
    let status = client.update_vertex(merge).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_element_bytes"), "{}", status.message());
    let status = client.create_vertex(vertex_request("huge", "B", &[("a", text(70_000))])).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // A batch whose record is past max_record_bytes is refused whole, before the log.
    let vertices = (0..10).map(|i| vertex_request(&format!("b{i}"), "B", &[("a", text(30_000))])).collect();
    let status =
        client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("max_record_bytes"), "{}", status.message());
    let status = get(&mut client, "b0").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // The refused merge was logged and refused again on replay, identically.
    let after = lsn(&mut client).await;
    assert!(after > before, "the refused merge has its LSN");
    server.kill().await;
    let server = spec.start().await;
    let mut client = server.client().await;
    let big = get(&mut client, "big").await.unwrap();
    assert_eq!(big.properties.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(lsn(&mut client).await, after);
}

#[tokio::test]
async fn a_namespace_holds_at_most_its_configured_vertices_and_edges_across_entrances_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "namespaces:\n  - name: default\n    backend:\n      max_vertices: 2\n      max_edges: 1\n";
    let spec = ServerSpec::configured(dir.path(), yaml);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let exhausted = |status: tonic::Status, limit: &str| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains(limit), "{}", status.message());
    };

    client.create_vertex(vertex_request("a", "V", &[])).await.unwrap();
    client.create_vertex(vertex_request("b", "V", &[])).await.unwrap();
    exhausted(client.create_vertex(vertex_request("c", "V", &[])).await.unwrap_err(), "max_vertices");
    client.create_edge(edge_request("ab", "E", "a", "b")).await.unwrap();
    exhausted(client.create_edge(edge_request("ba", "E", "b", "a")).await.unwrap_err(), "max_edges");
    // A namespace without its own entry takes the default namespace's limits.
    client.create_vertex(request(vertex_request("x", "V", &[]), Some("other"))).await.unwrap();

    // A snapshot applied past the limit is refused whole.
    let json = dir.path().join("more.jsonl");
    std::fs::write(&json, "{\"type\": \"vertex\", \"id\": \"d\", \"label\": \"V\"}\n").unwrap();
    let address = server.address.to_string();
    let (ok, out, err) = cli(&["snapshot", "load", json.to_str().unwrap(), "--server", &address]).await;
    assert!(!ok && err.contains("max_vertices"), "{out}{err}");

    // After kill -9 and a restart, replay decides alike: what was accepted is there, what was
    // refused is not, and the limits still hold until a delete makes room.
    server.kill().await;
    let server = spec.start().await;
    let mut client = server.client().await;
    assert_eq!(get(&mut client, "b").await.unwrap().id, "b");
    for absent in ["c", "d"] {
        assert_eq!(get(&mut client, absent).await.unwrap_err().code(), Code::NotFound, "{absent}");
    }
    let edge = client.get_edge(pb::GetEdgeRequest { id: "ba".into() }).await.unwrap_err();
    assert_eq!(edge.code(), Code::NotFound);
    exhausted(client.create_vertex(vertex_request("c", "V", &[])).await.unwrap_err(), "max_vertices");
    client.delete_vertex(pb::DeleteVertexRequest { id: "a".into(), cascade: true }).await.unwrap();
    client.create_vertex(vertex_request("c", "V", &[])).await.unwrap();
    client.create_edge(edge_request("cb", "E", "c", "b")).await.unwrap();
}
