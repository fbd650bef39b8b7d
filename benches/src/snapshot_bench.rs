//! `prism-snapshotbench`: loading a snapshot, and applying a newer one as a difference.
//!
//! On an R-MAT graph (default scale 20: 1M vertices, 10M edges), written as a zstd protobuf
//! snapshot:
//! 1. the floor: one pass that decompresses and parses the file, in this process;
//! 2. load: `prism-graph serve --snapshot FILE`, timed from spawn to SERVING (the server reads
//!    the file and writes it through its log in atomic batches), and its resident memory per
//!    edge afterwards and at its peak during the load (the kernel's high-water mark);
//! 3. a second snapshot differing by 1% of its elements (0.5% of vertices with a changed
//!    property, 0.25% of edges removed, as many added): their difference in this process
//!    (the differential dataflow of `snapshot diff`), then applied to the loaded server
//!    through ApplySnapshot (diff against the running graph, one atomic record).
//!
//! Run: `cargo run --release -p prism-benches --bin prism-snapshotbench`

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use prism_benches::harness::{self, spawn_server_in};
use prism_benches::rmat::rmat;
use prism_dataflows::snapshot_diff::{self, DiffCounts};
use prism_dataflows::{Properties, Value};
use prism_proto::graph as pb;
use prism_server::pb::graph_service_client::GraphServiceClient;
use prism_snapshots::{
    Compression, Encoding, Section, SnapshotEdge, SnapshotItem, SnapshotReader, SnapshotVertex, SnapshotWriter,
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20)]
    scale: u32,
    #[arg(long, default_value_t = 10_000_000)]
    edges: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Load the first snapshot and report memory once settled; no second version, diff or
    /// apply (for graphs whose second copy and diff would not fit beside the server).
    #[arg(long)]
    load_only: bool,
    /// Write the snapshots into this directory and keep them (to load them again by hand).
    #[arg(long)]
    keep: Option<PathBuf>,
}

fn properties(generation: i64) -> Properties {
    [("generation".to_string(), Value::Int(generation))].into_iter().collect()
}

/// Writes the graph's snapshot; `changed` makes the 1%-different second version.
fn write_snapshot(path: &Path, vertices: usize, edges: &[(u32, u32)], changed: bool) -> anyhow::Result<()> {
    let mut writer = SnapshotWriter::new(std::fs::File::create(path)?, Encoding::Protobuf, Compression::Zstd)?;
    let extra = if changed { edges.len() / 400 } else { 0 };
    let removed = |i: usize| changed && i.is_multiple_of(400);
    let kept = edges.len() - (0..edges.len()).filter(|i| removed(*i)).count() + extra;
    let section = Section { vertex_count: Some(vertices as u64), edge_count: Some(kept as u64), ..Default::default() };
    writer.write(&SnapshotItem::Section(section))?;
    for i in 0..vertices {
        let generation = if changed && i.is_multiple_of(200) { 2 } else { 1 };
        let vertex = SnapshotVertex {
            id: format!("v{i}"),
            label: "V".into(),
            properties: properties(generation),
            ..Default::default()
        };
        writer.write(&SnapshotItem::Vertex(vertex))?;
    }
    let edge = |id: String, (from, to): (u32, u32)| SnapshotEdge {
        id,
        label: "L".into(),
        from: format!("v{from}"),
        to: format!("v{to}"),
        properties: Properties::new(),
        created_at: 0,
    };
    for (i, pair) in edges.iter().enumerate() {
        if !removed(i) {
            writer.write(&SnapshotItem::Edge(edge(format!("e{i}"), *pair)))?;
        }
    }
    for (i, pair) in edges.iter().take(extra).enumerate() {
        writer.write(&SnapshotItem::Edge(edge(format!("new{i}"), (pair.1, pair.0))))?;
    }
    writer.finish()?;
    Ok(())
}

fn elements(path: &Path) -> anyhow::Result<Vec<snapshot_diff::Element>> {
    let mut elements = Vec::new();
    for item in SnapshotReader::open(path)? {
        elements.extend(item?.into_element());
    }
    Ok(elements)
}

fn report_settled(server: &harness::Spawned, edges: usize) {
    let settled = server.child.id().and_then(harness::rss_bytes).unwrap_or(0);
    println!(
        "resident memory settled (the server idle): {:.0} MiB = {:.0} bytes per edge",
        settled as f64 / (1 << 20) as f64,
        settled as f64 / edges as f64
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let vertices = 1usize << args.scale;
    println!(
        "prism-snapshotbench: {} cores, server workers {}, R-MAT scale {} ({vertices} vertices), {} edges",
        harness::cores(),
        args.workers,
        args.scale,
        args.edges
    );
    let temporary = tempfile::tempdir()?;
    let dir = match &args.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)?;
            keep.clone()
        }
        None => temporary.path().to_path_buf(),
    };
    let (first, second) = (dir.join("first.snap"), dir.join("second.snap"));
    let edges = rmat(args.scale, args.edges, 1);
    write_snapshot(&first, vertices, &edges, false)?;
    if !args.load_only {
        write_snapshot(&second, vertices, &edges, true)?;
    }
    drop(edges);
    println!("snapshot: {:.0} MB zstd protobuf", std::fs::metadata(&first)?.len() as f64 / 1e6);

    // The floor: decompress and parse, nothing else.
    let started = Instant::now();
    let mut items = 0u64;
    for item in SnapshotReader::open(&first)? {
        item?;
        items += 1;
    }
    let floor = started.elapsed().as_secs_f64();
    println!("decompress + parse (floor): {floor:.2} s = {:.0} edges/s ({items} records)", args.edges as f64 / floor);

    // Load: serve --snapshot, spawn to SERVING.
    let data = temporary.path().join("data");
    let started = Instant::now();
    let extra = ["--snapshot".to_string(), first.display().to_string()];
    let server = spawn_server_in(args.binary.as_ref(), args.workers, &data, &extra).await?;
    let channels = harness::connect(&server.address, 1).await?;
    harness::wait_serving(channels[0].clone()).await?;
    let load = started.elapsed().as_secs_f64();
    let rss = server.child.id().and_then(harness::rss_bytes).unwrap_or(0);
    let peak = server.child.id().and_then(harness::peak_rss_bytes).unwrap_or(0);
    println!(
        "load (serve --snapshot, to SERVING): {load:.1} s = {:.0} edges/s, {:.2}x the floor's time",
        args.edges as f64 / load,
        load / floor
    );
    println!(
        "resident memory after load: {:.0} MiB = {:.0} bytes per edge (vertices included)",
        rss as f64 / (1 << 20) as f64,
        rss as f64 / args.edges as f64
    );
    println!(
        "peak resident memory during the load: {:.0} MiB = {:.0} bytes per edge",
        peak as f64 / (1 << 20) as f64,
        peak as f64 / args.edges as f64
    );
    if args.load_only {
        // Idle past the workers' 10 s release of freed pages, as the diff below would be.
        tokio::time::sleep(std::time::Duration::from_secs(12)).await;
        report_settled(&server, args.edges);
        return Ok(());
    }

    // The 1% difference, in this process, then applied to the server.
    let started = Instant::now();
    let (old, new) = (elements(&first)?, elements(&second)?);
    let read = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let differences = snapshot_diff::diff(old, new)?;
    let counts = DiffCounts::of(&differences);
    println!(
        "diff of two {}-element snapshots (read {read:.1} s, then the dataflow): {:.1} s; vertices +{} -{} ~{}, edges +{} -{} ~{}",
        vertices + args.edges,
        started.elapsed().as_secs_f64(),
        counts.vertices_added,
        counts.vertices_removed,
        counts.vertices_modified,
        counts.edges_added,
        counts.edges_removed,
        counts.edges_modified
    );
    drop(differences);
    // Sampled again once the server has sat idle through the diff above (past its workers'
    // 10 s release of freed pages): at SERVING the figure still holds what the load's
    // threads freed, and moves by tens of bytes an edge between runs.
    report_settled(&server, args.edges);

    let mut client = GraphServiceClient::new(channels[0].clone());
    let bytes = std::fs::read(&second)?;
    let chunks: Vec<pb::SnapshotChunk> =
        bytes.chunks(256 * 1024).map(|c| pb::SnapshotChunk { data: c.to_vec() }).collect();
    let started = Instant::now();
    let reply = client.apply_snapshot(tokio_stream::iter(chunks)).await?.into_inner();
    println!(
        "apply the newer snapshot to the server (diff against the running graph, one record): {:.1} s; LSN {}, vertices ~{}, edges +{} -{}",
        started.elapsed().as_secs_f64(),
        reply.lsn,
        reply.vertices_modified,
        reply.edges_added,
        reply.edges_removed
    );
    Ok(())
}
