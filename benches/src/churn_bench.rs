//! `prism-churn`: a soak under churn. Does the server's memory follow the live graph, not the
//! number of writes it has taken, while a PageRank subscription is open?
//!
//! It spawns `prism-graph serve`, loads an R-MAT graph (default 2^16 vertices, 500k edges),
//! subscribes to its PageRank (top 10; a task reads every message), then creates and deletes
//! single edges at a steady rate (default 700/s: new edges from the generator with another
//! seed, deleted ones picked uniformly among the live) for `--minutes`, sampling the server's
//! resident memory every minute. The baseline, measured in the same run, is the level after
//! the first minute: the goal is that no later sample exceeds it by more than 25%.
//! `--no-subscription` runs the same churn without one, to compare.
//!
//! Run: `cargo run --release -p prism-benches --bin prism-churn -- --minutes 30`

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use prism_benches::harness::{self, spawn_server};
use prism_benches::rmat::rmat;
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 16)]
    scale: u32,
    #[arg(long, default_value_t = 500_000)]
    edges: usize,
    /// Writes per second, creates and deletes alternately.
    #[arg(long, default_value_t = 700)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Churn without a subscription open.
    #[arg(long)]
    no_subscription: bool,
    /// The prism-graph binary to spawn [default: next to this one].
    #[arg(long)]
    binary: Option<PathBuf>,
}

/// Tasks writing; each owns a share of the edges, so that none deletes another's.
const WRITERS: usize = 8;

/// What the subscription's reader has seen.
#[derive(Default)]
struct Heard {
    messages: AtomicU64,
    lsn: AtomicU64,
    cut_off: AtomicU64,
}

/// Reads every message of a top-10 subscription; subscribes again if cut off.
async fn follow(channel: Channel, heard: Arc<Heard>) -> anyhow::Result<()> {
    let mut client = GraphServiceClient::new(channel);
    loop {
        let request = pb::SubscribePageRankRequest { top_k: 10, ..Default::default() };
        let mut stream = client.subscribe_page_rank(request).await?.into_inner();
        loop {
            match stream.message().await {
                Ok(Some(update)) => {
                    heard.messages.fetch_add(1, Ordering::Relaxed);
                    heard.lsn.fetch_max(update.lsn, Ordering::Relaxed);
                }
                Ok(None) => anyhow::bail!("the subscription ended"),
                Err(status) => {
                    eprintln!("subscription cut off: {status:?}; subscribing again");
                    heard.cut_off.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Alternately creates a new edge and deletes one of this writer's live edges, at `rate`
/// writes a second, until `until`.
async fn churn(
    channel: Channel,
    writer: usize,
    mut live: Vec<(String, u32, u32)>,
    growth: Vec<(u32, u32)>,
    rate: f64,
    until: Instant,
    written: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut client = GraphServiceClient::new(channel);
    let mut rng = StdRng::seed_from_u64(writer as u64);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut growth = growth.into_iter().cycle();
    for n in 0u64.. {
        ticks.tick().await;
        if Instant::now() >= until {
            return Ok(());
        }
        let reply = if n % 2 == 0 || live.is_empty() {
            let (from, to) = growth.next().unwrap_or((0, 0));
            let id = format!("c{writer}-{n}");
            let request = pb::CreateEdgeRequest {
                id: id.clone(),
                label: "L".into(),
                from_vertex_id: format!("v{from}"),
                to_vertex_id: format!("v{to}"),
                properties: Default::default(),
            };
            live.push((id, from, to));
            client.create_edge(request).await.map(|r| lsn_of(&r))
        } else {
            let (id, _, _) = live.swap_remove(rng.random_range(0..live.len()));
            client.delete_edge(pb::DeleteEdgeRequest { id }).await.map(|r| lsn_of(&r))
        };
        let lsn = reply?;
        written.fetch_max(lsn, Ordering::Relaxed);
    }
    Ok(())
}

fn lsn_of<T>(reply: &tonic::Response<T>) -> u64 {
    reply.metadata().get("x-prism-lsn").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vertices = 1usize << args.scale;
    println!(
        "prism-churn: {} cores, server workers {}, R-MAT scale {} ({vertices} vertices), {} edges, {} writes/s for {} \
         minutes, {}",
        harness::cores(),
        args.workers,
        args.scale,
        args.edges,
        args.rate,
        args.minutes,
        if args.no_subscription { "no subscription" } else { "a top-10 PageRank subscription open" }
    );
    let edges = rmat(args.scale, args.edges, 1);
    let server = spawn_server(args.binary.as_ref(), args.workers).await?;
    let pid = server.child.id().unwrap_or(0);
    let channels = harness::connect(&server.address, 4).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let started = Instant::now();
    harness::load_graph(&channels, vertices, Arc::new(edges.clone())).await?;
    println!("loaded in {:.1} s", started.elapsed().as_secs_f64());

    let heard = Arc::new(Heard::default());
    if !args.no_subscription {
        let (channel, heard) = (channels[0].clone(), heard.clone());
        tokio::spawn(async move {
            if let Err(error) = follow(channel, heard).await {
                eprintln!("the subscriber stopped: {error}");
            }
        });
    }

    let until = Instant::now() + Duration::from_secs(args.minutes * 60);
    let written = Arc::new(AtomicU64::new(0));
    let growth = rmat(args.scale, args.rate as usize * 60 * args.minutes as usize / 2 + 1, 7);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let live: Vec<(String, u32, u32)> = edges
            .iter()
            .enumerate()
            .filter(|(i, _)| i % WRITERS == writer)
            .map(|(i, &(from, to))| (format!("e{i}"), from, to))
            .collect();
        let mine: Vec<(u32, u32)> = growth.iter().skip(writer).step_by(WRITERS).copied().collect();
        let rate = args.rate as f64 / WRITERS as f64;
        let (channel, written) = (channels[writer % channels.len()].clone(), written.clone());
        writers.push(tokio::spawn(churn(channel, writer, live, mine, rate, until, written)));
    }

    println!(
        "{:>6} {:>12} {:>10} {:>12} {:>14}",
        "minute", "writes (LSN)", "RSS MiB", "sub messages", "sub LSN behind"
    );
    let mut samples = Vec::new();
    let mut minutes = tokio::time::interval(Duration::from_secs(60));
    minutes.tick().await;
    for minute in 1..=args.minutes {
        minutes.tick().await;
        let rss = harness::rss_bytes(pid).unwrap_or(0) as f64 / (1 << 20) as f64;
        let lsn = written.load(Ordering::Relaxed);
        let behind = if args.no_subscription { 0 } else { lsn.saturating_sub(heard.lsn.load(Ordering::Relaxed)) };
        println!("{minute:>6} {lsn:>12} {rss:>10.0} {:>12} {behind:>14}", heard.messages.load(Ordering::Relaxed));
        samples.push(rss);
    }
    for writer in writers {
        writer.await??;
    }
    let first = samples.first().copied().unwrap_or(0.0);
    let most = samples.iter().copied().fold(0.0, f64::max);
    println!(
        "baseline (after minute 1) {first:.0} MiB; highest {most:.0} MiB = {:.2}x; last {:.0} MiB; subscription cut \
         off {} times: {}",
        most / first.max(1.0),
        samples.last().copied().unwrap_or(0.0),
        heard.cut_off.load(Ordering::Relaxed),
        if most <= first * 1.25 { "within 25% (met)" } else { "more than 25% above (not met)" }
    );
    Ok(())
}
