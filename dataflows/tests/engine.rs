//! The engine end to end, without gRPC or files: an in-memory log that commits at once.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{start_engine, TIMEOUT};

use prism_dataflows::{
    Answer, EdgeKey, Engine, Namespace, OpEffect, Query, RejectKind, Value, VertexKey, WriteOp, WriteRecord,
};

fn record(ops: Vec<WriteOp>) -> WriteRecord {
    static CLOCK: AtomicU64 = AtomicU64::new(1);
    WriteRecord {
        namespace: Namespace::default(),
        atomic: true,
        timestamp: CLOCK.fetch_add(1, Ordering::Relaxed) as i64,
        ops,
        ..Default::default()
    }
}

fn vertex(id: &str) -> WriteOp {
    let properties = [("name".to_string(), Value::String(id.to_uppercase().into()))].into_iter().collect();
    WriteOp::CreateVertex { id: id.into(), label: "User".into(), properties }
}

async fn get_vertex(engine: &Engine, id: &str, include_edges: bool) -> Option<prism_dataflows::VertexWithEdges> {
    let key = VertexKey::new(&Namespace::default(), id);
    match engine.read(Query::GetVertex { key, include_edges, max_edges: 1000 }, 0, TIMEOUT).await.unwrap() {
        (_, Answer::Vertex(v)) => v,
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn crud(workers: usize) {
    let engine = start_engine(workers);
    let ids: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    let outcome = engine.write(record(ids.iter().map(|id| vertex(id)).collect()), TIMEOUT).await.unwrap();
    assert_eq!(outcome.lsn, 1);
    assert!(outcome.first_rejection().is_none());
    // Every vertex is readable right after the write is acknowledged, on whichever worker.
    for id in &ids {
        let found = get_vertex(&engine, id, false).await.expect("vertex written before the read");
        assert_eq!(found.vertex.properties["name"], Value::String(id.to_uppercase().into()));
    }
    let edge = WriteOp::CreateEdge {
        id: "e1".into(),
        label: "FOLLOWS".into(),
        from: "v1".into(),
        to: "v2".into(),
        properties: Default::default(),
    };
    let outcome = engine.write(record(vec![edge]), TIMEOUT).await.unwrap();
    assert!(matches!(outcome.results[0], Ok(OpEffect::Edge(_))));
    let with_edges = get_vertex(&engine, "v2", true).await.unwrap();
    assert_eq!(with_edges.edges.len(), 1);
    let key = EdgeKey::new(&Namespace::default(), "e1");
    let (lsn, answer) = engine.read(Query::GetEdge { key }, 0, TIMEOUT).await.unwrap();
    assert_eq!(lsn, 2);
    assert!(matches!(answer, Answer::Edge(Some(e)) if e.from == "v1"));

    // Rules hold: a duplicate is rejected, the vertex with an edge needs cascade.
    let outcome = engine.write(record(vec![vertex("v1")]), TIMEOUT).await.unwrap();
    assert_eq!(outcome.first_rejection().map(|(_, r)| r.kind.clone()), Some(RejectKind::AlreadyExists));
    let outcome =
        engine.write(record(vec![WriteOp::DeleteVertex { id: "v1".into(), cascade: true }]), TIMEOUT).await.unwrap();
    assert_eq!(outcome.results[0], Ok(OpEffect::VertexDeleted { edges_deleted: 1 }));
    assert!(get_vertex(&engine, "v1", false).await.is_none());
    assert!(get_vertex(&engine, "v2", true).await.unwrap().edges.is_empty());

    // A read that asks for an LSN not yet written gives up at its deadline.
    let key = VertexKey::new(&Namespace::default(), "v2");
    let err = engine
        .read(Query::GetVertex { key, include_edges: false, max_edges: 0 }, 1_000, Duration::from_millis(50))
        .await;
    assert!(err.is_err(), "read of a future LSN must not succeed: {err:?}");
    engine.shutdown();
}

#[tokio::test]
async fn crud_on_one_worker() {
    crud(1).await;
}

#[tokio::test]
async fn crud_on_three_workers() {
    crud(3).await;
}

#[tokio::test]
async fn crud_on_four_workers() {
    crud(4).await;
}

/// A vertex is found by id at any LSN a read may ask for, also once it is deleted and its
/// number given to another vertex (vertices are indexed by number; an id is found through
/// its owner's rule state, which is ahead of such a read).
async fn deleted_vertices_are_read_at_earlier_lsns(workers: usize) {
    let engine = start_engine(workers);
    let get_at = |id: &str, at: u64| {
        let key = VertexKey::new(&Namespace::default(), id);
        let read = engine.read_at(Query::GetVertex { key, include_edges: false, max_edges: 0 }, 0, Some(at), TIMEOUT);
        async move {
            match read.await.unwrap() {
                (lsn, Answer::Vertex(v)) => {
                    assert_eq!(lsn, at);
                    v.map(|v| v.vertex)
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
    };
    let ids: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let created = engine.write(record(ids.iter().map(|id| vertex(id)).collect()), TIMEOUT).await.unwrap().lsn;
    let deleted = ids.iter().map(|id| WriteOp::DeleteVertex { id: id.clone(), cascade: false }).collect();
    let deleted = engine.write(record(deleted), TIMEOUT).await.unwrap().lsn;
    // Freed numbers are given first: these take the deleted vertices' numbers.
    let others: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
    let reused = engine.write(record(others.iter().map(|id| vertex(id)).collect()), TIMEOUT).await.unwrap().lsn;
    let again = engine.write(record(vec![vertex("v3")]), TIMEOUT).await.unwrap().lsn;
    let (mut numbers_then, mut numbers_now) = (Vec::new(), Vec::new());
    for (id, other) in ids.iter().zip(&others) {
        let then = get_at(id, created).await.unwrap_or_else(|| panic!("{id} at LSN {created}"));
        assert_eq!(then.id, id.as_str());
        assert!(get_at(other, created).await.is_none(), "{other} did not exist at LSN {created}");
        assert!(get_at(id, deleted).await.is_none(), "{id} deleted at LSN {deleted}");
        let now = get_at(other, reused).await.unwrap_or_else(|| panic!("{other} at LSN {reused}"));
        numbers_then.push(then.number);
        numbers_now.push(now.number);
    }
    if workers == 1 {
        numbers_then.sort();
        numbers_now.sort();
        assert_eq!(numbers_then, numbers_now, "the new vertices took the deleted ones' numbers");
    }
    assert!(get_at("v3", reused).await.is_none());
    assert_eq!(get_at("v3", again).await.unwrap().id, "v3");
    assert_eq!(get_at("v3", created).await.unwrap().id, "v3");
    engine.shutdown();
}

#[tokio::test]
async fn deleted_vertices_are_read_at_earlier_lsns_on_one_worker() {
    deleted_vertices_are_read_at_earlier_lsns(1).await;
}

#[tokio::test]
async fn deleted_vertices_are_read_at_earlier_lsns_on_three_workers() {
    deleted_vertices_are_read_at_earlier_lsns(3).await;
}

/// An edge is found by id as it was at any LSN a read may ask for: not before it was made,
/// not after its delete, and with the ends it had then once its id is made again between
/// other vertices (edges are found through their owner's rule state, which is ahead of such
/// a read; there is no index of edges by id).
async fn edges_are_read_at_earlier_lsns(workers: usize) {
    let engine = start_engine(workers);
    let get_at = |id: &str, at: u64| {
        let key = EdgeKey::new(&Namespace::default(), id);
        let read = engine.read_at(Query::GetEdge { key }, 0, Some(at), TIMEOUT);
        async move {
            match read.await.unwrap() {
                (lsn, Answer::Edge(edge)) => {
                    assert_eq!(lsn, at);
                    edge.map(|edge| (edge.from.to_string(), edge.to.to_string()))
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
    };
    let edge = |id: &str, from: &str, to: &str| WriteOp::CreateEdge {
        id: id.into(),
        label: "KNOWS".into(),
        from: from.into(),
        to: to.into(),
        properties: Default::default(),
    };
    let before = engine.write(record(vec![vertex("a"), vertex("b"), vertex("c")]), TIMEOUT).await.unwrap().lsn;
    let ids: Vec<String> = (0..20).map(|i| format!("e{i}")).collect();
    let made = engine.write(record(ids.iter().map(|id| edge(id, "a", "b")).collect()), TIMEOUT).await.unwrap().lsn;
    let deleted = ids.iter().map(|id| WriteOp::DeleteEdge { id: id.clone() }).collect();
    let deleted = engine.write(record(deleted), TIMEOUT).await.unwrap().lsn;
    let again = ids.iter().take(10).map(|id| edge(id, "c", "a")).collect();
    let again = engine.write(record(again), TIMEOUT).await.unwrap().lsn;
    let ends = |from: &str, to: &str| Some((from.to_string(), to.to_string()));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(get_at(id, before).await, None, "{id} was not made by LSN {before}");
        assert_eq!(get_at(id, made).await, ends("a", "b"), "{id} at LSN {made}");
        assert_eq!(get_at(id, deleted).await, None, "{id} deleted at LSN {deleted}");
        let now = if i < 10 { ends("c", "a") } else { None };
        assert_eq!(get_at(id, again).await, now, "{id} at LSN {again}");
    }
    engine.shutdown();
}

#[tokio::test]
async fn edges_are_read_at_earlier_lsns_on_one_worker() {
    edges_are_read_at_earlier_lsns(1).await;
}

#[tokio::test]
async fn edges_are_read_at_earlier_lsns_on_three_workers() {
    edges_are_read_at_earlier_lsns(3).await;
}

/// A graph loaded in bulk is read back whole on every worker, edges included; once the
/// engine serves, a bulk load is refused (its changes reach no subscription, so none may
/// exist yet).
#[tokio::test]
async fn a_bulk_load_is_read_back_and_is_refused_once_serving() {
    a_bulk_load_is_read_back_and_refused_once_serving(false).await;
}

/// The same with the edges' ends given as places among the vertices, as a snapshot's check
/// finds them: numbered from there, not looked up.
#[tokio::test]
async fn a_bulk_load_with_its_ends_placed_is_read_back_and_is_refused_once_serving() {
    a_bulk_load_is_read_back_and_refused_once_serving(true).await;
}

async fn a_bulk_load_is_read_back_and_refused_once_serving(placed: bool) {
    use prism_dataflows::{Edge, EngineError, Shared, Vertex, VertexNumber, WholeGraph};
    let engine = start_engine(2);
    let namespace = Namespace::default();
    let ids: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let vertices = ids
        .iter()
        .map(|id| {
            let vertex = Vertex {
                number: VertexNumber::UNASSIGNED,
                id: id.as_str().into(),
                label: "User".into(),
                properties: Default::default(),
                created_at: 1,
                updated_at: 1,
            };
            (namespace.clone(), Shared::new(vertex))
        })
        .collect();
    let edges = (1..ids.len())
        .map(|i| {
            let id = format!("e{i}");
            let edge = Edge {
                id: id.as_str().into(),
                label: "NEXT".into(),
                from: ids[i - 1].as_str().into(),
                to: ids[i].as_str().into(),
                properties: Default::default(),
                created_at: 1,
            };
            (namespace.clone(), Shared::new(edge))
        })
        .collect();
    let ends = placed.then(|| (1..ids.len() as u32).map(|i| [i - 1, i]).collect());
    let graph = std::sync::Arc::new(WholeGraph { vertices, edges, request_ids: Vec::new(), ends });
    let lsn = engine.load_bulk(graph.clone(), TIMEOUT).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let found = get_vertex(&engine, id, true).await.unwrap_or_else(|| panic!("{id} loaded"));
        let ends = usize::from(i > 0) + usize::from(i + 1 < ids.len());
        assert_eq!(found.edges.len(), ends, "{id}'s edges");
        // Outgoing first: each edge arranged by the end it leaves from.
        let leaving: Vec<_> = found.edges.iter().map(|edge| edge.from.as_str() == id).collect();
        let expected: Vec<_> =
            [(i + 1 < ids.len()).then_some(true), (i > 0).then_some(false)].into_iter().flatten().collect();
        assert_eq!(leaving, expected, "{id}'s edges' directions");
    }

    engine.mark_recovered();
    match engine.load_bulk(graph, TIMEOUT).await {
        Err(EngineError::NotHere(message)) => assert!(message.contains("before the server serves"), "{message}"),
        other => panic!("a bulk load while serving answered {other:?}"),
    }
    assert_eq!(engine.applied_lsn(), lsn, "nothing written by the refused load");
}

/// A restored graph's edges reach the arrangements a slice at a time (1k edges a slice in a
/// debug build); records handed over right behind it must be decided against the whole
/// graph, never the slices taken so far. The graph is 20k disjoint edges `a{i} -> b{i}`; the
/// last 32 edges, in the last slice on both workers, are deleted, then their targets, which
/// they alone kept.
#[tokio::test]
async fn records_right_behind_a_restore_in_slices_are_decided_against_all_of_it() {
    use prism_dataflows::{Edge, Id, Name, Properties, Shared, Vertex, VertexNumber, WholeGraph};
    let engine = Engine::start(prism_dataflows::EngineConfig { workers: 2, ..Default::default() }).unwrap();
    let ns = Namespace::default();
    let pairs = 20_000;
    let id = |prefix: &str, i: usize| -> Id { format!("{prefix}{i}").into() };
    let vertex = |id: Id| {
        let vertex = Vertex {
            id,
            number: VertexNumber::UNASSIGNED,
            label: Name::from("V"),
            properties: Properties::new(),
            created_at: 1,
            updated_at: 1,
        };
        (ns.clone(), Shared::new(vertex))
    };
    let vertices = (0..pairs).flat_map(|i| [vertex(id("a", i)), vertex(id("b", i))]).collect();
    let edges = (0..pairs)
        .map(|i| {
            let edge = Edge {
                id: id("e", i),
                label: Name::from("A"),
                from: id("a", i),
                to: id("b", i),
                properties: Properties::new(),
                created_at: 1,
            };
            (ns.clone(), Shared::new(edge))
        })
        .collect();
    let sink = engine.commit_sink();
    sink.restored(1, WholeGraph { vertices, edges, request_ids: Vec::new(), ends: None });
    let last = pairs - 32..pairs;
    let deletes = last.clone().map(|i| WriteOp::DeleteEdge { id: format!("e{i}") }).collect();
    sink.committed(2, record(deletes), None);
    let deletes = last.clone().map(|i| WriteOp::DeleteVertex { id: format!("b{i}"), cascade: false }).collect();
    sink.committed(3, record(deletes), None);
    tokio::time::timeout(TIMEOUT, engine.wait_applied(3)).await.unwrap().unwrap();
    for i in last {
        assert!(get_vertex(&engine, &format!("b{i}"), false).await.is_none(), "b{i}: its one edge deleted, then it");
        let a = get_vertex(&engine, &format!("a{i}"), true).await.expect("untouched");
        assert!(a.edges.is_empty(), "a{i}: its edge deleted");
    }
}
