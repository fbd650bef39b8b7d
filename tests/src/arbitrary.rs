//! proptest strategies for the engine's domain values: what the decoders' property tests
//! round-trip (log records, JSON records, snapshot items).

use prism_dataflows::limits::MAX_VALUE_DEPTH;
use prism_dataflows::{Namespace, Properties, Value, WriteOp, WriteRecord};
use prism_snapshots::{Section, SnapshotEdge, SnapshotItem, SnapshotVertex};
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
        text().prop_map(Value::String).boxed(),
        any::<i64>().prop_map(Value::Int).boxed(),
        double.prop_map(Value::Double).boxed(),
        any::<bool>().prop_map(Value::Bool).boxed(),
    ];
    if let Values::All = kinds {
        leaves.push(vec(any::<u8>(), 0..8).prop_map(Value::Bytes).boxed());
    }
    let leaf = proptest::strategy::Union::new(leaves);
    leaf.prop_recursive(MAX_VALUE_DEPTH as u32 - 1, 48, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::List),
            btree_map(text(), inner, 0..4).prop_map(Value::Map),
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
pub fn write_record(kinds: Values) -> impl Strategy<Value = WriteRecord> {
    ("[a-z]{1,6}", any::<bool>(), any::<i64>(), vec(write_op(kinds), 1..5)).prop_map(
        |(namespace, atomic, timestamp, ops)| WriteRecord {
            namespace: Namespace::new(&namespace),
            atomic,
            timestamp,
            ops,
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
    vec(prop_oneof![section, vertex, edge], 0..12)
}
