//! Reads for multi-step queries (traversals, paths): many keys at once, split by the worker
//! owning them, all at one LSN, each within what is left of the query's deadline.
//!
//! A query names its start (and end) by id; from there on it knows vertices by number, as
//! the adjacencies do: a hop from a vertex met at the end of an edge reads its adjacency by
//! that number at its owner, with no lookup of its id. The ids of the vertices met are kept
//! beside, for the answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::{Engine, EngineError};
use crate::read::filter::Filter;
use crate::read::query::{Answer, Direction, Followed, Query, Source};
use crate::state::model::{Edge, Id, Lsn, Namespace, Shared, Vertex, VertexKey, VertexNumber};

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

/// An edge followed from a vertex, both ends by number.
#[derive(Clone, Debug)]
pub(crate) struct Move {
    pub source: VertexNumber,
    pub neighbour: VertexNumber,
    pub edge: Shared<Edge>,
}

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
    /// The id of every vertex met so far, by number (at the query's one LSN, a number
    /// names one vertex). Behind a mutex, never held across an await: the query's future
    /// must be `Send`.
    ids: Mutex<HashMap<VertexNumber, Id>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(engine: &'a Engine, namespace: &'a Namespace, timeout: Duration) -> Self {
        Reader { engine, namespace, deadline: Instant::now() + timeout, timeout, ids: Mutex::default() }
    }

    pub(crate) fn remaining(&self) -> Result<Duration, QueryError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(QueryError::Timeout(self.timeout))
        } else {
            Ok(left)
        }
    }

    fn known_ids(&self) -> std::sync::MutexGuard<'_, HashMap<VertexNumber, Id>> {
        self.ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The ids of `numbers`, in order (the empty id for a vertex this reader never met,
    /// which a query's own numbers never are).
    pub(crate) fn ids_of(&self, numbers: &[VertexNumber]) -> Vec<Id> {
        let known = self.known_ids();
        numbers.iter().map(|number| known.get(number).cloned().unwrap_or_default()).collect()
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
        let keys = ids.iter().map(|id| {
            let key = VertexKey::new(self.namespace, id);
            (self.engine.owner_of_key(&key), key)
        });
        let queries = by_owner(keys).into_values().map(|keys| Query::Vertices { keys }).collect();
        self.fetch_vertices(queries, at, min_lsn).await
    }

    /// The vertices numbered `numbers`, at `lsn` (where they exist).
    pub(crate) async fn vertices_numbered(
        &self,
        numbers: &[VertexNumber],
        lsn: Lsn,
    ) -> Result<Vec<Shared<Vertex>>, QueryError> {
        let numbers = numbers.iter().map(|number| (self.engine.owner_of_number(*number), *number));
        let queries = (by_owner(numbers).into_values())
            .map(|numbers| Query::VerticesNumbered { namespace: self.namespace.clone(), numbers })
            .collect();
        Ok(self.fetch_vertices(queries, Some(lsn), 0).await?.1)
    }

    /// The vertices that `queries` (`Vertices` or `VerticesNumbered`) find, their ids noted,
    /// and the LSN read at.
    async fn fetch_vertices(
        &self,
        queries: Vec<Query>,
        at: Option<Lsn>,
        min_lsn: Lsn,
    ) -> Result<(Lsn, Vec<Shared<Vertex>>), QueryError> {
        let mut lsn = at.unwrap_or(0);
        let mut found = Vec::new();
        for (read_at, answer) in self.read_all(queries, at, min_lsn).await? {
            lsn = read_at;
            if let Answer::Vertices(vertices) = answer {
                found.extend(vertices.into_iter().flatten());
            }
        }
        self.known_ids().extend(found.iter().map(|vertex| (vertex.number, vertex.id.clone())));
        Ok((lsn, found))
    }

    /// One hop from every vertex of `frontier` in `direction`, along edges with one of
    /// `labels` (any when empty) passing `filter`.
    pub(crate) async fn expand(
        &self,
        frontier: impl Iterator<Item = VertexNumber>,
        direction: Direction,
        labels: &[String],
        filter: Option<&Filter>,
        lsn: Lsn,
        budget: usize,
    ) -> Result<Vec<Move>, QueryError> {
        let hop = Hop { direction, labels, filter, budget };
        let sources = frontier.map(|number| (self.engine.owner_of_number(number), Source::Number(number)));
        Ok(self.expand_at(sources, &hop, Some(lsn), 0).await?.1)
    }

    /// The first hop of a query: from `start`, which must exist, at the applied LSN once
    /// `min_lsn` is; returns that LSN and the start's number. One round trip checks the
    /// vertex and expands it.
    pub(crate) async fn expand_start(
        &self,
        start: &str,
        direction: Direction,
        labels: &[String],
        filter: Option<&Filter>,
        min_lsn: Lsn,
        budget: usize,
    ) -> Result<(Lsn, VertexNumber, Vec<Move>), QueryError> {
        let hop = Hop { direction, labels, filter, budget };
        let owner = self.engine.owner_of_key(&VertexKey::new(self.namespace, start));
        let (lsn, edges, numbers) =
            self.expand_at(std::iter::once((owner, Source::Id(start.into()))), &hop, None, min_lsn).await?;
        match numbers.first() {
            Some(Some(number)) => {
                self.known_ids().insert(*number, start.into());
                Ok((lsn, *number, edges))
            }
            _ => Err(QueryError::NotFound { field: "start_vertex_id", id: start.to_owned() }),
        }
    }

    /// Expands `sources` (each with its owner) at `at` (or the applied LSN); also gives each
    /// source's number (none for one named by id that does not exist).
    async fn expand_at(
        &self,
        sources: impl Iterator<Item = (usize, Source)>,
        hop: &Hop<'_>,
        at: Option<Lsn>,
        min_lsn: Lsn,
    ) -> Result<(Lsn, Vec<Move>, Vec<Option<VertexNumber>>), QueryError> {
        let queries = (by_owner(sources).into_values())
            .map(|sources| Query::Expand {
                namespace: self.namespace.clone(),
                sources,
                direction: hop.direction,
                labels: hop.labels.to_vec(),
                filter: hop.filter.cloned(),
                max_edges: hop.budget,
            })
            .collect();
        let mut edges = Vec::new();
        let mut lsn = at.unwrap_or(0);
        let mut numbers = Vec::new();
        let answers = self.read_all(queries, at, min_lsn).await?;
        // A move's source was met before (the start, or a neighbour of an earlier hop): only
        // its neighbour is named here.
        let mut known = self.known_ids();
        for (read_at, answer) in answers {
            let Answer::Expanded { edges: found, truncated, sources } = answer else { continue };
            if truncated || edges.len() + found.len() > hop.budget {
                return Err(limit(
                    "max_expanded_edges",
                    "max_expanded_edges: the traversal expanded more edges than the limit allows".to_string(),
                ));
            }
            lsn = read_at;
            for Followed { source, neighbour, edge, outward } in found {
                let Some(Some(source)) = sources.get(source as usize).copied() else { continue };
                known.entry(neighbour).or_insert_with(|| if outward { edge.to.clone() } else { edge.from.clone() });
                edges.push(Move { source, neighbour, edge });
            }
            numbers.extend(sources);
        }
        Ok((lsn, edges, numbers))
    }
}

/// `items`, each beside the worker owning it, grouped by that worker: a query each.
fn by_owner<T>(items: impl IntoIterator<Item = (usize, T)>) -> HashMap<usize, Vec<T>> {
    let mut groups: HashMap<usize, Vec<T>> = HashMap::new();
    for (owner, item) in items {
        groups.entry(owner).or_default().push(item);
    }
    groups
}
