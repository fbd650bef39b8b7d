//! The configuration file and flags, and the process's life cycle, as an operator sees them.

use std::time::Duration;

use prism_e2e::*;

#[tokio::test]
async fn an_unknown_key_stops_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prism.yaml");
    std::fs::write(
        &config,
        "server:\n  workers: 1\nnamespaces:\n  - name: default\n    performance:\n      max_traversal_dept: 3\n",
    )
    .unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 1);
    spec.extra_args = vec!["--config".into(), config.display().to_string()];
    let log = match spec.spawn().await {
        Err(log) => log,
        Ok(mut server) => {
            assert_eq!(server.wait_exit(Duration::from_secs(30)).await, Some(false));
            server.log()
        }
    };
    assert!(log.contains("max_traversal_dept") && log.contains("prism.yaml"), "{log}");
}

#[tokio::test]
async fn flags_override_the_file_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // The file names an address already taken: only the flag's --listen lets the server start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("prism.yaml");
    let yaml = format!(
        "server:\n  listen: {}\n  workers: 1\n  data_dir: {}\nnamespaces:\n  - name: default\n    pattern: graph\n    backend:\n      type: memstore\n    performance:\n      traversal_timeout: 100ms\n      max_traversal_depth: 6\n      batch_size: 2\n      max_vertex_edges: 2\n",
        taken.local_addr().unwrap(),
        dir.path().join("unused").display()
    );
    std::fs::write(&config, yaml).unwrap();
    let mut spec = ServerSpec::new(&dir.path().join("data"), 1);
    spec.extra_args = vec!["--config".into(), config.display().to_string()];
    let mut server = spec.start().await;
    let mut client = server.client().await;
    // The file's batch_size applies.
    let batch = pb::BatchCreateVerticesRequest {
        vertices: (0..3).map(|i| vertex_request(&format!("v{i}"), "V", &[])).collect(),
        atomic: true,
    };
    let status = client.batch_create_vertices(batch).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("batch_size"), "{status:?}");
    // --data-dir overrode the file's data_dir.
    client.create_vertex(vertex_request("v", "V", &[])).await.unwrap();
    assert!(dir.path().join("data").join("wal").exists());
    assert!(!dir.path().join("unused").exists());
    // The file's max_vertex_edges bounds GetVertex's include_edges.
    for id in ["a", "b"] {
        client.create_vertex(vertex_request(id, "V", &[])).await.unwrap();
    }
    for (id, from, to) in [("va", "v", "a"), ("vb", "v", "b"), ("av", "a", "v")] {
        client.create_edge(edge_request(id, "L", from, to)).await.unwrap();
    }
    let status = client.get_vertex(pb::GetVertexRequest { id: "v".into(), include_edges: true }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("max_vertex_edges"), "{status:?}");
    let a = client.get_vertex(pb::GetVertexRequest { id: "a".into(), include_edges: true }).await.unwrap();
    assert_eq!(a.into_inner().edges.len(), 2);

    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(30)).await, Some(true), "{}", server.log());
}
