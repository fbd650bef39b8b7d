//! `prism-querybench`: traversal and shortest-path latency through gRPC on an R-MAT graph.
//!
//! It spawns a `prism-graph` server, loads an R-MAT graph (default 2^17 vertices, 1M edges,
//! seed 1) through the batch RPCs, then measures one call at a time, each beside the empty-RPC
//! floor (health Check) measured in the same run:
//! - Traverse of 1, 2 and 3 hops out (one step per hop, `limit` 100) from vertices of median
//!   out-degree;
//! - ShortestPath (fewest hops) between random vertices that have edges;
//! - one-shot PageRank (20 iterations) beside a single-threaded CSR PageRank over the same
//!   edges in this process (the COST baseline).
//!
//! Run: `cargo run --release -p prism-benches --bin prism-querybench`

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use prism_benches::cost_baseline;
use prism_benches::harness::{self, measure, spawn_server, Run};
use prism_benches::rmat::rmat;
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

#[derive(Parser)]
struct Args {
    /// log2 of the number of vertices.
    #[arg(long, default_value_t = 17)]
    scale: u32,
    #[arg(long, default_value_t = 1_000_000)]
    edges: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The prism-graph binary to spawn [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
}

fn report(name: &str, run: &Run, floor: &Run, extra: &str) {
    println!(
        "{name:<22} P50 {:>7.0} us  P99 {:>8.0} us  {:>7.0} calls/s  ({:.2}x floor P50){extra}",
        run.p(0.5),
        run.p(0.99),
        run.rate(),
        run.p(0.5) / floor.p(0.5)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = spawn_server(args.binary.as_ref(), args.workers).await?;
    let channels = harness::connect(&server.address, 4).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let client = |i: usize| {
        GraphServiceClient::new(channels[i % channels.len()].clone())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20)
    };
    let vertices = 1usize << args.scale;
    println!(
        "prism-querybench: {} cores, server workers {}, R-MAT scale {} ({vertices} vertices), {} edges",
        harness::cores(),
        args.workers,
        args.scale,
        args.edges
    );

    let edges = Arc::new(rmat(args.scale, args.edges, 1));
    let started = Instant::now();
    harness::load_graph(&channels, vertices, edges.clone()).await?;
    println!("loaded in {:.1} s", started.elapsed().as_secs_f64());

    // Start vertices: those whose out-degree is the median out-degree of vertices with edges.
    let mut degree = vec![0usize; vertices];
    for (s, _) in edges.iter() {
        degree[*s as usize] += 1;
    }
    let mut nonzero: Vec<usize> = degree.iter().copied().filter(|d| *d > 0).collect();
    nonzero.sort_unstable();
    let median = nonzero[nonzero.len() / 2];
    let starts: Arc<Vec<String>> =
        Arc::new((0..vertices).filter(|v| degree[*v] == median).take(200).map(|v| format!("v{v}")).collect());
    let with_edges: Arc<Vec<usize>> = Arc::new((0..vertices).filter(|v| degree[*v] > 0).collect());
    println!(
        "median out-degree {median} ({} start vertices); max out-degree {}",
        starts.len(),
        nonzero.last().unwrap_or(&0)
    );

    let floor = harness::floor(&channels, 1, args.seconds).await?;
    report("empty RPC (floor)", &floor, &floor, "");

    for hops in 1..=3 {
        let c = client(0);
        let starts = starts.clone();
        let refused = Arc::new(AtomicU64::new(0));
        let counted = refused.clone();
        let returned = Arc::new(AtomicU64::new(0));
        let summed = returned.clone();
        let run = measure(1, args.seconds, move |_, n| {
            let mut c = c.clone();
            let request = pb::TraverseRequest {
                start_vertex_id: starts[n as usize % starts.len()].clone(),
                steps: (0..hops)
                    .map(|_| pb::TraversalStep { direction: 0, edge_labels: vec![], min_hops: None, max_hops: None })
                    .collect(),
                limit: Some(100),
                ..Default::default()
            };
            let (refused, returned) = (counted.clone(), summed.clone());
            async move {
                match c.traverse(request).await {
                    Ok(reply) => {
                        returned.fetch_add(reply.into_inner().vertices.len() as u64, Ordering::Relaxed);
                    }
                    Err(status) if matches!(status.code(), Code::ResourceExhausted | Code::DeadlineExceeded) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => return Err(status.into()),
                }
                Ok(())
            }
        })
        .await?;
        let extra = format!(
            "; {:.1} vertices returned on average; {} refused by a limit",
            returned.load(Ordering::Relaxed) as f64 / run.calls.max(1) as f64,
            refused.load(Ordering::Relaxed)
        );
        report(&format!("Traverse {hops} hop(s)"), &run, &floor, &extra);
    }

    let c = client(0);
    let found = Arc::new(AtomicU64::new(0));
    let counted = found.clone();
    let run = measure(1, args.seconds, move |_, n| {
        let mut c = c.clone();
        let mut rng = StdRng::seed_from_u64(n);
        let pick = |rng: &mut StdRng| format!("v{}", with_edges[rng.random_range(0..with_edges.len())]);
        let request = pb::ShortestPathRequest {
            start_vertex_id: pick(&mut rng),
            end_vertex_id: pick(&mut rng),
            max_hops: Some(8),
            ..Default::default()
        };
        let found = counted.clone();
        async move {
            match c.shortest_path(request).await {
                Ok(reply) => {
                    if reply.into_inner().path.is_some_and(|p| !p.vertex_ids.is_empty()) {
                        found.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(status) if matches!(status.code(), Code::ResourceExhausted | Code::DeadlineExceeded) => {}
                Err(status) => return Err(status.into()),
            }
            Ok(())
        }
    })
    .await?;
    let extra = format!("; a path found for {} of {} pairs", found.load(Ordering::Relaxed), run.calls);
    report("ShortestPath", &run, &floor, &extra);

    // One-shot PageRank, 20 iterations, beside a single-threaded CSR loop over the same edges
    // in this process (the COST baseline).
    let mut c = client(0);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let request = pb::PageRankRequest { vertex_filter: None, iterations: 20, damping_factor: 0.85, limit: 10 };
        c.page_rank(request).await?;
        runs.push(started.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    // The same with no iterations: reading the shards and resolving targets, the fixed cost.
    let started = Instant::now();
    c.page_rank(pb::PageRankRequest { vertex_filter: None, iterations: 0, damping_factor: 0.85, limit: 10 }).await?;
    let setup = started.elapsed().as_secs_f64();
    println!("PageRank with 0 iterations (reading the shards at one LSN, resolving targets): {setup:.3} s");
    let baseline = cost_baseline::pagerank_seconds(vertices, &edges, 20);
    println!(
        "PageRank 20 iterations  {:.3} s (median of 3)  CSR single-thread baseline {:.3} s  ratio {:.1}x  ({:.1}M edge-iterations/s vs {:.1}M)",
        runs[1],
        baseline,
        runs[1] / baseline,
        edges.len() as f64 * 20.0 / runs[1] / 1e6,
        edges.len() as f64 * 20.0 / baseline / 1e6
    );
    drop(server);
    Ok(())
}
