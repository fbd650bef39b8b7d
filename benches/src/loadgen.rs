//! `prism-loadgen`: the gRPC load generator and the foundation benchmark.
//!
//! It starts a `prism-graph` server (or uses `--server`), bulk-loads vertices with three
//! small properties through BatchCreateVertices, then measures, each beside the transport
//! floor measured in the same run on the same server (the health service's Check, an
//! almost empty unary RPC):
//! - GetVertex and CreateVertex latency (one call at a time) and throughput (`--concurrency`
//!   calls in flight; CreateVertex is durable and applied when answered);
//! - the batch load rate;
//! - the server's resident memory per vertex, right after the load and once settled.
//!
//! Run: `cargo run --release -p prism-benches --bin prism-loadgen -- --vertices 1000000`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use prism_benches::harness::{self, measure, rss_bytes, spawn_server, Run};
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use rand::Rng;
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    /// Vertices to load before measuring reads.
    #[arg(long, default_value_t = 1_000_000)]
    vertices: usize,
    /// Vertices per BatchCreateVertices call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Calls in flight for the throughput runs.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds of steady updates to existing vertices after the other runs, sampling the
    /// server's memory each second (compaction should keep it flat).
    #[arg(long, default_value_t = 20)]
    churn_seconds: u64,
    /// Timely workers of the spawned server.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Use running servers instead of spawning one, comma-separated (the processes of a
    /// cluster: calls are spread over them; memory is then not measured).
    #[arg(long)]
    server: Option<String>,
    /// The prism-graph binary to spawn [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Steady UpdateVertex load on the loaded vertices, in rounds, with the server's resident
/// memory after each: with compaction it stays flat however many updates pass.
async fn churn(args: &Args, pid: u32, client: impl Fn(usize) -> GraphServiceClient<Channel>) -> anyhow::Result<()> {
    use pb::value::Value as V;
    const ROUNDS: u64 = 5;
    let n = args.vertices.max(1) as u64;
    let clients: Arc<Vec<_>> = Arc::new((0..args.concurrency).map(client).collect());
    let mut total = 0;
    for round in 1..=ROUNDS {
        let clients = clients.clone();
        let run = measure(args.concurrency, args.churn_seconds.div_ceil(ROUNDS), move |task, i| {
            let mut c = clients[task].clone();
            let id = format!("v{}", rand::rng().random_range(0..n));
            let properties = [("score".to_string(), pb::Value { value: Some(V::DoubleValue(i as f64)) })].into();
            async move {
                c.update_vertex(pb::UpdateVertexRequest { id, properties, merge: true }).await?;
                Ok(())
            }
        })
        .await?;
        total += run.calls;
        println!(
            "churn round {round}: {} updates ({:.0}/s, P50 {:.0} us), {total} in all; resident memory {:.0} MiB",
            run.calls,
            run.rate(),
            run.p(0.5),
            rss_bytes(pid).unwrap_or(0) as f64 / 1048576.0
        );
    }
    Ok(())
}

fn vertex(id: String, i: usize) -> pb::CreateVertexRequest {
    use pb::value::Value as V;
    let v = |value| pb::Value { value: Some(value) };
    pb::CreateVertexRequest {
        id,
        label: "User".into(),
        properties: [
            ("name".to_string(), v(V::StringValue(format!("user{i}")))),
            ("age".to_string(), v(V::IntValue((i % 90) as i64))),
            ("score".to_string(), v(V::DoubleValue(i as f64 * 0.5))),
        ]
        .into(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spawned = match &args.server {
        Some(_) => None,
        None => Some(spawn_server(args.binary.as_ref(), args.workers).await?),
    };
    let address =
        args.server.clone().unwrap_or_else(|| spawned.as_ref().map(|s| s.address.clone()).unwrap_or_default());
    let pid = spawned.as_ref().and_then(|s| s.child.id());
    let mut channels = Vec::new();
    for address in address.split(',') {
        channels.extend(harness::connect(address, 4).await?);
    }
    // Interleaved, so that consecutive clients call different servers.
    let servers = address.split(',').count();
    let channels: Vec<_> =
        (0..4).flat_map(|i| (0..servers).map(move |s| s * 4 + i)).map(|i| channels[i].clone()).collect();
    let client = |i: usize| GraphServiceClient::new(channels[i % channels.len()].clone());
    for channel in &channels[..servers] {
        harness::wait_serving(channel.clone()).await?;
    }
    let cores = harness::cores();
    println!("prism-loadgen: {cores} cores, server workers {}, concurrency {}", args.workers, args.concurrency);

    // Bulk load.
    let rss_before = pid.and_then(rss_bytes);
    let start = Instant::now();
    let batches = args.vertices.div_ceil(args.batch);
    let loaders = 8.min(batches.max(1));
    let mut tasks = Vec::new();
    for loader in 0..loaders {
        let mut c = client(loader).max_encoding_message_size(64 << 20);
        let (batch, vertices) = (args.batch, args.vertices);
        tasks.push(tokio::spawn(async move {
            for b in (loader..batches).step_by(loaders) {
                let items = (b * batch..((b + 1) * batch).min(vertices)).map(|i| vertex(format!("v{i}"), i)).collect();
                c.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices: items, atomic: true }).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let load = start.elapsed();
    let rss_after = pid.and_then(rss_bytes);
    let load_rate = args.vertices as f64 / load.as_secs_f64();
    println!(
        "batch load: {} vertices in {:.2} s = {:.0} vertices/s (goal 200000)",
        args.vertices,
        load.as_secs_f64(),
        load_rate
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "resident memory: {:.0} MiB before, {:.0} MiB after = {:.0} bytes per vertex (3 small properties)",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after.saturating_sub(before)) as f64 / args.vertices as f64
        );
        // Again once idle past the workers' 10 s release of the pages their threads freed:
        // the figure above still holds what the load's batches and merges freed.
        tokio::time::sleep(Duration::from_secs(12)).await;
        if let Some(settled) = pid.and_then(rss_bytes) {
            println!(
                "resident memory settled (idle 12 s): {:.0} MiB = {:.0} bytes per vertex",
                settled as f64 / 1048576.0,
                (settled.saturating_sub(before)) as f64 / args.vertices as f64
            );
        }
    }

    let n = args.vertices as u64;
    let seconds = args.seconds;
    let table = |name: &str, one: &Run, many: &Run, floor_one: &Run, floor_many: &Run| {
        println!(
            "{name:<14} P50 {:>7.0} us  P99 {:>7.0} us  ({:.2}x floor P50) | {:>7.0} calls/s at {} in flight  (P50 {:.0} us, P99 {:.0} us; {:.2}x floor throughput)",
            one.p(0.5),
            one.p(0.99),
            one.p(0.5) / floor_one.p(0.5),
            many.rate(),
            args.concurrency,
            many.p(0.5),
            many.p(0.99),
            many.rate() / floor_many.rate()
        );
    };

    let floor_one = harness::floor(&channels, 1, seconds).await?;
    let floor_many = harness::floor(&channels, args.concurrency, seconds).await?;
    table("empty RPC", &floor_one, &floor_many, &floor_one, &floor_many);

    let get = |conc: usize| {
        let cs: Vec<_> = (0..conc).map(client).collect();
        measure(conc, seconds, move |task, _| {
            let mut c = cs[task].clone();
            let id = format!("v{}", rand::rng().random_range(0..n.max(1)));
            async move {
                c.get_vertex(pb::GetVertexRequest { id, include_edges: false }).await?;
                Ok(())
            }
        })
    };
    let get_one = get(1).await?;
    let get_many = get(args.concurrency).await?;
    table("GetVertex", &get_one, &get_many, &floor_one, &floor_many);

    let create = |conc: usize, tag: &'static str| {
        let cs: Vec<_> = (0..conc).map(client).collect();
        measure(conc, seconds, move |task, i| {
            let mut c = cs[task].clone();
            let request = vertex(format!("{tag}-{task}-{i}"), i as usize);
            async move {
                c.create_vertex(request).await?;
                Ok(())
            }
        })
    };
    let create_one = create(1, "c1").await?;
    let create_many = create(args.concurrency, "cn").await?;
    table("CreateVertex", &create_one, &create_many, &floor_one, &floor_many);

    if let (Some(pid), true) = (pid, args.churn_seconds > 0) {
        churn(&args, pid, client).await?;
    }

    println!(
        "goals: GetVertex P50 <= 2x floor: {:.2}x; GetVertex throughput >= 0.5x floor: {:.2}x; CreateVertex throughput >= 0.33x floor: {:.2}x; batch load >= 200k/s: {:.0}/s",
        get_one.p(0.5) / floor_one.p(0.5),
        get_many.rate() / floor_many.rate(),
        create_many.rate() / floor_many.rate(),
        load_rate
    );
    Ok(())
}
