//! The sharded decision against the one-worker apply stage it replaces: on random records,
//! cut into batches at random, over 1 to 4 workers, the same outcomes and the same changes
//! at every LSN, vertex numbers included.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::state::apply::ApplyState;
use crate::state::graph::Change;
use crate::state::limits::{Capacities, Capacity, ElementLimits};
use crate::state::model::{Id, Namespace, NumberedEdge, Shared, Value, Vertex, VertexNumber};
use crate::state::write::{WriteOp, WriteRecord};

/// The edges of the graph before a batch, as the adjacency arrangements would give them.
#[derive(Default)]
struct Edges(BTreeMap<(Namespace, Id), NumberedEdge>);

impl Incidence for Edges {
    fn edges_at(&self, namespace: &Namespace, vertex: VertexNumber) -> Vec<NumberedEdge> {
        self.0
            .iter()
            .filter(|((ns, _), edge)| ns == namespace && (edge.from == vertex || edge.to == vertex))
            .map(|(_, edge)| edge.clone())
            .collect()
    }
}

impl Edges {
    /// What the adjacencies hold once `changes` are applied.
    fn follow(&mut self, changes: &[(Lsn, Change)]) {
        for (_, change) in changes {
            if let Change::Edge(namespace, edge, diff) = change {
                let key = (namespace.clone(), edge.edge.id.clone());
                if *diff > 0 {
                    self.0.insert(key, edge.clone());
                } else {
                    self.0.remove(&key);
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Element {
    Vertex(Namespace, Shared<Vertex>),
    Edge(Namespace, NumberedEdge),
}

/// Changes summed per LSN and element, the ones that cancel dropped.
fn consolidate(changes: impl IntoIterator<Item = (Lsn, Change)>) -> BTreeMap<(Lsn, Element), isize> {
    let mut sums = BTreeMap::new();
    for (lsn, change) in changes {
        let (element, diff) = match change {
            Change::Vertex(namespace, vertex, diff) => (Element::Vertex(namespace, vertex), diff),
            Change::Edge(namespace, edge, diff) => (Element::Edge(namespace, edge), diff),
        };
        *sums.entry((lsn, element)).or_insert(0) += diff;
    }
    sums.retain(|_, diff| *diff != 0);
    sums
}

fn op() -> impl Strategy<Value = WriteOp> {
    let v = || (0..6u8).prop_map(|i| format!("v{i}"));
    let e = || (0..8u8).prop_map(|i| format!("e{i}"));
    let props = || (0..3i64).prop_map(|n| (0..n).map(|k| (format!("k{k}"), Value::Int(k))).collect());
    prop_oneof![
        (v(), props()).prop_map(|(id, properties)| WriteOp::CreateVertex { id, label: "L".into(), properties }),
        (e(), v(), v()).prop_map(|(id, from, to)| WriteOp::CreateEdge {
            id,
            label: "R".into(),
            from,
            to,
            properties: Default::default()
        }),
        (v(), any::<bool>()).prop_map(|(id, cascade)| WriteOp::DeleteVertex { id, cascade }),
        e().prop_map(|id| WriteOp::DeleteEdge { id }),
        (v(), props(), any::<bool>()).prop_map(|(id, properties, merge)| WriteOp::UpdateVertex {
            id,
            properties,
            merge,
            label: None
        }),
        Just(WriteOp::CreateVertex { id: String::new(), label: "L".into(), properties: Default::default() }),
    ]
}

fn record() -> impl Strategy<Value = (bool, bool, Vec<WriteOp>)> {
    (any::<bool>(), prop::bool::weighted(0.2), prop::collection::vec(op(), 1..6))
}

fn capacities(limited: bool) -> Capacities {
    let mut capacities = Capacities::default();
    if limited {
        capacities.namespaces.insert("default".into(), Capacity { max_vertices: 4, max_edges: 5 });
    }
    capacities
}

/// Decides `records` one at a time with the reference, and in batches cut where `cuts`
/// says over `workers` shards, each worker reading the next batch before applying the
/// last when their plans allow; asserts both give the same outcomes, changes and sizes.
fn check_batches(records: &[(Lsn, Arc<WriteRecord>)], cuts: &[bool], workers: usize, limited: bool) {
    let mut one = ApplyState::with_limits(ElementLimits::default(), capacities(limited), Default::default(), workers);
    let mut expected_outcomes = Vec::new();
    let mut expected_changes = Vec::new();
    for (lsn, record) in records {
        let mut changes = Vec::new();
        expected_outcomes.push(one.apply(*lsn, record, &mut changes));
        expected_changes.extend(changes.into_iter().map(|change| (*lsn, change)));
    }

    let mut shards: Vec<Shard> = (0..workers).map(|me| Shard::new(me, workers)).collect();
    let mut executor = Executor::new(workers, ElementLimits::default(), capacities(limited));
    let mut edges = Edges::default();
    let (mut outcomes, mut changes) = (Vec::new(), Vec::new());
    // The batch decided but not yet applied, with each worker's plan of it: a worker reads
    // the next batch before applying it when the plans do not conflict, as the engine does.
    let mut unapplied: Option<(Vec<Vec<Decided>>, Vec<Plan>)> = None;
    let mut start = 0;
    for end in 1..=records.len() + 1 {
        if end <= records.len() && end < records.len() && !cuts[end] {
            continue;
        }
        let batch = &records[start..end.min(records.len())];
        start = end.min(records.len());
        let plans: Vec<Plan> = shards.iter().map(|shard| shard.plan(batch)).collect();
        let overlaps: Vec<bool> = (0..workers)
            .map(|w| unapplied.as_ref().is_some_and(|(_, earlier)| !plans[w].conflicts_with(&earlier[w])))
            .collect();
        let mut reads: Vec<Reads> = shards
            .iter()
            .enumerate()
            .filter(|(w, _)| overlaps[*w])
            .map(|(w, shard)| shard.read(&plans[w], &edges))
            .collect();
        let mut batch_changes = Vec::new();
        if let Some((effects, _)) = unapplied.take() {
            for (shard, effects) in shards.iter_mut().zip(effects) {
                shard.apply(&effects, &mut batch_changes);
            }
        }
        edges.follow(&batch_changes);
        // The others read once the batch before is applied (a cascade also once the
        // adjacencies hold it).
        reads.extend(
            shards.iter().enumerate().filter(|(w, _)| !overlaps[*w]).map(|(w, shard)| shard.read(&plans[w], &edges)),
        );
        changes.extend(batch_changes);
        if batch.is_empty() {
            break;
        }
        let decision = executor.decide(batch, reads);
        outcomes.extend(decision.outcomes);
        unapplied = Some((by_owner(decision.effects, workers), plans));
    }
    assert_eq!(outcomes, expected_outcomes);
    assert_eq!(consolidate(changes), consolidate(expected_changes));
    for ns in ["default", "other"] {
        let ns = Namespace::new(ns);
        let held = shards.iter().map(|shard| shard.count(&ns)).fold([0, 0], |a, b| [a[0] + b[0], a[1] + b[1]]);
        let sizes = one.sizes();
        let size = sizes.iter().find(|size| size.namespace == ns);
        assert_eq!(held, size.map_or([0, 0], |size| [size.vertices, size.edges]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn batches_decided_by_owners_match_one_record_at_a_time(
        records in prop::collection::vec(record(), 1..40),
        cuts in prop::collection::vec(any::<bool>(), 40),
        workers in 1usize..5,
        limited in any::<bool>(),
    ) {
        let records: Vec<(Lsn, Arc<WriteRecord>)> = records
            .into_iter()
            .enumerate()
            .map(|(i, (atomic, other, ops))| {
                let namespace = Namespace::new(if other { "other" } else { "default" });
                let lsn = i as Lsn + 1;
                (lsn, Arc::new(WriteRecord { namespace, atomic, timestamp: lsn as i64, ops, ..Default::default()}))
            })
            .collect();

        check_batches(&records, &cuts, workers, limited);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// A checkpoint restored through the owners gives the changes the one-worker stage's
    /// restore gives, numbers included.
    #[test]
    fn a_restored_checkpoint_matches(
        records in prop::collection::vec(record(), 1..30),
        after in prop::collection::vec(record(), 0..10),
        workers in 1usize..5,
    ) {
        let mut one = ApplyState::with_limits(ElementLimits::default(), Capacities::default(), Default::default(), workers);
        for (i, (atomic, other, ops)) in records.into_iter().enumerate() {
            let namespace = Namespace::new(if other { "other" } else { "default" });
            one.apply(i as Lsn + 1, &WriteRecord { namespace, atomic, timestamp: 1, ops, ..Default::default()}, &mut Vec::new());
        }
        let graph = one.whole_graph();
        let mut expected = Vec::new();
        let mut restored = ApplyState::with_limits(ElementLimits::default(), Capacities::default(), Default::default(), workers);
        restored.restore_checkpoint(graph.clone(), &mut expected);

        let mut executor = Executor::new(workers, ElementLimits::default(), Capacities::default());
        let restore = executor.restore(&graph);
        let mut shards: Vec<Shard> = (0..workers).map(|me| Shard::new(me, workers)).collect();
        let mut changes = Vec::new();
        let graph = Arc::new(graph);
        for shard in &mut shards {
            // A few edges at a time: a run taken in slices gives what one taken whole does.
            let mut run = shard.restore(9, &restore, graph.clone(), &mut changes);
            while !shard.restore_edges(&mut run, 3, &mut changes) {}
        }
        let mut edges = Edges::default();
        edges.follow(&changes);
        prop_assert_eq!(consolidate(changes), consolidate(expected.into_iter().map(|change| (9, change))));
        let counts: Vec<_> = executor.sizes().into_iter().map(|size| (size.namespace, [size.vertices, size.edges])).collect();
        let held: Vec<_> = counts.iter().map(|(ns, _)| (ns.clone(), shards.iter().map(|s| s.count(ns)).fold([0, 0], |a, c| [a[0] + c[0], a[1] + c[1]]))).collect();
        prop_assert_eq!(counts, held, "the executor counts what the owners hold");

        // Records after the restore number and decide as they would after the reference's.
        let (mut expected, mut changes) = (Vec::new(), Vec::new());
        for (i, (atomic, other, ops)) in after.into_iter().enumerate() {
            let namespace = Namespace::new(if other { "other" } else { "default" });
            let lsn = 10 + i as Lsn;
            let record = Arc::new(WriteRecord { namespace, atomic, timestamp: 1, ops, ..Default::default()});
            let mut made = Vec::new();
            restored.apply(lsn, &record, &mut made);
            expected.extend(made.into_iter().map(|change| (lsn, change)));
            let batch = [(lsn, record)];
            let reads = shards.iter().map(|shard| shard.read(&shard.plan(&batch), &edges)).collect::<Vec<_>>();
            let decision = executor.decide(&batch, reads);
            let mut made = Vec::new();
            for (shard, effects) in shards.iter_mut().zip(by_owner(decision.effects, workers)) {
                shard.apply(&effects, &mut made);
            }
            edges.follow(&made);
            changes.extend(made);
        }
        prop_assert_eq!(consolidate(changes), consolidate(expected));
    }
}

/// A batch that deletes an edge by id changes its endpoints' degrees without naming them: a
/// later batch that reads one (a delete without cascade) must not be read before it applies.
#[test]
fn a_degree_is_not_read_before_an_edge_deleted_by_id_is_applied() {
    let record = |lsn: Lsn, ops: Vec<WriteOp>| {
        (
            lsn,
            Arc::new(WriteRecord {
                namespace: Namespace::default(),
                atomic: false,
                timestamp: 1,
                ops,
                ..Default::default()
            }),
        )
    };
    let vertex = |id: &str| WriteOp::CreateVertex { id: id.into(), label: "L".into(), properties: Default::default() };
    let edge = WriteOp::CreateEdge {
        id: "e".into(),
        label: "R".into(),
        from: "v".into(),
        to: "w".into(),
        properties: Default::default(),
    };
    let records = vec![
        record(1, vec![vertex("v"), vertex("w"), edge]),
        record(2, vec![WriteOp::DeleteEdge { id: "e".into() }]),
        record(3, vec![WriteOp::DeleteVertex { id: "v".into(), cascade: false }]),
    ];
    for workers in 1..4 {
        check_batches(&records, &[true, true, true, true], workers, false);
    }
}
