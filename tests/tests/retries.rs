//! A write sent again with the same `x-prism-request-id` answers with the first outcome and
//! applies nothing: before a restart, after kill -9 (the ids are in the log), and after the
//! log's records are gone behind a checkpoint (the ids are in it).

use prism_e2e::*;
use tonic::Code;

fn with_id<T>(message: T, id: &str, namespace: Option<&str>) -> tonic::Request<T> {
    let mut request = request(message, namespace);
    request.metadata_mut().insert("x-prism-request-id", id.parse().unwrap());
    request
}

async fn create(client: &mut Client, vertex: &str, id: &str) -> Result<(u64, pb::Vertex), tonic::Status> {
    let reply = client.create_vertex(with_id(vertex_request(vertex, "V", &[]), id, None)).await?;
    Ok((lsn_of(&reply), reply.into_inner().vertex.expect("the vertex")))
}

async fn delete(client: &mut Client, vertex: &str, id: &str) -> Result<u64, tonic::Status> {
    let reply =
        client.delete_vertex(with_id(pb::DeleteVertexRequest { id: vertex.into(), cascade: false }, id, None)).await?;
    Ok(lsn_of(&reply))
}

#[tokio::test]
async fn a_retried_write_gets_its_first_outcome_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ServerSpec::new(&dir.path().join("data"), 2);
    let mut server = spec.start().await;
    let mut client = server.client().await;

    let first = create(&mut client, "a", "r-1").await.unwrap();
    assert_eq!(create(&mut client, "a", "r-1").await.unwrap(), first, "the first outcome, its LSN included");
    let status = client.create_vertex(vertex_request("a", "V", &[])).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "without the id it is a second write");

    // A first outcome that was a rejection stays one, even once the write would succeed.
    let missing = delete(&mut client, "b", "r-2").await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    create(&mut client, "b", "r-3").await.unwrap();
    let again = delete(&mut client, "b", "r-2").await.unwrap_err();
    assert_eq!((again.code(), again.message()), (missing.code(), missing.message()));

    // Ids are per namespace.
    let other = client.create_vertex(with_id(vertex_request("a", "V", &[]), "r-1", Some("other"))).await.unwrap();
    assert!(lsn_of(&other) > first.0);

    let status = client.create_vertex(with_id(vertex_request("c", "V", &[]), &"x".repeat(200), None)).await;
    let status = status.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-prism-request-id"), "{status:?}");

    server.kill().await;
    let server = spec.start().await;
    let mut client = server.client().await;
    assert_eq!(create(&mut client, "a", "r-1").await.unwrap(), first);
    assert_eq!(delete(&mut client, "b", "r-2").await.unwrap_err().code(), Code::NotFound);
    assert!(client.get_vertex(pb::GetVertexRequest { id: "b".into(), include_edges: false }).await.is_ok());
}

#[tokio::test]
async fn request_ids_outlive_the_log_in_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ServerSpec::configured(dir.path(), FREQUENT_CHECKPOINTS);
    let data = spec.data_dir.clone();
    let mut server = spec.start().await;
    let mut client = server.client().await;

    let first = create(&mut client, "a", "r-1").await.unwrap();
    let mut last = 0;
    for i in 0..40 {
        last = lsn_of(&client.create_vertex(vertex_request(&format!("v{i}"), "V", &[])).await.unwrap());
    }
    eventually("a checkpoint", || newest_checkpoint(&data).is_some_and(|lsn| lsn >= last)).await;
    last = lsn_of(&client.create_vertex(vertex_request("later", "V", &[])).await.unwrap());
    eventually("a second checkpoint, and the log of the first write gone", || {
        newest_checkpoint(&data).is_some_and(|lsn| lsn >= last)
            && segment_starts(&data).first().is_some_and(|&start| start > first.0)
    })
    .await;

    server.kill().await;
    let server = spec.start().await;
    let mut client = server.client().await;
    assert_eq!(create(&mut client, "a", "r-1").await.unwrap(), first);
}
