//! PageRank subscriptions on the engine: results against one-shot PageRank of the same graph,
//! sharing between subscribers, and the standing PageRank's life.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{start_engine, write, TIMEOUT};
use prism_dataflows::PageRankParams;
use prism_dataflows::{Engine, Lsn, Namespace, Value, WriteOp};
use prism_dataflows::{Filter, Operator, Predicate};
use prism_dataflows::{PageRankFeed, Subscribed};
use prism_dataflows::{RankUpdate, SubscriptionParams};

const BOUND: f64 = 1e-4;

fn params(filter: Option<Filter>, top_k: usize) -> SubscriptionParams {
    SubscriptionParams { namespace: Namespace::default(), damping: 0.85, error_bound: BOUND, filter, top_k }
}

fn rich() -> Filter {
    let predicate = Predicate { operator: Operator::Ge, value: Value::Int(1) };
    Filter { labels: Vec::new(), properties: vec![("rich".into(), predicate)] }
}

fn vertex(i: u32, rich: i64) -> WriteOp {
    let properties = [("rich".to_string(), Value::Int(rich))].into_iter().collect();
    WriteOp::CreateVertex { id: format!("v{i}"), label: "V".into(), properties }
}

fn edge(id: u32, from: u32, to: u32) -> WriteOp {
    WriteOp::CreateEdge {
        id: format!("e{id}"),
        label: "E".into(),
        from: format!("v{from}"),
        to: format!("v{to}"),
        properties: Default::default(),
    }
}

fn lcg(state: &mut u64) -> u32 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*state >> 33) as u32
}

/// Converged one-shot PageRank of the same (sub)graph, from the engine's algorithm loop.
async fn converged(engine: &Engine, filter: Option<Filter>, at_least: Lsn) -> HashMap<String, f64> {
    let params = PageRankParams { iterations: 150, damping: 0.85, filter, limit: 100_000 };
    let (lsn, scores) = engine.page_rank(Namespace::default(), params, at_least, TIMEOUT).await.unwrap();
    assert!(lsn >= at_least);
    scores.into_iter().map(|(id, score)| (id.to_string(), score)).collect()
}

fn assert_within(update: &RankUpdate, want: &HashMap<String, f64>, top_k: usize) {
    let expected = if top_k == 0 { want.len() } else { top_k.min(want.len()) };
    assert_eq!(update.scores.len(), expected, "entries at LSN {}", update.lsn);
    assert!(update.error_bound <= BOUND * 1.000001, "error bound {}", update.error_bound);
    for (id, score) in &update.scores {
        let exact = want[id.as_ref()];
        assert!(
            (score - exact).abs() <= update.error_bound * exact,
            "{id}: {score} vs converged {exact} (relative {:.2e}, bound {:.2e})",
            (score - exact).abs() / exact,
            update.error_bound
        );
    }
    // The top entries are the top vertices, up to scores closer than the bound.
    let mut ranked: Vec<(&String, &f64)> = want.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    if let (Some(last), Some(next)) = (update.scores.last(), ranked.get(update.scores.len())) {
        assert!(last.1 >= next.1 * (1.0 - 2.0 * update.error_bound), "{last:?} ranked above {next:?}");
    }
}

/// Takes results from the feed until one is as of `lsn` or later.
async fn until(feed: &mut PageRankFeed, lsn: Lsn) -> Arc<RankUpdate> {
    loop {
        let update = tokio::time::timeout(TIMEOUT, feed.next()).await.expect("a result within the timeout").unwrap();
        if update.lsn >= lsn {
            return update;
        }
    }
}

/// Random inserts and deletes of edges, vertices joining and leaving (by property and by
/// deletion): after each, the subscription's result is that of the graph as it is then.
async fn follows_changes(filter: Option<Filter>, top_k: usize) {
    let engine = start_engine(2);
    let n = 60u32;
    let mut ops: Vec<WriteOp> = (0..n).map(|i| vertex(i, (i % 3 != 0) as i64)).collect();
    let mut seed = 11;
    let mut edges: Vec<(u32, u32, u32)> = Vec::new();
    for id in 0..200 {
        // Vertices 50.. start dangling; parallel edges and self-loops happen.
        let (from, to) = (lcg(&mut seed) % 50, lcg(&mut seed) % n);
        ops.push(edge(id, from, to));
        edges.push((id, from, to));
    }
    write(&engine, ops).await;
    let Subscribed { first, mut feed } =
        engine.subscribe_page_rank(params(filter.clone(), top_k), 1024, TIMEOUT).await.unwrap();
    assert_within(&first, &converged(&engine, filter.clone(), first.lsn).await, top_k);

    let mut next_edge = 200;
    let mut next_vertex = n;
    let mut alive: Vec<u32> = (0..n).collect();
    for step in 0..40 {
        let ops = match step % 5 {
            0 | 1 => {
                let from = alive[lcg(&mut seed) as usize % alive.len()];
                let to = alive[lcg(&mut seed) as usize % alive.len()];
                next_edge += 1;
                edges.push((next_edge, from, to));
                vec![edge(next_edge, from, to)]
            }
            2 => {
                let (id, _, _) = edges.swap_remove(lcg(&mut seed) as usize % edges.len());
                vec![WriteOp::DeleteEdge { id: format!("e{id}") }]
            }
            3 => {
                // A vertex flips in or out of the filtered subgraph, with its edges.
                let id = lcg(&mut seed) % 50;
                let properties = [("rich".to_string(), Value::Int((step / 5 % 2) as i64))].into_iter().collect();
                vec![WriteOp::UpdateVertex { id: format!("v{id}"), properties, merge: true, label: None }]
            }
            _ => {
                // A new vertex with an edge in, or an old one deleted with its edges.
                let deletable: Vec<u32> = alive.iter().copied().filter(|&v| v >= 50).collect();
                if step % 2 == 0 || deletable.is_empty() {
                    next_edge += 1;
                    let to = next_vertex;
                    next_vertex += 1;
                    alive.push(to);
                    let from = lcg(&mut seed) % 50;
                    edges.push((next_edge, from, to));
                    vec![vertex(to, 1), edge(next_edge, from, to)]
                } else {
                    let id = deletable[lcg(&mut seed) as usize % deletable.len()];
                    alive.retain(|&v| v != id);
                    edges.retain(|(_, from, to)| *from != id && *to != id);
                    vec![WriteOp::DeleteVertex { id: format!("v{id}"), cascade: true }]
                }
            }
        };
        let lsn = write(&engine, ops).await;
        let want = converged(&engine, filter.clone(), lsn).await;
        // A change outside the subgraph need not produce a result; the last one stands.
        let update = match feed.try_next().unwrap() {
            Some(update) if update.lsn >= lsn => update,
            _ if feed.processed_lsn() >= lsn => continue,
            _ => until(&mut feed, lsn).await,
        };
        assert_within(&update, &want, top_k);
    }
}

#[tokio::test]
async fn a_subscription_follows_inserts_and_deletes() {
    follows_changes(None, 0).await;
}

#[tokio::test]
async fn a_filtered_top_k_subscription_follows_vertices_joining_and_leaving() {
    follows_changes(Some(rich()), 10).await;
}

#[tokio::test]
async fn subscribers_share_one_standing_page_rank_which_goes_with_the_last() {
    let engine = start_engine(2);
    let ops: Vec<WriteOp> = (0..10).map(|i| vertex(i, 1)).chain((0..10).map(|i| edge(i, i, (i + 1) % 10))).collect();
    write(&engine, ops).await;
    let mut standing = engine.standing_page_ranks();

    let mut feeds = Vec::new();
    for _ in 0..100 {
        feeds.push(engine.subscribe_page_rank(params(None, 3), 16, TIMEOUT).await.unwrap());
    }
    let other = engine.subscribe_page_rank(params(Some(rich()), 3), 16, TIMEOUT).await.unwrap();
    assert_eq!(*standing.borrow_and_update(), 2, "100 subscribers with equal parameters share one");

    // A change reaches every subscriber, with the same result.
    let lsn = write(&engine, vec![edge(100, 0, 5)]).await;
    let mut results = Vec::new();
    for Subscribed { feed, .. } in &mut feeds {
        results.push(until(feed, lsn).await);
    }
    assert!(results.windows(2).all(|pair| Arc::ptr_eq(&pair[0], &pair[1])), "one result, shared");

    drop(feeds);
    let wait = tokio::time::timeout(TIMEOUT, standing.wait_for(|n| *n == 1));
    wait.await.expect("the shared standing PageRank goes with its last subscriber").unwrap();
    drop(other);
    tokio::time::timeout(TIMEOUT, standing.wait_for(|n| *n == 0)).await.unwrap().unwrap();

    // A new subscriber starts a new one, on the graph as it is now.
    let Subscribed { first, .. } = engine.subscribe_page_rank(params(None, 3), 16, TIMEOUT).await.unwrap();
    assert!(first.lsn >= lsn);
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_cut_off() {
    let engine = start_engine(1);
    let ops: Vec<WriteOp> = (0..10).map(|i| vertex(i, 1)).collect();
    write(&engine, ops).await;
    let Subscribed { mut feed, .. } = engine.subscribe_page_rank(params(None, 0), 4, TIMEOUT).await.unwrap();
    // A second subscriber of the same topic reads every result as it comes; the first reads
    // nothing. Once the reader has seen more results than the topic's buffer of 4 holds, the
    // idle one is behind, however the results were grouped.
    let Subscribed { feed: mut reader, .. } = engine.subscribe_page_rank(params(None, 0), 4, TIMEOUT).await.unwrap();
    let mut seen = 0;
    for i in 0.. {
        let lsn = write(&engine, vec![edge(i, i % 10, (i + 1) % 10)]).await;
        while reader.processed_lsn() < lsn {
            tokio::time::timeout(TIMEOUT, reader.next()).await.unwrap().unwrap();
            seen += 1;
        }
        // A result is published before its LSN is claimed as processed: the claim can come
        // first to the reader, with results still waiting for it. Take those too.
        while reader.try_next().unwrap().is_some() {
            seen += 1;
        }
        if seen > 4 {
            break;
        }
    }
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), feed.next()).await.unwrap() {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    assert_eq!(error.to_string(), "the subscriber fell more than 4 messages behind");
}
