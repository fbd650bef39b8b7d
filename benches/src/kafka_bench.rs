//! `prism-kafkabench`: the log on Kafka, against a tansu broker on loopback.
//!
//! 1. Write latency: CreateVertex one at a time through a server with `--wal kafka` (durable
//!    in the broker, consumed back and applied), beside a bare idempotent acks=all produce of
//!    the same record's bytes from this process — the floor a Kafka-backed write stands on.
//! 2. Ingestion: a topic pre-filled with `--operations` CreateVertex operations (records of
//!    1,000) by a producer, then a server started on it: operations/s from start to SERVING
//!    (caught up and applied), beside the same operations replayed from the embedded log
//!    (written by a server, which is then restarted).
//!
//! Needs tansu (`./scripts/test` installs it under ~/.cache/prism-graph/tools, or set
//! PRISM_TANSU). Run: `cargo run --release -p prism-benches --bin prism-kafkabench`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use prism_benches::harness::{self, spawn_server_in};
use prism_connectors::codec;
use prism_connectors::kafka::{self, KafkaOptions, RecordProducer};
use prism_dataflows::{Namespace, Value, WriteOp, WriteRecord};
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;

#[derive(Parser)]
struct Args {
    /// Sequential writes timed in part 1.
    #[arg(long, default_value_t = 2000)]
    writes: usize,
    /// Operations in the pre-filled topic of part 2.
    #[arg(long, default_value_t = 5_000_000)]
    operations: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long)]
    binary: Option<PathBuf>,
}

fn tansu() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PRISM_TANSU").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/prism-graph/tools/bin/tansu")
    });
    anyhow::ensure!(path.exists(), "tansu not found at {} (./scripts/test installs it)", path.display());
    Ok(path)
}

async fn start_broker() -> anyhow::Result<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = tokio::process::Command::new(tansu()?)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((child, format!("127.0.0.1:{port}")))
}

fn vertex(i: usize) -> WriteOp {
    let properties = [("n".to_string(), Value::Int(i as i64))].into_iter().collect();
    WriteOp::CreateVertex { id: format!("v{i}"), label: "V".into(), properties }
}

fn line(name: &str, histogram: &Histogram<u64>) {
    println!(
        "{name:<48} P50 {:>6} us  P99 {:>6} us",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("prism-kafkabench: {} cores, server workers {}", harness::cores(), args.workers);
    let (_broker, brokers) = start_broker().await?;
    write_latency(&args, &brokers).await?;
    ingestion(&args, &brokers).await?;
    Ok(())
}

async fn write_latency(args: &Args, brokers: &str) -> anyhow::Result<()> {
    // The bare produce: the same bytes a CreateVertex record has, to a topic of its own.
    let record = WriteRecord {
        namespace: Namespace::default(),
        atomic: true,
        timestamp: 1,
        ops: vec![vertex(0)],
        ..Default::default()
    };
    let payload = codec::encode_record(&record);
    let options = KafkaOptions::new(brokers, "bare");
    kafka::ensure_topic(&options).await?;
    let producer = RecordProducer::new(&options)?;
    let mut bare = Histogram::<u64>::new(3)?;
    for _ in 0..args.writes {
        let started = Instant::now();
        producer.send("default", &payload).await?;
        bare.record(started.elapsed().as_micros() as u64)?;
    }

    let dir = tempfile::tempdir()?;
    let extra: Vec<String> = ["--wal", "kafka", "--kafka-brokers", brokers, "--kafka-topic", "latency"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let server = spawn_server_in(args.binary.as_ref(), args.workers, dir.path(), &extra).await?;
    let channels = harness::connect(&server.address, 1).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let mut client = GraphServiceClient::new(channels[0].clone());
    let mut writes = Histogram::<u64>::new(3)?;
    for i in 0..args.writes {
        let started = Instant::now();
        let request =
            pb::CreateVertexRequest { id: format!("w{i}"), label: "V".into(), properties: Default::default() };
        client.create_vertex(request).await?;
        writes.record(started.elapsed().as_micros() as u64)?;
    }
    line("bare produce (idempotent, acks=all)", &bare);
    line("CreateVertex through the Kafka log (applied)", &writes);
    println!(
        "  ratio at P50: {:.2}x the bare produce",
        writes.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5) as f64
    );
    Ok(())
}

/// Vertex numbers in records of 1,000, covering `0..operations`.
fn batches(operations: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..operations).step_by(1000).map(move |start| start..(start + 1000).min(operations))
}

async fn ingestion(args: &Args, brokers: &str) -> anyhow::Result<()> {
    // Pre-fill the topic, many records in flight.
    let started = Instant::now();
    let options = KafkaOptions::new(brokers, "ingest");
    kafka::ensure_topic(&options).await?;
    let producer = std::sync::Arc::new(RecordProducer::new(&options)?);
    let mut in_flight = tokio::task::JoinSet::new();
    for ids in batches(args.operations) {
        let payload = codec::encode_record(&WriteRecord {
            namespace: Namespace::default(),
            atomic: true,
            timestamp: 1,
            ops: ids.map(vertex).collect(),
            ..Default::default()
        });
        let producer = producer.clone();
        in_flight.spawn(async move { producer.send("default", &payload).await });
        if in_flight.len() >= 64 {
            in_flight.join_next().await.context("a produce")???;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    println!("pre-filled {} operations in {:.1} s", args.operations, started.elapsed().as_secs_f64());

    let dir = tempfile::tempdir()?;
    let extra: Vec<String> = ["--wal", "kafka", "--kafka-brokers", brokers, "--kafka-topic", "ingest"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let started = Instant::now();
    let server = spawn_server_in(args.binary.as_ref(), args.workers, dir.path(), &extra).await?;
    let channels = harness::connect(&server.address, 1).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let kafka_seconds = started.elapsed().as_secs_f64();
    let mut server = server;
    server.child.kill().await?;

    // The same operations through the embedded log: written by one server, replayed by the next.
    let embedded = tempfile::tempdir()?;
    {
        let mut server = spawn_server_in(args.binary.as_ref(), args.workers, embedded.path(), &[]).await?;
        let channels = harness::connect(&server.address, 1).await?;
        harness::wait_serving(channels[0].clone()).await?;
        let mut client = GraphServiceClient::new(channels[0].clone());
        for ids in batches(args.operations) {
            let vertices = ids
                .map(|i| pb::CreateVertexRequest {
                    id: format!("v{i}"),
                    label: "V".into(),
                    properties: [("n".to_string(), pb::Value { value: Some(pb::value::Value::IntValue(i as i64)) })]
                        .into(),
                })
                .collect();
            client.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices, atomic: true }).await?;
        }
        // Killed and gone (its lock released) before the next one starts on its log.
        server.child.kill().await?;
    }
    let started = Instant::now();
    let server = spawn_server_in(args.binary.as_ref(), args.workers, embedded.path(), &[]).await?;
    let channels = harness::connect(&server.address, 1).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let embedded_seconds = started.elapsed().as_secs_f64();

    let rate = |seconds: f64| args.operations as f64 / seconds;
    println!("ingest from Kafka (start to SERVING): {:.1} s = {:.0} operations/s", kafka_seconds, rate(kafka_seconds));
    println!(
        "replay of the embedded log (start to SERVING): {:.1} s = {:.0} operations/s",
        embedded_seconds,
        rate(embedded_seconds)
    );
    println!("  ratio: Kafka ingestion at {:.2}x the embedded replay's rate", embedded_seconds / kafka_seconds);
    Ok(())
}
