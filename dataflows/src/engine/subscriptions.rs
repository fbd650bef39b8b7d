//! PageRank subscriptions: standing PageRanks shared by every subscriber with the same
//! parameters, fed by the changes of the vertex and edge collections.
//!
//! Two halves meet here:
//! - the front's side, [`Registry`] and [`PageRankFeed`]: a subscriber joins the topic of its
//!   parameters (creating it if it is the first), reads the current result, then follows a
//!   bounded broadcast; dropping the feed leaves the topic, and the last one out stops it;
//! - worker 0's side, [`Hub`]: it builds a topic's [`StandingPageRank`] from the apply stage's
//!   current graph (on a helper thread, so that the worker keeps serving), then applies every
//!   completed LSN's changes, which a sink operator on the collections hands it (see
//!   `graph.rs`), and publishes the ranking whenever it changes.
//!
//! Why worker 0, whole: the collections' changes originate there (the apply stage feeds them),
//! so following them needs no exchange, and a change's pushes run in one loop with no rounds
//! of progress messages between workers. Different parameter sets are different states; one
//! set lives on one worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::apply::{ApplyState, Change};
use crate::engine::wake::Waker;
use crate::engine::EngineError;
use crate::model::Lsn;
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
            let entry = topics.entry(key).or_insert_with(|| {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let buffer = buffer.max(1);
                let topic = Arc::new(Topic {
                    id,
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
        let key = topic.params.key();
        let last = match topics.get_mut(&key) {
            Some((current, count)) if current.id == topic.id => {
                *count -= 1;
                *count == 0
            }
            _ => false,
        };
        if last {
            topics.remove(&key);
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

/// A standing PageRank on worker 0.
enum Standing {
    /// Built on a helper thread from the graph at `from`; later changes wait in `backlog`.
    Building {
        topic: Arc<Topic>,
        from: Lsn,
        built: mpsc::Receiver<StandingPageRank>,
        backlog: Vec<(Lsn, Vec<Change>)>,
    },
    Live {
        topic: Arc<Topic>,
        from: Lsn,
        state: Box<StandingPageRank>,
        last: Option<Arc<RankUpdate>>,
    },
}

/// Worker 0's side: the standing PageRanks and what feeds them.
pub(crate) struct Hub {
    registry: Arc<Registry>,
    standing: HashMap<u64, Standing>,
    /// Every LSN up to this one has been handed to [`Hub::completed`].
    processed: Lsn,
}

impl Hub {
    pub fn new(registry: Arc<Registry>) -> Self {
        Hub { registry, standing: HashMap::new(), processed: 0 }
    }

    /// Whether any standing PageRank wants changes (else the operator drops them unseen).
    pub fn is_idle(&self) -> bool {
        self.standing.is_empty()
    }

    /// Takes the front's commands: a new topic starts from the apply stage's graph at `lsn`.
    pub fn take_commands(&mut self, graph: &ApplyState, lsn: Lsn) {
        let commands = match self.registry.commands.lock() {
            Ok(mut commands) => std::mem::take(&mut *commands),
            Err(_) => return,
        };
        for command in commands {
            match command {
                Command::Start(topic) => {
                    let (vertices, edges) = graph.namespace_graph(&topic.params.namespace);
                    let params = topic.params.clone();
                    let (done, built) = mpsc::channel();
                    let waker = self.registry.waker.clone();
                    let spawned = std::thread::Builder::new().name("prism-standing-build".into()).spawn(move || {
                        let _ = done.send(StandingPageRank::build(params, &vertices, &edges));
                        waker.wake();
                    });
                    if let Err(error) = spawned {
                        topic.fail(format!("could not start building: {error}"));
                        continue;
                    }
                    tracing::info!(topic = topic.id, lsn, params = ?topic.params, "standing PageRank started");
                    self.standing.insert(topic.id, Standing::Building { topic, from: lsn, built, backlog: Vec::new() });
                }
                Command::Stop(id) => {
                    if self.standing.remove(&id).is_some() {
                        tracing::info!(topic = id, "standing PageRank dropped with its last subscriber");
                    }
                }
            }
        }
        self.registry.standing.send_replace(self.standing.len());
    }

    /// Makes built standing PageRanks live: catches up on their backlog, publishes.
    pub fn poll_builds(&mut self) {
        let processed = self.processed;
        for entry in self.standing.values_mut() {
            let Standing::Building { topic, from, built, backlog } = entry else { continue };
            let mut state = match built.try_recv() {
                Ok(state) => Box::new(state),
                Err(mpsc::TryRecvError::Empty) => continue,
                Err(mpsc::TryRecvError::Disconnected) => {
                    topic.fail("building the standing PageRank failed".into());
                    continue;
                }
            };
            for (_, changes) in backlog.drain(..) {
                state.apply(&changes);
            }
            let lsn = processed.max(*from);
            let update = Arc::new(state.top(lsn));
            topic.publish(update.clone());
            topic.processed.store(lsn, Ordering::Release);
            *entry = Standing::Live { topic: topic.clone(), from: *from, state, last: Some(update) };
        }
    }

    /// One completed LSN's changes (in LSN order; called for LSNs with changes only).
    pub fn completed(&mut self, lsn: Lsn, changes: &[Change]) {
        for entry in self.standing.values_mut() {
            match entry {
                Standing::Building { from, backlog, .. } if lsn > *from => backlog.push((lsn, changes.to_vec())),
                Standing::Live { topic, from, state, last } if lsn > *from => {
                    if !state.apply(changes) {
                        continue;
                    }
                    let update = state.top(lsn);
                    let same = last.as_ref().is_some_and(|l| l.scores == update.scores);
                    if !same {
                        let update = Arc::new(update);
                        topic.publish(update.clone());
                        *last = Some(update);
                    }
                }
                _ => {}
            }
        }
    }

    /// Every LSN up to `lsn` has been handed over: heartbeats may claim it.
    pub fn processed_through(&mut self, lsn: Lsn) {
        self.processed = self.processed.max(lsn);
        for entry in self.standing.values() {
            if let Standing::Live { topic, from, .. } = entry {
                topic.processed.store(lsn.max(*from), Ordering::Release);
            }
        }
    }
}
