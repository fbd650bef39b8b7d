//! Snapshots end to end: export, load, apply as a difference, diff, `serve --snapshot`, and
//! bad input that leaves the graph as it was.

use std::path::Path;
use std::time::Duration;

use prism_dataflows::{Properties, Value};
use prism_e2e::oracle;
use prism_e2e::*;
use prism_snapshots::{
    Compression, Encoding, Section, SnapshotEdge, SnapshotItem, SnapshotReader, SnapshotVertex, SnapshotWriter,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tonic::Code;

fn items(path: &Path) -> Vec<SnapshotItem> {
    SnapshotReader::open(path).unwrap().map(Result::unwrap).filter(|i| !matches!(i, SnapshotItem::Section(_))).collect()
}

fn write(path: &Path, items: &[SnapshotItem], encoding: Encoding, compression: Compression) {
    let mut writer = SnapshotWriter::new(std::fs::File::create(path).unwrap(), encoding, compression).unwrap();
    for item in items {
        writer.write(item).unwrap();
    }
    writer.finish().unwrap();
}

/// A vertex labelled `P` with no properties.
fn vertex(id: &str) -> SnapshotItem {
    SnapshotItem::Vertex(SnapshotVertex { id: id.into(), label: "P".into(), ..Default::default() })
}

/// An edge labelled `A` with no properties.
fn edge(id: &str, from: &str, to: &str) -> SnapshotItem {
    SnapshotItem::Edge(SnapshotEdge {
        id: id.into(),
        label: "A".into(),
        from: from.into(),
        to: to.into(),
        ..Default::default()
    })
}

/// The current LSN, as a read of vertex `id` (which must exist) answers it.
async fn lsn(client: &mut Client, id: &str) -> u64 {
    lsn_of(&client.get_vertex(pb::GetVertexRequest { id: id.into(), include_edges: false }).await.unwrap())
}

#[tokio::test]
async fn export_load_apply_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let a = ServerSpec::new(&dir.path().join("a"), 2).start().await;
    let mut client = a.client().await;
    let graph = oracle::random_graph(&mut StdRng::seed_from_u64(3), 30, 60);
    oracle::load(&mut client, &graph).await;

    // Export (zstd protobuf by default), then load into a fresh server: the same graph.
    let first = dir.path().join("first.snap");
    let (ok, _, err) =
        cli(&["snapshot", "export", "--server", &a.address.to_string(), "-o", first.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(&std::fs::read(&first).unwrap()[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd by default");
    assert_eq!(items(&first).len(), 90);
    let b = ServerSpec::new(&dir.path().join("b"), 2).start().await;
    let (ok, out, err) = cli(&["snapshot", "load", first.to_str().unwrap(), "--server", &b.address.to_string()]).await;
    assert!(ok && out.contains("loaded 30 vertices and 60 edges"), "{out}{err}");
    assert!(err.contains("/s)"), "a progress line with the rate: {err}");
    let copy = dir.path().join("copy.snap");
    assert!(cli(&["snapshot", "export", "--server", &b.address.to_string(), "-o", copy.to_str().unwrap()]).await.0);
    let (ok, out, _) = cli(&["snapshot", "diff", first.to_str().unwrap(), copy.to_str().unwrap()]).await;
    assert!(ok && out.starts_with("vertices +0 -0 ~0, edges +0 -0 ~0"), "{out}");

    // A newer snapshot (JSON lines, gzip): one vertex removed with its edges, one changed,
    // one added with an edge, one edge rewired.
    let mut newer = items(&first);
    let gone = "v05";
    newer.retain(|item| match item {
        SnapshotItem::Vertex(v) => v.id != gone,
        SnapshotItem::Edge(e) => e.from != gone && e.to != gone,
        SnapshotItem::Section(_) | SnapshotItem::Request(_) => true,
    });
    let removed_edges = 90 - 1 - newer.len() as i64;
    for item in &mut newer {
        match item {
            SnapshotItem::Vertex(v) if v.id == "v07" => {
                v.label = "Renamed".into();
                v.properties = [("age".to_string(), Value::Int(99))].into_iter().collect();
            }
            SnapshotItem::Edge(e) if e.id == "e010" && e.from != gone && e.to != gone => e.to = "v00".into(),
            _ => {}
        }
    }
    newer.push(SnapshotItem::Vertex(SnapshotVertex {
        id: "new".into(),
        label: "P".into(),
        properties: Properties::new(),
        ..Default::default()
    }));
    newer.push(SnapshotItem::Edge(SnapshotEdge {
        id: "enew".into(),
        label: "A".into(),
        from: "new".into(),
        to: "v00".into(),
        properties: Properties::new(),
        created_at: 0,
    }));
    let second = dir.path().join("second.jsonl.gz");
    write(&second, &newer, Encoding::JsonLines, Compression::Gzip);

    let (ok, out, _) = cli(&[
        "snapshot",
        "diff",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
        "-o",
        dir.path().join("d.jsonl").to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{out}");
    let counts = format!("vertices +1 -1 ~1, edges +1 -{removed_edges} ~");
    assert!(out.starts_with(&counts), "{out} vs {counts}");
    let operations = std::fs::read_to_string(dir.path().join("d.jsonl")).unwrap();
    assert!(operations.lines().any(|l| l.contains("\"delete_vertex\"") && l.contains(gone)), "{operations}");

    let before = lsn(&mut client, "v00").await;
    let (ok, out, err) =
        cli(&["snapshot", "apply", second.to_str().unwrap(), "--server", &a.address.to_string()]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("applied at LSN {}: vertices +1 -1 ~1", before + 1)), "one record, one LSN: {out}");
    let v07 = client.get_vertex(pb::GetVertexRequest { id: "v07".into(), include_edges: false }).await.unwrap();
    let v07 = v07.into_inner().vertex.unwrap();
    assert_eq!((v07.label.as_str(), &v07.properties["age"]), ("Renamed", &int(99)));
    assert!(client.get_vertex(pb::GetVertexRequest { id: gone.into(), include_edges: false }).await.is_err());
    let after = dir.path().join("after.snap");
    assert!(cli(&["snapshot", "export", "--server", &a.address.to_string(), "-o", after.to_str().unwrap()]).await.0);
    let (_, out, _) = cli(&["snapshot", "diff", second.to_str().unwrap(), after.to_str().unwrap()]).await;
    assert!(out.starts_with("vertices +0 -0 ~0, edges +0 -0 ~0"), "the server holds the newer snapshot: {out}");
}

#[tokio::test]
async fn bad_input_names_the_record_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 1).start().await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("keep", "P", &[])).await.unwrap();
    let address = server.address.to_string();
    let vertex = |id: &str| {
        SnapshotItem::Vertex(SnapshotVertex {
            id: id.into(),
            label: "P".into(),
            properties: Properties::new(),
            ..Default::default()
        })
    };
    let edge = |id: &str, to: &str| {
        SnapshotItem::Edge(SnapshotEdge {
            id: id.into(),
            label: "A".into(),
            from: "a".into(),
            to: to.into(),
            properties: Properties::new(),
            ..Default::default()
        })
    };

    let cases: Vec<(&str, Vec<u8>, &str)> = {
        let mut cases = Vec::new();
        let path = dir.path().join("t");
        write(&path, &[vertex("a"), vertex("b"), edge("e", "b")], Encoding::Protobuf, Compression::Zstd);
        let mut truncated = std::fs::read(&path).unwrap();
        truncated.truncate(truncated.len() - 6);
        cases.push(("truncated zstd", truncated, "record"));
        write(&path, &[vertex("a")], Encoding::Protobuf, Compression::None);
        let mut bad_varint = std::fs::read(&path).unwrap();
        bad_varint.extend([0xff; 11]);
        cases.push(("a bad varint", bad_varint, "record 2"));
        cases.push((
            "an unknown record type",
            b"{\"type\":\"vertex\",\"id\":\"a\",\"label\":\"P\"}\n{\"type\":\"blob\"}\n".to_vec(),
            "record 2",
        ));
        write(&path, &[vertex("a"), vertex("a")], Encoding::JsonLines, Compression::None);
        cases.push(("a duplicate id", std::fs::read(&path).unwrap(), "appears"));
        // Repeated edge ids are found by the comparison with the running graph in an apply,
        // by the check in a load.
        write(
            &path,
            &[vertex("a"), vertex("b"), edge("e", "b"), edge("e", "a")],
            Encoding::Protobuf,
            Compression::Zstd,
        );
        cases.push(("a duplicate edge id", std::fs::read(&path).unwrap(), "appears"));
        write(&path, &[vertex("a"), edge("e", "nobody")], Encoding::JsonLines, Compression::None);
        cases.push(("an edge to a missing vertex", std::fs::read(&path).unwrap(), "nobody"));
        let counted = [
            SnapshotItem::Section(Section { vertex_count: Some(3), edge_count: Some(0), ..Default::default() }),
            vertex("a"),
        ];
        write(&path, &counted, Encoding::Protobuf, Compression::Gzip);
        cases.push(("counts that disagree", std::fs::read(&path).unwrap(), "vertex_count"));
        cases
    };
    let before = lsn(&mut client, "keep").await;
    for (what, bytes, mentions) in cases {
        let path = dir.path().join("bad");
        std::fs::write(&path, &bytes).unwrap();
        let (ok, _, err) = cli(&["snapshot", "apply", path.to_str().unwrap(), "--server", &address]).await;
        assert!(!ok && err.contains(mentions), "apply of {what}: {err}");
        let (ok, _, err) =
            cli(&["snapshot", "load", path.to_str().unwrap(), "--server", &address, "--namespace", "fresh"]).await;
        assert!(!ok && err.contains(mentions), "load of {what}: {err}");
        assert_eq!(lsn(&mut client, "keep").await, before, "{what} changed the graph");
    }
}

#[tokio::test]
async fn serve_loads_a_snapshot_at_start_and_again_without_duplicating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    let mut items =
        vec![SnapshotItem::Section(Section { vertex_count: Some(2), edge_count: Some(1), ..Default::default() })];
    items.extend([vertex("a"), vertex("b"), edge("e", "a", "b")]);
    write(&path, &items, Encoding::Protobuf, Compression::Zstd);
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = vec!["--snapshot".into(), path.display().to_string()];
    for _ in 0..2 {
        let mut server = spec.start().await;
        let mut client = server.client().await;
        let a = client.get_vertex(pb::GetVertexRequest { id: "a".into(), include_edges: true }).await.unwrap();
        assert_eq!(a.into_inner().edges.len(), 1);
        server.kill().await;
    }
}

#[tokio::test]
async fn serve_streams_every_section_in_records_with_edges_after_their_vertices() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    // Two namespaces; in the second, an edge comes before the vertices it joins.
    let mut items = vec![SnapshotItem::Section(Section { namespace: Some("first".into()), ..Default::default() })];
    items.extend((0..7).map(|i| vertex(&format!("v{i}"))));
    items.extend((0..6).map(|i| edge(&format!("e{i}"), &format!("v{i}"), &format!("v{}", i + 1))));
    items.push(SnapshotItem::Section(Section { namespace: Some("second".into()), ..Default::default() }));
    items.push(edge("x", "p", "q"));
    items.extend([vertex("p"), vertex("q")]);
    write(&path, &items, Encoding::Protobuf, Compression::Zstd);
    // Records of two operations: the first namespace takes several. (Without checkpoints a
    // load goes through the log; with them, it goes in bulk: see below.)
    let config =
        "server:\n  checkpoint_interval: 0s\nnamespaces:\n  - name: first\n    performance:\n      batch_size: 2\n";
    let mut spec = ServerSpec::configured(dir.path(), config);
    spec.extra_args.extend(["--snapshot".to_string(), path.display().to_string()]);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let ask = |id: &str, namespace: &str| {
        request(pb::GetVertexRequest { id: id.into(), include_edges: true }, Some(namespace))
    };
    let v3 = client.get_vertex(ask("v3", "first")).await.unwrap();
    let lsn = lsn_of(&v3);
    assert_eq!(v3.into_inner().edges.len(), 2);
    assert!(lsn >= 7, "13 elements in records of 2 take at least 7 records, not {lsn}");
    let p = client.get_vertex(ask("p", "second")).await.unwrap().into_inner();
    assert_eq!(p.edges.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["x"]);

    // Acknowledged before SERVING, so it is there after a kill -9 (and is not loaded twice).
    server.kill().await;
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let v6 = client.get_vertex(ask("v6", "first")).await.unwrap().into_inner();
    assert_eq!(v6.edges.len(), 1);
    server.kill().await;
}

/// A section of `namespace` holding a path of `n` vertices, `v0` to `v{n-1}`, the edge into
/// `v{i}` named `edge_id(i)`.
fn path_section(namespace: &str, n: usize, edge_id: impl Fn(usize) -> String) -> Vec<SnapshotItem> {
    let mut items = vec![SnapshotItem::Section(Section { namespace: Some(namespace.into()), ..Default::default() })];
    items.extend((0..n).map(|i| vertex(&format!("v{i}"))));
    items.extend((1..n).map(|i| edge(&edge_id(i), &format!("v{}", i - 1), &format!("v{i}"))));
    items
}

/// A snapshot of namespace `first` (a path of `n` vertices, `v0` to `v{n-1}`) and of
/// `second` (`p -> q`).
fn two_sections(path: &Path, n: usize) {
    let mut items = path_section("first", n, |i| format!("e{i}"));
    items.push(SnapshotItem::Section(Section { namespace: Some("second".into()), ..Default::default() }));
    items.extend([vertex("p"), vertex("q"), edge("x", "p", "q")]);
    write(path, &items, Encoding::Protobuf, Compression::Zstd);
}

#[tokio::test]
async fn serve_loads_empty_namespaces_in_bulk_durable_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    two_sections(&path, 1000);
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = vec!["--snapshot".into(), path.display().to_string()];
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let ask = |id: &str, namespace: &str| {
        request(pb::GetVertexRequest { id: id.into(), include_edges: true }, Some(namespace))
    };
    let v500 = client.get_vertex(ask("v500", "first")).await.unwrap();
    assert_eq!(lsn_of(&v500), 2, "one marker record per section, not a record per element");
    assert_eq!(v500.into_inner().edges.len(), 2);
    assert!(newest_checkpoint(&spec.data_dir).is_some_and(|lsn| lsn >= 2), "a checkpoint holds the load");
    // Writes after it, on loaded vertices, number and decide as any other.
    client.create_edge(request(edge_request("back", "A", "v999", "v0"), Some("first"))).await.unwrap();
    client.create_vertex(request(vertex_request("r", "P", &[]), Some("second"))).await.unwrap();

    // kill -9, then start without the snapshot: the checkpoint and the log after it.
    server.kill().await;
    spec.extra_args.clear();
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let v0 = client.get_vertex(ask("v0", "first")).await.unwrap().into_inner();
    let mut edges: Vec<String> = v0.edges.into_iter().map(|e| e.id).collect();
    edges.sort();
    assert_eq!(edges, ["back", "e1"]);
    let p = client.get_vertex(ask("p", "second")).await.unwrap().into_inner();
    assert_eq!(p.edges.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["x"]);
    assert!(client.get_vertex(ask("r", "second")).await.is_ok());
    let ranks = client
        .page_rank(request(
            pb::PageRankRequest { iterations: 5, damping_factor: 0.85, limit: 1000, vertex_filter: None },
            Some("first"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ranks.scores.len(), 1000, "every loaded vertex is in the adjacencies");
    server.kill().await;
}

#[tokio::test]
async fn a_fresh_server_loading_one_section_in_bulk_checkpoints_it_at_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    let n = 500;
    let items = path_section("only", n, |i| format!("e{i}"));
    write(&path, &items, Encoding::Protobuf, Compression::Zstd);
    // No periodic checkpoint: the load's own is the only one.
    let mut spec = ServerSpec::configured(dir.path(), "server:\n  checkpoint_interval: 60m\n");
    spec.extra_args.extend(["--snapshot".to_string(), path.display().to_string()]);
    let mut server = spec.start().await;
    assert_eq!(checkpoints(&spec.data_dir), [1], "the checkpoint of the load, at its marker's LSN");
    let left: Vec<_> = std::fs::read_dir(spec.data_dir.join("checkpoints")).unwrap().collect();
    assert_eq!(left.len(), 1, "no partial file left beside it: {left:?}");
    let mut client = server.client().await;
    client.create_edge(request(edge_request("back", "A", "v499", "v0"), Some("only"))).await.unwrap();

    // kill -9, then start without the snapshot: the checkpoint holds the graph, the log the
    // edge after it.
    server.kill().await;
    spec.extra_args.truncate(2);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let ask = |id: &str| request(pb::GetVertexRequest { id: id.into(), include_edges: true }, Some("only"));
    let v0 = client.get_vertex(ask("v0")).await.unwrap().into_inner();
    let mut edges: Vec<String> = v0.edges.into_iter().map(|e| e.id).collect();
    edges.sort();
    assert_eq!(edges, ["back", "e1"]);
    let v250 = client.get_vertex(ask("v250")).await.unwrap().into_inner();
    assert_eq!(v250.edges.len(), 2);
    let ranks = client
        .page_rank(request(
            pb::PageRankRequest { iterations: 5, damping_factor: 0.85, limit: 1000, vertex_filter: None },
            Some("only"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ranks.scores.len(), n, "every loaded vertex is in the adjacencies");
    server.kill().await;
}

/// A graph restored in many slices (1k edges each in a debug build): its edges reach the
/// arrangements a slice at a time, and records after it must not be decided before the last
/// slice is in, at the load and at recovery.
#[tokio::test]
async fn records_after_a_graph_restored_in_slices_are_decided_against_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    // Edge ids ordered as their numbers: the last is last in the snapshot and in its
    // worker's part of the checkpoint (each about 10k edges), so in neither restore's first
    // slices.
    let n = 20_000;
    let items = path_section("big", n, |i| format!("e{i:06}"));
    write(&path, &items, Encoding::Protobuf, Compression::Zstd);
    let mut spec = ServerSpec::configured(dir.path(), "server:\n  checkpoint_interval: 60m\n");
    spec.extra_args.extend(["--snapshot".to_string(), path.display().to_string()]);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let (last, last_edge) = (format!("v{}", n - 1), format!("e{:06}", n - 1));
    fn in_big<T>(message: T) -> tonic::Request<T> {
        request(message, Some("big"))
    }
    // The last vertex's one edge is among the last restored: it keeps the vertex.
    let kept = client.delete_vertex(in_big(pb::DeleteVertexRequest { id: last.clone(), cascade: false })).await;
    expect_code(kept, Code::FailedPrecondition, &last).await;
    client.delete_edge(in_big(pb::DeleteEdgeRequest { id: last_edge.clone() })).await.unwrap();
    client.delete_vertex(in_big(pb::DeleteVertexRequest { id: last.clone(), cascade: false })).await.unwrap();

    // kill -9 and start without the snapshot: the checkpoint is restored in slices and the
    // three records after it replayed, each decided as it was.
    server.kill().await;
    spec.extra_args.truncate(2);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let gone = client.get_vertex(in_big(pb::GetVertexRequest { id: last.clone(), include_edges: false })).await;
    expect_code(gone, Code::NotFound, &last).await;
    let gone = client.get_edge(in_big(pb::GetEdgeRequest { id: last_edge.clone() })).await;
    expect_code(gone, Code::NotFound, &last_edge).await;
    let before = format!("v{}", n - 2);
    let before = client.get_vertex(in_big(pb::GetVertexRequest { id: before, include_edges: true })).await.unwrap();
    let edges: Vec<String> = before.into_inner().edges.into_iter().map(|e| e.id).collect();
    assert_eq!(edges, [format!("e{:06}", n - 2)], "only the edge into it is left");
    server.kill().await;
}

#[tokio::test]
async fn a_bulk_load_past_a_capacity_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    two_sections(&path, 10);
    let config = "namespaces:\n  - name: first\n    backend:\n      max_vertices: 9\n";
    let mut spec = ServerSpec::configured(dir.path(), config);
    spec.extra_args.extend(["--snapshot".to_string(), path.display().to_string()]);
    let mut server = spec.spawn().await.expect("the server starts listening before it loads");
    assert_eq!(server.wait_exit(Duration::from_secs(30)).await, Some(false), "it stops");
    assert!(server.log().contains("max_vertices"), "the log names the limit:\n{}", server.log());
    spec.extra_args.truncate(2);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let v0 = client.get_vertex(request(pb::GetVertexRequest { id: "v0".into(), include_edges: false }, Some("first")));
    assert_eq!(v0.await.unwrap_err().code(), tonic::Code::NotFound, "nothing was written");
    server.kill().await;
}

#[tokio::test]
async fn a_bulk_load_whose_checkpoint_is_damaged_stops_the_server_instead_of_vanishing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    two_sections(&path, 10);
    // A checkpoint from before the load, to fall back to.
    let mut spec = ServerSpec::configured(dir.path(), FREQUENT_CHECKPOINTS);
    let data = spec.data_dir.clone();
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let before = lsn_of(&client.create_vertex(request(vertex_request("o", "P", &[]), Some("other"))).await.unwrap());
    eventually("a checkpoint before the load", || newest_checkpoint(&data).is_some_and(|lsn| lsn >= before)).await;
    server.kill().await;
    // The load, and its checkpoint; no other checkpoint after it.
    spec.extra_args = config_args(dir.path(), "server:\n  checkpoint_interval: 60m\n");
    spec.extra_args.extend(["--snapshot".to_string(), path.display().to_string()]);
    let mut server = spec.start().await;
    server.kill().await;
    let kept = checkpoints(&data);
    assert_eq!(kept.len(), 2, "the one before the load and the load's: {kept:?}");
    let newest = data.join("checkpoints").join(format!("checkpoint-{:020}.snap", kept[1]));
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();

    spec.extra_args.truncate(2);
    let mut server = spec.spawn().await.expect("the server starts listening before it recovers");
    assert_eq!(server.wait_exit(Duration::from_secs(30)).await, Some(false), "it stops");
    assert!(server.log().contains("loaded in bulk at LSN"), "the log says what would be lost:\n{}", server.log());
}

#[tokio::test]
async fn serve_refuses_a_snapshot_with_a_bad_edge_at_its_end_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.snap");
    let mut items: Vec<SnapshotItem> = (0..5).map(|i| vertex(&format!("v{i}"))).collect();
    items.push(edge("e", "v0", "missing"));
    write(&path, &items, Encoding::Protobuf, Compression::Zstd);
    let mut spec = ServerSpec::new(&dir.path().join("data"), 2);
    spec.extra_args = vec!["--snapshot".into(), path.display().to_string()];
    let mut server = spec.spawn().await.expect("the server starts listening before it loads");
    assert_eq!(server.wait_exit(Duration::from_secs(30)).await, Some(false), "it stops");
    assert!(server.log().contains("missing"), "the log names the edge's missing end:\n{}", server.log());

    spec.extra_args.clear();
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let v0 = client.get_vertex(pb::GetVertexRequest { id: "v0".into(), include_edges: false }).await;
    assert_eq!(v0.unwrap_err().code(), tonic::Code::NotFound, "no vertex was written");
    server.kill().await;
}

#[tokio::test]
async fn checkpoints_bound_recovery_and_let_the_log_before_them_go() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ServerSpec::configured(dir.path(), FREQUENT_CHECKPOINTS);
    let data = spec.data_dir.clone();
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let mut last = 0;
    for i in 0..60 {
        let reply = client.create_vertex(vertex_request(&format!("v{i}"), "P", &[("i", int(i))])).await.unwrap();
        last = lsn_of(&reply);
    }
    client.create_edge(edge_request("e", "A", "v1", "v2")).await.unwrap();
    let before = client.get_vertex(pb::GetVertexRequest { id: "v1".into(), include_edges: true }).await.unwrap();
    let before = before.into_inner();

    // A checkpoint past the writes appears; once a second one follows, the segments the
    // first covers go (the second's fallback keeps the log after the first).
    eventually("a checkpoint past the writes", || newest_checkpoint(&data).is_some_and(|lsn| lsn > last)).await;
    let first = newest_checkpoint(&data).unwrap();
    last = lsn_of(&client.create_vertex(vertex_request("after", "P", &[])).await.unwrap());
    eventually("a second checkpoint, and the segments the first covers gone", || {
        newest_checkpoint(&data).is_some_and(|lsn| lsn >= last) && segment_starts(&data).first().is_some_and(|s| *s > 1)
    })
    .await;
    assert!(segment_starts(&data)[0] <= first + 1, "the log after the first checkpoint stays");

    // Recovery: the checkpoint plus the log after it; nothing lost, timestamps kept.
    server.kill().await;
    let server = spec.start().await;
    let mut client = server.client().await;
    let after = client.get_vertex(pb::GetVertexRequest { id: "v1".into(), include_edges: true }).await.unwrap();
    assert_eq!(after.into_inner(), before);
    assert!(server.log().contains("restored the checkpoint"), "{}", server.log());
    let next = client.create_vertex(vertex_request("later", "P", &[])).await.unwrap();
    assert_eq!(lsn_of(&next), last + 1, "LSNs go on after the checkpoint and the log");
}

#[tokio::test]
async fn either_process_of_a_cluster_exports_the_whole_graph() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    let graph = oracle::random_graph(&mut StdRng::seed_from_u64(8), 30, 60);
    oracle::load(&mut servers[0].client().await, &graph).await;
    for (process, server) in servers.iter().enumerate() {
        let path = dir.path().join(format!("from-{process}.snap"));
        let (ok, _, err) =
            cli(&["snapshot", "export", "--server", &server.address.to_string(), "-o", path.to_str().unwrap()]).await;
        assert!(ok, "process {process}: {err}");
        assert_eq!(items(&path).len(), 90, "process {process}: both processes' shards");
    }
}
