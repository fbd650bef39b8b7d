//! The loop each timely worker runs: take requests from the gRPC front, (on worker 0) apply
//! committed log records, step the dataflows, and publish progress.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
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
use crate::engine::graph::{self, Sequenced};
use crate::engine::hold::ReadHold;
use crate::engine::log::{Committed, Ticket};
use crate::engine::reply::Reply;
use crate::engine::requests::{self, Request, Response, ServeState};
use crate::engine::subscriptions::Hub;
use crate::engine::{EngineError, Shared, Submission, Work, RELEASE_MEMORY_EVERY};
use crate::read::query::Indexes;
use crate::state::graph::WholeGraph;
use crate::state::model::{owner_of, Lsn, Namespace};
use crate::state::request_ids::{First, RequestIds};
use crate::state::write::{RecordOutcome, WriteRecord};

/// How long an idle worker parks before it looks at deadlines and compaction again.
const IDLE_PARK: Duration = Duration::from_millis(20);

pub(crate) fn run(worker: &mut Worker, shared: Arc<Shared>) {
    let index = worker.index();
    let local = index - shared.first_local_worker;
    let record_counts = &shared.records[local];
    let probe = ProbeHandle::new();
    // Worker 0 appends to the log and feeds its records to the apply stage; every worker
    // decides and applies them.
    let is_writer = index == 0;
    // Each process's first worker serves its subscriptions.
    let hub =
        (local == 0).then(|| Hub::new(shared.subscriptions.clone())).flatten().map(|hub| Rc::new(RefCell::new(hub)));
    let local_workers = shared.inbox_senders.len();
    let graph = graph::build(worker, &probe, hub.clone(), local_workers, shared.limits, shared.capacities.clone());
    let indexes = graph.indexes.clone();
    let (outcomes, sizes) = (graph.outcomes.clone(), graph.sizes.clone());
    let outbox = Rc::new(RefCell::new(Vec::new()));
    let log = is_writer.then(|| shared.log.clone());
    let forward_requests = Rc::new(RefCell::new(Vec::new()));
    let forwarding = graph.forwarding.clone();
    // Whether this worker asked worker 0 to forward every change to it.
    let mut asked_forwarding = false;
    let since = Rc::new(std::cell::Cell::new(0));
    let serve_state = ServeState {
        indexes: indexes.clone(),
        probe: probe.clone(),
        outbox: outbox.clone(),
        log,
        since: since.clone(),
        recovered: shared.recovered.clone(),
        forward: forward_requests.clone(),
    };
    let mut request_flow = requests::build(worker, serve_state);
    let mut algorithm_flow = algorithm_runs::build(worker, indexes.clone());
    // Algorithm runs waiting for their `min_lsn`: (query, namespace, algorithm, min_lsn, give up at).
    let mut algorithms_waiting: Vec<(u64, Namespace, Algorithm, Lsn, Instant)> = Vec::new();
    let mut next_algorithm_query = 0u64;

    let mut writer = if is_writer {
        let mut input = graph.input;
        input.advance_to(1);
        Some(Sequencer::new(input, RequestIds::new(shared.request_ids), shared.bulk.clone(), forward_requests))
    } else {
        drop(graph.input);
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
                Work::RequestIds { through } => {
                    // Only worker 0 sequences the log (the front routes this to it).
                    if let Some(writer) = writer.as_ref() {
                        let _ = reply.send(Reply::RequestIds(writer.request_ids.remembered(through)));
                    }
                    continue;
                }
                Work::Sizes => {
                    // Worker 0 takes the sizes with the outcomes (the front routes this to it).
                    if is_writer {
                        let _ = reply.send(Reply::Sizes(sizes.borrow().clone()));
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
        // A subscription started on a process other than 0 needs every worker's changes from
        // some LSN on: worker 0 orders that with the log (`Sequenced::Forward`).
        if let Some(hub) = hub.as_ref().filter(|_| index != 0 && !asked_forwarding) {
            if hub.borrow().has_starts() {
                next_request_id += 1;
                let body = requests::RequestBody::Forward(index);
                request_flow.input.send(Request {
                    origin: index,
                    id: next_request_id,
                    route: 0,
                    timeout_micros: 0,
                    body,
                });
                injected = true;
                asked_forwarding = true;
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

        // New subscriptions: each takes the changes of every LSN completed from now on.
        if let Some(hub) = hub.as_ref() {
            let from = match index {
                0 => Some(0),
                _ => forwarding.borrow().iter().find(|(to, _)| *to == index).map(|(_, since)| *since),
            };
            hub.borrow_mut().take_starts(from);
        }

        // Durable records, in log order, into the apply stage.
        if let Some(writer) = writer.as_mut() {
            for item in committed.try_iter() {
                match item {
                    Committed::Record { lsn, record, ticket } => writer.take(lsn, record, ticket),
                    Committed::Restore { lsn, graph } => writer.restore(lsn, Arc::new(*graph)),
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
            writer.feed();
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
        if let Some(writer) = writer.as_mut() {
            for outcome in outcomes.borrow_mut().drain(..) {
                writer.decided(outcome);
            }
            writer.feed();
            if now_applied != Lsn::MAX && writer.release(now_applied, &mut outbox.borrow_mut()) {
                request_flow.serve.activate();
            }
        }
        if now_applied != applied && now_applied != Lsn::MAX {
            applied = now_applied;
            shared.publish_applied(applied);
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
fn count_records(indexes: &mut Indexes) -> [u64; 3] {
    fn count<Tr: TraceReader<Time = Lsn>>(trace: &mut Tr) -> u64
    where
        Tr::Batch: SpineBatch,
    {
        let batches = trace.batches_through(Antichain::new().borrow()).unwrap_or_default();
        batches.iter().map(|batch| batch.len() as u64).sum()
    }
    [count(&mut indexes.vertices), count(&mut indexes.out_edges), count(&mut indexes.in_edges)]
}

/// Lets every index forget distinctions between times before `since`.
fn compact(indexes: &mut Indexes, since: Lsn) {
    let frontier = Antichain::from_elem(since);
    indexes.vertices.set_logical_compaction(frontier.borrow());
    indexes.vertices.set_physical_compaction(frontier.borrow());
    indexes.out_edges.set_logical_compaction(frontier.borrow());
    indexes.out_edges.set_physical_compaction(frontier.borrow());
    indexes.in_edges.set_logical_compaction(frontier.borrow());
    indexes.in_edges.set_physical_compaction(frontier.borrow());
    indexes.shard.borrow_mut().forget_through(since);
}

/// Most operations a batch of records takes while an earlier batch is still being applied.
const MAX_BATCH_OPS: usize = 1 << 19;

/// Worker 0's side of the apply stage: it takes the log's records in order, recognises
/// retried writes, feeds the rest to the apply stage a batch at a time, and answers each
/// write once its record is applied on every worker.
struct Sequencer {
    input: timely::dataflow::InputHandle<Lsn, timely::container::CapacityContainerBuilder<Vec<Sequenced>>>,
    /// The last LSN taken from the log.
    last_lsn: Lsn,
    /// Records taken, not yet fed, and their operations.
    waiting: Vec<(Lsn, Arc<WriteRecord>)>,
    waiting_ops: usize,
    /// Records taken whose outcome has not come back (those waiting and those fed), with
    /// the write waiting for each.
    deciding: HashMap<Lsn, (Arc<WriteRecord>, Option<Ticket>)>,
    /// Retries of writes still being decided: (the first's LSN, the retry's), and the retry.
    retries: Vec<(Lsn, Lsn, Ticket)>,
    /// Outcomes to answer once their LSN is applied everywhere.
    replies: BTreeMap<Lsn, (Ticket, RecordOutcome)>,
    request_ids: RequestIds,
    /// A graph loaded in bulk, for the marker record this process writes for it.
    bulk: Arc<std::sync::Mutex<Option<Arc<WholeGraph>>>>,
    /// Workers that asked for every change (each asks once; every worker keeps the first
    /// forward it sees for a worker).
    forward_requests: Rc<RefCell<Vec<usize>>>,
}

impl Sequencer {
    fn new(
        input: timely::dataflow::InputHandle<Lsn, timely::container::CapacityContainerBuilder<Vec<Sequenced>>>,
        request_ids: RequestIds,
        bulk: Arc<std::sync::Mutex<Option<Arc<WholeGraph>>>>,
        forward_requests: Rc<RefCell<Vec<usize>>>,
    ) -> Self {
        Sequencer {
            input,
            last_lsn: 0,
            waiting: Vec::new(),
            waiting_ops: 0,
            deciding: HashMap::new(),
            retries: Vec::new(),
            replies: BTreeMap::new(),
            request_ids,
            bulk,
            forward_requests,
        }
    }

    /// Takes one durable record. A write whose request id is remembered changes nothing and
    /// gets the first outcome; whether it is remembered depends on the log alone.
    fn take(&mut self, lsn: Lsn, record: WriteRecord, ticket: Option<Ticket>) {
        if lsn <= self.last_lsn {
            tracing::warn!(lsn, last = self.last_lsn, "skipping a record at or below the applied LSN");
            return;
        }
        // The marker of a bulk load this process wrote: the graph goes in at its LSN. Any
        // other marker (replayed, or another server's) is an empty record.
        if let (true, Some(ticket)) = (record.bulk_load, ticket) {
            let graph = self.bulk.lock().ok().and_then(|mut slot| slot.take());
            if let Some(graph) = graph {
                self.restore(lsn, graph);
                self.replies.insert(lsn, (ticket, RecordOutcome { lsn, results: Vec::new() }));
                return;
            }
        }
        self.last_lsn = lsn;
        if let Some(request_id) = record.request_id.as_deref().filter(|id| !id.is_empty()) {
            match self.request_ids.first(&record.namespace, request_id) {
                Some(First::Decided(outcome)) => {
                    if let Some(ticket) = ticket {
                        self.replies.insert(lsn, (ticket, outcome.clone()));
                    }
                    return;
                }
                Some(First::Deciding(first)) => {
                    if let Some(ticket) = ticket {
                        self.retries.push((*first, lsn, ticket));
                    }
                    return;
                }
                None => {
                    self.request_ids.remember(&record.namespace, request_id, record.timestamp, First::Deciding(lsn))
                }
            }
        }
        let record = Arc::new(record);
        self.waiting_ops += record.ops.len();
        self.waiting.push((lsn, record.clone()));
        self.deciding.insert(lsn, (record, ticket));
    }

    /// Puts a checkpoint's graph (or one loaded in bulk) in at `lsn`, after the records taken
    /// before it.
    fn restore(&mut self, lsn: Lsn, graph: Arc<WholeGraph>) {
        if lsn <= self.last_lsn {
            tracing::warn!(lsn, last = self.last_lsn, "skipping a checkpoint at or below the applied LSN");
            return;
        }
        self.feed_waiting();
        for remembered in &graph.request_ids {
            let first = First::Decided(remembered.outcome.clone());
            self.request_ids.remember(&remembered.namespace, &remembered.request_id, remembered.timestamp, first);
        }
        self.input.advance_to(lsn);
        self.input.send(Sequenced::Restore(lsn, graph));
        // A restore has no outcome: the batch after it goes at once, and waits at the owners
        // until the restore is applied.
        self.last_lsn = lsn;
        self.input.advance_to(lsn + 1);
    }

    /// Feeds the records waiting as one batch once the last batch is decided, or when they
    /// are many; moves the input past every LSN taken that nothing waits on. While a batch is
    /// decided, the next one grows: the busier the log, the larger the batches.
    fn feed(&mut self) {
        // Records fed from now on are forwarded to the workers that asked (at the input's
        // time: no record at or after it has been fed).
        let asked = std::mem::take(&mut *self.forward_requests.borrow_mut());
        for to in asked {
            self.input.send(Sequenced::Forward(to));
            // Now, not with the next batch: the subscription waits for it.
            self.input.flush();
        }
        // Every record taken but not waiting was fed: none of them left means all decided.
        let decided = self.deciding.len() == self.waiting.len();
        if !self.waiting.is_empty() && (decided || self.waiting_ops >= MAX_BATCH_OPS) {
            self.feed_waiting();
        }
        let next = self.waiting.first().map_or(self.last_lsn + 1, |(lsn, _)| *lsn);
        if next > *self.input.time() {
            self.input.advance_to(next);
        }
    }

    fn feed_waiting(&mut self) {
        let (Some(&(first, _)), Some(&(last, _))) = (self.waiting.first(), self.waiting.last()) else { return };
        self.input.advance_to(first);
        self.input.send(Sequenced::Records(Arc::new(std::mem::take(&mut self.waiting))));
        self.waiting_ops = 0;
        self.input.advance_to(last + 1);
    }

    /// A record's outcome, from the apply stage.
    fn decided(&mut self, outcome: RecordOutcome) {
        let Some((record, ticket)) = self.deciding.remove(&outcome.lsn) else { return };
        if let Some(request_id) = record.request_id.as_deref().filter(|id| !id.is_empty()) {
            self.request_ids.decided(&record.namespace, request_id, outcome.clone());
            let lsn = outcome.lsn;
            self.retries.retain(|(first, retry, ticket)| {
                if *first == lsn {
                    self.replies.insert(*retry, (*ticket, outcome.clone()));
                }
                *first != lsn
            });
        }
        if let Some(ticket) = ticket {
            self.replies.insert(outcome.lsn, (ticket, outcome));
        }
    }

    /// Answers the writes whose record is now applied everywhere; whether there were any.
    fn release(&mut self, applied: Lsn, outbox: &mut Vec<Response>) -> bool {
        let before = outbox.len();
        while let Some(entry) = self.replies.first_entry() {
            if *entry.key() > applied {
                break;
            }
            let (ticket, outcome) = entry.remove();
            outbox.push(Response { origin: ticket.origin, id: ticket.request, reply: Reply::Write(Ok(outcome)) });
        }
        outbox.len() > before
    }
}
