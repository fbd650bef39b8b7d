//! proptest strategies for the engine's domain values: what the decoders' property tests
//! round-trip (log records, JSON records, snapshot items).

use prism_dataflows::limits::MAX_VALUE_DEPTH;

use prism_dataflows::{
    Edge, Namespace, OpEffect, Properties, RejectKind, Rejection, Shared, Value, Vertex, WriteOp, WriteRecord,
};
use prism_snapshots::{Section, SnapshotEdge, SnapshotItem, SnapshotRequest, SnapshotVertex};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// Which values a format carries as they are.
#[derive(Clone, Copy, Debug)]
pub enum Values {
    /// Every kind, any double (NaN and infinities included): protobuf.
    All,
    /// What JSON tells apart: no bytes (they read back as a list of ints), finite doubles.
    Json,
}

fn text() -> impl Strategy<Value = String> {
    "[a-zé0-9_ -]{0,8}"
}

/// Ids are never empty (the rules refuse them).
fn id() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}"
}

/// A property value up to the nesting limit.
pub fn value(kinds: Values) -> BoxedStrategy<Value> {
    let double = match kinds {
        Values::All => any::<f64>().boxed(),
        Values::Json => (-1e12f64..1e12).boxed(),
    };
    let mut leaves = vec![
        // Past 15 bytes too: strings up to 15 are held inline, longer ones on the heap.
        "[a-zé0-9_ -]{0,24}".prop_map(|s: String| Value::String(s.into())).boxed(),
        any::<i64>().prop_map(Value::Int).boxed(),
        double.prop_map(Value::Double).boxed(),
        any::<bool>().prop_map(Value::Bool).boxed(),
    ];
    if let Values::All = kinds {
        leaves.push(vec(any::<u8>(), 0..8).prop_map(|b| Value::Bytes(b.into())).boxed());
    }
    let leaf = proptest::strategy::Union::new(leaves);
    leaf.prop_recursive(MAX_VALUE_DEPTH as u32 - 1, 48, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|l| Value::List(l.into())),
            btree_map(text(), inner, 0..4).prop_map(|m| Value::Map(Box::new(m))),
        ]
    })
    .boxed()
}

pub fn properties(kinds: Values) -> impl Strategy<Value = Properties> {
    btree_map(text(), value(kinds), 0..4).prop_map(|map| map.into_iter().collect())
}

pub fn write_op(kinds: Values) -> impl Strategy<Value = WriteOp> {
    prop_oneof![
        (id(), text(), properties(kinds)).prop_map(|(id, label, properties)| WriteOp::CreateVertex {
            id,
            label,
            properties
        }),
        (id(), properties(kinds), any::<bool>(), proptest::option::of(text()))
            .prop_map(|(id, properties, merge, label)| WriteOp::UpdateVertex { id, properties, merge, label }),
        (id(), any::<bool>()).prop_map(|(id, cascade)| WriteOp::DeleteVertex { id, cascade }),
        (id(), text(), id(), id(), properties(kinds))
            .prop_map(|(id, label, from, to, properties)| WriteOp::CreateEdge { id, label, from, to, properties }),
        id().prop_map(|id| WriteOp::DeleteEdge { id }),
    ]
}

/// A record of at least one operation (a record's timestamp travels with its operations).
/// The bulk-load mark only in the log's own format (JSON records are a client's, which has
/// no load to mark).
pub fn write_record(kinds: Values) -> impl Strategy<Value = WriteRecord> {
    let request_id = proptest::option::of("[a-z0-9-]{1,12}");
    let bulk_load = match kinds {
        Values::All => any::<bool>().boxed(),
        _ => Just(false).boxed(),
    };
    ("[a-z]{1,6}", any::<bool>(), any::<i64>(), vec(write_op(kinds), 1..5), request_id, bulk_load).prop_map(
        |(namespace, atomic, timestamp, ops, request_id, bulk_load)| WriteRecord {
            namespace: Namespace::new(&namespace),
            atomic,
            timestamp,
            ops,
            request_id,
            bulk_load,
        },
    )
}

/// A snapshot's items: sections, vertices and edges in any order.
pub fn snapshot_items(kinds: Values) -> impl Strategy<Value = Vec<SnapshotItem>> {
    let section = ("[a-z]{1,6}", text(), any::<i64>(), proptest::option::of(0u64..1 << 40), any::<u64>()).prop_map(
        |(namespace, snapshot_id, timestamp, count, lsn)| {
            SnapshotItem::Section(Section {
                namespace: Some(namespace),
                snapshot_id,
                timestamp,
                vertex_count: count,
                edge_count: count,
                lsn,
            })
        },
    );
    let vertex = (id(), text(), properties(kinds), any::<i64>(), any::<i64>()).prop_map(
        |(id, label, properties, created_at, updated_at)| {
            SnapshotItem::Vertex(SnapshotVertex { id, label, properties, created_at, updated_at })
        },
    );
    let edge = (id(), text(), id(), id(), properties(kinds), any::<i64>()).prop_map(
        |(id, label, from, to, properties, created_at)| {
            SnapshotItem::Edge(SnapshotEdge { id, label, from, to, properties, created_at })
        },
    );
    let (vertex, edge) = (vertex.boxed(), edge.boxed());
    vec(prop_oneof![section, vertex.clone(), edge.clone(), request(vertex, edge)], 0..12)
}

/// A remembered write's record: what each of its operations did.
fn request(
    vertex: BoxedStrategy<SnapshotItem>,
    edge: BoxedStrategy<SnapshotItem>,
) -> impl Strategy<Value = SnapshotItem> {
    let kinds = [
        RejectKind::NotFound,
        RejectKind::AlreadyExists,
        RejectKind::FailedPrecondition,
        RejectKind::InvalidArgument,
        RejectKind::ResourceExhausted,
    ];
    let result = prop_oneof![
        vertex.prop_map(|item| match item {
            SnapshotItem::Vertex(v) => Ok(OpEffect::Vertex(Shared::new(Vertex::from(v)))),
            _ => Ok(OpEffect::EdgeDeleted),
        }),
        any::<u64>().prop_map(|edges_deleted| Ok(OpEffect::VertexDeleted { edges_deleted })),
        edge.prop_map(|item| match item {
            SnapshotItem::Edge(e) => Ok(OpEffect::Edge(Shared::new(Edge::from(e)))),
            _ => Ok(OpEffect::EdgeDeleted),
        }),
        Just(Ok(OpEffect::EdgeDeleted)),
        (proptest::sample::select(kinds.to_vec()), text())
            .prop_map(|(kind, message)| Err(Rejection::new(kind, message))),
    ];
    ("[a-z0-9-]{1,12}", any::<u64>(), any::<i64>(), vec(result, 0..4)).prop_map(
        |(request_id, lsn, timestamp, results)| {
            SnapshotItem::Request(SnapshotRequest { request_id, lsn, timestamp, results })
        },
    )
}
