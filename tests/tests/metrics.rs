//! Prometheus metrics end to end: `/metrics` scraped over HTTP from the spawned server and
//! parsed, with counters that move as calls are made.

use prism_e2e::*;

#[tokio::test]
async fn metrics_are_scraped_over_http_and_count_calls_by_method_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server =
        ServerSpec::configured(dir.path(), &format!("server:\n  metrics_listen: 127.0.0.1:{port}\n")).start().await;
    let mut client = server.client().await;
    let mut lsn = 0;
    for id in ["a", "b", "c"] {
        lsn = lsn_of(&client.create_vertex(vertex_request(id, "V", &[])).await.unwrap());
    }
    let missing = client.get_vertex(pb::GetVertexRequest { id: "nobody".into(), include_edges: false }).await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    let first = scrape(port).await;
    let creates = r#"prism_rpc_requests_total{method="CreateVertex",code="Ok"}"#;
    assert_eq!(first.get(creates), Some(&3.0), "{first:#?}");
    let not_found = r#"prism_rpc_requests_total{method="GetVertex",code="NotFound"}"#;
    assert_eq!(first.get(not_found), Some(&1.0), "{first:#?}");
    assert!(first["prism_applied_lsn"] >= lsn as f64);
    assert!(first["prism_wal_group_records_count"] >= 1.0, "{first:#?}");
    assert!(first.contains_key(r#"prism_rpc_duration_seconds_bucket{method="CreateVertex",code="Ok",le="0.01"}"#));

    client.create_vertex(vertex_request("d", "V", &[])).await.unwrap();
    let second = scrape(port).await;
    assert_eq!(second.get(creates), Some(&4.0));
    assert_eq!(second.get(r#"prism_vertices{namespace="default"}"#), Some(&4.0), "{second:#?}");
    assert_eq!(second.get(r#"prism_edges{namespace="default"}"#), Some(&0.0));
    assert_eq!(second.get("prism_log_end_lsn"), Some(&second["prism_applied_lsn"]));

    let subscribe = pb::SubscribePageRankRequest { damping_factor: 0.0, tolerance: 0.0, vertex_filter: None, top_k: 2 };
    let mut ranks = client.subscribe_page_rank(subscribe).await.unwrap().into_inner();
    assert!(ranks.message().await.unwrap().is_some());
    let third = scrape(port).await;
    assert_eq!(third.get("prism_page_rank_subscribers"), Some(&1.0), "{third:#?}");
    assert_eq!(third.get("prism_standing_page_ranks"), Some(&1.0));

    // Each worker counts its arrangements' updates about once a second.
    let vertex_records = r#"prism_arrangement_records{arrangement="VertexByNumber"}"#;
    scrape_until(port, "VertexByNumber counted", |samples| samples.get(vertex_records).is_some_and(|n| *n >= 4.0))
        .await;
    assert!(second["prism_applied_lsn"] > first["prism_applied_lsn"]);
}
