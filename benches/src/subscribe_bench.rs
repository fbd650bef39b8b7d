//! `prism-subscribe`: how fast a PageRank subscriber hears of a single-edge change, and what
//! keeping the standing PageRank current costs beside recomputing it.
//!
//! Two parts, on the same R-MAT graph (default 2^17 vertices, 1M edges, seed 1):
//! 1. Through the server: spawn `prism-graph serve`, load the graph, time a one-shot PageRank
//!    (20 iterations: the recompute), subscribe (top 10, tolerance 1e-4 unless `--tolerance`), then make
//!    single-edge inserts (R-MAT edges) and deletes (uniform) one at a time and time each from sending the write to
//!    the subscriber's message at its LSN, beside the write's own acknowledgement.
//! 2. In this process: the standing PageRank the server keeps (`StandingPageRank`) applies the
//!    same kind of changes; each change's compute time and edges visited are set beside a
//!    single-threaded 20-iteration CSR PageRank over the same edges (the COST baseline).
//!
//! Run: `cargo run --release -p prism-benches --bin prism-subscribe`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use prism_benches::cost_baseline;
use prism_benches::harness::{self, spawn_server};
use prism_benches::rmat::rmat;
use prism_dataflows::Change;
use prism_dataflows::{Edge, Namespace, NumberedEdge, Shared, Vertex, VertexNumber};
use prism_dataflows::{StandingPageRank, SubscriptionParams};
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 17)]
    scale: u32,
    #[arg(long, default_value_t = 1_000_000)]
    edges: usize,
    /// Single-edge changes to time.
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The subscription's tolerance: the relative error bound of each score.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
    /// The prism-graph binary to spawn [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// New edges come from the graph's own generator (another seed): a skewed graph grows as it
/// was made, sources by their degree. Deleted edges are picked uniformly among the live ones.
const GROWTH_SEED: u64 = 7;

fn micros(duration: Duration) -> u64 {
    duration.as_micros() as u64
}

fn line(name: &str, histogram: &Histogram<u64>) {
    println!(
        "{name:<44} P50 {:>7} us  P99 {:>7} us",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vertices = 1usize << args.scale;
    println!(
        "prism-subscribe: {} cores, server workers {}, R-MAT scale {} ({vertices} vertices), {} edges",
        harness::cores(),
        args.workers,
        args.scale,
        args.edges
    );
    let edges = rmat(args.scale, args.edges, 1);
    let recompute_csr = cost_baseline::pagerank_seconds(vertices, &edges, 20);
    through_the_server(&args, vertices, Arc::new(edges.clone())).await?;
    in_process(&args, vertices, edges, recompute_csr)?;
    Ok(())
}

async fn through_the_server(args: &Args, vertices: usize, edges: Arc<Vec<(u32, u32)>>) -> anyhow::Result<()> {
    let server = spawn_server(args.binary.as_ref(), args.workers).await?;
    let channels = harness::connect(&server.address, 2).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let started = Instant::now();
    harness::load_graph(&channels, vertices, edges.clone()).await?;
    println!("loaded in {:.1} s", started.elapsed().as_secs_f64());
    let mut client = GraphServiceClient::new(channels[0].clone());
    let mut watcher = GraphServiceClient::new(channels[1].clone());

    let mut recompute = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let request = pb::PageRankRequest { vertex_filter: None, iterations: 20, damping_factor: 0.85, limit: 10 };
        client.page_rank(request).await?;
        recompute.push(started.elapsed());
    }
    recompute.sort();
    let recompute = recompute[1];

    let started = Instant::now();
    let request = pb::SubscribePageRankRequest {
        damping_factor: 0.85,
        tolerance: args.tolerance,
        vertex_filter: None,
        top_k: 10,
    };
    let mut stream = watcher.subscribe_page_rank(request).await?.into_inner();
    let first = stream.message().await?.ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
    println!(
        "subscribe: first result (standing PageRank built) in {:.2} s, error bound {:.0e}",
        started.elapsed().as_secs_f64(),
        first.error_bound
    );

    let mut rng = StdRng::seed_from_u64(3);
    let growth = rmat(args.scale, args.changes, GROWTH_SEED);
    let mut live: Vec<String> = (0..edges.len()).map(|i| format!("e{i}")).collect();
    let (mut end_to_end, mut acked) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    let mut unchanged = 0;
    for (i, &grown) in growth.iter().enumerate() {
        let sent = Instant::now();
        let reply_lsn = |metadata: &tonic::metadata::MetadataMap| {
            metadata.get("x-prism-lsn").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        let lsn = if i % 2 == 1 {
            let id = live.swap_remove(rng.random_range(0..live.len()));
            reply_lsn(client.delete_edge(pb::DeleteEdgeRequest { id }).await?.metadata())
        } else {
            let id = format!("n{i}");
            live.push(id.clone());
            let (from, to) = grown;
            let request = pb::CreateEdgeRequest {
                id,
                label: "L".into(),
                from_vertex_id: format!("v{from}"),
                to_vertex_id: format!("v{to}"),
                properties: Default::default(),
            };
            reply_lsn(client.create_edge(request).await?.metadata())
        };
        acked.record(micros(sent.elapsed()))?;
        let update = loop {
            let update = stream.message().await?.ok_or_else(|| anyhow::anyhow!("the subscription ended"))?;
            if update.lsn >= lsn {
                break update;
            }
        };
        if update.heartbeat {
            unchanged += 1;
            continue;
        }
        end_to_end.record(micros(sent.elapsed()))?;
    }
    println!("one-shot PageRank, 20 iterations (recompute):   {:>9} us", micros(recompute));
    line("write acknowledged (durable, applied)", &acked);
    line("write sent -> subscriber's message", &end_to_end);
    println!(
        "  {} changes, {unchanged} left the top 10 as it was (heartbeat); P50 {:.0}x faster than the recompute",
        args.changes,
        micros(recompute) as f64 / end_to_end.value_at_quantile(0.5).max(1) as f64
    );
    Ok(())
}

fn in_process(args: &Args, vertices: usize, mut edges: Vec<(u32, u32)>, recompute: f64) -> anyhow::Result<()> {
    let namespace = Namespace::default();
    let vertex = |i: u32| {
        Shared::new(Vertex {
            number: VertexNumber(u64::from(i)),
            id: format!("v{i}").into(),
            label: "V".into(),
            properties: Default::default(),
            created_at: 0,
            updated_at: 0,
        })
    };
    let edge = |i: usize, (from, to): (u32, u32)| {
        Shared::new(Edge {
            id: format!("e{i}").into(),
            label: "L".into(),
            from: format!("v{from}").into(),
            to: format!("v{to}").into(),
            properties: Default::default(),
            created_at: 0,
        })
    };
    let numbered = |from: u32, to: u32, edge: Shared<Edge>| NumberedEdge {
        from: VertexNumber(u64::from(from)),
        to: VertexNumber(u64::from(to)),
        edge,
    };
    let all_vertices: Vec<Shared<Vertex>> = (0..vertices as u32).map(vertex).collect();
    let mut all_edges: Vec<Shared<Edge>> = edges.iter().enumerate().map(|(i, &e)| edge(i, e)).collect();
    let params = SubscriptionParams {
        namespace: namespace.clone(),
        damping: 0.85,
        error_bound: args.tolerance,
        filter: None,
        top_k: 10,
    };
    let started = Instant::now();
    let mut standing = StandingPageRank::build(params, &all_vertices, &all_edges);
    println!("in process: standing PageRank built in {:.2} s", started.elapsed().as_secs_f64());

    let mut rng = StdRng::seed_from_u64(4);
    let growth = rmat(args.scale, args.changes, GROWTH_SEED);
    let (mut time, mut visits) = (Histogram::<u64>::new(3)?, Histogram::<u64>::new(3)?);
    for (i, &grown) in growth.iter().enumerate() {
        let change = if i % 2 == 1 {
            let position = rng.random_range(0..all_edges.len());
            let (from, to) = edges.swap_remove(position);
            let gone = all_edges.swap_remove(position);
            Change::Edge(namespace.clone(), numbered(from, to, gone), -1)
        } else {
            edges.push(grown);
            let new = edge(edges.len() + i, grown);
            all_edges.push(new.clone());
            Change::Edge(namespace.clone(), numbered(grown.0, grown.1, new), 1)
        };
        let started = Instant::now();
        standing.apply(std::slice::from_ref(&change));
        let _ = standing.top(0);
        time.record(micros(started.elapsed()).max(1))?;
        visits.record(standing.last_work().max(1))?;
    }
    let recompute_visits = 20.0 * edges.len() as f64;
    println!(
        "COST baseline: 20 iterations over a CSR, 1 thread: {:>9.0} us, {recompute_visits:.0} edge visits",
        recompute * 1e6
    );
    line("per change: apply + settle + top 10", &time);
    println!(
        "  edges visited per change P50 {} P99 {}: {:.0}x fewer than the recompute at P50; time {:.0}x less",
        visits.value_at_quantile(0.5),
        visits.value_at_quantile(0.99),
        recompute_visits / visits.value_at_quantile(0.5) as f64,
        recompute * 1e6 / time.value_at_quantile(0.5) as f64
    );
    Ok(())
}
