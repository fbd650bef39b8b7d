//! CommunityDetection over gRPC against the references in tests/src/oracle.rs: weakly
//! connected components and label propagation, on one worker, two, and a two-process cluster.

use prism_e2e::oracle;
use prism_e2e::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tonic::Code;

fn groups(reply: pb::CommunityDetectionResponse) -> Vec<(String, Vec<String>)> {
    reply.communities.into_iter().map(|c| (c.community_id, c.vertex_ids)).collect()
}

async fn against_the_reference(client: &mut Client, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Sparse, so that there are several components.
    let graph = oracle::random_graph(&mut rng, 40, 30);
    oracle::load(client, &graph).await;
    let ask = |algorithm: &str, max_iterations: Option<i32>, vertex_filter: Option<pb::VertexFilter>| {
        pb::CommunityDetectionRequest { algorithm: algorithm.into(), vertex_filter, max_iterations }
    };

    let reply = client.community_detection(ask("connected_components", None, None)).await.unwrap();
    assert!(lsn_of(&reply) >= 2);
    let got = groups(reply.into_inner());
    let want = oracle::components(&graph, |_, _| true);
    assert!(want.len() > 3, "the graph should split: {}", want.len());
    assert_eq!(got, want);

    for iterations in [0, 1, 2, 5] {
        let reply = client.community_detection(ask("label_propagation", Some(iterations), None)).await.unwrap();
        assert_eq!(
            groups(reply.into_inner()),
            oracle::label_propagation(&graph, |_, _| true, iterations as u32),
            "{iterations} iterations"
        );
    }

    let only_p = pb::VertexFilter { labels: vec!["P".into()], property_filters: Default::default() };
    let reply = client.community_detection(ask("connected_components", None, Some(only_p.clone()))).await.unwrap();
    assert_eq!(groups(reply.into_inner()), oracle::components(&graph, |label, _| label == "P"));
    let reply = client.community_detection(ask("label_propagation", Some(3), Some(only_p))).await.unwrap();
    assert_eq!(groups(reply.into_inner()), oracle::label_propagation(&graph, |label, _| label == "P", 3));

    let status = client.community_detection(ask("girvan_newman", None, None)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("connected_components") && status.message().contains("louvain"), "{status:?}");
}

#[tokio::test]
async fn communities_match_the_reference_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 1).start().await;
    against_the_reference(&mut server.client().await, 11).await;
}

#[tokio::test]
async fn communities_match_the_reference_on_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 2).start().await;
    against_the_reference(&mut server.client().await, 12).await;
}

#[tokio::test]
async fn communities_match_the_reference_on_a_two_process_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let servers = start_cluster(dir.path(), 2).await;
    against_the_reference(&mut servers[1].client().await, 13).await;
}

/// networkx, from the interpreter `./scripts/test` prepares (`PRISM_PYTHON`), or `python3`.
fn python() -> String {
    let python = std::env::var("PRISM_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = std::process::Command::new(&python).args(["-c", "import networkx"]).output();
    match found {
        Ok(output) if output.status.success() => python,
        _ => panic!(
            "the Louvain test compares with networkx, which {python} cannot import: run ./scripts/test (it installs \
             networkx in ~/.cache/prism-graph/python) or `pip install networkx`"
        ),
    }
}

/// Reads the graph (`V id`, `E from to` lines) and a partition (`C member…` lines); prints
/// the best modularity networkx's Louvain finds over five seeds, and the partition's
/// modularity as networkx computes it. Parallel edges add weight, as in the server.
const NETWORKX_LOUVAIN: &str = r#"
import sys, networkx as nx
G = nx.Graph()
partition = []
for line in sys.stdin:
    kind, *rest = line.split()
    if kind == "V":
        G.add_node(rest[0])
    elif kind == "E":
        u, v = rest
        G.add_edge(u, v, weight=G[u][v]["weight"] + 1 if G.has_edge(u, v) else 1)
    elif kind == "C":
        partition.append(set(rest))
q = nx.community.modularity
best = max(q(G, nx.community.louvain_communities(G, weight="weight", seed=s), weight="weight") for s in range(5))
print(best, q(G, partition, weight="weight"))
"#;

fn networkx_louvain(graph: &oracle::Graph, reply: &pb::CommunityDetectionResponse) -> (f64, f64) {
    use std::io::Write;
    let mut input = String::new();
    for id in graph.vertices.keys() {
        input += &format!("V {id}\n");
    }
    for edge in &graph.edges {
        input += &format!("E {} {}\n", edge.from, edge.to);
    }
    for community in &reply.communities {
        input += &format!("C {}\n", community.vertex_ids.join(" "));
    }
    let mut child = std::process::Command::new(python())
        .args(["-c", NETWORKX_LOUVAIN])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write the graph");
    let output = child.wait_with_output().expect("python's answer");
    assert!(output.status.success(), "networkx failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers: Vec<f64> = text.split_whitespace().map(|n| n.parse().expect("a number")).collect();
    (numbers[0], numbers[1])
}

/// Groups of ten vertices, dense inside, a few edges between, plus parallel edges and
/// self-loops.
fn planted(rng: &mut StdRng) -> oracle::Graph {
    use rand::Rng;
    let mut graph = oracle::random_graph(rng, 80, 0);
    let add = |graph: &mut oracle::Graph, from: usize, to: usize| {
        let id = format!("e{:04}", graph.edges.len());
        let (from, to) = (format!("v{from:02}"), format!("v{to:02}"));
        graph.edges.push(oracle::TestEdge { id, label: "A".into(), from, to, weight: 1 });
    };
    for _ in 0..240 {
        let group = rng.random_range(0..8) * 10;
        add(&mut graph, group + rng.random_range(0..10), group + rng.random_range(0..10));
    }
    for _ in 0..30 {
        add(&mut graph, rng.random_range(0..80), rng.random_range(0..80));
    }
    graph
}

/// Louvain on `graph` (loaded into a fresh namespace) against networkx: returns (ours,
/// networkx's best).
async fn louvain_against_networkx(client: &mut Client, graph: &oracle::Graph, namespace: &str) -> (f64, f64) {
    oracle::load_into(client, graph, Some(namespace)).await;
    let ask = pb::CommunityDetectionRequest { algorithm: "louvain".into(), vertex_filter: None, max_iterations: None };
    let reply = client.community_detection(request(ask, Some(namespace))).await.unwrap().into_inner();

    let members: usize = reply.communities.iter().map(|c| c.vertex_ids.len()).sum();
    assert_eq!(members, graph.vertices.len(), "every vertex in one community");
    for community in &reply.communities {
        assert_eq!(Some(&community.community_id), community.vertex_ids.iter().min(), "named by its smallest id");
    }
    let parts: f64 = reply.communities.iter().map(|c| c.modularity).sum();
    assert!((parts - reply.modularity).abs() < 1e-9, "contributions add up: {parts} vs {}", reply.modularity);

    let (best, ours) = networkx_louvain(graph, &reply);
    println!("{namespace}: modularity {} (networkx Louvain, best of five seeds: {best})", reply.modularity);
    assert!((ours - reply.modularity).abs() < 1e-9, "modularity {} where networkx computes {ours}", reply.modularity);
    assert!(reply.modularity >= 0.97 * best, "modularity {} against networkx's Louvain {best}", reply.modularity);
    (reply.modularity, best)
}

#[tokio::test]
async fn louvain_is_within_three_percent_of_networkx() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerSpec::new(&dir.path().join("data"), 2).start().await;
    let mut client = server.client().await;
    let (_, best) = louvain_against_networkx(&mut client, &planted(&mut StdRng::seed_from_u64(21)), "planted").await;
    assert!(best > 0.5, "the planted groups make a clear structure: {best}");
    // No planted structure: modularity is lower and Louvain's choices matter more.
    for seed in 0..3 {
        let graph = oracle::random_graph(&mut StdRng::seed_from_u64(seed), 60, 150);
        louvain_against_networkx(&mut client, &graph, &format!("random-{seed}")).await;
    }
}
