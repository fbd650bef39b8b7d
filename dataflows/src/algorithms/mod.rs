//! Graph algorithms, one file each, knowing nothing of timely.
//!
//! The one-shot ones (PageRank, connected components, label propagation, Louvain) run over
//! a consistent cut of every worker's shard: the engine's algorithm loop
//! (`engine/algorithm_runs.rs`) reads each shard into a [`Shard`] and drives the rounds
//! defined here, exchanging what a round sends between workers. The standing PageRank of a
//! subscription follows the graph's changes on the subscription thread
//! ([`standing_page_rank`], on [`incremental_page_rank`]).

mod components;
pub mod incremental_page_rank;
mod label_propagation;
mod label_rounds;
pub(crate) mod louvain;
pub(crate) mod page_rank;
mod shard;
pub mod standing_page_rank;

use serde::{Deserialize, Serialize};

use crate::read::filter::Filter;
use crate::state::model::{Id, Lsn};

pub(crate) use label_rounds::{LabelRounds, Round};
pub(crate) use shard::{Shard, Unresolved};

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

/// A one-shot algorithm and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Algorithm {
    PageRank(PageRankParams),
    Communities(CommunityParams),
}

impl Algorithm {
    /// The vertices it runs on: the induced subgraph of those passing it.
    pub fn filter(&self) -> Option<&Filter> {
        match self {
            Algorithm::PageRank(params) => params.filter.as_ref(),
            Algorithm::Communities(params) => params.filter.as_ref(),
        }
    }

    /// Whether each vertex's neighbours are taken both ways (in- and out-edges). Louvain
    /// takes each edge once, from its source, and makes the graph undirected itself.
    pub fn undirected(&self) -> bool {
        matches!(
            self,
            Algorithm::Communities(CommunityParams {
                algorithm: CommunityAlgorithm::ConnectedComponents | CommunityAlgorithm::LabelPropagation,
                ..
            })
        )
    }
}

/// One community: named by its smallest member id; members sorted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Community {
    pub id: Id,
    pub members: Vec<Id>,
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
pub type Ranked = (Lsn, Vec<(Id, f64)>);
