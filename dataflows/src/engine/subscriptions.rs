//! PageRank subscriptions: standing PageRanks shared by every subscriber with the same
//! parameters, fed by the changes of the vertex and edge collections.
//!
//! Three parts meet here:
//! - the front's side, [`Registry`] and [`PageRankFeed`]: a subscriber joins the topic of its
//!   parameters (creating it if it is the first), reads the current result, then follows a
//!   bounded broadcast; dropping the feed leaves the topic, and the last one out stops it;
//! - worker 0's side, [`Hub`]: it starts a topic from the apply stage's current graph, and a
//!   sink operator on the collections (see `graph.rs`) hands it every completed LSN's changes;
//! - the subscription thread: it builds each topic's [`StandingPageRank`], applies every
//!   LSN's changes to it in order, and publishes the ranking whenever it changes.
//!
//! Why the changes are taken on worker 0: they originate there (the apply stage feeds the
//! collections), so following them needs no exchange. Why a thread of its own: a change's
//! pushes then cost the writes nothing (a write is acknowledged when it is applied, not when
//! subscribers have heard of it), and run in one loop with no rounds of progress messages
//! between workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::apply::{ApplyState, Change};
use crate::engine::wake::Waker;
use crate::engine::EngineError;
use crate::model::{Edge, Lsn, Vertex};
use crate::standing_rank::{RankUpdate, StandingPageRank, SubscriptionParams};

/// Why a feed ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the subscriber fell more than {buffer} messages behind")]
    Lagged { buffer: usize },
    #[error("the standing PageRank stopped: {0}")]
    Closed(String),
}

/// One parameter set's shared state between the front and worker 0.
struct Topic {
    id: u64,
    /// `params.key()`, under which the registry files the topic.
    key: String,
    params: SubscriptionParams,
    updates: broadcast::Sender<Arc<RankUpdate>>,
    buffer: usize,
    /// The current result (`None` while the standing PageRank is built, `Err` if that failed).
    latest: watch::Sender<Option<Result<Arc<RankUpdate>, String>>>,
    /// Every change up to this LSN is reflected in what was published.
    processed: AtomicU64,
}

impl Topic {
    /// Publishes a result: the latest first, then the broadcast, so that a subscriber that
    /// joins in between sees it one way or the other.
    fn publish(&self, update: Arc<RankUpdate>) {
        self.latest.send_replace(Some(Ok(update.clone())));
        let _ = self.updates.send(update);
    }

    fn fail(&self, reason: String) {
        self.latest.send_replace(Some(Err(reason)));
    }
}

enum Command {
    Start(Arc<Topic>),
    Stop(u64),
}

/// The front's view of the subscriptions of this process (served by worker 0).
pub(crate) struct Registry {
    /// Topics by parameter key, with their number of subscribers.
    topics: Mutex<HashMap<String, (Arc<Topic>, usize)>>,
    commands: Mutex<Vec<Command>>,
    next_id: AtomicU64,
    waker: Waker,
    /// Standing PageRanks worker 0 holds (built or being built).
    standing: watch::Sender<usize>,
}

impl Registry {
    pub fn new(waker: Waker) -> Self {
        Registry {
            topics: Mutex::default(),
            commands: Mutex::default(),
            next_id: AtomicU64::new(1),
            waker,
            standing: watch::Sender::new(0),
        }
    }

    fn command(&self, command: Command) {
        if let Ok(mut commands) = self.commands.lock() {
            commands.push(command);
        }
        self.waker.wake();
    }

    pub fn standing(&self) -> watch::Receiver<usize> {
        self.standing.subscribe()
    }

    /// Joins (or starts) the topic of `params`; waits up to `timeout` for its first result.
    pub async fn subscribe(
        self: &Arc<Self>,
        params: SubscriptionParams,
        buffer: usize,
        timeout: Duration,
    ) -> Result<Subscribed, EngineError> {
        let key = params.key();
        let (topic, receiver) = {
            let mut topics = self.topics.lock().map_err(|_| EngineError::Shutdown)?;
            let entry = topics.entry(key.clone()).or_insert_with(|| {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let buffer = buffer.max(1);
                let topic = Arc::new(Topic {
                    id,
                    key,
                    params,
                    updates: broadcast::channel(buffer).0,
                    buffer,
                    latest: watch::Sender::new(None),
                    processed: AtomicU64::new(0),
                });
                self.command(Command::Start(topic.clone()));
                (topic, 0)
            });
            entry.1 += 1;
            // Subscribed before the latest is read: a result published in between arrives here.
            (entry.0.clone(), entry.0.updates.subscribe())
        };
        let mut feed = PageRankFeed { registry: self.clone(), topic, receiver, last: 0 };
        let first = tokio::time::timeout(timeout, feed.first()).await.map_err(|_| EngineError::Timeout(timeout))??;
        feed.last = first.lsn;
        Ok(feed.with_first(first))
    }

    fn leave(&self, topic: &Topic) {
        let Ok(mut topics) = self.topics.lock() else { return };
        let last = match topics.get_mut(&topic.key) {
            Some((current, count)) if current.id == topic.id => {
                *count -= 1;
                *count == 0
            }
            _ => false,
        };
        if last {
            topics.remove(&topic.key);
            self.command(Command::Stop(topic.id));
        }
    }
}

/// A subscriber's end of a topic. Dropping it leaves the topic.
pub struct PageRankFeed {
    registry: Arc<Registry>,
    topic: Arc<Topic>,
    receiver: broadcast::Receiver<Arc<RankUpdate>>,
    /// The LSN of the last result handed out (older broadcasts are skipped).
    last: Lsn,
}

/// A feed together with the result it starts from.
pub struct Subscribed {
    pub first: Arc<RankUpdate>,
    pub feed: PageRankFeed,
}

impl PageRankFeed {
    fn with_first(self, first: Arc<RankUpdate>) -> Subscribed {
        Subscribed { first, feed: self }
    }

    /// The current result, once there is one.
    async fn first(&self) -> Result<Arc<RankUpdate>, EngineError> {
        let mut latest = self.topic.latest.subscribe();
        let current = latest.wait_for(Option::is_some).await.map_err(|_| EngineError::Shutdown)?.clone();
        match current {
            Some(Ok(update)) => Ok(update),
            Some(Err(reason)) => Err(EngineError::Subscription(reason)),
            None => Err(EngineError::Shutdown),
        }
    }

    /// The next result, once the graph changes it.
    pub async fn next(&mut self) -> Result<Arc<RankUpdate>, FeedError> {
        loop {
            let update = match self.receiver.recv().await {
                Ok(update) => update,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(FeedError::Lagged { buffer: self.topic.buffer })
                }
                Err(broadcast::error::RecvError::Closed) => return Err(FeedError::Closed("shut down".into())),
            };
            if let Some(update) = self.fresh(update) {
                return Ok(update);
            }
        }
    }

    /// A result already waiting, if any (for a heartbeat's check).
    pub fn try_next(&mut self) -> Result<Option<Arc<RankUpdate>>, FeedError> {
        loop {
            let update = match self.receiver.try_recv() {
                Ok(update) => update,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    return Err(FeedError::Lagged { buffer: self.topic.buffer })
                }
                Err(broadcast::error::TryRecvError::Closed) => return Err(FeedError::Closed("shut down".into())),
            };
            if let Some(update) = self.fresh(update) {
                return Ok(Some(update));
            }
        }
    }

    fn fresh(&mut self, update: Arc<RankUpdate>) -> Option<Arc<RankUpdate>> {
        (update.lsn > self.last).then(|| {
            self.last = update.lsn;
            update
        })
    }

    /// Every change up to this LSN is in the results handed out or waiting in the feed: a
    /// heartbeat reads it, then checks [`PageRankFeed::try_next`] before claiming it.
    pub fn processed_lsn(&self) -> Lsn {
        self.topic.processed.load(Ordering::Acquire).max(self.last)
    }

    /// The relative error bound every result of this feed carries.
    pub fn error_bound(&self) -> f64 {
        self.topic.params.error_bound
    }
}

impl Drop for PageRankFeed {
    fn drop(&mut self) {
        self.registry.leave(&self.topic);
    }
}

/// What worker 0 tells the subscription thread, in order.
enum ToStanding {
    /// Build the topic's standing PageRank from the graph at `from`.
    Start {
        topic: Arc<Topic>,
        from: Lsn,
        vertices: Vec<Arc<Vertex>>,
        edges: Vec<Arc<Edge>>,
    },
    Stop(u64),
    /// One completed LSN's changes.
    Changes(Lsn, Vec<Change>),
    /// Every LSN up to this one is complete.
    Processed(Lsn),
}

/// Worker 0's side: takes the front's commands against the apply stage's graph, and hands
/// every completed LSN's changes to the subscription thread, which keeps the standing
/// PageRanks. Their pushes run there, not on worker 0, so a write's acknowledgement never
/// waits for them.
pub(crate) struct Hub {
    registry: Arc<Registry>,
    to_standing: crossbeam_channel::Sender<ToStanding>,
    /// Standing PageRanks started and not stopped (none: changes are not forwarded).
    active: usize,
    processed: Lsn,
}

impl Hub {
    pub fn new(registry: Arc<Registry>) -> Self {
        let (to_standing, receiver) = crossbeam_channel::unbounded();
        let thread_registry = registry.clone();
        let spawned = std::thread::Builder::new()
            .name("prism-subscriptions".into())
            .spawn(move || keep_standing(&thread_registry, receiver));
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start the subscription thread; subscriptions will time out");
        }
        Hub { registry, to_standing, active: 0, processed: 0 }
    }

    /// Whether no standing PageRank wants changes (then the operator drops them unseen: a new
    /// one starts from the apply stage's graph, which already holds them).
    pub fn is_idle(&self) -> bool {
        self.active == 0
    }

    /// Takes the front's commands: a new topic starts from the apply stage's graph at `lsn`
    /// (its vertices and edges shared, not copied).
    pub fn take_commands(&mut self, graph: &ApplyState, lsn: Lsn) {
        let commands = match self.registry.commands.lock() {
            Ok(mut commands) => std::mem::take(&mut *commands),
            Err(_) => return,
        };
        for command in commands {
            match command {
                Command::Start(topic) => {
                    self.active += 1;
                    let (vertices, edges) = graph.namespace_graph(&topic.params.namespace);
                    let start = ToStanding::Start { topic: topic.clone(), from: lsn, vertices, edges };
                    if self.to_standing.send(start).is_err() {
                        topic.fail("the subscription thread is not running (see the server log)".into());
                    }
                }
                Command::Stop(id) => {
                    self.active -= 1;
                    let _ = self.to_standing.send(ToStanding::Stop(id));
                }
            }
        }
    }

    /// One completed LSN's changes, in LSN order.
    pub fn completed(&mut self, lsn: Lsn, changes: Vec<Change>) {
        let _ = self.to_standing.send(ToStanding::Changes(lsn, changes));
    }

    /// Every LSN up to `lsn` is complete: heartbeats may claim it.
    pub fn processed_through(&mut self, lsn: Lsn) {
        if lsn > self.processed && !self.is_idle() {
            self.processed = lsn;
            let _ = self.to_standing.send(ToStanding::Processed(lsn));
        }
    }
}

struct Live {
    topic: Arc<Topic>,
    from: Lsn,
    state: StandingPageRank,
    last: Arc<RankUpdate>,
}

/// The subscription thread: builds, follows and publishes the standing PageRanks.
fn keep_standing(registry: &Registry, messages: crossbeam_channel::Receiver<ToStanding>) {
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut processed: Lsn = 0;
    for message in messages {
        match message {
            ToStanding::Start { topic, from, vertices, edges } => {
                if crate::engine::fault_injected("subscriptions") {
                    panic!("the subscription thread: PRISM_FAULT_PANIC asked for a panic on a new topic");
                }
                // Changes after `from` wait in the channel meanwhile.
                let started = std::time::Instant::now();
                let state = StandingPageRank::build(topic.params.clone(), &vertices, &edges);
                drop((vertices, edges));
                let lsn = processed.max(from);
                let last = Arc::new(state.top(lsn));
                tracing::info!(
                    topic = topic.id,
                    lsn,
                    members = state.members(),
                    seconds = started.elapsed().as_secs_f64(),
                    "standing PageRank built"
                );
                // Counted before the first result is published: a subscriber that has its
                // first result sees the standing PageRank counted.
                live.insert(topic.id, Live { topic: topic.clone(), from, state, last: last.clone() });
                registry.standing.send_replace(live.len());
                topic.processed.store(lsn, Ordering::Release);
                topic.publish(last);
            }
            ToStanding::Stop(id) => {
                if live.remove(&id).is_some() {
                    tracing::info!(topic = id, "standing PageRank dropped with its last subscriber");
                }
            }
            ToStanding::Changes(lsn, changes) => {
                for entry in live.values_mut().filter(|entry| lsn > entry.from) {
                    if !entry.state.apply(&changes) {
                        continue;
                    }
                    let update = entry.state.top(lsn);
                    if update.scores != entry.last.scores {
                        entry.last = Arc::new(update);
                        entry.topic.publish(entry.last.clone());
                    }
                }
            }
            ToStanding::Processed(lsn) => {
                processed = processed.max(lsn);
                for entry in live.values() {
                    entry.topic.processed.store(lsn.max(entry.from), Ordering::Release);
                }
            }
        }
        registry.standing.send_if_modified(|count| std::mem::replace(count, live.len()) != live.len());
    }
}
