//! `prism-loadgen`: the gRPC load generator and the foundation benchmark.
//!
//! It starts a `prism-graph` server (or uses `--server`), bulk-loads vertices with three
//! small properties through BatchCreateVertices, then measures, each beside the transport
//! floor measured in the same run on the same server (the health service's Check, an
//! almost empty unary RPC):
//! - GetVertex and CreateVertex latency (one call at a time) and throughput (`--concurrency`
//!   calls in flight; CreateVertex is durable and applied when answered);
//! - the batch load rate;
//! - the server's resident memory per vertex.
//!
//! Run: `cargo run --release -p prism-benches --bin prism-loadgen -- --vertices 1000000`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use rand::Rng;
use tokio::io::AsyncBufReadExt;
use tonic::transport::Channel;
use tonic_health_client::{Health, HealthCheck};

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
    /// Use a running server instead of spawning one (memory is then not measured).
    #[arg(long)]
    server: Option<String>,
    /// The prism-graph binary to spawn [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
}

mod tonic_health_client {
    //! The standard health service's Check: the empty-RPC floor.
    pub use tonic_health::pb::health_client::HealthClient as Health;
    pub use tonic_health::pb::HealthCheckRequest as HealthCheck;
}

/// A latency distribution and how many calls completed in how long.
struct Run {
    histogram: Histogram<u64>,
    calls: u64,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
    fn p(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64
    }
}

/// Runs `call` from `concurrency` tasks for `seconds`; each task gets its own index.
async fn measure<F, Fut>(concurrency: usize, seconds: u64, call: F) -> anyhow::Result<Run>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3)?;
            let mut n = 0u64;
            while Instant::now() < until {
                let t = Instant::now();
                call(task, n).await?;
                histogram.record(t.elapsed().as_micros() as u64)?;
                n += 1;
            }
            anyhow::Ok(histogram)
        }));
    }
    let mut histogram = Histogram::<u64>::new(3)?;
    for task in tasks {
        histogram.add(task.await??)?;
    }
    let calls = histogram.len();
    Ok(Run { histogram, calls, elapsed: start.elapsed() })
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

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

struct Spawned {
    child: tokio::process::Child,
    address: String,
    _data: tempfile::TempDir,
}

async fn spawn_server(args: &Args) -> anyhow::Result<Spawned> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.parent().context("binary directory")?.join("prism-graph"),
    };
    if !binary.exists() {
        bail!("{} not found: build it with `cargo build --release -p prism-server`", binary.display());
    }
    let data = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", &args.workers.to_string(), "--data-dir"])
        .arg(data.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(address) = line.strip_prefix("prism-graph listening on ") {
            let address = format!("http://{}", address.trim());
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(Spawned { child, address, _data: data });
        }
    }
    bail!("the server exited before listening")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let spawned = match &args.server {
        Some(_) => None,
        None => Some(spawn_server(&args).await?),
    };
    let address =
        args.server.clone().unwrap_or_else(|| spawned.as_ref().map(|s| s.address.clone()).unwrap_or_default());
    let pid = spawned.as_ref().and_then(|s| s.child.id());
    // Several connections, so one HTTP/2 connection's ordering is not the bottleneck.
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(Channel::from_shared(address.clone())?.connect().await?);
    }
    let client = |i: usize| GraphServiceClient::new(channels[i % channels.len()].clone());
    let health = |i: usize| Health::new(channels[i % channels.len()].clone());
    // Wait until the server has recovered and serves.
    let mut probe = health(0);
    loop {
        let status = probe.check(HealthCheck { service: "prism.graph.v1.GraphService".into() }).await?;
        if status.into_inner().status == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
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

    let empty = |conc: usize| {
        let hs: Vec<_> = (0..conc).map(health).collect();
        measure(conc, seconds, move |task, _| {
            let mut h = hs[task].clone();
            async move {
                h.check(HealthCheck { service: String::new() }).await?;
                Ok(())
            }
        })
    };
    let floor_one = empty(1).await?;
    let floor_many = empty(args.concurrency).await?;
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
