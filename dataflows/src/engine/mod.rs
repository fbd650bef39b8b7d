//! The running engine: timely workers beside the async front, and the handle the front uses.
//!
//! [`Engine::start`] launches the workers (threads of this process, and in cluster mode the
//! same number in every other process). The front submits reads and writes through
//! [`Engine::read`] and [`Engine::write`]; they travel the request dataflow (see
//! [`requests`]) to the worker that must serve them. A write is answered once its record is
//! durable (the attached [`WriteLog`]) and applied on every worker.

mod algorithm_runs;
mod fitted;
mod graph;
mod hold;
mod log;
mod reply;
mod requests;
mod stamped;
mod subscriptions;
mod wake;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::{oneshot, watch};

pub use log::{CommitSink, Committed, Ticket, WriteLog};
pub(crate) use reply::Reply;
pub use reply::{EngineError, NamespaceGraph};

/// Vertices and edges with their keys, at an LSN.
type Gathered = (
    Lsn,
    Vec<(crate::state::model::Namespace, crate::state::model::Shared<crate::state::model::Vertex>)>,
    Vec<(crate::state::model::Namespace, crate::state::model::Shared<crate::state::model::Edge>)>,
);
pub use subscriptions::{FeedError, PageRankFeed, Subscribed};
pub use wake::Waker;

use crate::algorithms;
use crate::read::query::{Answer, Query};
use crate::state::model::{owner_of, Lsn};
use crate::state::write::{RecordOutcome, WriteRecord};
use requests::RequestBody;

/// Records of merge work an arrangement does per scheduling while it merges on its own.
const EXTRA_MERGE_EFFORT: usize = 10_000;

/// When an arrangement merges beyond what its inserts pay for.
///
/// A trace merges batches as updates arrive, geometrically: updates to a graph of a million
/// vertices collect in smaller batches until they amount to about a million themselves, so
/// memory can double before a retraction meets the version it retracts. Merging on every
/// scheduling instead keeps memory tight but re-merges the largest batch continuously and
/// costs writes a factor of three. The middle: merge once the smaller batches hold a quarter
/// of the largest: memory stays within about a quarter of the live graph's, for about four
/// records of merge work per update.
fn exert_when_updates_pile_up(levels: &[(usize, usize, usize)]) -> Option<usize> {
    let largest = levels.iter().map(|&(_, _, length)| length).max().unwrap_or(0);
    let all: usize = levels.iter().map(|&(_, _, length)| length).sum();
    let rest = all - largest;
    (rest > 4096 && rest * 4 > largest).then_some(EXTRA_MERGE_EFFORT)
}

/// How long the workers may take to start once the cluster is connected.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the workers run.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Worker threads in this process.
    pub workers: usize,
    /// Set to run as one process of a timely cluster.
    pub cluster: Option<ClusterConfig>,
    /// How long a read LSN stays readable after it is applied (see the read hold).
    pub read_hold: Duration,
    /// What the apply stage holds every element to.
    pub limits: crate::state::limits::ElementLimits,
    /// How many vertices and edges each namespace may hold.
    pub capacities: crate::state::limits::Capacities,
    /// Most standing PageRanks (distinct subscription parameter sets) at once.
    pub max_standing_page_ranks: usize,
    /// How long and how many request ids the apply stage remembers.
    pub request_ids: crate::state::request_ids::RequestIdLimits,
    /// Gives the memory freed on the calling thread back to the system. Every worker calls
    /// it about every 10 s (`RELEASE_MEMORY_EVERY`): arrangement merges free whole batches, and
    /// an allocator keeping them for its thread shows as resident memory the graph does not
    /// use. The allocator is the binary's choice, and so is this.
    pub release_memory: Option<fn()>,
}

/// How often each worker calls [`EngineConfig::release_memory`].
pub const RELEASE_MEMORY_EVERY: Duration = Duration::from_secs(10);

/// Timely cluster settings: this process's index and every process's `host:port`.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub process: usize,
    pub addresses: Vec<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            cluster: None,
            read_hold: Duration::from_secs(2),
            limits: Default::default(),
            capacities: Default::default(),
            max_standing_page_ranks: 16,
            request_ids: Default::default(),
            release_memory: None,
        }
    }
}

/// A request on its way from the front to a worker's inbox.
pub(crate) struct Submission {
    pub work: Work,
    pub timeout: Duration,
    pub reply: oneshot::Sender<Reply>,
}

/// What a submission asks a worker to do.
pub(crate) enum Work {
    /// A read or write, routed through the request dataflow by `route`.
    Request { body: RequestBody, route: u64 },
    /// An algorithm run by every worker, started by the worker that takes it.
    Algorithm { namespace: crate::state::model::Namespace, algorithm: algorithms::Algorithm, min_lsn: Lsn },
    /// The request ids remembered for the records through an LSN (worker 0 only):
    /// checkpoints.
    RequestIds { through: Lsn },
    /// Vertices and edges per namespace (worker 0 only).
    Sizes,
}

/// State shared by the front and this process's workers.
pub(crate) struct Shared {
    pub first_local_worker: usize,
    pub peers: usize,
    pub inbox_senders: Vec<Sender<Submission>>,
    pub inbox_receivers: Vec<Receiver<Submission>>,
    pub wakers: Vec<Waker>,
    pub committed_rx: Receiver<log::Committed>,
    pub log: Arc<OnceLock<Arc<dyn WriteLog>>>,
    /// Set on the writer process once recovery has finished: the LSN applied then.
    pub recovered: Arc<OnceLock<Lsn>>,
    pub applied: watch::Sender<Lsn>,
    pub shutdown: AtomicBool,
    pub read_hold: Duration,
    pub release_memory: Option<fn()>,
    pub limits: crate::state::limits::ElementLimits,
    pub capacities: crate::state::limits::Capacities,
    pub request_ids: crate::state::request_ids::RequestIdLimits,
    /// Each worker reports here once it runs.
    pub started: std::sync::mpsc::Sender<()>,
    /// PageRank subscriptions (served by each process's first worker).
    pub subscriptions: Arc<subscriptions::Registry>,
    /// A graph loaded in bulk, waiting for its marker record to be sequenced (worker 0
    /// takes it then): see [`Engine::load_bulk`].
    pub bulk: Arc<std::sync::Mutex<Option<Arc<crate::state::graph::WholeGraph>>>>,
    /// Per local worker, the updates its shard of each arrangement holds (in `ARRANGEMENTS`
    /// order), as it last counted them.
    pub records: Vec<[AtomicU64; 3]>,
}

/// The arrangements, in the order `Engine::arrangement_records` reports them.
pub const ARRANGEMENTS: [&str; 3] = ["VertexByNumber", "OutAdjacency", "InAdjacency"];

impl Shared {
    pub(crate) fn publish_applied(&self, lsn: Lsn) {
        self.applied.send_if_modified(|current| {
            if lsn > *current {
                *current = lsn;
                true
            } else {
                false
            }
        });
    }
}

/// The handle to a running engine.
pub struct Engine {
    shared: Arc<Shared>,
    commit_sink: CommitSink,
    guards: Mutex<Option<timely::communication::initialize::WorkerGuards<()>>>,
    next_inbox: std::sync::atomic::AtomicUsize,
}

impl Engine {
    /// Starts the workers and returns once they all run. In cluster mode this waits until
    /// every process of the cluster is connected.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        let workers = config.workers.max(1);
        let (communication, process) = match &config.cluster {
            Some(cluster) => (
                timely::CommunicationConfig::Cluster {
                    threads: workers,
                    process: cluster.process,
                    addresses: cluster.addresses.clone(),
                    report: false,
                    zerocopy: false,
                },
                cluster.process,
            ),
            None if workers == 1 => (timely::CommunicationConfig::Thread, 0),
            None => (timely::CommunicationConfig::Process(workers), 0),
        };
        let peers = workers * config.cluster.as_ref().map_or(1, |c| c.addresses.len());
        let (inbox_senders, inbox_receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| crossbeam_channel::unbounded()).unzip();
        let wakers: Vec<Waker> = (0..workers).map(|_| Waker::default()).collect();
        let (committed_tx, committed_rx) = crossbeam_channel::unbounded();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            first_local_worker: process * workers,
            peers,
            inbox_senders,
            inbox_receivers,
            wakers: wakers.clone(),
            committed_rx,
            log: Arc::new(OnceLock::new()),
            recovered: Arc::new(OnceLock::new()),
            applied: watch::Sender::new(0),
            shutdown: AtomicBool::new(false),
            read_hold: config.read_hold,
            release_memory: config.release_memory,
            limits: config.limits,
            capacities: config.capacities,
            request_ids: config.request_ids,
            started: started_tx,
            subscriptions: Arc::new(subscriptions::Registry::new(wakers[0].clone(), config.max_standing_page_ranks)),
            bulk: Arc::default(),
            records: (0..workers).map(|_| Default::default()).collect(),
        });
        // The apply stage runs on worker 0: records committed in this process go there.
        let commit_sink = CommitSink { tx: committed_tx, waker: wakers[0].clone() };

        let mut worker_config = timely::WorkerConfig::default();
        worker_config.set::<differential_dataflow::trace::ExertionLogic>(
            "differential/default_exert_logic".to_string(),
            Arc::new(exert_when_updates_pile_up),
        );
        let timely_config = timely::Config { communication, worker: worker_config };
        let worker_shared = shared.clone();
        let guards = timely::execute(timely_config, move |worker| worker::run(worker, worker_shared.clone()))
            .map_err(EngineError::Start)?;
        for _ in 0..workers {
            started_rx
                .recv_timeout(WORKER_START_TIMEOUT)
                .map_err(|_| EngineError::Start("a worker did not start".into()))?;
        }
        Ok(Engine { shared, commit_sink, guards: Mutex::new(Some(guards)), next_inbox: Default::default() })
    }

    /// Where a log's follower hands durable records to the apply stage.
    pub fn commit_sink(&self) -> CommitSink {
        self.commit_sink.clone()
    }

    /// Attaches the log writes are appended to. Until then (and on processes other than the
    /// first of a cluster, which forward writes to it), writes answer [`EngineError::NoLog`].
    pub fn attach_log(&self, log: Arc<dyn WriteLog>) {
        let _ = self.shared.log.set(log);
    }

    /// Marks recovery finished on the writer process (checkpoint restored, log replayed,
    /// start-up snapshot loaded): other processes wait for it before they serve.
    pub fn mark_recovered(&self) {
        let _ = self.shared.recovered.set(self.applied_lsn());
    }

    /// Waits until the writer process has recovered; returns the LSN it had applied then,
    /// which this process must apply before its state is whole.
    pub async fn wait_recovered(&self) -> Result<Lsn, EngineError> {
        // Asked again at every expiry, so that no single request outlives a long recovery.
        const ASK_EVERY: Duration = Duration::from_secs(10);
        loop {
            let work = Work::Request { body: RequestBody::AwaitRecovery, route: 0 };
            match self.submit(work, 0, ASK_EVERY).await {
                Ok(Reply::Recovered(lsn)) => return Ok(lsn),
                Ok(_) | Err(EngineError::Timeout(_)) => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// Whether this process holds worker 0, the one that applies records and owns the log.
    pub fn is_writer_process(&self) -> bool {
        self.shared.first_local_worker == 0
    }

    /// The LSN applied on every worker, as this process last saw it.
    pub fn applied_lsn(&self) -> Lsn {
        *self.shared.applied.borrow()
    }

    /// Waits until `lsn` is applied.
    pub async fn wait_applied(&self, lsn: Lsn) -> Result<(), EngineError> {
        let mut applied = self.shared.applied.subscribe();
        applied.wait_for(|applied| *applied >= lsn).await.map(|_| ()).map_err(|_| EngineError::Shutdown)
    }

    /// Reads once `min_lsn` is applied, at the latest applied LSN; returns that LSN.
    pub async fn read(&self, query: Query, min_lsn: Lsn, timeout: Duration) -> Result<(Lsn, Answer), EngineError> {
        self.read_at(query, min_lsn, None, timeout).await
    }

    /// Reads as of `at` (once applied) when given, else as [`Engine::read`] does. A query of
    /// several steps reads every step at its first step's LSN.
    pub async fn read_at(
        &self,
        query: Query,
        min_lsn: Lsn,
        at: Option<Lsn>,
        timeout: Duration,
    ) -> Result<(Lsn, Answer), EngineError> {
        let route = query.route();
        let body = RequestBody::Read { min_lsn, at, query };
        match self.submit(Work::Request { body, route }, route, timeout).await? {
            Reply::Read(result) => result,
            _ => Err(EngineError::Shutdown),
        }
    }

    /// One-shot PageRank over `namespace` (the induced subgraph of `params.filter`), run by
    /// every worker on its shard at one LSN (the applied one, once `min_lsn` is applied).
    pub async fn page_rank(
        &self,
        namespace: crate::state::model::Namespace,
        params: algorithms::PageRankParams,
        min_lsn: Lsn,
        timeout: Duration,
    ) -> Result<algorithms::Ranked, EngineError> {
        match self.run_algorithm(namespace, algorithms::Algorithm::PageRank(params), min_lsn, timeout).await? {
            Reply::Ranked(result) => result,
            _ => Err(EngineError::Shutdown),
        }
    }

    /// Community detection over `namespace` (the induced subgraph of `params.filter`), run by
    /// every worker on its shard at one LSN, like [`Engine::page_rank`].
    pub async fn communities(
        &self,
        namespace: crate::state::model::Namespace,
        params: algorithms::CommunityParams,
        min_lsn: Lsn,
        timeout: Duration,
    ) -> Result<algorithms::Grouped, EngineError> {
        match self.run_algorithm(namespace, algorithms::Algorithm::Communities(params), min_lsn, timeout).await? {
            Reply::Communities(result) => result,
            _ => Err(EngineError::Shutdown),
        }
    }

    async fn run_algorithm(
        &self,
        namespace: crate::state::model::Namespace,
        algorithm: algorithms::Algorithm,
        min_lsn: Lsn,
        timeout: Duration,
    ) -> Result<Reply, EngineError> {
        // Any local worker can start it (every worker takes part): use this process's first.
        let inbox = self.shared.first_local_worker as u64;
        self.submit(Work::Algorithm { namespace, algorithm, min_lsn }, inbox, timeout).await
    }

    /// Subscribes to the PageRank of `params`: the current result (waiting up to `timeout`
    /// for it when this starts a standing PageRank), then a feed of every change to it. Every
    /// subscriber with equal parameters shares one standing PageRank; a feed that falls more
    /// than `buffer` results behind is cut off.
    pub async fn subscribe_page_rank(
        &self,
        params: crate::algorithms::standing_page_rank::SubscriptionParams,
        buffer: usize,
        timeout: Duration,
    ) -> Result<subscriptions::Subscribed, EngineError> {
        let read_graph = |namespace, after| self.namespace_graph(namespace, after, timeout);
        self.shared.subscriptions.subscribe(params, buffer, timeout, read_graph).await
    }

    /// Vertices and edges per namespace, as of the latest record the apply stage has taken
    /// (counted when asked, not as records come). Served by process 0.
    pub async fn sizes(&self, timeout: Duration) -> Result<Vec<crate::state::graph::NamespaceSize>, EngineError> {
        match self.ask_apply_stage(Work::Sizes, timeout).await? {
            Reply::Sizes(sizes) => Ok(sizes),
            _ => Err(EngineError::Shutdown),
        }
    }

    /// How many standing PageRanks worker 0 keeps (one per parameter set subscribed to), as
    /// it changes.
    pub fn standing_page_ranks(&self) -> watch::Receiver<usize> {
        self.shared.subscriptions.standing()
    }

    /// How many updates each arrangement holds in this process (its workers' shards
    /// together), counted by each worker about once a second.
    pub fn arrangement_records(&self) -> [(&'static str, u64); 3] {
        std::array::from_fn(|i| {
            (ARRANGEMENTS[i], self.shared.records.iter().map(|worker| worker[i].load(Ordering::Relaxed)).sum())
        })
    }

    /// Open PageRank subscriptions, of every parameter set together.
    pub fn page_rank_subscribers(&self) -> usize {
        self.shared.subscriptions.subscribers()
    }

    /// The whole graph of `namespace` at one LSN (returned with it), at least `min_lsn`,
    /// gathered from every worker's shard: for exports, snapshot diffs and new subscriptions.
    pub async fn namespace_graph(
        &self,
        namespace: crate::state::model::Namespace,
        min_lsn: Lsn,
        timeout: Duration,
    ) -> Result<NamespaceGraph, EngineError> {
        let (lsn, vertices, edges) = self.gather(Some(namespace), min_lsn, timeout).await?;
        Ok((lsn, vertices.into_iter().map(|(_, v)| v).collect(), edges.into_iter().map(|(_, e)| e).collect()))
    }

    /// Every namespace's graph at the applied LSN, with that LSN and the request ids
    /// remembered through it: what a checkpoint writes. Served by process 0, which
    /// sequences the log.
    pub async fn whole_graph(&self, timeout: Duration) -> Result<(Lsn, crate::state::graph::WholeGraph), EngineError> {
        if !self.is_writer_process() {
            return Err(EngineError::NotHere("checkpoints are taken on process 0 of the cluster".into()));
        }
        let (lsn, vertices, edges) = self.gather(None, 0, timeout).await?;
        let request_ids = match self.submit(Work::RequestIds { through: lsn }, 0, timeout).await? {
            Reply::RequestIds(request_ids) => request_ids,
            _ => return Err(EngineError::Shutdown),
        };
        Ok((lsn, crate::state::graph::WholeGraph { vertices, edges, request_ids, ends: None }))
    }

    /// Every worker's vertices and edges (of `namespace`, or all) at one LSN, the applied one
    /// once `min_lsn` is: every worker reads its shard at once (one after the other, the
    /// reads of a 10M-edge graph took a second a worker).
    async fn gather(
        &self,
        namespace: Option<crate::state::model::Namespace>,
        min_lsn: Lsn,
        timeout: Duration,
    ) -> Result<Gathered, EngineError> {
        let applied = tokio::time::timeout(timeout, self.wait_applied(min_lsn)).await;
        applied.map_err(|_| EngineError::Timeout(timeout))??;
        // Just applied, so within the read hold: every worker's shard still reads at it.
        let lsn = self.applied_lsn();
        let reads = (0..self.shared.peers).map(|worker| {
            let query = Query::Shard { worker, namespace: namespace.clone() };
            self.read_at(query, lsn, Some(lsn), timeout)
        });
        let (mut vertices, mut edges) = (Vec::new(), Vec::new());
        for (_, answer) in futures::future::try_join_all(reads).await? {
            if let Answer::Shard { vertices: v, edges: e } = answer {
                vertices.extend(v);
                edges.extend(e);
            }
        }
        Ok((lsn, vertices, edges))
    }

    /// Hands `work` to worker 0, which sequences the log (only in process 0 of a cluster).
    async fn ask_apply_stage(&self, work: Work, timeout: Duration) -> Result<Reply, EngineError> {
        if !self.is_writer_process() {
            return Err(EngineError::NotHere("the log is sequenced on process 0 of the cluster".into()));
        }
        self.submit(work, 0, timeout).await
    }

    /// Loads `graph` into its namespaces at one new LSN, which it returns once every worker
    /// holds its part: the log gets an empty record marking the load (`bulk_load`), and the
    /// graph goes to the workers beside it, each taking its own part at once. The graph is
    /// held to the limits and capacities first (nothing is written past one); ids once and
    /// edges between its vertices are the caller's to check, and only empty namespaces take
    /// it. The log does not hold the graph: it is durable once a checkpoint covers the LSN,
    /// which the caller writes (shared, so that it may write it from the same graph). Only
    /// before the server serves ([`Engine::mark_recovered`]).
    pub async fn load_bulk(
        &self,
        graph: Arc<crate::state::graph::WholeGraph>,
        timeout: Duration,
    ) -> Result<Lsn, EngineError> {
        if !self.is_writer_process() {
            return Err(EngineError::NotHere("the log is sequenced on process 0 of the cluster".into()));
        }
        // A restore's changes reach no subscription (`ApplyOwned`): none may exist yet.
        if self.shared.recovered.get().is_some() {
            return Err(EngineError::NotHere("a bulk load runs only before the server serves".into()));
        }
        crate::state::rules::check_graph(&graph, &self.shared.limits, &self.shared.capacities)
            .map_err(|rejection| EngineError::Limit(rejection.message))?;
        let namespace = graph.vertices.first().map(|(namespace, _)| namespace.clone()).unwrap_or_default();
        {
            let mut slot = self.shared.bulk.lock().map_err(|_| EngineError::Shutdown)?;
            if slot.is_some() {
                return Err(EngineError::NotHere("another bulk load is under way".into()));
            }
            *slot = Some(graph);
        }
        let marker = WriteRecord { namespace, atomic: true, bulk_load: true, ..Default::default() };
        let written = self.write(marker, timeout).await;
        // Taken by the sequencer with the marker; left only if the marker never got there.
        if let Ok(mut slot) = self.shared.bulk.lock() {
            slot.take();
        }
        Ok(written?.lsn)
    }

    /// Appends `record` to the log and waits until it is durable and applied.
    pub async fn write(&self, record: WriteRecord, timeout: Duration) -> Result<RecordOutcome, EngineError> {
        // Route 0 is worker 0, where the log and the apply stage live.
        match self.submit(Work::Request { body: RequestBody::Write(record), route: 0 }, 0, timeout).await? {
            Reply::Write(result) => result,
            _ => Err(EngineError::Shutdown),
        }
    }

    /// Hands `work` to the local worker `inbox_for(route)` picks and waits for its reply.
    async fn submit(&self, work: Work, route: u64, timeout: Duration) -> Result<Reply, EngineError> {
        let (reply, answer) = oneshot::channel();
        let local = self.inbox_for(route);
        self.shared.inbox_senders[local]
            .send(Submission { work, timeout, reply })
            .map_err(|_| EngineError::Shutdown)?;
        self.shared.wakers[local].wake();
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(EngineError::Shutdown),
            Err(_) => Err(EngineError::Timeout(timeout)),
        }
    }

    /// The local worker to inject a request at: its target when that is local (no hop),
    /// otherwise the local workers in turn.
    fn inbox_for(&self, route: u64) -> usize {
        let target = owner_of(route, self.shared.peers);
        let local_count = self.shared.inbox_senders.len();
        if (self.shared.first_local_worker..self.shared.first_local_worker + local_count).contains(&target) {
            target - self.shared.first_local_worker
        } else {
            self.next_inbox.fetch_add(1, Ordering::Relaxed) % local_count
        }
    }

    /// The worker owning a vertex key (and its adjacency): batch reads group keys by it.
    pub fn owner_of_key(&self, key: &crate::state::model::VertexKey) -> usize {
        use differential_dataflow::hashable::Hashable;
        owner_of(key.hashed(), self.shared.peers)
    }

    /// The worker owning the vertex numbered `number` (and its adjacency).
    pub fn owner_of_number(&self, number: crate::state::model::VertexNumber) -> usize {
        number.owner(self.shared.peers)
    }

    /// Stops the workers and waits for them.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for waker in &self.shared.wakers {
            waker.wake();
        }
        let guards = self.guards.lock().ok().and_then(|mut g| g.take());
        if let Some(guards) = guards {
            drop(guards.join());
        }
    }
}

impl Drop for Engine {
    /// Timely's worker guards join their threads when dropped, and the workers only stop when
    /// told to: stop them first, or dropping the engine would wait forever.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Fault injection, for the tests of what a panic does to the process:
/// `PRISM_FAULT_PANIC=worker-N` makes worker N panic when it takes its first request, and
/// `PRISM_FAULT_PANIC=subscriptions` the subscription thread when it starts a standing PageRank.
pub(crate) fn fault_injected(place: &str) -> bool {
    std::env::var("PRISM_FAULT_PANIC").is_ok_and(|value| value == place)
}
