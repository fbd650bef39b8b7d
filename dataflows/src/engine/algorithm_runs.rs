//! The loop that runs one-shot algorithms (`crate::algorithms`) over every worker's shard
//! of the arranged graph at one LSN, exchanging each round's messages through timely.
//!
//! One operator on every worker, in a loop (a feedback edge adds one to the time), runs
//! each query as a sequence of phases, one per time step: a phase at time `t` runs once
//! every worker's messages for `t` have arrived (the input frontier has passed `t`), and
//! what it sends arrives at `t + 1`. The phases of a query started at time `T`:
//!
//! - `T`: read the local members (vertices passing the filter) and their neighbours'
//!   numbers; tell every worker which of the local numbers are members.
//! - `T + 1`: resolve the neighbours into a [`Shard`]; then one phase per round of the
//!   algorithm (`page_rank.rs`, `label_rounds.rs`), or, for Louvain, hand the shard to the
//!   worker that took the request, which runs it whole (`louvain.rs`).
//! - last: the worker that took the request collects the parts and answers.
//!
//! Every worker steps through every phase of every query, messages or not, because the
//! frontier (not a message count) says when a phase is complete.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use differential_dataflow::trace::TraceReader;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, Concat, ConnectLoop, Feedback, Input};
use timely::dataflow::InputHandle;
use timely::worker::Worker;
use tokio::sync::oneshot;

use crate::algorithms::louvain::{self, Part};
use crate::algorithms::page_rank::{self, PageRank, Shares};
use crate::algorithms::{Algorithm, Community, CommunityAlgorithm, Grouped, LabelRounds, Round, Shard, Unresolved};
use crate::engine::reply::{EngineError, Reply};
use crate::read::query::{lookup_many, scan, Indexes};
use crate::state::model::{AdjacencyKey, Id, Lsn, Namespace};

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
    /// Which of a worker's vertex numbers are members: a bit per index.
    Members {
        from: usize,
        membership: Vec<u64>,
    },
    /// One PageRank round's shares for the receiver's members, by their index.
    Shares(Vec<f64>),
    Dangling(f64),
    Scores(Vec<(Id, f64)>),
    /// Neighbour labels for the receiver's members: (index, label).
    Labels(Vec<(u32, Id)>),
    /// How many labels changed on the sender in the last round.
    Changed(u64),
    /// Final (vertex, label) pairs, to the origin.
    Assigned(Vec<(Id, Id)>),
    /// A worker's members and out-edges, to the origin (Louvain).
    Part {
        from: usize,
        part: Part,
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

/// One query on one worker.
struct Run {
    capability: Capability<u64>,
    query: u64,
    origin: usize,
    lsn: Lsn,
    namespace: Namespace,
    algorithm: Option<Algorithm>,
    phase: Phase,
    /// Set when this worker's shard had compacted past the run's LSN before it read it.
    compacted: Option<Lsn>,
}

/// Where a run is, with what that phase needs.
enum Phase {
    Read,
    Members(Unresolved),
    PageRank(Shard, PageRank),
    Labels(Shard, LabelRounds),
    /// At the origin only: the parts the workers hand in.
    Collect(Collected),
}

/// What the origin gathers in the last phase.
enum Collected {
    Scores { limit: usize },
    Labels,
    Louvain,
}

impl Run {
    fn new(capability: Capability<u64>, query: u64) -> Self {
        Run {
            capability,
            query,
            origin: 0,
            lsn: 0,
            namespace: Namespace::default(),
            algorithm: None,
            phase: Phase::Read,
            compacted: None,
        }
    }

    fn send(&self, outbox: &mut Vec<Message>, target: usize, body: Body) {
        outbox.push(Message { target, query: self.query, body });
    }

    fn broadcast(&self, outbox: &mut Vec<Message>, peers: usize, body: impl Fn() -> Body) {
        for target in 0..peers {
            self.send(outbox, target, body());
        }
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
        if !matches!(self.phase, Phase::Read) && self.origin == me && self.caller_gone(replies) {
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
        match std::mem::replace(&mut self.phase, Phase::Read) {
            Phase::Read => {
                self.start(bodies, indexes);
                let unresolved = self.read_shard(indexes, peers);
                let membership = unresolved.membership();
                self.broadcast(outbox, peers, || Body::Members { from: me, membership: membership.to_vec() });
                self.phase = Phase::Members(unresolved);
                false
            }
            Phase::Members(unresolved) => {
                let mut memberships = vec![Vec::new(); peers];
                for body in bodies {
                    if let Body::Members { from, membership } = body {
                        memberships[from] = membership;
                    }
                }
                let shard = unresolved.resolve(memberships);
                match self.algorithm.clone() {
                    Some(Algorithm::PageRank(params)) => {
                        let rank = PageRank::new(&params, &shard);
                        self.rank_round(shard, rank, Vec::new(), peers, outbox, replies)
                    }
                    Some(Algorithm::Communities(params)) if params.algorithm == CommunityAlgorithm::Louvain => {
                        let edges = shard
                            .neighbours
                            .iter()
                            .enumerate()
                            .flat_map(|(i, targets)| {
                                targets.iter().map(move |&(owner, index)| (i as u32, owner as u32, index))
                            })
                            .collect();
                        let part = Body::Part { from: me, part: (shard.ids, edges) };
                        self.hand_in(part, Collected::Louvain, outbox, replies)
                    }
                    Some(Algorithm::Communities(params)) => {
                        let rounds = LabelRounds::new(&params, &shard);
                        self.label_round(shard, rounds, Vec::new(), peers, outbox, replies)
                    }
                    None => true,
                }
            }
            Phase::PageRank(shard, rank) => self.rank_round(shard, rank, bodies, peers, outbox, replies),
            Phase::Labels(shard, rounds) => self.label_round(shard, rounds, bodies, peers, outbox, replies),
            Phase::Collect(collected) => {
                self.collect(collected, bodies, peers, replies);
                true
            }
        }
    }

    fn start(&mut self, bodies: Vec<Body>, indexes: &mut Indexes) {
        for body in bodies {
            if let Body::Start { origin, lsn, namespace, algorithm } = body {
                (self.origin, self.lsn, self.namespace, self.algorithm) = (origin, lsn, namespace, Some(algorithm));
            }
        }
        // A worker reaching this phase after the read hold would read a compacted state: it
        // still steps through the phases, and the run fails at the origin.
        let since = indexes.vertices.get_logical_compaction().first().copied().unwrap_or(0);
        if self.lsn < since {
            self.compacted = Some(since);
        }
    }

    /// Folds in a PageRank round's shares, then sends the next round's, or after the last
    /// this worker's top scores to the origin.
    fn rank_round(
        &mut self,
        shard: Shard,
        mut rank: PageRank,
        bodies: Vec<Body>,
        peers: usize,
        outbox: &mut Vec<Message>,
        replies: &AlgorithmReplies,
    ) -> bool {
        let mut shares = Vec::new();
        let mut dangling = 0.0;
        for body in bodies {
            match body {
                Body::Shares(list) => shares.push(list),
                Body::Dangling(mass) => dangling += mass,
                _ => {}
            }
        }
        rank.receive(&shard, shares, dangling);
        if rank.finished() {
            let limit = rank.limit();
            return self.hand_in(Body::Scores(rank.scores(&shard)), Collected::Scores { limit }, outbox, replies);
        }
        let Shares { to_owner, dangling } = rank.send(&shard);
        for (owner, list) in to_owner.into_iter().enumerate() {
            if !list.is_empty() {
                self.send(outbox, owner, Body::Shares(list));
            }
        }
        self.broadcast(outbox, peers, || Body::Dangling(dangling));
        self.phase = Phase::PageRank(shard, rank);
        false
    }

    /// Folds in the labels heard last round, then sends this round's, or when finished the
    /// labels to the origin.
    fn label_round(
        &mut self,
        shard: Shard,
        mut rounds: LabelRounds,
        bodies: Vec<Body>,
        peers: usize,
        outbox: &mut Vec<Message>,
        replies: &AlgorithmReplies,
    ) -> bool {
        let mut heard: Vec<Vec<Id>> = vec![Vec::new(); shard.ids.len()];
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
        match rounds.step(&shard, heard, changed_last) {
            Round::Finished(assigned) => self.hand_in(Body::Assigned(assigned), Collected::Labels, outbox, replies),
            Round::Send { labels, changed } => {
                for (owner, list) in labels.into_iter().enumerate() {
                    if !list.is_empty() {
                        self.send(outbox, owner, Body::Labels(list));
                    }
                }
                if let Some(changed) = changed {
                    self.broadcast(outbox, peers, || Body::Changed(changed));
                }
                self.phase = Phase::Labels(shard, rounds);
                false
            }
        }
    }

    /// At the origin: whether nobody waits for the answer any more (the front gave up at the
    /// call's deadline, or the call was cancelled, and dropped its end of the reply).
    fn caller_gone(&self, replies: &AlgorithmReplies) -> bool {
        replies.borrow().get(&self.query).is_none_or(|reply| reply.is_closed())
    }

    /// Sends this worker's part of the answer to the origin; true (done) on every worker but
    /// the origin, which goes on to collect the parts.
    fn hand_in(
        &mut self,
        part: Body,
        collected: Collected,
        outbox: &mut Vec<Message>,
        replies: &AlgorithmReplies,
    ) -> bool {
        let part = match self.compacted {
            Some(since) => Body::Compacted { since },
            None => part,
        };
        self.send(outbox, self.origin, part);
        self.phase = Phase::Collect(collected);
        !replies.borrow().contains_key(&self.query)
    }

    /// At the origin: puts the parts together and answers (an error if any worker read a
    /// compacted shard).
    fn collect(&mut self, collected: Collected, bodies: Vec<Body>, peers: usize, replies: &AlgorithmReplies) {
        let Some(reply) = replies.borrow_mut().remove(&self.query) else { return };
        let failed = bodies
            .iter()
            .filter_map(|body| if let Body::Compacted { since } = body { Some(*since) } else { None })
            .max();
        let answer = match (collected, failed) {
            (Collected::Scores { .. }, Some(since)) => {
                Reply::Ranked(Err(EngineError::Compacted { lsn: self.lsn, since }))
            }
            (_, Some(since)) => Reply::Communities(Err(EngineError::Compacted { lsn: self.lsn, since })),
            (Collected::Scores { limit }, None) => {
                let scores =
                    bodies.into_iter().flat_map(|body| if let Body::Scores(s) = body { s } else { Vec::new() });
                Reply::Ranked(Ok((self.lsn, page_rank::top(scores.collect(), limit))))
            }
            (Collected::Labels, None) => {
                let mut groups: BTreeMap<Id, Vec<Id>> = BTreeMap::new();
                for body in bodies {
                    if let Body::Assigned(pairs) = body {
                        for (id, label) in pairs {
                            groups.entry(label).or_default().push(id);
                        }
                    }
                }
                let communities = groups
                    .into_iter()
                    .map(|(label, mut members)| {
                        members.sort();
                        Community { id: label, members, modularity: 0.0 }
                    })
                    .collect();
                Reply::Communities(Ok(Grouped { lsn: self.lsn, communities, modularity: 0.0 }))
            }
            (Collected::Louvain, None) => {
                let mut parts: Vec<Part> = vec![Default::default(); peers];
                for body in bodies {
                    if let Body::Part { from, part } = body {
                        parts[from] = part;
                    }
                }
                Reply::Communities(Ok(louvain::gathered(self.lsn, parts)))
            }
        };
        let _ = reply.send(answer);
    }

    /// Reads this worker's members and their neighbours at the query's LSN.
    fn read_shard(&self, indexes: &mut Indexes, peers: usize) -> Unresolved {
        let Some(algorithm) = &self.algorithm else { return Unresolved::default() };
        let namespace = &self.namespace;
        let filter = algorithm.filter();
        let mut members = Vec::new();
        scan(&mut indexes.vertices, self.lsn, |(ns, vertex), ()| {
            if ns == namespace && filter.is_none_or(|f| f.matches_vertex(vertex)) {
                members.push((vertex.number, vertex.id.clone()));
            }
        });
        members.sort_unstable_by_key(|(number, _)| *number);
        let keys: Vec<AdjacencyKey> =
            members.iter().map(|(number, _)| AdjacencyKey { number: *number, namespace: namespace.clone() }).collect();
        let mut neighbours = vec![Vec::new(); members.len()];
        lookup_many(&mut indexes.out_edges, &keys, self.lsn, |i, a| neighbours[i].push(a.neighbour));
        if algorithm.undirected() {
            lookup_many(&mut indexes.in_edges, &keys, self.lsn, |i, a| neighbours[i].push(a.neighbour));
        }
        Unresolved::new(peers, members, neighbours)
    }
}
