//! Reads for multi-step queries (traversals, paths): many keys at once, split by the worker
//! owning them, all at one LSN, each within what is left of the query's deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError};
use crate::read::filter::Filter;
use crate::read::query::{Answer, Direction, Query};
use crate::state::model::{Edge, Id, Lsn, Namespace, Shared, Vertex, VertexKey};

/// Why a multi-step query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A vertex the request names does not exist; `field` is the request field naming it.
    #[error("{field}: vertex {id:?} not found")]
    NotFound { field: &'static str, id: String },
    /// The graph holds something the request cannot use (e.g. a negative edge weight).
    #[error("{0}")]
    InvalidArgument(String),
    /// A limit was reached; `limit` names it.
    #[error("{message}")]
    Limit { limit: &'static str, message: String },
    #[error("traversal_timeout: the query did not finish within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// An edge followed from a vertex: (source id, edge, followed outward).
pub(crate) type Move = (Id, Shared<Edge>, bool);

/// What to follow in one hop, and how many edges may still be expanded.
struct Hop<'a> {
    direction: Direction,
    labels: &'a [String],
    filter: Option<&'a Filter>,
    budget: usize,
}

pub(crate) fn limit(limit: &'static str, message: String) -> QueryError {
    QueryError::Limit { limit, message }
}

/// Multi-key reads, split by owning worker, all at one LSN, within the deadline.
pub(crate) struct Reader<'a> {
    engine: &'a Engine,
    namespace: &'a Namespace,
    deadline: Instant,
    timeout: Duration,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(engine: &'a Engine, namespace: &'a Namespace, timeout: Duration) -> Self {
        Reader { engine, namespace, deadline: Instant::now() + timeout, timeout }
    }

    pub(crate) fn remaining(&self) -> Result<Duration, QueryError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(QueryError::Timeout(self.timeout))
        } else {
            Ok(left)
        }
    }

    /// Groups `ids` by the worker owning them.
    fn by_owner<'i>(&self, ids: impl Iterator<Item = &'i str>) -> HashMap<usize, Vec<VertexKey>> {
        let mut groups: HashMap<usize, Vec<VertexKey>> = HashMap::new();
        for id in ids {
            let key = VertexKey::new(self.namespace, id);
            groups.entry(self.engine.owner_of_key(&key)).or_default().push(key);
        }
        groups
    }

    async fn read_all(
        &self,
        queries: Vec<Query>,
        at: Option<Lsn>,
        min_lsn: Lsn,
    ) -> Result<Vec<(Lsn, Answer)>, QueryError> {
        let left = self.remaining()?;
        let reads = queries.into_iter().map(|q| self.engine.read_at(q, min_lsn, at, left));
        let answers = futures::future::join_all(reads).await;
        answers
            .into_iter()
            .map(|a| match a {
                Err(EngineError::Timeout(_)) => Err(QueryError::Timeout(self.timeout)),
                other => other.map_err(QueryError::from),
            })
            .collect()
    }

    /// The existing vertices among `ids`, and the LSN read at (`at`, or the applied LSN).
    pub(crate) async fn vertices(
        &self,
        ids: &[Id],
        at: Option<Lsn>,
        min_lsn: Lsn,
    ) -> Result<(Lsn, Vec<Shared<Vertex>>), QueryError> {
        if ids.is_empty() {
            return Ok((at.unwrap_or(0), Vec::new()));
        }
        let queries =
            self.by_owner(ids.iter().map(Id::as_str)).into_values().map(|keys| Query::Vertices { keys }).collect();
        let mut lsn = at.unwrap_or(0);
        let mut found = Vec::new();
        for (read_at, answer) in self.read_all(queries, at, min_lsn).await? {
            lsn = read_at;
            if let Answer::Vertices(vertices) = answer {
                found.extend(vertices.into_iter().flatten());
            }
        }
        Ok((lsn, found))
    }

    /// One hop from every vertex of `frontier` in `direction`, along edges with one of
    /// `labels` (any when empty) passing `filter`: (source id, edge, followed outward).
    pub(crate) async fn expand<'i>(
        &self,
        frontier: impl Iterator<Item = &'i str>,
        direction: Direction,
        labels: &[String],
        filter: Option<&Filter>,
        lsn: Lsn,
        budget: usize,
    ) -> Result<Vec<Move>, QueryError> {
        let hop = Hop { direction, labels, filter, budget };
        Ok(self.expand_at(frontier, &hop, Some(lsn), 0, false).await?.1)
    }

    /// The first hop of a query: from `start`, which must exist, at the applied LSN once
    /// `min_lsn` is; returns that LSN. One round trip checks the vertex and expands it.
    pub(crate) async fn expand_start(
        &self,
        start: &str,
        direction: Direction,
        labels: &[String],
        filter: Option<&Filter>,
        min_lsn: Lsn,
        budget: usize,
    ) -> Result<(Lsn, Vec<Move>), QueryError> {
        let hop = Hop { direction, labels, filter, budget };
        let (lsn, edges, missing) = self.expand_at(std::iter::once(start), &hop, None, min_lsn, true).await?;
        if missing {
            return Err(QueryError::NotFound { field: "start_vertex_id", id: start.to_owned() });
        }
        Ok((lsn, edges))
    }

    /// Expands `frontier` at `at` (or the applied LSN); also says whether any source vertex
    /// is missing when `check_sources`.
    async fn expand_at<'i>(
        &self,
        frontier: impl Iterator<Item = &'i str>,
        hop: &Hop<'_>,
        at: Option<Lsn>,
        min_lsn: Lsn,
        check_sources: bool,
    ) -> Result<(Lsn, Vec<Move>, bool), QueryError> {
        let groups = self.by_owner(frontier);
        let mut sources = Vec::new();
        let mut queries = Vec::new();
        for keys in groups.into_values() {
            sources.push(keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>());
            queries.push(Query::Expand {
                keys,
                direction: hop.direction,
                labels: hop.labels.to_vec(),
                filter: hop.filter.cloned(),
                max_edges: hop.budget,
                check_sources,
            });
        }
        let mut edges = Vec::new();
        let mut lsn = at.unwrap_or(0);
        let mut any_missing = false;
        for ((read_at, answer), sources) in self.read_all(queries, at, min_lsn).await?.into_iter().zip(sources) {
            let Answer::Expanded { edges: found, truncated, missing } = answer else { continue };
            if truncated || edges.len() + found.len() > hop.budget {
                return Err(limit(
                    "max_expanded_edges",
                    "max_expanded_edges: the traversal expanded more edges than the limit allows".to_string(),
                ));
            }
            lsn = read_at;
            any_missing |= !missing.is_empty();
            edges.extend(found.into_iter().map(|(i, edge, outward)| (sources[i as usize].clone(), edge, outward)));
        }
        Ok((lsn, edges, any_missing))
    }
}
