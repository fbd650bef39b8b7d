//! One-shot graph algorithms (PageRank, connected components, label propagation) as a timely
//! dataflow: every worker reads its shard of the arranged graph at one LSN into a compact
//! local form and iterates there, exchanging each round's state with the other workers
//! through timely.
//!
//! One operator on every worker, in a loop (a feedback edge adds one to the time), runs
//! each query as a sequence of phases, one per time step: a phase at time `t` runs once
//! every worker's messages for `t` have arrived (the input frontier has passed `t`), and
//! what it sends arrives at `t + 1`. The phases of a query started at time `T`:
//!
//! - `T`: read the local vertices (passing the filter) and their out-edges; tell every
//!   worker the local count; ask each target's owner for the target's local index.
//! - `T + 1`: answer those questions (no index: not a member, so the edge is not in the
//!   induced subgraph); with the total count `N`, ranks start at `1/N`.
//! - `T + 2`: resolve targets to (owner, index); then one phase per iteration: send each
//!   owner a dense array of the shares (`rank / out-degree` per edge) for its members, and the
//!   local dangling rank to everyone; the next phase sums them into new ranks
//!   (`(1 - d) / N + d * (incoming + dangling / N)`, LDBC Graphalytics).
//! - last: send the local top scores to the worker that took the request, which answers.
//!
//! Community detection shares the phases up to the resolution (its neighbours are in- and
//! out-neighbours); each round then sends every member's label to its neighbours' owners and
//! takes the minimum (components, until a round changes nothing anywhere) or the most
//! frequent label (label propagation, a fixed number of rounds).
//!
//! Every worker steps through every phase of every query, messages or not, because the
//! frontier (not a message count) says when a phase is complete.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use differential_dataflow::hashable::Hashable;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, Concat, ConnectLoop, Feedback, Input};
use timely::dataflow::InputHandle;
use timely::worker::Worker;
use tokio::sync::oneshot;

use crate::engine::requests::Reply;
use crate::engine::{owner_of, EngineError};
use crate::filter::Filter;
use crate::model::{Lsn, Namespace, VertexKey};
use crate::query::{lookup_many, scan, Indexes};
use differential_dataflow::trace::TraceReader;

/// What a PageRank query asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageRankParams {
    pub iterations: u32,
    pub damping: f64,
    /// The induced subgraph of the vertices passing it.
    pub filter: Option<Filter>,
    /// Top this many by score (ties by id); all when 0.
    pub limit: usize,
}

/// Which community detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommunityAlgorithm {
    /// Weakly connected components; a community is named by its smallest vertex id.
    ConnectedComponents,
    /// Graphalytics CDLP: synchronous, each vertex takes the most frequent label among its in-
    /// and out-neighbours (ties to the smallest), for exactly `max_iterations` iterations.
    LabelPropagation,
    /// Louvain modularity maximisation on the graph taken as undirected (parallel edges in
    /// either direction add weight, self-loops count), run where the request arrived on the
    /// edges every worker hands in.
    Louvain,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommunityParams {
    pub algorithm: CommunityAlgorithm,
    /// Label propagation: iterations to run. Connected components: a cap on rounds.
    pub max_iterations: u32,
    /// The induced subgraph of the vertices passing it.
    pub filter: Option<Filter>,
}

/// What the loop computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Algorithm {
    PageRank(PageRankParams),
    Communities(CommunityParams),
}

/// One community: named by its smallest member id; members sorted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Community {
    pub id: String,
    pub members: Vec<String>,
    /// Its part of the partition's modularity (Louvain only; 0 otherwise).
    pub modularity: f64,
}

/// Communities sorted by id, consistent with an LSN, and the partition's modularity (Louvain
/// only; 0 otherwise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grouped {
    pub lsn: Lsn,
    pub communities: Vec<Community>,
    pub modularity: f64,
}

/// Scores, highest first, consistent with an LSN.
pub type Ranked = (Lsn, Vec<(String, f64)>);

pub(crate) type AlgorithmReplies = Rc<RefCell<HashMap<u64, oneshot::Sender<Reply>>>>;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Message {
    pub target: usize,
    pub query: u64,
    pub body: Body,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Body {
    Start {
        origin: usize,
        lsn: Lsn,
        namespace: Namespace,
        algorithm: Algorithm,
    },
    /// A worker's number of member vertices.
    Count {
        from: usize,
        count: u64,
    },
    /// What are the local indexes of these target ids? Answer to `from`.
    Probe {
        from: usize,
        ids: Vec<String>,
    },
    /// The answer to a probe: each id's index at the owner, in the order asked (`u32::MAX`:
    /// not a member).
    Indexes {
        from: usize,
        indexes: Vec<u32>,
    },
    /// One iteration's shares for the receiver's members, by their index.
    Shares(Vec<f64>),
    Dangling(f64),
    Scores(Vec<(String, f64)>),
    /// Neighbour labels for the receiver's members: (index, label).
    Labels(Vec<(u32, String)>),
    /// How many labels changed on the sender in the last round.
    Changed(u64),
    /// Final (vertex, label) pairs, to the origin.
    Assigned(Vec<(String, String)>),
    /// A worker's members and their out-edges (member index, target owner, target index), to
    /// the origin (Louvain).
    Subgraph {
        from: usize,
        ids: Vec<String>,
        edges: Vec<(u32, u32, u32)>,
    },
    /// The sender's shard was already compacted past the run's LSN when it read it.
    Compacted {
        since: Lsn,
    },
    /// The caller is gone (its deadline passed, or it cancelled): every worker stops the run.
    Cancel,
}

pub(crate) struct AlgorithmDataflow {
    pub input: InputHandle<u64, CapacityContainerBuilder<Vec<Message>>>,
    pub replies: AlgorithmReplies,
    /// The latest time a message arrived at: the input must move past it, even if this
    /// worker's clock is behind the clock of the worker that started the run.
    pub latest: Rc<std::cell::Cell<u64>>,
}

pub(crate) fn build(worker: &mut Worker, indexes: Rc<RefCell<Indexes>>) -> AlgorithmDataflow {
    let replies: AlgorithmReplies = Rc::new(RefCell::new(HashMap::new()));
    let answer_to = replies.clone();
    let latest = Rc::new(std::cell::Cell::new(0u64));
    let seen = latest.clone();
    let input = worker.dataflow::<u64, _, _>(|scope| {
        let me = scope.index();
        let peers = scope.peers();
        let (input, starts) = scope.new_input::<Vec<Message>>();
        let (handle, looped) = scope.feedback::<Vec<Message>>(1);
        let messages = starts.concat(looped);
        let sent = messages.unary_frontier(
            Exchange::new(|m: &Message| m.target as u64),
            "Algorithms",
            move |_capability, _info| {
                let mut stash: BTreeMap<u64, Vec<Message>> = BTreeMap::new();
                let mut runs: HashMap<u64, Run> = HashMap::new();
                move |(input, frontier), output| {
                    input.for_each_stamp(|capability, data| {
                        let Some(&time) = capability.least() else { return };
                        seen.set(seen.get().max(time));
                        for batch in data {
                            for message in batch.drain(..) {
                                if let Body::Start { .. } = &message.body {
                                    let run = Run::new(capability.delayed(&time, output.output_index()), message.query);
                                    runs.insert(message.query, run);
                                }
                                stash.entry(time).or_default().push(message);
                            }
                        }
                    });
                    // Run every query's phases whose time is complete, in time order.
                    while let Some(time) = runs.values().map(|r| *r.capability.time()).min() {
                        if frontier.less_equal(&time) {
                            break;
                        }
                        let arrived = stash.remove(&time).unwrap_or_default();
                        let mut by_query: HashMap<u64, Vec<Body>> = HashMap::new();
                        for message in arrived {
                            by_query.entry(message.query).or_default().push(message.body);
                        }
                        let due: Vec<u64> =
                            runs.iter().filter(|(_, r)| *r.capability.time() == time).map(|(q, _)| *q).collect();
                        for query in due {
                            let Some(mut run) = runs.remove(&query) else { continue };
                            let bodies = by_query.remove(&query).unwrap_or_default();
                            let mut outbox = Vec::new();
                            let done = run.phase(bodies, me, peers, &mut indexes.borrow_mut(), &mut outbox, &answer_to);
                            if !outbox.is_empty() {
                                output.session(&run.capability).give_iterator(outbox.into_iter());
                            }
                            if !done {
                                run.capability.downgrade(&(time + 1));
                                runs.insert(query, run);
                            }
                        }
                    }
                    // Messages for times no query waits on (a finished query) are dropped.
                    let oldest = runs.values().map(|r| *r.capability.time()).min().unwrap_or(u64::MAX);
                    stash.retain(|time, _| *time >= oldest);
                }
            },
        );
        sent.connect_loop(handle);
        input
    });
    AlgorithmDataflow { input, replies, latest }
}

/// A worker's members and their out-edges (member index, target owner, target index).
type Subgraph = (usize, Vec<String>, Vec<(u32, u32, u32)>);

/// One query on one worker.
struct Run {
    capability: Capability<u64>,
    query: u64,
    stage: Stage,
    origin: usize,
    lsn: Lsn,
    namespace: Namespace,
    params: PageRankParams,
    /// Set for community detection (then `params` only carries the filter).
    communities: Option<CommunityParams>,
    labels: Vec<String>,
    assigned: Vec<(String, String)>,
    /// At the origin (Louvain): each worker's members and edges.
    subgraphs: Vec<Subgraph>,
    /// Set when this worker's shard had compacted past the run's LSN before it read it.
    compacted: Option<Lsn>,
    /// Set at the origin when any worker reported `Compacted`.
    failed: Option<Lsn>,
    /// Local member vertices, sorted (a member's index is its position), and per vertex its
    /// out-edge targets (with their owners).
    ids: Vec<String>,
    out: Vec<Vec<(String, usize)>>,
    /// The same targets resolved to (owner, index at the owner), once owners have answered.
    resolved: Vec<Vec<(usize, u32)>>,
    /// What this worker asked each owner, in order.
    asked: HashMap<usize, Vec<String>>,
    /// Members per worker.
    counts: Vec<u64>,
    total: u64,
    ranks: Vec<f64>,
    iteration: u32,
    scores: Vec<(String, f64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Stage {
    Read,
    Members,
    Resolve,
    Iterate,
    Collect,
}

impl Run {
    fn new(capability: Capability<u64>, query: u64) -> Self {
        Run {
            capability,
            query,
            stage: Stage::Read,
            origin: 0,
            lsn: 0,
            namespace: Namespace::default(),
            params: PageRankParams { iterations: 0, damping: 0.85, filter: None, limit: 0 },
            communities: None,
            labels: Vec::new(),
            assigned: Vec::new(),
            subgraphs: Vec::new(),
            compacted: None,
            failed: None,
            ids: Vec::new(),
            out: Vec::new(),
            resolved: Vec::new(),
            asked: HashMap::new(),
            counts: Vec::new(),
            total: 0,
            ranks: Vec::new(),
            iteration: 0,
            scores: Vec::new(),
        }
    }

    fn send(&self, outbox: &mut Vec<Message>, target: usize, body: Body) {
        outbox.push(Message { target, query: self.query, body });
    }

    /// Runs this query's phase for the current time, given what arrived for it; true when
    /// the query is finished on this worker.
    fn phase(
        &mut self,
        bodies: Vec<Body>,
        me: usize,
        peers: usize,
        indexes: &mut Indexes,
        outbox: &mut Vec<Message>,
        replies: &AlgorithmReplies,
    ) -> bool {
        if bodies.iter().any(|body| matches!(body, Body::Cancel)) {
            return true;
        }
        if self.stage != Stage::Read && self.origin == me && self.caller_gone(replies) {
            // Sent now, the cancel reaches every worker at the next phase, which all of them
            // run at the same time: they all stop there.
            for target in (0..peers).filter(|&target| target != me) {
                self.send(outbox, target, Body::Cancel);
            }
            tracing::info!(
                query = self.query,
                "an algorithm run stopped: its caller's deadline passed or it cancelled"
            );
            return true;
        }
        if self.stage == Stage::Collect && self.failed_collecting(&bodies, replies) {
            return true;
        }
        match self.stage {
            Stage::Read => {
                for body in bodies {
                    if let Body::Start { origin, lsn, namespace, algorithm } = body {
                        (self.origin, self.lsn, self.namespace) = (origin, lsn, namespace);
                        match algorithm {
                            Algorithm::PageRank(params) => self.params = params,
                            Algorithm::Communities(communities) => {
                                self.params.filter = communities.filter.clone();
                                self.communities = Some(communities);
                            }
                        }
                    }
                }
                // A worker reaching this phase after the read hold would read a compacted state:
                // it still steps through the phases, and the run fails at the origin.
                let since = indexes.vertices.get_logical_compaction().first().copied().unwrap_or(0);
                if self.lsn < since {
                    self.compacted = Some(since);
                }
                self.read_shard(indexes, peers);
                for target in 0..peers {
                    self.send(outbox, target, Body::Count { from: me, count: self.ids.len() as u64 });
                }
                // Resolve every target to its owner's dense index once, so that iterations
                // exchange arrays of numbers, not ids.
                let mut asks: HashMap<usize, Vec<String>> = HashMap::new();
                for targets in &self.out {
                    for (id, owner) in targets {
                        asks.entry(*owner).or_default().push(id.clone());
                    }
                }
                for (owner, mut ids) in asks {
                    ids.sort();
                    ids.dedup();
                    self.send(outbox, owner, Body::Probe { from: me, ids: ids.clone() });
                    self.asked.insert(owner, ids);
                }
                self.stage = Stage::Members;
                false
            }
            Stage::Members => {
                self.counts = vec![0; peers];
                let mut answers = Vec::new();
                for body in bodies {
                    match body {
                        Body::Count { from, count } => self.counts[from] = count,
                        Body::Probe { from, ids } => {
                            let indexes = ids
                                .iter()
                                .map(|id| self.ids.binary_search(id).map_or(u32::MAX, |i| i as u32))
                                .collect();
                            answers.push((from, indexes));
                        }
                        _ => {}
                    }
                }
                self.total = self.counts.iter().sum();
                for (from, indexes) in answers {
                    self.send(outbox, from, Body::Indexes { from: me, indexes });
                }
                self.ranks = vec![1.0 / self.total.max(1) as f64; self.ids.len()];
                self.stage = Stage::Resolve;
                false
            }
            Stage::Resolve => {
                let mut at_owner: HashMap<usize, HashMap<String, u32>> = HashMap::new();
                for body in bodies {
                    if let Body::Indexes { from, indexes } = body {
                        let asked = self.asked.remove(&from).unwrap_or_default();
                        at_owner.insert(from, asked.into_iter().zip(indexes).collect());
                    }
                }
                // Targets that are not members (filtered out) are dropped: the induced subgraph.
                self.resolved = self
                    .out
                    .iter()
                    .map(|targets| {
                        targets
                            .iter()
                            .filter_map(|(id, owner)| {
                                let index = *at_owner.get(owner)?.get(id)?;
                                (index != u32::MAX).then_some((*owner, index))
                            })
                            .collect()
                    })
                    .collect();
                self.out = Vec::new();
                self.stage = Stage::Iterate;
                if self.is_louvain() {
                    let edges = self
                        .resolved
                        .iter()
                        .enumerate()
                        .flat_map(|(i, targets)| {
                            targets.iter().map(move |&(owner, index)| (i as u32, owner as u32, index))
                        })
                        .collect();
                    let part = Body::Subgraph { from: me, ids: self.ids.clone(), edges };
                    return self.hand_in(part, outbox, replies);
                }
                if self.communities.is_some() {
                    self.labels = self.ids.clone();
                    return self.propagate(Vec::new(), peers, outbox, replies);
                }
                self.iterate(Vec::new(), peers, outbox, replies)
            }
            Stage::Iterate if self.communities.is_some() => self.propagate(bodies, peers, outbox, replies),
            Stage::Iterate => self.iterate(bodies, peers, outbox, replies),
            Stage::Collect if self.is_louvain() => {
                for body in bodies {
                    if let Body::Subgraph { from, ids, edges } = body {
                        self.subgraphs.push((from, ids, edges));
                    }
                }
                let grouped = self.louvain();
                if let Some(reply) = replies.borrow_mut().remove(&self.query) {
                    let _ = reply.send(Reply::Communities(Ok(grouped)));
                }
                true
            }
            Stage::Collect if self.communities.is_some() => {
                for body in bodies {
                    if let Body::Assigned(pairs) = body {
                        self.assigned.extend(pairs);
                    }
                }
                let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for (id, label) in std::mem::take(&mut self.assigned) {
                    groups.entry(label).or_default().push(id);
                }
                let communities = groups
                    .into_iter()
                    .map(|(label, mut members)| {
                        members.sort();
                        Community { id: label, members, modularity: 0.0 }
                    })
                    .collect();
                let grouped = Grouped { lsn: self.lsn, communities, modularity: 0.0 };
                if let Some(reply) = replies.borrow_mut().remove(&self.query) {
                    let _ = reply.send(Reply::Communities(Ok(grouped)));
                }
                true
            }
            Stage::Collect => {
                for body in bodies {
                    if let Body::Scores(scores) = body {
                        self.scores.extend(scores);
                    }
                }
                let scores = top(std::mem::take(&mut self.scores), self.params.limit);
                if let Some(reply) = replies.borrow_mut().remove(&self.query) {
                    let _ = reply.send(Reply::Ranked(Ok((self.lsn, scores))));
                }
                true
            }
        }
    }

    /// At the origin: whether nobody waits for the answer any more (the front gave up at the
    /// call's deadline, or the call was cancelled, and dropped its end of the reply).
    fn caller_gone(&self, replies: &AlgorithmReplies) -> bool {
        replies.borrow().get(&self.query).is_none_or(|reply| reply.is_closed())
    }

    /// At the origin: if any worker read a compacted shard, answers with the error and
    /// returns true.
    fn failed_collecting(&mut self, bodies: &[Body], replies: &AlgorithmReplies) -> bool {
        for body in bodies {
            if let Body::Compacted { since } = body {
                self.failed = Some(self.failed.map_or(*since, |s| s.max(*since)));
            }
        }
        let Some(since) = self.failed else { return false };
        if let Some(reply) = replies.borrow_mut().remove(&self.query) {
            let error = EngineError::Compacted { lsn: self.lsn, since };
            let _ = reply.send(match self.communities {
                Some(_) => Reply::Communities(Err(error)),
                None => Reply::Ranked(Err(error)),
            });
        }
        true
    }

    /// Sends this worker's part of the answer to the origin; true (done) on every worker but
    /// the origin, which goes on to collect the parts.
    fn hand_in(&mut self, part: Body, outbox: &mut Vec<Message>, replies: &AlgorithmReplies) -> bool {
        let part = match self.compacted {
            Some(since) => Body::Compacted { since },
            None => part,
        };
        self.send(outbox, self.origin, part);
        self.stage = Stage::Collect;
        !replies.borrow().contains_key(&self.query)
    }

    /// Folds in the shares and dangling rank of the last iteration (if any), then either sends
    /// the next iteration's or, after the last, the local scores to the origin.
    fn iterate(
        &mut self,
        bodies: Vec<Body>,
        peers: usize,
        outbox: &mut Vec<Message>,
        replies: &AlgorithmReplies,
    ) -> bool {
        if self.iteration > 0 {
            let n = self.total.max(1) as f64;
            let d = self.params.damping;
            let mut incoming = vec![0.0; self.ids.len()];
            let mut dangling = 0.0;
            for body in bodies {
                match body {
                    Body::Shares(shares) => {
                        for (slot, share) in incoming.iter_mut().zip(shares) {
                            *slot += share;
                        }
                    }
                    Body::Dangling(mass) => dangling += mass,
                    _ => {}
                }
            }
            for (rank, incoming) in self.ranks.iter_mut().zip(incoming) {
                *rank = (1.0 - d) / n + d * (incoming + dangling / n);
            }
        }
        if self.iteration == self.params.iterations {
            let local: Vec<(String, f64)> = self.ids.iter().cloned().zip(self.ranks.iter().copied()).collect();
            let scores = top(local, self.params.limit);
            return self.hand_in(Body::Scores(scores), outbox, replies);
        }
        let mut shares: Vec<Vec<f64>> = self.counts.iter().map(|n| vec![0.0; *n as usize]).collect();
        let mut dangling = 0.0;
        for (rank, targets) in self.ranks.iter().zip(&self.resolved) {
            if targets.is_empty() {
                dangling += rank;
                continue;
            }
            let share = rank / targets.len() as f64;
            for (owner, index) in targets {
                shares[*owner][*index as usize] += share;
            }
        }
        for (owner, list) in shares.into_iter().enumerate() {
            if !list.is_empty() {
                self.send(outbox, owner, Body::Shares(list));
            }
        }
        for target in 0..peers {
            self.send(outbox, target, Body::Dangling(dangling));
        }
        self.iteration += 1;
        false
    }

    /// One round of label propagation: fold in the neighbours' labels sent last round, then
    /// either finish (sending the labels to the origin) or send this round's labels.
    fn propagate(
        &mut self,
        bodies: Vec<Body>,
        peers: usize,
        outbox: &mut Vec<Message>,
        replies: &AlgorithmReplies,
    ) -> bool {
        let Some(communities) = self.communities.clone() else { return true };
        let components = communities.algorithm == CommunityAlgorithm::ConnectedComponents;
        let mut finished = false;
        if self.iteration > 0 {
            let mut heard: Vec<Vec<String>> = vec![Vec::new(); self.ids.len()];
            let mut changed_last = 0;
            for body in bodies {
                match body {
                    Body::Labels(labels) => {
                        for (index, label) in labels {
                            if let Some(slot) = heard.get_mut(index as usize) {
                                slot.push(label);
                            }
                        }
                    }
                    Body::Changed(n) => changed_last += n,
                    _ => {}
                }
            }
            if components && self.iteration > 1 && changed_last == 0 {
                finished = true;
            } else {
                let mut changed = 0u64;
                for (label, heard) in self.labels.iter_mut().zip(heard) {
                    let next = if components {
                        heard.into_iter().chain(std::iter::once(label.clone())).min()
                    } else {
                        most_frequent(heard)
                    };
                    if let Some(next) = next.filter(|n| n != label) {
                        *label = next;
                        changed += 1;
                    }
                }
                if components {
                    for target in 0..peers {
                        self.send(outbox, target, Body::Changed(changed));
                    }
                    // A cap on rounds (0: none); every worker reaches it at the same phase.
                    finished = communities.max_iterations > 0 && self.iteration >= communities.max_iterations;
                } else {
                    finished = self.iteration >= communities.max_iterations;
                }
            }
        } else if communities.max_iterations == 0 && !components {
            finished = true;
        }
        if finished {
            let assigned = self.ids.iter().cloned().zip(self.labels.iter().cloned()).collect();
            return self.hand_in(Body::Assigned(assigned), outbox, replies);
        }
        let mut labels: Vec<Vec<(u32, String)>> = vec![Vec::new(); peers];
        for (label, neighbours) in self.labels.iter().zip(&self.resolved) {
            for (owner, index) in neighbours {
                labels[*owner].push((*index, label.clone()));
            }
        }
        for (owner, list) in labels.into_iter().enumerate() {
            if !list.is_empty() {
                self.send(outbox, owner, Body::Labels(list));
            }
        }
        if components && self.iteration == 0 {
            // Nothing is known to be stable before the first round.
            for target in 0..peers {
                self.send(outbox, target, Body::Changed(1));
            }
        }
        self.iteration += 1;
        false
    }

    fn is_louvain(&self) -> bool {
        self.communities.as_ref().is_some_and(|c| c.algorithm == CommunityAlgorithm::Louvain)
    }

    /// At the origin: Louvain over every worker's members and edges, numbered by worker then
    /// member index.
    fn louvain(&mut self) -> Grouped {
        let mut offsets = vec![0u32; self.counts.len() + 1];
        for (worker, count) in self.counts.iter().enumerate() {
            offsets[worker + 1] = offsets[worker] + *count as u32;
        }
        let mut names = vec![String::new(); offsets.last().copied().unwrap_or(0) as usize];
        let mut edges = Vec::new();
        for (from, ids, part) in std::mem::take(&mut self.subgraphs) {
            for (i, id) in ids.into_iter().enumerate() {
                names[offsets[from] as usize + i] = id;
            }
            edges.extend(
                part.into_iter().map(|(i, owner, index)| (offsets[from] + i, offsets[owner as usize] + index, 1.0)),
            );
        }
        let community = crate::louvain::louvain(names.len(), &edges);
        let (modularity, parts) = crate::louvain::modularity(&edges, &community);
        let mut members: Vec<Vec<String>> = vec![Vec::new(); parts.len().max(1)];
        for (name, c) in names.into_iter().zip(&community) {
            members[*c as usize].push(name);
        }
        let mut communities: Vec<Community> = members
            .into_iter()
            .zip(parts.into_iter().chain(std::iter::repeat(0.0)))
            .filter(|(members, _)| !members.is_empty())
            .map(|(mut members, modularity)| {
                members.sort();
                Community { id: members[0].clone(), members, modularity }
            })
            .collect();
        communities.sort_by(|a, b| a.id.cmp(&b.id));
        Grouped { lsn: self.lsn, communities, modularity }
    }

    /// Reads this worker's members and their out-edges at the query's LSN.
    fn read_shard(&mut self, indexes: &mut Indexes, peers: usize) {
        let namespace = self.namespace.clone();
        let filter = self.params.filter.clone();
        let mut ids = Vec::new();
        scan(&mut indexes.vertices, self.lsn, |key, vertex| {
            if key.namespace == namespace && filter.as_ref().is_none_or(|f| f.matches_vertex(vertex)) {
                ids.push(key.id.clone());
            }
        });
        ids.sort();
        let keys: Vec<VertexKey> = ids.iter().map(|id| VertexKey::new(&namespace, id)).collect();
        let mut out = vec![Vec::new(); ids.len()];
        lookup_many(&mut indexes.out_edges, &keys, self.lsn, |i, edge| {
            let target = VertexKey::new(&namespace, &edge.to);
            out[i].push((edge.to.clone(), owner_of(target.hashed(), peers)));
        });
        if self.communities.is_some() && !self.is_louvain() {
            // Label propagation and components see neighbours both ways: in-neighbours too
            // (Louvain takes each edge once, from its source's shard).
            lookup_many(&mut indexes.in_edges, &keys, self.lsn, |i, edge| {
                let source = VertexKey::new(&namespace, &edge.from);
                out[i].push((edge.from.clone(), owner_of(source.hashed(), peers)));
            });
        }
        self.ids = ids;
        self.out = out;
    }
}

/// The most frequent label (ties to the smallest); none when nothing was heard.
fn most_frequent(labels: Vec<String>) -> Option<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    // BTreeMap iterates in label order, so the first of the most frequent is the smallest.
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(label, _)| label)
}

/// The `limit` highest scores (all when 0), ties by id.
fn top(mut scores: Vec<(String, f64)>, limit: usize) -> Vec<(String, f64)> {
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if limit > 0 {
        scores.truncate(limit);
    }
    scores
}
