//! A panic in any worker or thread ends the process with a log line, so that a supervisor
//! restarts it; it never leaves a server whose requests hang. (`PRISM_FAULT_PANIC` injects
//! the panic.)

use std::time::Duration;

use prism_e2e::*;

async fn panicking_server(dir: &std::path::Path, place: &str) -> Server {
    let mut spec = ServerSpec::new(&dir.join("data"), 2);
    spec.env = vec![("PRISM_FAULT_PANIC".into(), place.into())];
    spec.start().await
}

/// The process is gone within seconds, having said why.
async fn assert_stopped_loudly(mut server: Server) {
    let exit = server.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(exit, Some(false), "the process did not stop with a failure:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("panic") && log.contains("the process stops"), "{log}");
}

#[tokio::test]
async fn a_worker_that_panics_takes_the_process_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = panicking_server(dir.path(), "worker-1").await;
    let mut client = server.client().await;
    // Reads go to the worker that owns their key: some of these reach worker 1.
    let mut failed = false;
    for i in 0..64 {
        let read = client.get_vertex(pb::GetVertexRequest { id: format!("k{i}"), include_edges: false });
        match tokio::time::timeout(Duration::from_secs(10), read).await {
            Ok(Ok(_)) => panic!("k{i} does not exist"),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => continue,
            Ok(Err(_)) => {
                failed = true;
                break;
            }
            Err(_) => panic!("a read hung instead of failing with the process"),
        }
    }
    assert!(failed, "no read reached worker 1");
    assert_stopped_loudly(server).await;
}

#[tokio::test]
async fn a_subscription_thread_that_panics_takes_the_process_down() {
    let dir = tempfile::tempdir().unwrap();
    let server = panicking_server(dir.path(), "subscriptions").await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("a", "A", &[])).await.unwrap();
    let subscribe = client.subscribe_page_rank(pb::SubscribePageRankRequest { top_k: 1, ..Default::default() });
    match tokio::time::timeout(Duration::from_secs(10), subscribe).await {
        Ok(Ok(_)) => panic!("the subscription started although its thread panicked"),
        Ok(Err(_)) => {}
        Err(_) => panic!("the subscription hung instead of failing with the process"),
    }
    assert_stopped_loudly(server).await;
}
