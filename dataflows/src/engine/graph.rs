//! The graph dataflow: the apply stage, the vertex and edge collections it feeds, and
//! their four arrangements.
//!
//! The apply stage runs on every worker, as three operators a batch of log records passes
//! through in order (the protocol is [`crate::state::sharded`]'s):
//!
//! - `ReadOwned`: every worker reads what the batch asks of the keys it owns, once the batch
//!   before it is applied here (and, for a cascade, once the adjacencies hold it);
//! - `Decide`: the batch's executor (a worker chosen by the batch's LSN) decides every
//!   record once every worker's reads are in (the frontier says so);
//! - `ApplyOwned`: every worker applies the effects on its keys, and each change enters the
//!   collections at its record's LSN, on the worker that made it; the outcomes go to worker
//!   0, which answers the writes.
//!
//! `arrange_by_key` then exchanges each change to the workers owning its keys: a vertex's
//! owner made its changes, so they stay put; an edge's go to its endpoints' owners.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::operators::arrange::arrangement::{arrange_core, Arranged};
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Capability, Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle, StreamVec};
use timely::progress::Antichain;
use timely::scheduling::Activator;
use timely::worker::Worker;

use crate::engine::fitted::{FittedKeyBatcher, FittedValBatcher};
use crate::engine::subscriptions::Hub;
use crate::read::layout::ValSpine;
use crate::read::query::{lookup_many, Indexes, VertexTrace};
use crate::state::graph::{Change, NamespaceSize, WholeGraph};
use crate::state::limits::{Capacities, ElementLimits};
use crate::state::model::{AdjacencyKey, Adjacent, Lsn, Namespace, NumberedEdge, Shared, Vertex, VertexNumber};
use crate::state::sharded::{by_owner, Decided, Executor, Incidence, Plan, Reads, Restore, RestoreRun, Shard};
use crate::state::write::{RecordOutcome, WriteRecord};

/// What worker 0 feeds the apply stage, at the LSN of its first record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Sequenced {
    /// Consecutive log records, in LSN order, decided as one batch.
    Records(Arc<Vec<(Lsn, Arc<WriteRecord>)>>),
    /// A graph (a checkpoint's, or one loaded in bulk) put into empty namespaces at its LSN.
    Restore(Lsn, Arc<WholeGraph>),
    /// From its time on, every worker also sends its changes to this worker: the first of a
    /// process other than 0 where a PageRank subscription started.
    Forward(usize),
}

/// The workers every worker sends its changes to besides worker 0 and its own process's
/// first, each with the LSN from which it does (in the order they were asked for).
pub(crate) type Forwarding = Rc<RefCell<Vec<(usize, Lsn)>>>;

/// One worker's reads of a batch, for the executor (which also needs the batch: its own
/// worker's message carries it).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ReadsFor {
    batch: Option<Sequenced>,
    reads: Reads,
}

/// What the executor sends for a batch: each owner its effects, worker 0 the outcomes and
/// every namespace's size after it.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Decisions {
    Effects(usize, Vec<Decided>),
    /// A restore at its LSN: each owner takes its part of the graph it read.
    Restore(usize, Lsn, Restore),
    Outcomes(Vec<RecordOutcome>, Vec<NamespaceSize>),
}

impl Decisions {
    fn target(&self) -> u64 {
        match self {
            Decisions::Effects(owner, _) | Decisions::Restore(owner, ..) => *owner as u64,
            Decisions::Outcomes(..) => 0,
        }
    }
}

/// The worker that decides every batch, in log order: it keeps what every create touches
/// (the numbers each owner gives next, the namespaces' counts) from one batch to the next.
/// The last one: worker 0 already sequences the log and gathers the subscriptions' changes.
fn executor(peers: usize) -> usize {
    peers - 1
}

/// The restores a worker read, each with its LSN, oldest first.
type Restoring = VecDeque<(Lsn, Arc<WholeGraph>)>;

/// What the graph dataflow gives its worker.
pub(crate) struct GraphDataflow {
    /// Worker 0 feeds it (the others close theirs).
    pub input: InputHandle<Lsn, CapacityContainerBuilder<Vec<Sequenced>>>,
    pub indexes: Rc<RefCell<Indexes>>,
    /// Outcomes of decided records, in LSN order, as they reach worker 0.
    pub outcomes: Rc<RefCell<Vec<RecordOutcome>>>,
    /// Every namespace's size after the last batch decided, on worker 0.
    pub sizes: Rc<RefCell<Vec<NamespaceSize>>>,
    pub forwarding: Forwarding,
}

/// Builds the graph dataflow; `probe` reports when every arrangement is complete through an
/// LSN on every worker. The collections' changes also go to `hub` on each process's first
/// worker (the standing PageRanks); a process runs `local_workers` workers.
pub(crate) fn build(
    worker: &mut Worker,
    probe: &ProbeHandle<Lsn>,
    hub: Option<Rc<RefCell<Hub>>>,
    local_workers: usize,
    limits: ElementLimits,
    capacities: Capacities,
) -> GraphDataflow {
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    let outcomes_in = outcomes.clone();
    let sizes = Rc::new(RefCell::new(Vec::new()));
    let sizes_in = sizes.clone();
    worker.dataflow::<Lsn, _, _>(|scope| {
        let (me, peers) = (scope.index(), scope.peers());
        let shard = Rc::new(RefCell::new(Shard::new(me, peers)));
        let shard_read = shard.clone();
        let shard_query = shard.clone();
        // ApplyOwned's input frontier, as it last saw it: a batch is read once it has no
        // time before the batch's.
        let applied = Rc::new(RefCell::new(Antichain::from_elem(0)));
        let applied_seen = applied.clone();
        let read_activator: Rc<RefCell<Option<Activator>>> = Rc::default();
        let read_activator_slot = read_activator.clone();
        let indexes_slot: Rc<RefCell<Option<Rc<RefCell<Indexes>>>>> = Rc::default();
        let indexes_read = indexes_slot.clone();
        // The restores ReadOwned passed on, for ApplyOwned on this worker to take its part of
        // once the executor says where the numbers start: every worker has the graph already.
        let restoring: Rc<RefCell<Restoring>> = Rc::default();
        let restoring_read = restoring.clone();
        let forwarding: Forwarding = Rc::default();
        let forwarding_read = forwarding.clone();

        let (input, sequenced) = scope.new_input::<Vec<Sequenced>>();
        let reads = sequenced.broadcast().unary(Pipeline, "ReadOwned", move |_capability, info| {
            *read_activator_slot.borrow_mut() = Some(scope.activator_for(info.address.clone()));
            // Batches to read, each with this worker's plan of it (made once: a batch may wait).
            let mut queue: VecDeque<(Capability<Lsn>, Sequenced, Option<Plan>)> = VecDeque::new();
            // Batches read here whose effects are not all applied here yet, with their plans.
            let mut unapplied: VecDeque<(Lsn, Option<Plan>)> = VecDeque::new();
            move |input, output| {
                let port = output.output_index();
                input.for_each(|capability, data| {
                    let Some(&time) = capability.least() else { return };
                    for batch in data.drain(..) {
                        let plan = match &batch {
                            Sequenced::Records(records) => Some(shard_read.borrow().plan(records.as_slice())),
                            Sequenced::Restore(..) => None,
                            Sequenced::Forward(to) => {
                                // Before any batch after it is read here, so before its changes.
                                let mut forwarding = forwarding_read.borrow_mut();
                                if !forwarding.iter().any(|(worker, _)| worker == to) {
                                    forwarding.push((*to, time));
                                }
                                continue;
                            }
                        };
                        queue.push_back((capability.delayed(&time, port), batch, plan));
                    }
                });
                let applied_below = |time: Lsn| applied_seen.borrow().iter().all(|applied| *applied > time);
                while unapplied.front().is_some_and(|(time, _)| applied_below(*time)) {
                    unapplied.pop_front();
                }
                while let Some((capability, batch, plan)) = queue.front() {
                    let time = *capability.time();
                    // A batch is read once no earlier one still to be applied here could change
                    // what it reads (a restore or a cascade waits for all of them).
                    let waits = match plan {
                        Some(plan) if !plan.cascades() => {
                            unapplied.iter().any(|(_, earlier)| earlier.as_ref().is_none_or(|e| plan.conflicts_with(e)))
                        }
                        _ => !unapplied.is_empty(),
                    };
                    if waits {
                        break;
                    }
                    let indexes = indexes_read.borrow().clone();
                    let Some(indexes) = indexes else { break };
                    let mut indexes = indexes.borrow_mut();
                    if plan.as_ref().is_some_and(Plan::cascades) && !adjacencies_through(&mut indexes, time) {
                        // The adjacencies give a cascade its edges; they follow the applied
                        // changes by a step of their own.
                        if let Some(activator) = read_activator_slot.borrow().as_ref() {
                            activator.activate_after(Duration::from_millis(1));
                        }
                        break;
                    }
                    let reads = match plan {
                        Some(plan) => {
                            let incidence = AdjacencyAt { indexes: RefCell::new(&mut indexes), lsn: time - 1 };
                            shard_read.borrow().read(plan, &incidence)
                        }
                        None => Reads::default(),
                    };
                    if let Sequenced::Restore(lsn, graph) = batch {
                        restoring_read.borrow_mut().push_back((*lsn, graph.clone()));
                    }
                    let batch = (me == executor(peers)).then(|| batch.clone());
                    output.session(capability).give(ReadsFor { batch, reads });
                    if let Some((_, _, plan)) = queue.pop_front() {
                        unapplied.push_back((time, plan));
                    }
                }
            }
        });

        let decisions = reads.unary_frontier(
            Exchange::new(move |_: &ReadsFor| executor(peers) as u64),
            "Decide",
            move |_capability, _info| {
                let mut executor = Executor::new(peers, limits, capacities);
                type Pending = (Option<Capability<Lsn>>, Option<Sequenced>, Vec<Reads>);
                let mut pending: BTreeMap<Lsn, Pending> = BTreeMap::new();
                move |(input, frontier), output| {
                    let port = output.output_index();
                    input.for_each(|capability, data| {
                        let Some(&time) = capability.least() else { return };
                        let entry = pending.entry(time).or_default();
                        entry.0.get_or_insert_with(|| capability.delayed(&time, port));
                        for ReadsFor { batch, reads } in data.drain(..) {
                            entry.1 = entry.1.take().or(batch);
                            entry.2.push(reads);
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (Some(capability), batch, reads) = entry.remove() else { continue };
                        let mut session = output.session(&capability);
                        let (outcomes, effects) = match batch {
                            Some(Sequenced::Records(records)) => {
                                let decision = executor.decide(records.as_slice(), reads);
                                (decision.outcomes, decision.effects)
                            }
                            Some(Sequenced::Restore(lsn, graph)) => {
                                let restore = executor.restore(&graph);
                                for owner in 0..peers {
                                    session.give(Decisions::Restore(owner, lsn, restore.clone()));
                                }
                                (Vec::new(), Vec::new())
                            }
                            // ReadOwned takes forwards; nothing else comes without a batch.
                            Some(Sequenced::Forward(_)) | None => (Vec::new(), Vec::new()),
                        };
                        for (owner, effects) in by_owner(effects, peers).into_iter().enumerate() {
                            if !effects.is_empty() {
                                session.give(Decisions::Effects(owner, effects));
                            }
                        }
                        session.give(Decisions::Outcomes(outcomes, executor.sizes()));
                    }
                }
            },
        );

        let applied = apply_owned(decisions, shard, restoring, outcomes_in, sizes_in, applied, read_activator);

        // Worker 0's sink takes every change; another process's first worker takes its own
        // process's, and everyone's once a subscription there asked (`Sequenced::Forward`).
        let first_here = me - me % local_workers.max(1);
        let always = if first_here == 0 { vec![0] } else { vec![0, first_here] };
        let one_process = local_workers >= peers;
        feed_subscriptions(applied.subscribed, hub, always, forwarding.clone(), one_process);
        let edges = applied.edges;

        let vertices = applied.vertices.map(|(namespace, vertex)| ((namespace, vertex), ()));
        let vertex_index = by_number(vertices);
        let out_index = adjacency(
            edges.clone().map(|(namespace, NumberedEdge { from, to, edge })| {
                (AdjacencyKey { number: from, namespace }, Adjacent { neighbour: to, edge })
            }),
            "OutAdjacency",
        );
        let in_index = adjacency(
            edges.map(|(namespace, NumberedEdge { from, to, edge })| {
                (AdjacencyKey { number: to, namespace }, Adjacent { neighbour: from, edge })
            }),
            "InAdjacency",
        );

        vertex_index.stream.clone().probe_with(probe);
        out_index.stream.clone().probe_with(probe);
        in_index.stream.clone().probe_with(probe);

        let indexes = Rc::new(RefCell::new(Indexes {
            vertices: vertex_index.trace,
            out_edges: out_index.trace,
            in_edges: in_index.trace,
            shard: shard_query,
        }));
        *indexes_slot.borrow_mut() = Some(indexes.clone());
        GraphDataflow { input, indexes, outcomes, sizes, forwarding }
    })
}

/// Whether both adjacencies hold every change before `lsn`.
fn adjacencies_through(indexes: &mut Indexes, lsn: Lsn) -> bool {
    let mut upper = Antichain::new();
    [&mut indexes.out_edges, &mut indexes.in_edges].into_iter().all(|trace| {
        trace.read_upper(&mut upper);
        upper.iter().all(|time| *time >= lsn)
    })
}

/// A vertex's edges from this worker's adjacency shards, as of `lsn`.
struct AdjacencyAt<'a> {
    indexes: RefCell<&'a mut Indexes>,
    lsn: Lsn,
}

impl Incidence for AdjacencyAt<'_> {
    fn edges_at(&self, namespace: &Namespace, vertex: VertexNumber) -> Vec<NumberedEdge> {
        let mut indexes = self.indexes.borrow_mut();
        let key = [AdjacencyKey { number: vertex, namespace: namespace.clone() }];
        let mut edges = Vec::new();
        lookup_many(&mut indexes.out_edges, &key, self.lsn, |_, a| {
            edges.push(NumberedEdge { from: vertex, to: a.neighbour, edge: a.edge.clone() });
        });
        // A self-loop is in both: taken once, outgoing.
        lookup_many(&mut indexes.in_edges, &key, self.lsn, |_, a| {
            if a.neighbour != vertex {
                edges.push(NumberedEdge { from: a.neighbour, to: vertex, edge: a.edge.clone() });
            }
        });
        edges
    }
}

/// How many of a restore's edges ApplyOwned takes each time it is scheduled: enough that the
/// step's overhead is nothing beside them, few enough that a slice's changes in flight are
/// a few megabytes. Debug builds take far fewer, so that the small graphs tests restore are
/// taken in many slices too.
const RESTORE_SLICE: usize = if cfg!(debug_assertions) { 1 << 10 } else { 1 << 16 };

/// What ApplyOwned gives: the updates of the vertex and edge collections, and the changes
/// the subscription sink takes.
struct Applied<'scope> {
    vertices: VecCollection<'scope, Lsn, (Namespace, Shared<Vertex>)>,
    edges: VecCollection<'scope, Lsn, (Namespace, NumberedEdge)>,
    subscribed: StreamVec<'scope, Lsn, (Change, Lsn)>,
}

/// ApplyOwned: every worker applies the effects on its keys and takes its part of a restore,
/// giving each change at its record's LSN straight to its collection, and a copy to the
/// subscriptions (one operator, one copy: the collections used to split a stream of every
/// change, which copied each change twice and took two steps more per LSN).
///
/// A restore's changes get no copy. A graph is restored only before the server serves (at
/// recovery, or loaded in bulk), so no subscription exists to want them, and one that starts
/// later reads the graph itself; copying a 10M-edge restore to worker 0's sink and stashing
/// it there until its LSN completed cost more than a gigabyte of fresh pages and an atomic
/// count on every element.
///
/// A restore's edges are taken [`RESTORE_SLICE`] at a time, one slice each time the operator
/// is scheduled, holding its LSN (and what it reports applied) until the last: the
/// arrangements' batchers take each slice before the next is made, so a graph's changes are
/// never all in flight at once. Any decision after a restore waits for the whole of it.
#[allow(clippy::too_many_arguments)]
fn apply_owned<'scope>(
    decisions: StreamVec<'scope, Lsn, Decisions>,
    shard: Rc<RefCell<Shard>>,
    restoring: Rc<RefCell<Restoring>>,
    outcomes: Rc<RefCell<Vec<RecordOutcome>>>,
    sizes: Rc<RefCell<Vec<NamespaceSize>>>,
    applied: Rc<RefCell<Antichain<Lsn>>>,
    read_activator: Rc<RefCell<Option<Activator>>>,
) -> Applied<'scope> {
    type VertexUpdate = ((Namespace, Shared<Vertex>), Lsn, isize);
    type EdgeUpdate = ((Namespace, NumberedEdge), Lsn, isize);
    let scope = decisions.scope();
    let mut builder = OperatorBuilder::new("ApplyOwned".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let mut input = builder.new_input(decisions, Exchange::new(Decisions::target));
    let (vertices_out, vertices) = builder.new_output::<Vec<VertexUpdate>>();
    let (edges_out, edges) = builder.new_output::<Vec<EdgeUpdate>>();
    let (subscribed_out, subscribed) = builder.new_output::<Vec<(Change, Lsn)>>();
    let mut vertices_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(vertices_out);
    let mut edges_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(edges_out);
    let mut subscribed_out = OutputBuilder::<_, CapacityContainerBuilder<_>>::from(subscribed_out);
    builder.build(move |_capabilities| {
        let mut changes: Vec<(Lsn, Change)> = Vec::new();
        // A restore under way here, with the vertex and edge outputs' capabilities at its LSN.
        let mut restore_run: Option<(RestoreRun, [Capability<Lsn>; 2])> = None;
        move |frontiers| {
            let mut vertices_out = vertices_out.activate();
            let mut edges_out = edges_out.activate();
            let mut subscribed_out = subscribed_out.activate();
            let ports = [vertices_out.output_index(), edges_out.output_index(), subscribed_out.output_index()];
            // Takes a slice of the restore under way (all of it when `whole`) and gives its
            // changes: a slice each time the operator is scheduled, so the arrangements take
            // each before the next is made.
            macro_rules! take_restore {
                ($whole:expr) => {
                    let done = match restore_run.as_mut() {
                        None => false,
                        Some((run, at)) => {
                            let slice = if $whole { usize::MAX } else { RESTORE_SLICE };
                            let done = shard.borrow_mut().restore_edges(run, slice, &mut changes);
                            let (mut vertices, mut edges) = (vertices_out.session(&at[0]), edges_out.session(&at[1]));
                            for (lsn, change) in changes.drain(..) {
                                match change {
                                    Change::Vertex(key, vertex, diff) => vertices.give(((key, vertex), lsn, diff)),
                                    Change::Edge(key, edge, diff) => edges.give(((key, edge), lsn, diff)),
                                }
                            }
                            done
                        }
                    };
                    if done {
                        restore_run = None;
                        // A restore's slices are large: room this buffer must not keep.
                        changes.shrink_to_fit();
                    }
                };
            }
            input.for_each(|capability, data| {
                for decisions in data.drain(..) {
                    match decisions {
                        Decisions::Effects(_, effects) => {
                            // Effects decided after a restore apply to the whole restored graph.
                            take_restore!(true);
                            shard.borrow_mut().apply(&effects, &mut changes)
                        }
                        Decisions::Restore(_, lsn, restore) => {
                            take_restore!(true);
                            let Some((at, graph)) = restoring.borrow_mut().pop_front() else {
                                tracing::error!(lsn, "a restore decided that was not read here");
                                continue;
                            };
                            debug_assert_eq!(at, lsn, "restores are decided in the order they are read");
                            let run = shard.borrow_mut().restore(lsn, &restore, graph, &mut changes);
                            restore_run =
                                Some((run, [capability.delayed(&lsn, ports[0]), capability.delayed(&lsn, ports[1])]));
                            // Its vertices and a first slice go now, at its LSN: left in the
                            // buffer, the decisions after it would give them as their own.
                            take_restore!(false);
                            continue;
                        }
                        Decisions::Outcomes(decided, latest) => {
                            outcomes.borrow_mut().extend(decided);
                            *sizes.borrow_mut() = latest;
                        }
                    }
                    // Moved out, each at its LSN (they come in LSN order).
                    let mut made = changes.drain(..).peekable();
                    while let Some(&(lsn, _)) = made.peek() {
                        let at = ports.map(|port| capability.delayed(&lsn, port));
                        let mut vertices = vertices_out.session(&at[0]);
                        let mut edges = edges_out.session(&at[1]);
                        let mut subscribed = subscribed_out.session(&at[2]);
                        while let Some((_, change)) = made.next_if(|(next, _)| *next == lsn) {
                            subscribed.give((change.clone(), lsn));
                            match change {
                                Change::Vertex(key, vertex, diff) => vertices.give(((key, vertex), lsn, diff)),
                                Change::Edge(key, edge, diff) => edges.give(((key, edge), lsn, diff)),
                            }
                        }
                    }
                }
            });
            take_restore!(false);
            // A restore under way is not applied yet: no later batch may be read before it ends.
            let mut now = frontiers[0].frontier().to_owned();
            if let Some((run, _)) = &restore_run {
                activator.activate();
                if !now.less_equal(&run.lsn()) {
                    now = Antichain::from_elem(run.lsn());
                }
            }
            if *applied.borrow() != now {
                *applied.borrow_mut() = now;
                if let Some(activator) = read_activator.borrow().as_ref() {
                    activator.activate();
                }
            }
        }
    });
    Applied { vertices: vertices.as_collection(), edges: edges.as_collection(), subscribed }
}

/// Arranges vertices by themselves: a vertex orders by its number first, so it is its own
/// key and its number is held once. Exchanged by the number, as the adjacencies are, to its
/// owner, where a query naming it by id finds the number in the rule state.
fn by_number<'scope>(
    vertices: VecCollection<'scope, Lsn, ((Namespace, Shared<Vertex>), ())>,
) -> Arranged<'scope, VertexTrace> {
    type Update = (((Namespace, Shared<Vertex>), ()), Lsn, isize);
    let to_owner = Exchange::new(|(((_, vertex), ()), _, _): &Update| vertex.number.0);
    arrange_core::<_, _, FittedKeyBatcher<(Namespace, Shared<Vertex>)>, _>(
        vertices.inner,
        to_owner,
        "VertexByNumber",
        FittedKeyBatcher::new,
    )
}

type Adjacency<'scope> = Arranged<'scope, TraceAgent<ValSpine<AdjacencyKey, Adjacent>>>;

/// Arranges edges by vertex number, each on the worker its number names: the worker that
/// holds the vertex by key, so a vertex and its edges are read together.
fn adjacency<'scope>(edges: VecCollection<'scope, Lsn, (AdjacencyKey, Adjacent)>, name: &str) -> Adjacency<'scope> {
    let by_number = Exchange::new(|((key, _), _, _): &((AdjacencyKey, Adjacent), Lsn, isize)| key.number.0);
    arrange_core::<_, _, FittedValBatcher<AdjacencyKey, Adjacent>, _>(
        edges.inner,
        by_number,
        name,
        FittedValBatcher::new,
    )
}

/// Hands each LSN's changes to the hub on the workers that take them (`always`, and those
/// `forwarding` names from their LSN on) once the LSN is complete (the frontier has passed
/// it), in LSN order, and tells it how far the changes are complete. Every change is stashed
/// until its LSN completes, whether or not a standing PageRank wants it yet: a topic that
/// starts meanwhile takes every LSN completed after it was noticed (and, on a process other
/// than 0, after its process was forwarded to).
fn feed_subscriptions<'scope>(
    changes: timely::dataflow::StreamVec<'scope, Lsn, (Change, Lsn)>,
    hub: Option<Rc<RefCell<Hub>>>,
    always: Vec<usize>,
    forwarding: Forwarding,
    one_process: bool,
) {
    // One process has one sink, worker 0's: its changes go there as they are, through no
    // operator more (a write's answer waits on every step of its LSN).
    if one_process {
        sink_changes(changes, |_| 0, |update| update, hub);
        return;
    }
    let copies = changes.flat_map(move |(change, lsn)| {
        let forwarding = forwarding.borrow();
        let more = forwarding.iter().filter(|(to, since)| *since <= lsn && !always.contains(to)).map(|(to, _)| *to);
        let mut targets: Vec<usize> = always.iter().copied().chain(more).collect();
        // Copies for all but the last, which takes the change itself (`always` is never empty).
        let last = targets.pop();
        let mut copies: Vec<_> = targets.into_iter().map(|to| (to, change.clone(), lsn)).collect();
        copies.extend(last.map(|to| (to, change, lsn)));
        copies
    });
    sink_changes(copies, |(to, _, _)| *to as u64, |(_, change, lsn)| (change, lsn), hub);
}

/// The sink of [`feed_subscriptions`]: updates exchanged by `route`, each a change at an LSN
/// once `split`.
fn sink_changes<'scope, D: timely::ExchangeData>(
    updates: timely::dataflow::StreamVec<'scope, Lsn, D>,
    route: impl Fn(&D) -> u64 + 'static,
    split: impl Fn(D) -> (Change, Lsn) + 'static,
    hub: Option<Rc<RefCell<Hub>>>,
) {
    let mut stash: BTreeMap<Lsn, Vec<Change>> = BTreeMap::new();
    updates.sink(Exchange::new(route), "PageRankSubscriptions", move |(input, frontier)| {
        let Some(hub) = hub.as_ref() else {
            input.for_each(|_, _| {});
            return;
        };
        let mut hub = hub.borrow_mut();
        input.for_each(|_, data| {
            for (change, lsn) in data.drain(..).map(&split) {
                stash.entry(lsn).or_default().push(change);
            }
        });
        while let Some(entry) = stash.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let lsn = *entry.key();
            let changes = entry.remove();
            if !hub.is_idle() {
                hub.completed(lsn, changes);
            }
        }
        if let Some(next) = frontier.frontier().first() {
            hub.processed_through(next.saturating_sub(1));
        }
    });
}
