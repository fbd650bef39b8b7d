//! The front's side of the subscriptions: a topic per parameter set, and each subscriber's
//! feed of its results.
//!
//! A subscriber joins the topic of its parameters (creating it, up to the cap, if it is the
//! first), reads the current result, then follows a bounded broadcast. Dropping the feed
//! leaves the topic; the last one out stops it, which the subscription thread sees before
//! its next slice of work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::{broadcast, watch};

use crate::algorithms::standing_page_rank::{RankUpdate, SubscriptionParams};
use crate::engine::wake::Waker;
use crate::engine::{EngineError, NamespaceGraph};
use crate::state::graph::Change;
use crate::state::model::{Edge, Lsn, Namespace, Shared, Vertex};

/// Messages the subscription thread's inbox holds: each completed LSN is one.
pub(crate) const INBOX: usize = 65_536;

/// What the subscription thread is told, in order.
pub(crate) enum ToStanding {
    /// A new topic: keep the changes of the LSNs after `after` for it (from the first worker).
    Pending { topic: Arc<Topic>, after: Lsn },
    /// Build the topic's standing PageRank from the graph at `from`, at least its `after`
    /// (from the subscriber that started it, which read the graph).
    Start { topic: Arc<Topic>, from: Lsn, vertices: Vec<Shared<Vertex>>, edges: Vec<Shared<Edge>> },
    /// One completed LSN's changes.
    Changes(Lsn, Arc<Vec<Change>>),
    /// Every LSN up to this one is complete.
    Processed(Lsn),
    /// A topic stopped: look at the topics again.
    Wake,
}

/// Why a feed ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the subscriber fell more than {buffer} messages behind")]
    Lagged { buffer: usize },
    /// The standing PageRank fell too far behind the log and was stopped (the message says
    /// which limit); subscribing again starts it afresh.
    #[error("{0}")]
    Behind(String),
    #[error("the standing PageRank stopped: {0}")]
    Closed(String),
}

/// What the broadcast of a topic carries.
#[derive(Clone, Debug)]
pub(crate) enum Published {
    Update(Arc<RankUpdate>),
    /// The topic ended: every feed ends with this.
    End(FeedError),
}

/// One parameter set's shared state between the front, the first worker and the
/// subscription thread.
pub(crate) struct Topic {
    pub id: u64,
    /// `params.key()`, under which the registry files the topic.
    pub key: String,
    pub params: SubscriptionParams,
    updates: broadcast::Sender<Published>,
    buffer: usize,
    /// The current result (`None` until the standing PageRank has settled, `Err` if it ended).
    latest: watch::Sender<Option<Result<Arc<RankUpdate>, FeedError>>>,
    /// Every change up to this LSN is reflected in what was published.
    pub processed: AtomicU64,
    /// Set once no subscriber is left (or the topic was cut off): its work stops.
    pub stopped: AtomicBool,
    /// Set by the first worker when it notices the topic: the changes of every LSN after it
    /// reach the topic, so its graph must be read at that LSN or later.
    pub changes_after: watch::Sender<Option<Lsn>>,
}

impl Topic {
    /// Publishes a result: the latest first, then the broadcast, so that a subscriber that
    /// joins in between sees it one way or the other.
    pub fn publish(&self, update: Arc<RankUpdate>) {
        self.latest.send_replace(Some(Ok(update.clone())));
        let _ = self.updates.send(Published::Update(update));
    }

    /// Ends every feed of the topic (and a first result still awaited) with `error`.
    fn end(&self, error: FeedError) {
        self.latest.send_replace(Some(Err(error.clone())));
        let _ = self.updates.send(Published::End(error));
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// The subscriptions of this process (served by the first worker and the subscription thread).
pub(crate) struct Registry {
    /// Topics by parameter key, with their number of subscribers.
    topics: Mutex<HashMap<String, (Arc<Topic>, usize)>>,
    /// Topics started, for the first worker to notice (it forwards their changes).
    starts: Mutex<Vec<Arc<Topic>>>,
    /// How many topics the registry holds: the first worker forwards changes while there are any.
    live: AtomicUsize,
    next_id: AtomicU64,
    waker: Waker,
    /// Most topics at once (`max_standing_page_ranks`).
    max_topics: usize,
    /// Standing PageRanks the subscription thread holds (built or being built).
    pub standing: watch::Sender<usize>,
    /// The subscription thread's inbox: the first worker sends on it, and a topic's end wakes
    /// the thread through it (so that the topic's state goes at once). Closed with the first
    /// worker's hub, which ends the thread.
    to_standing: Mutex<Option<Sender<ToStanding>>>,
    inbox: Mutex<Option<Receiver<ToStanding>>>,
}

impl Registry {
    pub fn new(waker: Waker, max_topics: usize) -> Self {
        let (to_standing, inbox) = crossbeam_channel::bounded(INBOX);
        Registry {
            to_standing: Mutex::new(Some(to_standing)),
            inbox: Mutex::new(Some(inbox)),
            topics: Mutex::default(),
            starts: Mutex::default(),
            live: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            waker,
            max_topics,
            standing: watch::Sender::new(0),
        }
    }

    /// Both ends of the subscription thread's inbox, for the hub that starts the thread
    /// (once).
    pub fn open_inbox(&self) -> Option<(Sender<ToStanding>, Receiver<ToStanding>)> {
        let sender = self.to_standing.lock().ok()?.clone()?;
        let receiver = self.inbox.lock().ok()?.take()?;
        Some((sender, receiver))
    }

    /// Drops this end of the inbox: with the hub's gone too, the thread ends.
    pub fn close_inbox(&self) {
        if let Ok(mut sender) = self.to_standing.lock() {
            sender.take();
        }
    }

    /// Wakes the subscription thread to notice a stopped topic (a full inbox wakes it anyway).
    fn wake_thread(&self) {
        if let Ok(Some(sender)) = self.to_standing.lock().as_deref() {
            let _ = sender.try_send(ToStanding::Wake);
        }
    }

    pub fn standing(&self) -> watch::Receiver<usize> {
        self.standing.subscribe()
    }

    /// Subscribers of every topic together.
    pub fn subscribers(&self) -> usize {
        self.topics.lock().map_or(0, |topics| topics.values().map(|(_, subscribers)| subscribers).sum())
    }

    /// Whether any topic wants changes.
    pub fn is_idle(&self) -> bool {
        self.live.load(Ordering::Acquire) == 0
    }

    /// The topics to start, once each.
    /// Whether topics started that the first worker has not noticed yet.
    pub fn has_starts(&self) -> bool {
        self.starts.lock().is_ok_and(|starts| !starts.is_empty())
    }

    pub fn take_starts(&self) -> Vec<Arc<Topic>> {
        self.starts.lock().map(|mut starts| std::mem::take(&mut *starts)).unwrap_or_default()
    }

    /// Joins (or starts) the topic of `params`; waits up to `timeout` for its first result.
    /// A topic started here starts from the graph `read_graph` reads at an LSN at least the
    /// one it is given.
    pub async fn subscribe<F, Fut>(
        self: &Arc<Self>,
        params: SubscriptionParams,
        buffer: usize,
        timeout: Duration,
        read_graph: F,
    ) -> Result<Subscribed, EngineError>
    where
        F: FnOnce(Namespace, Lsn) -> Fut,
        Fut: std::future::Future<Output = Result<NamespaceGraph, EngineError>>,
    {
        let key = params.key();
        let mut started = false;
        let (topic, receiver) = {
            let mut topics = self.topics.lock().map_err(|_| EngineError::Shutdown)?;
            if !topics.contains_key(&key) && topics.len() >= self.max_topics {
                return Err(EngineError::Limit(format!(
                    "max_standing_page_ranks: {} standing PageRanks (distinct subscription parameters) run \
                     already; subscribe with the parameters of one of them, or once one has ended",
                    self.max_topics
                )));
            }
            let entry = topics.entry(key.clone()).or_insert_with(|| {
                let buffer = buffer.max(1);
                let topic = Arc::new(Topic {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    key,
                    params,
                    updates: broadcast::channel(buffer).0,
                    buffer,
                    latest: watch::Sender::new(None),
                    processed: AtomicU64::new(0),
                    stopped: AtomicBool::new(false),
                    changes_after: watch::Sender::new(None),
                });
                self.live.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut starts) = self.starts.lock() {
                    starts.push(topic.clone());
                }
                self.waker.wake();
                started = true;
                (topic, 0)
            });
            entry.1 += 1;
            // Subscribed before the latest is read: a result published in between arrives here.
            (entry.0.clone(), entry.0.updates.subscribe())
        };
        let mut feed = PageRankFeed { registry: self.clone(), topic: topic.clone(), receiver, last: 0 };
        let first = tokio::time::timeout(timeout, async {
            if started {
                self.start(&topic, read_graph).await;
            }
            feed.first().await
        })
        .await
        .map_err(|_| EngineError::Timeout(timeout))??;
        feed.last = first.lsn;
        Ok(Subscribed { first, feed })
    }

    /// Reads the graph a new topic starts from, once the first worker has noticed it, and
    /// hands it to the subscription thread; a read that fails ends the topic with its error.
    async fn start<F, Fut>(&self, topic: &Arc<Topic>, read_graph: F)
    where
        F: FnOnce(Namespace, Lsn) -> Fut,
        Fut: std::future::Future<Output = Result<NamespaceGraph, EngineError>>,
    {
        let mut noticed = topic.changes_after.subscribe();
        let Ok(after) = noticed.wait_for(Option::is_some).await.map(|after| after.unwrap_or_default()) else { return };
        let start = match read_graph(topic.params.namespace.clone(), after).await {
            Ok((from, vertices, edges)) => ToStanding::Start { topic: topic.clone(), from, vertices, edges },
            Err(error) => return self.retire(topic, FeedError::Closed(error.to_string())),
        };
        let sender = self.to_standing.lock().ok().and_then(|sender| sender.clone());
        if sender.is_none_or(|sender| sender.try_send(start).is_err()) {
            let error = "the subscription thread is not running or is behind (see the server log)";
            self.retire(topic, FeedError::Closed(error.into()));
        }
    }

    fn leave(&self, topic: &Topic) {
        let Ok(mut topics) = self.topics.lock() else { return };
        if let Some((current, count)) = topics.get_mut(&topic.key) {
            if current.id == topic.id {
                *count -= 1;
                if *count == 0 {
                    topics.remove(&topic.key);
                    self.live.fetch_sub(1, Ordering::AcqRel);
                    topic.stopped.store(true, Ordering::Release);
                    drop(topics);
                    self.wake_thread();
                }
            }
        }
    }

    /// Stops a topic whatever its subscribers: their feeds end with `error`, and the next
    /// subscriber with its parameters starts it afresh.
    pub fn retire(&self, topic: &Topic, error: FeedError) {
        if let Ok(mut topics) = self.topics.lock() {
            if topics.get(&topic.key).is_some_and(|(current, _)| current.id == topic.id) {
                topics.remove(&topic.key);
                self.live.fetch_sub(1, Ordering::AcqRel);
            }
        }
        topic.stopped.store(true, Ordering::Release);
        topic.end(error);
        self.wake_thread();
    }

    /// Stops every topic (see [`Registry::retire`]).
    pub fn retire_all(&self, error: FeedError) {
        let topics: Vec<Arc<Topic>> = match self.topics.lock() {
            Ok(topics) => topics.values().map(|(topic, _)| topic.clone()).collect(),
            Err(_) => return,
        };
        for topic in topics {
            self.retire(&topic, error.clone());
        }
    }
}

/// A subscriber's end of a topic. Dropping it leaves the topic.
pub struct PageRankFeed {
    registry: Arc<Registry>,
    topic: Arc<Topic>,
    receiver: broadcast::Receiver<Published>,
    /// The LSN of the last result handed out (older broadcasts are skipped).
    last: Lsn,
}

/// A feed together with the result it starts from.
pub struct Subscribed {
    pub first: Arc<RankUpdate>,
    pub feed: PageRankFeed,
}

impl PageRankFeed {
    /// The current result, once there is one.
    async fn first(&self) -> Result<Arc<RankUpdate>, EngineError> {
        let mut latest = self.topic.latest.subscribe();
        let current = latest.wait_for(Option::is_some).await.map_err(|_| EngineError::Shutdown)?.clone();
        match current {
            Some(Ok(update)) => Ok(update),
            Some(Err(FeedError::Behind(reason))) => Err(EngineError::Limit(reason)),
            Some(Err(error)) => Err(EngineError::Subscription(error.to_string())),
            None => Err(EngineError::Shutdown),
        }
    }

    /// The next result, once the graph changes it.
    pub async fn next(&mut self) -> Result<Arc<RankUpdate>, FeedError> {
        loop {
            let published = match self.receiver.recv().await {
                Ok(published) => published,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(FeedError::Lagged { buffer: self.topic.buffer })
                }
                Err(broadcast::error::RecvError::Closed) => return Err(FeedError::Closed("shut down".into())),
            };
            if let Some(update) = self.fresh(published)? {
                return Ok(update);
            }
        }
    }

    /// A result already waiting, if any (for a heartbeat's check).
    pub fn try_next(&mut self) -> Result<Option<Arc<RankUpdate>>, FeedError> {
        loop {
            let published = match self.receiver.try_recv() {
                Ok(published) => published,
                Err(broadcast::error::TryRecvError::Empty) => return Ok(None),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    return Err(FeedError::Lagged { buffer: self.topic.buffer })
                }
                Err(broadcast::error::TryRecvError::Closed) => return Err(FeedError::Closed("shut down".into())),
            };
            if let Some(update) = self.fresh(published)? {
                return Ok(Some(update));
            }
        }
    }

    fn fresh(&mut self, published: Published) -> Result<Option<Arc<RankUpdate>>, FeedError> {
        match published {
            Published::End(error) => Err(error),
            Published::Update(update) => Ok((update.lsn > self.last).then(|| {
                self.last = update.lsn;
                update
            })),
        }
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
