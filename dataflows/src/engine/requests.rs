//! The request dataflow: how reads and writes reach the worker that must handle them, and
//! how answers come back, across threads and processes alike.
//!
//! A request enters at a worker of the process that received the RPC (its *origin*), is
//! exchanged by its route hash to the worker owning its key (reads) or to worker 0 (writes:
//! the log and the apply stage live there), is served there, and the response is exchanged
//! back to the origin, which completes the RPC's reply channel. Everything crosses workers
//! through timely channels, so the same path serves a thread pool and a cluster of processes.
//!
//! Request timestamps are a per-worker counter with no meaning beyond flushing exchanges:
//! the serve operator answers as data arrives, never waiting on this dataflow's frontier.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::Input;
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::scheduling::Activator;
use timely::worker::Worker;
use tokio::sync::oneshot;

use crate::engine::log::{Ticket, WriteLog};
use crate::engine::reply::{EngineError, Reply};
use crate::read::query::{Indexes, Query};
use crate::state::model::Lsn;
use crate::state::write::WriteRecord;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub origin: usize,
    pub id: u64,
    pub route: u64,
    /// How long the origin waits for the answer; a read waiting for an LSN gives up then.
    pub timeout_micros: u64,
    pub body: RequestBody,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum RequestBody {
    /// Read once the state at `min_lsn` is applied: at `at` if given (a multi-step query
    /// keeps its first step's LSN), otherwise at the latest applied LSN.
    Read {
        min_lsn: Lsn,
        at: Option<Lsn>,
        query: Query,
    },
    Write(WriteRecord),
    /// Answered by worker 0 once the writer process has recovered (other processes wait
    /// for it before they serve).
    AwaitRecovery,
    /// Asks worker 0 to have every worker send its changes to this worker too (the first of
    /// another process, where a PageRank subscription started). Not answered: the worker
    /// sees the `Sequenced::Forward` that follows.
    Forward(usize),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Response {
    pub origin: usize,
    pub id: u64,
    pub reply: Reply,
}

/// What the serve operator shares with its worker's loop.
pub(crate) struct ServeState {
    pub indexes: Rc<RefCell<Indexes>>,
    /// Reports the LSN applied on every worker.
    pub probe: ProbeHandle<Lsn>,
    /// Responses produced outside the operator (write outcomes), sent on its next run.
    pub outbox: Rc<RefCell<Vec<Response>>>,
    /// The log, on the one worker that appends to it.
    pub log: Option<Arc<OnceLock<Arc<dyn WriteLog>>>>,
    /// The traces' compaction frontier: reads at older LSNs are refused.
    pub since: Rc<Cell<Lsn>>,
    /// Set once the writer process has recovered (read on worker 0).
    pub recovered: Arc<OnceLock<Lsn>>,
    /// Workers that asked for every change (`RequestBody::Forward`), for worker 0's sequencer.
    pub forward: Rc<RefCell<Vec<usize>>>,
}

pub(crate) struct RequestDataflow {
    /// Requests for other workers.
    pub input: InputHandle<u64, CapacityContainerBuilder<Vec<Request>>>,
    /// Requests this worker serves itself: they skip the exchange (and the progress traffic
    /// an input advance costs), and so do their answers.
    pub local: Rc<RefCell<Vec<Request>>>,
    /// Reply channels of this worker's requests, by request id.
    pub replies: Rc<RefCell<HashMap<u64, oneshot::Sender<Reply>>>>,
    /// Schedules the serve operator (new outbox entries, a newly applied LSN).
    pub serve: Activator,
}

/// The LSN applied on every worker, as the probe sees it.
pub(crate) fn applied(probe: &ProbeHandle<Lsn>) -> Lsn {
    probe.with_frontier(|frontier| frontier.first().map(|t| t.saturating_sub(1)).unwrap_or(Lsn::MAX))
}

pub(crate) fn build(worker: &mut Worker, state: ServeState) -> RequestDataflow {
    let replies: Rc<RefCell<HashMap<u64, oneshot::Sender<Reply>>>> = Rc::new(RefCell::new(HashMap::new()));
    let deliver_to = replies.clone();
    let deliver_here = replies.clone();
    let local = Rc::new(RefCell::new(Vec::new()));
    let local_requests = local.clone();
    let serve_activator = Rc::new(RefCell::new(None));
    let activator_slot = serve_activator.clone();

    let input = worker.dataflow::<u64, _, _>(|scope| {
        let me = scope.index();
        let (input, requests) = scope.new_input::<Vec<Request>>();
        let responses = requests.unary(Exchange::new(|r: &Request| r.route), "Serve", move |capability, info| {
            *activator_slot.borrow_mut() = Some(scope.activator_for(info.address.clone()));
            let mut server = Server { state, waiting: Vec::new() };
            // Responses are sent at the first time, held for the operator's life: nothing
            // downstream waits on this dataflow's progress.
            move |input, output| {
                let mut ready = Vec::new();
                for request in local_requests.borrow_mut().drain(..) {
                    server.accept(request, &mut ready);
                }
                input.for_each(|_time, data| {
                    for request in data.drain(..) {
                        server.accept(request, &mut ready);
                    }
                });
                server.retry(&mut ready);
                ready.append(&mut server.state.outbox.borrow_mut());
                let (here, elsewhere): (Vec<_>, Vec<_>) = ready.into_iter().partition(|r| r.origin == me);
                deliver(&deliver_here, here);
                if !elsewhere.is_empty() {
                    output.session(&capability).give_iterator(elsewhere.into_iter());
                }
            }
        });
        responses.sink(Exchange::new(|r: &Response| r.origin as u64), "Deliver", move |(input, _frontier)| {
            input.for_each(|_time, data| deliver(&deliver_to, data.drain(..)));
        });
        input
    });

    let serve = serve_activator.borrow_mut().take().expect("the serve operator was just built");
    RequestDataflow { input, local, replies, serve }
}

/// Completes the reply channels of responses that reached their origin worker.
fn deliver(replies: &RefCell<HashMap<u64, oneshot::Sender<Reply>>>, responses: impl IntoIterator<Item = Response>) {
    let mut replies = replies.borrow_mut();
    for response in responses {
        if let Some(reply) = replies.remove(&response.id) {
            // The caller may have given up (deadline); then nobody listens.
            let _ = reply.send(response.reply);
        }
    }
}

/// The serving side of one worker.
struct Server {
    state: ServeState,
    /// Reads waiting for their `min_lsn` to be applied, with when they give up.
    waiting: Vec<(Request, Instant)>,
}

impl Server {
    fn accept(&mut self, request: Request, ready: &mut Vec<Response>) {
        let Request { origin, id, body, .. } = request;
        match body {
            RequestBody::Read { .. } | RequestBody::AwaitRecovery => {
                let expires = Instant::now() + Duration::from_micros(request.timeout_micros);
                self.waiting.push((Request { body, ..request }, expires));
            }
            RequestBody::Forward(to) => self.state.forward.borrow_mut().push(to),
            RequestBody::Write(record) => match self.state.log.as_ref().and_then(|log| log.get()) {
                Some(log) => log.append(record, Ticket { origin, request: id }),
                None => ready.push(Response { origin, id, reply: Reply::Write(Err(EngineError::NoLog)) }),
            },
        }
    }

    /// Answers the waiting reads whose LSN is applied; drops those past their deadline.
    fn retry(&mut self, ready: &mut Vec<Response>) {
        if self.waiting.is_empty() {
            return;
        }
        let applied = applied(&self.state.probe);
        let since = self.state.since.get();
        let now = Instant::now();
        let mut indexes = self.state.indexes.borrow_mut();
        let recovered = self.state.recovered.get().copied();
        self.waiting.retain(|(request, expires)| {
            if let RequestBody::AwaitRecovery = &request.body {
                let reply = match recovered {
                    Some(lsn) => Reply::Recovered(lsn),
                    None if now >= *expires => Reply::Read(Err(EngineError::Timeout(Duration::ZERO))),
                    None => return true,
                };
                ready.push(Response { origin: request.origin, id: request.id, reply });
                return false;
            }
            let RequestBody::Read { min_lsn, at, query } = &request.body else { return false };
            let wanted = at.map_or(*min_lsn, |at| at.max(*min_lsn));
            let reply = if wanted <= applied {
                let lsn = at.unwrap_or(applied);
                if lsn < since {
                    Reply::Read(Err(EngineError::Compacted { lsn, since }))
                } else {
                    Reply::Read(Ok((lsn, query.answer(&mut indexes, lsn))))
                }
            } else if now >= *expires {
                Reply::Read(Err(EngineError::LsnNotApplied { wanted, applied }))
            } else {
                return true;
            };
            ready.push(Response { origin: request.origin, id: request.id, reply });
            false
        });
    }
}
