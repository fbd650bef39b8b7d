//! `prism-incremental`: the cost of keeping PageRank current under single-edge changes with
//! residual push (dataflows/src/incremental.rs), beside recomputing it, on an R-MAT graph.
//!
//! It builds the incremental state on an R-MAT graph (default scale 17, 1M edges), then
//! applies random single-edge inserts and deletes, settling after each, and reports the time
//! and pushes per change (P50/P99) beside one 20-iteration power iteration over the same graph
//! in this process, measured in the same run. Single-threaded: this is the per-shard work of
//! the coming standing subscriptions, not yet the end-to-end latency.
//!
//! Run: `cargo run --release -p prism-benches --bin prism-incremental`

use std::time::Instant;

use clap::Parser;
use hdrhistogram::Histogram;
use prism_benches::cost_baseline;
use prism_benches::rmat::rmat;
use prism_dataflows::incremental::IncrementalPageRank;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 17)]
    scale: u32,
    #[arg(long, default_value_t = 1_000_000)]
    edges: usize,
    /// Residual tolerance (each score within tolerance / (1 - d) relative).
    #[arg(long, default_value_t = 1.5e-5)]
    tolerance: f64,
    #[arg(long, default_value_t = 1000)]
    changes: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let n = 1u32 << args.scale;
    let mut edges = rmat(args.scale, args.edges, 1);
    let started = Instant::now();
    let mut state = IncrementalPageRank::new(0..n, edges.iter().copied(), 0.85, args.tolerance);
    let build = started.elapsed().as_secs_f64();

    // The baseline: 20 power iterations over a CSR of the same graph.
    let recompute = cost_baseline::pagerank_seconds(n as usize, &edges, 20);
    let recompute_edge_visits = 20.0 * edges.len() as f64;

    let mut rng = StdRng::seed_from_u64(2);
    let mut micros = Histogram::<u64>::new(3)?;
    let mut visits = Histogram::<u64>::new(3)?;
    for i in 0..args.changes {
        let started = Instant::now();
        if i % 2 == 1 {
            let (a, b) = edges.swap_remove(rng.random_range(0..edges.len()));
            state.remove_edge(a, b);
        } else {
            let edge = (rng.random_range(0..n), rng.random_range(0..n));
            state.insert_edge(edge.0, edge.1);
            edges.push(edge);
        }
        visits.record(state.settle())?;
        micros.record(started.elapsed().as_micros() as u64)?;
    }
    println!(
        "prism-incremental: R-MAT scale {} ({n} vertices), {} edges, tolerance {} (error bound {:.1e} relative)",
        args.scale,
        edges.len(),
        args.tolerance,
        state.error_bound()
    );
    println!("build (power-iteration start + settle): {build:.2} s");
    println!(
        "recompute baseline (20 iterations, CSR, 1 thread): {:.3} s = {:.0} edge visits",
        recompute, recompute_edge_visits
    );
    println!(
        "per change: P50 {} us, P99 {} us ({:.1}x faster than the recompute at P50); edges visited P50 {} P99 {} ({:.0}x fewer than a recompute at P50)",
        micros.value_at_quantile(0.5),
        micros.value_at_quantile(0.99),
        recompute * 1e6 / micros.value_at_quantile(0.5).max(1) as f64,
        visits.value_at_quantile(0.5),
        visits.value_at_quantile(0.99),
        recompute_edge_visits / (visits.value_at_quantile(0.5) as f64).max(1.0)
    );
    Ok(())
}
