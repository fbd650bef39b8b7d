//! The log on Kafka, end to end against a real Kafka-protocol broker (tansu): writes through
//! the topic, records from other producers, bad records, replicas following one topic,
//! restarts, and the broker away at start and mid-run.

use std::time::{Duration, Instant};

use prism_connectors::codec;
use prism_dataflows::{Namespace, Value, WriteOp, WriteRecord};
use prism_e2e::kafka::{kafka_args, Broker};
use prism_e2e::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const TOPIC: &str = "graph-log";

fn spec(dir: &std::path::Path, name: &str, broker: &str, extra: &[String]) -> ServerSpec {
    let mut spec = ServerSpec::new(&dir.join(name), 2);
    spec.extra_args = kafka_args(broker, TOPIC);
    spec.extra_args.extend(extra.iter().cloned());
    spec
}

/// A record as another program would write it: wal.proto bytes.
fn record(ops: Vec<WriteOp>) -> Vec<u8> {
    codec::encode_record(&WriteRecord {
        namespace: Namespace::default(),
        atomic: true,
        timestamp: 7,
        ops,
        ..Default::default()
    })
}

fn create_vertex(id: &str) -> WriteOp {
    WriteOp::CreateVertex { id: id.into(), label: "User".into(), properties: Default::default() }
}

fn create_edge(id: &str, from: &str, to: &str) -> WriteOp {
    WriteOp::CreateEdge {
        id: id.into(),
        label: "KNOWS".into(),
        from: from.into(),
        to: to.into(),
        properties: Default::default(),
    }
}

/// GetVertex once `lsn` is applied: the vertex, or NOT_FOUND's status.
async fn get_at(client: &mut Client, id: &str, lsn: u64) -> Result<pb::GetVertexResponse, tonic::Status> {
    let mut get = request(pb::GetVertexRequest { id: id.into(), include_edges: true }, None);
    get.metadata_mut().insert("x-prism-min-lsn", lsn.to_string().parse().expect("ascii"));
    client.get_vertex(get).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn the_topic_is_the_log_for_this_server_other_producers_and_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let mut first = spec(dir.path(), "first", &broker.address(), &[]).start().await;
    let mut client = first.client().await;

    // A write is acknowledged once the topic holds it: its LSN is its offset + 1.
    let reply = client.create_vertex(vertex_request("alice", "User", &[("name", string("Alice"))])).await.unwrap();
    assert_eq!(lsn_of(&reply), 1, "the first record of the topic is LSN 1");

    // Records from another producer are applied in topic order, with the same rules.
    let offset =
        broker.produce(TOPIC, "default", &record(vec![create_vertex("bob"), create_edge("k1", "alice", "bob")])).await;
    let bob = get_at(&mut client, "bob", offset as u64 + 1).await.unwrap();
    assert_eq!(bob.edges.len(), 1, "bob and the edge came in one record");
    let dangling = broker.produce(TOPIC, "default", &record(vec![create_edge("k2", "alice", "nobody")])).await;
    let garbage = broker.produce(TOPIC, "default", b"not a wal.proto record").await;
    let after = broker.produce(TOPIC, "default", &record(vec![create_vertex("carol")])).await;
    assert_eq!((dangling + 1, garbage + 1), (after - 1, after));
    get_at(&mut client, "carol", after as u64 + 1).await.expect("ingestion goes on after a bad record");
    let alice = get_at(&mut client, "alice", after as u64 + 1).await.unwrap();
    assert_eq!(alice.edges.len(), 1, "the edge to a missing vertex was rejected by the apply rules");
    let log = first.log();
    assert!(
        log.contains("skipping a record") && log.contains(&format!("offset={garbage}")) && log.contains(TOPIC),
        "the undecodable record is logged with its topic and offset:\n{log}"
    );

    // A record nesting a value past max_value_depth does not decode, here as on any replica:
    // it is skipped like garbage, by name (the writer's own writes never get that far).
    let deep_value =
        (1..60).fold(Value::Int(1), |inner, _| Value::Map(Box::new([("k".to_string(), inner)].into_iter().collect())));
    let properties = [("p".to_string(), deep_value)].into_iter().collect();
    let deep_vertex = WriteOp::CreateVertex { id: "deep".into(), label: "User".into(), properties };
    let deep = broker.produce(TOPIC, "default", &record(vec![deep_vertex])).await;
    let next = broker.produce(TOPIC, "default", &record(vec![create_vertex("grace")])).await;
    get_at(&mut client, "grace", next as u64 + 1).await.expect("ingestion goes on after a record nested too deep");
    assert_eq!(get_at(&mut client, "deep", next as u64 + 1).await.unwrap_err().code(), Code::NotFound);
    let log = first.log();
    assert!(log.contains("max_value_depth") && log.contains(&format!("offset={deep}")), "{log}");

    // A replica follows the same topic to the same state, and its writes reach the first.
    let second = spec(dir.path(), "second", &broker.address(), &[]).start().await;
    let mut replica = second.client().await;
    assert_eq!(get_at(&mut replica, "deep", next as u64 + 1).await.unwrap_err().code(), Code::NotFound);
    let alice_there = get_at(&mut replica, "alice", after as u64 + 1).await.unwrap();
    assert_eq!(alice_there.vertex, alice.vertex, "the same vertex, created_at included");
    assert_eq!(alice_there.edges, alice.edges);
    let dave = replica.create_vertex(vertex_request("dave", "User", &[])).await.unwrap();
    get_at(&mut client, "dave", lsn_of(&dave)).await.expect("x-prism-min-lsn waits for the replica's write");

    // The project's own tooling: `prism-graph record encode` makes the bytes any producer
    // (kcat, say) can send; `record produce` sends them itself and prints the LSN.
    let json =
        r#"{"operations": [{"type": "create_vertex", "id": "frank", "label": "User", "properties": {"age": 51}}]}"#;
    let encoded = tool(&["record", "encode"], json).await;
    let offset = broker.produce(TOPIC, "default", &encoded).await;
    let frank = get_at(&mut client, "frank", offset as u64 + 1).await.expect("an encoded record is applied");
    assert_eq!(frank.vertex.unwrap().properties["age"], int(51));
    let json =
        r#"{"operations": [{"type": "create_edge", "id": "k3", "label": "KNOWS", "from": "frank", "to": "dave"}]}"#;
    let printed = String::from_utf8(
        tool(&["record", "produce", "--kafka-brokers", &broker.address(), "--kafka-topic", TOPIC], json).await,
    )
    .unwrap();
    let lsn: u64 = printed.trim().strip_prefix("lsn ").and_then(|n| n.parse().ok()).expect("lsn N");
    assert_eq!(get_at(&mut client, "frank", lsn).await.unwrap().edges.len(), 1);

    // A restart rebuilds the state from the topic: nothing lost, nothing applied twice.
    first.kill().await;
    let restarted = spec(dir.path(), "first", &broker.address(), &[]).start().await;
    let mut client = restarted.client().await;
    let alice_again = get_at(&mut client, "alice", lsn_of(&dave)).await.unwrap();
    assert_eq!(alice_again.vertex, alice.vertex);
    assert_eq!(alice_again.edges, alice.edges);
    get_at(&mut client, "dave", lsn_of(&dave)).await.unwrap();
    let eve = client.create_vertex(vertex_request("eve", "User", &[])).await.unwrap();
    assert_eq!(lsn_of(&eve), lsn + 1, "writes go on at the end of the topic");
}

#[tokio::test]
async fn the_metrics_show_the_topics_end_and_the_followers_lag() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let port = free_port();
    let config = config_args(dir.path(), &format!("server:\n  metrics_listen: 127.0.0.1:{port}\n"));
    let server = spec(dir.path(), "metered", &broker.address(), &config).start().await;
    let mut client = server.client().await;
    let last = broker.produce(TOPIC, "default", &record(vec![create_vertex("a"), create_vertex("b")])).await;
    get_at(&mut client, "b", last as u64 + 1).await.unwrap();
    let end = (last + 1) as f64;
    scrape_until(port, "the topic's end, nothing behind", |samples| {
        samples.get("prism_log_end_lsn") == Some(&end) && samples.get("prism_kafka_consumer_lag") == Some(&0.0)
    })
    .await;
}

/// Runs `prism-graph ARGS` with `input` on standard input; its standard output.
async fn tool(args: &[&str], input: &str) -> Vec<u8> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(binary())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run prism-graph");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write the record");
    drop(stdin);
    let output = child.wait_with_output().await.expect("prism-graph's output");
    assert!(output.status.success(), "prism-graph {args:?} failed");
    output.stdout
}

async fn health(server: &Server) -> i32 {
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    let request = HealthCheckRequest { service: "prism.graph.v1.GraphService".into() };
    HealthClient::new(channel).check(request).await.unwrap().into_inner().status
}

#[tokio::test]
async fn a_broker_away_at_start_keeps_the_server_not_serving_until_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let server = spec(dir.path(), "data", &address, &[]).spawn().await.unwrap_or_else(|log| panic!("{log}"));
    assert_eq!(health(&server).await, ServingStatus::NotServing as i32);
    let _broker = Broker::start_on(port).await;
    server.wait_serving().await;
    let mut client = server.client().await;
    client.create_vertex(vertex_request("alice", "User", &[])).await.unwrap();
}

#[tokio::test]
async fn a_broker_gone_mid_run_fails_writes_in_bounded_time_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kafka.yaml");
    std::fs::write(&config, "wal:\n  kafka:\n    write_timeout: 1s\n").unwrap();
    let mut broker = Broker::start().await;
    let extra = ["--config".to_string(), config.display().to_string()];
    let server = spec(dir.path(), "data", &broker.address(), &extra).start().await;
    let mut client = server.client().await;
    let alice = client.create_vertex(vertex_request("alice", "User", &[])).await.unwrap();

    broker.stop().await;
    let started = Instant::now();
    let status = client.create_vertex(vertex_request("bob", "User", &[])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("broker"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "failed after {:?}", started.elapsed());
    get_at(&mut client, "alice", lsn_of(&alice)).await.expect("reads answer from the last state");
}

#[tokio::test]
async fn a_checkpoint_keeps_the_offset_it_covers_and_recovery_resumes_there() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let config = dir.path().join("checkpoints.yaml");
    std::fs::write(&config, "server:\n  checkpoint_interval: 200ms\n").unwrap();
    let extra = ["--config".to_string(), config.display().to_string()];
    let spec = spec(dir.path(), "data", &broker.address(), &extra);
    let mut server = spec.start().await;
    let mut client = server.client().await;
    let mut last = 0;
    for id in ["a", "b", "c"] {
        last = lsn_of(&client.create_vertex(vertex_request(id, "User", &[])).await.unwrap());
    }
    let data = dir.path().join("data");
    eventually("a checkpoint covering the writes", || newest_checkpoint(&data).is_some_and(|lsn| lsn >= last)).await;
    server.kill().await;

    // Another producer writes while the server is down; the restart takes the checkpoint and
    // consumes from its offset: the later record once, the earlier ones not again.
    let offset = broker.produce(TOPIC, "default", &record(vec![create_vertex("d")])).await;
    let server = spec.start().await;
    assert!(server.log().contains("restored the checkpoint"), "{}", server.log());
    let mut client = server.client().await;
    for id in ["a", "d"] {
        get_at(&mut client, id, offset as u64 + 1).await.unwrap();
    }
    let next = client.create_vertex(vertex_request("e", "User", &[])).await.unwrap();
    assert_eq!(lsn_of(&next), offset as u64 + 2);
}

/// Availability comes from replicas: a second deployment, itself a two-process cluster,
/// follows the same topic to the same state (read from either of its processes), and a write
/// through its second process reaches the first server.
#[tokio::test]
async fn a_two_process_cluster_follows_the_topic_as_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start().await;
    let first = spec(dir.path(), "first", &broker.address(), &[]).start().await;
    let mut client = first.client().await;
    let mut written = 0;
    for i in 0..10 {
        let reply = client.create_vertex(vertex_request(&format!("u{i}"), "User", &[])).await.unwrap();
        written = lsn_of(&reply);
    }
    let cluster = start_cluster_with(dir.path(), 2, kafka_args(&broker.address(), TOPIC)).await;
    for server in &cluster {
        let mut replica = server.client().await;
        for i in 0..10 {
            let id = format!("u{i}");
            let found = get_at(&mut replica, &id, written).await.unwrap_or_else(|s| panic!("{id} on the replica: {s}"));
            assert_eq!(found.vertex.map(|v| v.id), Some(id));
        }
    }
    let mut via_p1 = cluster[1].client().await;
    let reply = via_p1.create_vertex(vertex_request("from-the-replica", "User", &[])).await.unwrap();
    get_at(&mut client, "from-the-replica", lsn_of(&reply))
        .await
        .expect("the first server follows the replica's write");
}
