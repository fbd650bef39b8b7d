//! The loop each timely worker runs: take requests from the gRPC front, (on worker 0) apply
//! committed log records, step the dataflows, and publish progress.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::trace::implementations::spine_fueled::SpineBatch;
use differential_dataflow::trace::TraceReader;
use timely::dataflow::ProbeHandle;
use timely::progress::Antichain;
use timely::worker::Worker;

use crate::algorithms::Algorithm;
use crate::engine::algorithm_runs;
use crate::engine::graph::{self, GraphInputs};
use crate::engine::hold::ReadHold;
use crate::engine::log::{Committed, Ticket};
use crate::engine::reply::Reply;
use crate::engine::requests::{self, Request, Response, ServeState};
use crate::engine::subscriptions::Hub;
use crate::engine::{EngineError, Shared, Submission, Work, RELEASE_MEMORY_EVERY};
use crate::read::query::{GraphTrace, Indexes};
use crate::state::apply::{ApplyState, Change};
use crate::state::model::{owner_of, Lsn, Namespace};
use crate::state::write::RecordOutcome;

/// How long an idle worker parks before it looks at deadlines and compaction again.
const IDLE_PARK: Duration = Duration::from_millis(20);

pub(crate) fn run(worker: &mut Worker, shared: Arc<Shared>) {
    let index = worker.index();
    let local = index - shared.first_local_worker;
    let record_counts = &shared.records[local];
    let probe = ProbeHandle::new();
    // Worker 0 holds the apply stage and appends to the log; the others never feed the graph.
    let is_writer = index == 0;
    let hub =
        if is_writer { Hub::new(shared.subscriptions.clone()).map(|hub| Rc::new(RefCell::new(hub))) } else { None };
    let (inputs, indexes) = graph::build(worker, &probe, hub.clone());
    let indexes = Rc::new(RefCell::new(indexes));
    let outbox = Rc::new(RefCell::new(Vec::new()));
    let log = is_writer.then(|| shared.log.clone());
    let since = Rc::new(std::cell::Cell::new(0));
    let serve_state = ServeState {
        indexes: indexes.clone(),
        probe: probe.clone(),
        outbox: outbox.clone(),
        log,
        since: since.clone(),
        recovered: shared.recovered.clone(),
    };
    let mut request_flow = requests::build(worker, serve_state);
    let mut algorithm_flow = algorithm_runs::build(worker, indexes.clone());
    // Algorithm runs waiting for their `min_lsn`: (query, namespace, algorithm, min_lsn, give up at).
    let mut algorithms_waiting: Vec<(u64, Namespace, Algorithm, Lsn, Instant)> = Vec::new();
    let mut next_algorithm_query = 0u64;

    let mut writer = if is_writer {
        let mut inputs = inputs;
        inputs.advance_to(1);
        inputs.flush();
        Some(Writer {
            inputs,
            state: ApplyState::with_limits(shared.limits, shared.capacities.clone(), shared.request_ids, shared.peers),
            last_lsn: 0,
            pending: VecDeque::new(),
            changes: Vec::new(),
        })
    } else {
        drop(inputs);
        None
    };

    shared.wakers[local].register(std::thread::current());
    let _ = shared.started.send(());
    let inbox = shared.inbox_receivers[local].clone();
    let committed = shared.committed_rx.clone();

    let mut next_request_id = 0u64;
    let mut request_time = 0u64;
    let mut applied: Lsn = 0;
    let mut hold = ReadHold::new(shared.read_hold);
    let mut last_serve_poke = Instant::now();
    let mut last_algorithm_advance = 0u64;
    let mut last_release = Instant::now();
    let mut last_counted = Instant::now();
    let panic_on_request = crate::engine::fault_injected(&format!("worker-{index}"));

    while !shared.shutdown.load(Ordering::Acquire) {
        // Requests from the front.
        let mut injected = false;
        let mut local = false;
        for Submission { work, timeout, reply } in inbox.try_iter() {
            if panic_on_request {
                panic!("worker {index}: PRISM_FAULT_PANIC asked for a panic on the first request");
            }
            let (body, route) = match work {
                Work::Request { body, route } => (body, route),
                Work::WholeGraph => {
                    if let Some(writer) = writer.as_ref() {
                        let _ = reply.send(Reply::WholeGraph(writer.last_lsn, Box::new(writer.state.whole_graph())));
                    }
                    continue;
                }
                Work::Graph { namespace } => {
                    // Only worker 0 holds the apply stage; a graph asked of another worker
                    // cannot be served (the front routes it to worker 0).
                    if let Some(writer) = writer.as_ref() {
                        let (vertices, edges) = writer.state.namespace_graph(&namespace);
                        let _ = reply.send(Reply::Graph((writer.last_lsn, vertices, edges)));
                    }
                    continue;
                }
                Work::Sizes => {
                    if let Some(writer) = writer.as_ref() {
                        let _ = reply.send(Reply::Sizes(writer.state.sizes()));
                    }
                    continue;
                }
                Work::Algorithm { namespace, algorithm, min_lsn } => {
                    // Only the reply lives here; the query id is unique across workers.
                    next_algorithm_query += 1;
                    let query = ((index as u64) << 40) | next_algorithm_query;
                    algorithm_flow.replies.borrow_mut().insert(query, reply);
                    algorithms_waiting.push((query, namespace, algorithm, min_lsn, Instant::now() + timeout));
                    continue;
                }
            };
            next_request_id += 1;
            request_flow.replies.borrow_mut().insert(next_request_id, reply);
            let timeout_micros = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
            let request = Request { origin: index, id: next_request_id, route, timeout_micros, body };
            if owner_of(route, shared.peers) == index {
                request_flow.local.borrow_mut().push(request);
                local = true;
            } else {
                request_flow.input.send(request);
                injected = true;
            }
        }
        if local {
            request_flow.serve.activate();
        }
        if injected {
            // Advancing the time is what flushes the exchange to other workers.
            request_time += 1;
            request_flow.input.advance_to(request_time);
        }

        // New and finished subscriptions: a new one starts from the graph as the apply stage has it.
        if let (Some(hub), Some(writer)) = (hub.as_ref(), writer.as_ref()) {
            let mut hub = hub.borrow_mut();
            hub.take_commands(&writer.state, writer.last_lsn);
        }

        // Durable records, in log order, into the apply stage.
        if let Some(writer) = writer.as_mut() {
            let mut fed = false;
            for item in committed.try_iter() {
                match item {
                    Committed::Record { lsn, record, ticket } => {
                        fed |= writer.apply(lsn, &record, ticket);
                    }
                    Committed::Restore { lsn, graph } => fed |= writer.restore(lsn, *graph),
                    Committed::Failed { ticket, error } => {
                        outbox.borrow_mut().push(Response {
                            origin: ticket.origin,
                            id: ticket.request,
                            reply: Reply::Write(Err(error)),
                        });
                        request_flow.serve.activate();
                    }
                }
            }
            if fed {
                writer.inputs.advance_to(writer.last_lsn + 1);
                writer.inputs.flush();
            }
        }

        // Algorithm runs start once their LSN is applied: every worker gets the start.
        algorithms_waiting.retain(|(query, namespace, algorithm, min_lsn, expires)| {
            let gone = algorithm_flow.replies.borrow().get(query).is_none_or(|reply| reply.is_closed());
            if gone {
                algorithm_flow.replies.borrow_mut().remove(query);
                false
            } else if *min_lsn <= applied {
                for target in 0..shared.peers {
                    let start = algorithm_runs::Body::Start {
                        origin: index,
                        lsn: applied,
                        namespace: namespace.clone(),
                        algorithm: algorithm.clone(),
                    };
                    algorithm_flow.input.send(algorithm_runs::Message { target, query: *query, body: start });
                }
                false
            } else if Instant::now() >= *expires {
                if let Some(reply) = algorithm_flow.replies.borrow_mut().remove(query) {
                    let error = EngineError::LsnNotApplied { wanted: *min_lsn, applied };
                    let _ = reply.send(match algorithm {
                        Algorithm::PageRank(_) => Reply::Ranked(Err(error)),
                        Algorithm::Communities(_) => Reply::Communities(Err(error)),
                    });
                }
                false
            } else {
                true
            }
        });
        // The algorithm loop's phases complete only once every worker's input has moved past
        // them: keep this worker's input moving with the clock.
        let now = clock_micros().max(algorithm_flow.latest.get() + 1);
        if now > *algorithm_flow.input.time() && now - last_algorithm_advance >= ALGORITHM_CLOCK_STEP_MICROS {
            algorithm_flow.input.advance_to(now);
            last_algorithm_advance = now;
        }

        worker.step_or_park(Some(IDLE_PARK));

        let now_applied = requests::applied(&probe);
        if now_applied != applied && now_applied != Lsn::MAX {
            applied = now_applied;
            shared.publish_applied(applied);
            if let Some(writer) = writer.as_mut() {
                writer.release(applied, &mut outbox.borrow_mut());
            }
            request_flow.serve.activate();
            last_serve_poke = Instant::now();
        } else if last_serve_poke.elapsed() >= IDLE_PARK {
            // Lets waiting reads notice their deadline.
            request_flow.serve.activate();
            last_serve_poke = Instant::now();
        }
        if let Some(since_lsn) = hold.observe(Instant::now(), applied) {
            compact(&mut indexes.borrow_mut(), since_lsn);
            since.set(since_lsn);
        }
        if last_counted.elapsed() >= COUNT_RECORDS_EVERY {
            let counts = count_records(&mut indexes.borrow_mut());
            for (slot, count) in record_counts.iter().zip(counts) {
                slot.store(count, Ordering::Relaxed);
            }
            last_counted = Instant::now();
        }
        if let Some(release) = shared.release_memory.filter(|_| last_release.elapsed() >= RELEASE_MEMORY_EVERY) {
            release();
            last_release = Instant::now();
        }
    }

    // The serve operator holds its capability for good, so the dataflows never finish on
    // their own; timely would step them forever after this function returns.
    drop(writer);
    drop(hub);
    drop(request_flow);
    drop(algorithm_flow);
    for dataflow in worker.installed_dataflows() {
        worker.drop_dataflow(dataflow);
    }
}

/// How often (at most) a worker moves its algorithm input's clock, in microseconds.
const ALGORITHM_CLOCK_STEP_MICROS: u64 = 1000;

/// Microseconds since the Unix epoch: the algorithm loop's time. It only needs to move
/// forward on every worker; a worker whose clock lags also moves past the latest time it has
/// seen a message at, so clock skew between hosts does not stall a run.
fn clock_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// How often each worker counts its arrangements' updates (for `Engine::arrangement_records`).
const COUNT_RECORDS_EVERY: Duration = Duration::from_secs(1);

/// The updates each of this worker's shards holds, in `ARRANGEMENTS` order: the sum of its
/// batches' lengths (no walk over the updates).
fn count_records(indexes: &mut Indexes) -> [u64; 4] {
    fn count<K: Ord + Clone + 'static, V: Ord + Clone + 'static>(trace: &mut GraphTrace<K, V>) -> u64 {
        let batches = trace.batches_through(Antichain::new().borrow()).unwrap_or_default();
        batches.iter().map(|batch| batch.len() as u64).sum()
    }
    [
        count(&mut indexes.vertices),
        count(&mut indexes.edges),
        count(&mut indexes.out_edges),
        count(&mut indexes.in_edges),
    ]
}

/// Lets every index forget distinctions between times before `since`.
fn compact(indexes: &mut Indexes, since: Lsn) {
    let frontier = Antichain::from_elem(since);
    indexes.vertices.set_logical_compaction(frontier.borrow());
    indexes.vertices.set_physical_compaction(frontier.borrow());
    indexes.edges.set_logical_compaction(frontier.borrow());
    indexes.edges.set_physical_compaction(frontier.borrow());
    indexes.out_edges.set_logical_compaction(frontier.borrow());
    indexes.out_edges.set_physical_compaction(frontier.borrow());
    indexes.in_edges.set_logical_compaction(frontier.borrow());
    indexes.in_edges.set_physical_compaction(frontier.borrow());
}

/// Worker 0's apply stage and the writes waiting for their record to be applied.
struct Writer {
    inputs: GraphInputs,
    state: ApplyState,
    last_lsn: Lsn,
    /// Outcomes of records fed but not yet applied on every worker, in LSN order.
    pending: VecDeque<(Lsn, Ticket, RecordOutcome)>,
    changes: Vec<Change>,
}

impl Writer {
    /// Applies one record; false if it was already applied (a replayed duplicate).
    fn apply(&mut self, lsn: Lsn, record: &crate::state::write::WriteRecord, ticket: Option<Ticket>) -> bool {
        if lsn <= self.last_lsn {
            tracing::warn!(lsn, last = self.last_lsn, "skipping a record at or below the applied LSN");
            return false;
        }
        let outcome = self.state.apply(lsn, record, &mut self.changes);
        // At the record's own time, without advancing the inputs per record: a group of
        // records then costs one advance (and one round of progress messages), not one each.
        for change in self.changes.drain(..) {
            match change {
                Change::Vertex(key, vertex, diff) => self.inputs.vertices.update_at((key, vertex), lsn, diff),
                Change::Edge(key, edge, diff) => self.inputs.edges.update_at((key, edge), lsn, diff),
            }
        }
        self.last_lsn = lsn;
        if let Some(ticket) = ticket {
            self.pending.push_back((lsn, ticket, outcome));
        }
        true
    }

    /// Puts back a checkpoint's graph at `lsn`; false if the engine is already past it.
    fn restore(&mut self, lsn: Lsn, graph: crate::state::apply::WholeGraph) -> bool {
        if lsn <= self.last_lsn {
            tracing::warn!(lsn, last = self.last_lsn, "skipping a checkpoint at or below the applied LSN");
            return false;
        }
        self.state.restore_checkpoint(graph, &mut self.changes);
        for change in self.changes.drain(..) {
            match change {
                Change::Vertex(key, vertex, diff) => self.inputs.vertices.update_at((key, vertex), lsn, diff),
                Change::Edge(key, edge, diff) => self.inputs.edges.update_at((key, edge), lsn, diff),
            }
        }
        self.last_lsn = lsn;
        true
    }

    /// Answers the writes whose record is now applied everywhere.
    fn release(&mut self, applied: Lsn, outbox: &mut Vec<Response>) {
        while self.pending.front().is_some_and(|(lsn, _, _)| *lsn <= applied) {
            if let Some((_, ticket, outcome)) = self.pending.pop_front() {
                outbox.push(Response { origin: ticket.origin, id: ticket.request, reply: Reply::Write(Ok(outcome)) });
            }
        }
    }
}
