//! `prism-arrangebench`: what a graph's edges cost in differential arrangements, as the
//! engine holds them today and as integer tuples over dense ids, on the same R-MAT graph.
//!
//! Each representation runs in a child process of its own (so that one's freed memory is
//! not the other's), on timely workers in one process, with no server, log or apply stage:
//! every edge is fed at one time, the three arrangements an edge takes are built (by edge
//! id, out-adjacency, in-adjacency), compacted to that time and merged until each trace is
//! one batch. Figures: the time from the first edge fed to the last merge, the resident
//! memory then (as the allocator keeps it, and once the workers have given what they freed
//! back to the system) and at its peak, each per edge.
//!
//! - `strings` (the engine before vertex numbers): `EdgeKey → Shared<Edge>` and `VertexKey → Shared<Edge>` twice,
//!   edges and vertices named by strings ("e123", "v45"), one shared `Shared<Edge>` per edge.
//! - `integers`: out- and in-adjacency as `u32 → (label, neighbour, edge)` over dense ids,
//!   and the edge index as the edge's string id → `(from, to, label)`: the string once.
//! - `adjacency`: the two integer adjacencies alone, to tell what the string-keyed edge
//!   index costs.
//!
//! Run: `cargo run --release -p prism-benches --bin prism-arrangebench`

use std::sync::{Arc, Barrier};
use std::time::Instant;

use clap::Parser;
use differential_dataflow::input::Input;
use differential_dataflow::trace::{ExertionLogic, TraceReader};
use prism_benches::harness;
use prism_benches::rmat::rmat;
use prism_dataflows::{Edge, EdgeKey, Name, Namespace, Shared, VertexKey};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use timely::progress::Antichain;

// As the server: the engine allocates per element, and mimalloc is what it runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 20)]
    scale: u32,
    #[arg(long, default_value_t = 10_000_000)]
    edges: usize,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Run one representation in this process (what the parent asks its children).
    #[arg(long)]
    only: Option<String>,
}

const REPRESENTATIONS: [&str; 3] = ["strings", "integers", "adjacency"];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(representation) = &args.only {
        return run(&args, representation);
    }
    println!(
        "prism-arrangebench: {} cores, {} workers, R-MAT scale {} ({} vertices), {} edges",
        harness::cores(),
        args.workers,
        args.scale,
        1u64 << args.scale,
        args.edges
    );
    for representation in REPRESENTATIONS {
        let output = std::process::Command::new(std::env::current_exe()?)
            .args(["--scale", &args.scale.to_string(), "--edges", &args.edges.to_string()])
            .args(["--workers", &args.workers.to_string(), "--only", representation])
            .output()?;
        anyhow::ensure!(output.status.success(), "{representation}: {}", String::from_utf8_lossy(&output.stderr));
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}

/// Resident and peak resident memory of this process, from /proc.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Lets `trace` compact and merge up to `frontier`; the batches it holds that are not empty.
fn compacted<Tr: TraceReader>(trace: &mut Tr, frontier: &Antichain<Tr::Time>) -> usize {
    trace.set_logical_compaction(frontier.borrow());
    trace.set_physical_compaction(frontier.borrow());
    let mut count = 0;
    trace.map_spans(|span| count += usize::from(span.inner.is_some()));
    count
}

fn run(args: &Args, representation: &str) -> anyhow::Result<()> {
    let (scale, edges, workers) = (args.scale, args.edges, args.workers);
    let integers = representation != "strings";
    let with_index = representation != "adjacency";
    let representation = representation.to_owned();
    let (before, _) = memory();
    let started = Instant::now();
    let barrier = Arc::new(Barrier::new(workers));
    let mut config = timely::Config::process(workers);
    // Merge whenever a trace has more than one batch, so that each ends as one.
    config.worker.set::<ExertionLogic>(
        "differential/default_exert_logic".to_string(),
        Arc::new(|levels: &[(usize, usize, usize)]| (levels.len() > 1).then_some(1_000_000)),
    );
    let guards = timely::execute(config, move |worker| {
        let (me, peers) = (worker.index(), worker.peers());
        let probe = ProbeHandle::new();
        // Only one of the two dataflows gets input; the other's stay empty.
        let (mut strings, mut string_traces) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, edges) = scope.new_collection::<(EdgeKey, Shared<Edge>), isize>();
            let by_id = edges.clone().arrange_by_key();
            let out = edges
                .clone()
                .map(|(key, edge)| (VertexKey { namespace: key.namespace, id: edge.from.clone() }, edge))
                .arrange_by_key();
            let into = edges
                .map(|(key, edge)| (VertexKey { namespace: key.namespace, id: edge.to.clone() }, edge))
                .arrange_by_key();
            by_id.stream.clone().probe_with(&probe);
            out.stream.clone().probe_with(&probe);
            into.stream.clone().probe_with(&probe);
            (input, (by_id.trace, out.trace, into.trace))
        });
        let (mut ints, mut int_traces) = worker.dataflow::<u64, _, _>(|scope| {
            let (input, edges) = scope.new_collection::<(u32, u32, u32, String), isize>();
            let by_id = edges
                .clone()
                .filter(move |_| with_index)
                .map(|(from, to, edge, id)| (id, (from, to, edge)))
                .arrange_by_key();
            let out = edges.clone().map(|(from, to, edge, _)| (from, (0u32, to, edge))).arrange_by_key();
            let into = edges.map(|(from, to, edge, _)| (to, (0u32, from, edge))).arrange_by_key();
            by_id.stream.clone().probe_with(&probe);
            out.stream.clone().probe_with(&probe);
            into.stream.clone().probe_with(&probe);
            (input, (by_id.trace, out.trace, into.trace))
        });
        let namespace = Namespace::new("bench");
        // One label shared by every edge, as the apply stage shares a namespace's labels.
        let label: Name = "L".into();
        for (n, (from, to)) in rmat(scale, edges, 7).into_iter().enumerate().filter(|(n, _)| n % peers == me) {
            let id = format!("e{n}");
            if integers {
                ints.update((from, to, n as u32, id), 1);
            } else {
                let edge = Edge {
                    id: id.as_str().into(),
                    label: label.clone(),
                    from: format!("v{from}").into(),
                    to: format!("v{to}").into(),
                    properties: Default::default(),
                    created_at: 0,
                };
                strings.update((EdgeKey { namespace: namespace.clone(), id: id.into() }, Shared::new(edge)), 1);
            }
            // Keep the input's buffer from holding every edge at once, as the engine's does.
            if n % 100_000 < peers {
                worker.step();
            }
        }
        strings.advance_to(1);
        ints.advance_to(1);
        drop((strings, ints));
        while probe.less_than(&1) {
            worker.step();
        }
        let frontier = Antichain::from_elem(1u64);
        loop {
            let held = compacted(&mut string_traces.0, &frontier)
                + compacted(&mut string_traces.1, &frontier)
                + compacted(&mut string_traces.2, &frontier)
                + compacted(&mut int_traces.0, &frontier)
                + compacted(&mut int_traces.1, &frontier)
                + compacted(&mut int_traces.2, &frontier);
            if held <= if with_index { 3 } else { 2 } {
                break;
            }
            worker.step();
        }
        // Measured twice: as the allocator leaves it, then once every worker has given the
        // memory its thread freed (the batchers' chains, merged batches) back to the system,
        // which is what the traces hold. Every worker keeps its traces until both are taken.
        barrier.wait();
        let kept = memory().0;
        barrier.wait();
        // SAFETY: mi_collect takes no pointer and only walks this thread's mimalloc heap.
        unsafe { libmimalloc_sys::mi_collect(true) };
        barrier.wait();
        if me == 0 {
            let (resident, peak) = memory();
            let per_edge = |bytes: u64| bytes.saturating_sub(before) as f64 / edges as f64;
            println!(
                "{representation:>9}: arranged and merged in {:.1} s ({:.0} edges/s); resident {:.0} B/edge ({:.0} before freed memory went back), peak {:.0} B/edge",
                started.elapsed().as_secs_f64(),
                edges as f64 / started.elapsed().as_secs_f64(),
                per_edge(resident),
                per_edge(kept),
                per_edge(peak),
            );
        }
        barrier.wait();
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(guards);
    Ok(())
}
