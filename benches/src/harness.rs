//! What every benchmark here needs: a `prism-graph` server to measure (spawned from the
//! binary next to the benchmark's own), closed-loop load with latency histograms, and the
//! server's resident memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use tokio::io::AsyncBufReadExt;
use tonic::transport::Channel;

/// The standard health service's Check: the empty-RPC floor every figure is set beside.
pub use tonic_health::pb::health_client::HealthClient as Health;
pub use tonic_health::pb::HealthCheckRequest as HealthCheck;

/// A latency distribution and how many calls completed in how long.
pub struct Run {
    pub histogram: Histogram<u64>,
    pub calls: u64,
    pub elapsed: Duration,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
    pub fn p(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64
    }
}

/// Runs `call` from `concurrency` tasks for `seconds`; each task gets its own index.
pub async fn measure<F, Fut>(concurrency: usize, seconds: u64, call: F) -> anyhow::Result<Run>
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

/// The resident memory of process `pid`, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// The most resident memory process `pid` has held since it started (the kernel's
/// high-water mark), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A spawned server on a fresh data directory, killed when dropped.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub address: String,
    _data: Option<tempfile::TempDir>,
}

/// Spawns `prism-graph serve --workers N` (the binary given, or the one next to this) on a
/// fresh data directory.
pub async fn spawn_server(binary: Option<&PathBuf>, workers: usize) -> anyhow::Result<Spawned> {
    let data = tempfile::tempdir()?;
    let mut spawned = spawn_server_in(binary, workers, data.path(), &[]).await?;
    spawned._data = Some(data);
    Ok(spawned)
}

/// Spawns `prism-graph serve --workers N --data-dir DIR EXTRA…` (its log in `DIR.log`);
/// returns once it listens.
pub async fn spawn_server_in(
    binary: Option<&PathBuf>,
    workers: usize,
    data_dir: &std::path::Path,
    extra: &[String],
) -> anyhow::Result<Spawned> {
    let binary = match binary {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.parent().context("binary directory")?.join("prism-graph"),
    };
    if !binary.exists() {
        bail!("{} not found: build it with `cargo build --release -p prism-server`", binary.display());
    }
    let mut child = tokio::process::Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", &workers.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        // Beside the data directory, for a run that goes wrong.
        .stderr(std::fs::File::create(data_dir.with_extension("log"))?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawn {}", binary.display()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(address) = line.strip_prefix("prism-graph listening on ") {
            let address = format!("http://{}", address.trim());
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(Spawned { child, address, _data: None });
        }
    }
    bail!("the server exited before listening")
}

/// Connections to `address`, several so that one HTTP/2 connection is not the bottleneck.
pub async fn connect(address: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..count {
        channels.push(Channel::from_shared(address.to_owned())?.connect().await?);
    }
    Ok(channels)
}

/// Waits until the server has recovered and serves.
pub async fn wait_serving(channel: Channel) -> anyhow::Result<()> {
    // The health service's Watch stream tells each change: polling Check instead would spin
    // on a core the server needs while it loads.
    let mut probe = Health::new(channel);
    let mut statuses = probe.watch(HealthCheck { service: "prism.graph.v1.GraphService".into() }).await?.into_inner();
    while let Some(status) = statuses.message().await? {
        if status.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            return Ok(());
        }
    }
    bail!("the health stream ended before the server was SERVING")
}

/// The empty-RPC floor: health Checks from `concurrency` tasks for `seconds`.
pub async fn floor(channels: &[Channel], concurrency: usize, seconds: u64) -> anyhow::Result<Run> {
    let health: Vec<Health<Channel>> =
        (0..concurrency).map(|i| Health::new(channels[i % channels.len()].clone())).collect();
    measure(concurrency, seconds, move |task, _| {
        let mut h = health[task].clone();
        async move {
            h.check(HealthCheck { service: String::new() }).await?;
            Ok(())
        }
    })
    .await
}

/// The number of cores, for the report.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Loads vertices `v0..v{vertices}` and `edges` (edge `i` is `e{i}`, label L) through the batch
/// RPCs: atomic batches of 1000, 8 in flight.
pub async fn load_graph(channels: &[Channel], vertices: usize, edges: Arc<Vec<(u32, u32)>>) -> anyhow::Result<()> {
    const LOADERS: usize = 8;
    let client = |i: usize| GraphServiceClient::new(channels[i % channels.len()].clone());
    let mut tasks = Vec::new();
    for loader in 0..LOADERS {
        let mut c = client(loader);
        tasks.push(tokio::spawn(async move {
            for chunk in (0..vertices).collect::<Vec<_>>().chunks(1000).skip(loader).step_by(LOADERS) {
                let items = chunk
                    .iter()
                    .map(|i| pb::CreateVertexRequest {
                        id: format!("v{i}"),
                        label: "V".into(),
                        properties: Default::default(),
                    })
                    .collect();
                c.batch_create_vertices(pb::BatchCreateVerticesRequest { vertices: items, atomic: true }).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks.drain(..) {
        task.await??;
    }
    for loader in 0..LOADERS {
        let mut c = client(loader);
        let edges = edges.clone();
        tasks.push(tokio::spawn(async move {
            let ids: Vec<usize> = (0..edges.len()).collect();
            for chunk in ids.chunks(1000).skip(loader).step_by(LOADERS) {
                let items = chunk
                    .iter()
                    .map(|&i| pb::CreateEdgeRequest {
                        id: format!("e{i}"),
                        label: "L".into(),
                        from_vertex_id: format!("v{}", edges[i].0),
                        to_vertex_id: format!("v{}", edges[i].1),
                        properties: Default::default(),
                    })
                    .collect();
                c.batch_create_edges(pb::BatchCreateEdgesRequest { edges: items, atomic: true }).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
