//! Writes decided where the keys live: the rule state of the graph sharded over the
//! workers, and records decided against it a batch at a time, in log order.
//!
//! No worker holds the whole graph. A vertex's existence, its number and its degree live
//! with the worker its key shards to; an edge's existence and endpoints with the worker its
//! id shards to ([`Shard`]). A batch of consecutive log records is decided in one round
//! (the order-then-execute design of Calvin, Thomson et al., SIGMOD 2012):
//!
//! 1. the log fixes the records' order, and every worker sees the batch;
//! 2. each worker reads what the batch's operations ask of the keys it owns ([`Shard::read`]):
//!    a vertex, its degree (and its edges, for a cascade), an edge, the numbers it gives
//!    next, how many elements it holds;
//! 3. one worker, the batch's executor, decides every record in log order against those
//!    reads ([`Executor::decide`]), keeping what earlier records of the batch changed in an
//!    overlay, undone for an atomic record that fails: the outcomes, and the [`Effect`]s of
//!    what was accepted;
//! 4. each worker applies the effects on its keys ([`Shard::apply`]), which become the
//!    collections' changes at each record's LSN.
//!
//! The next batch is read once this one is applied, and holds whatever records arrived in the
//! meantime. Deciding a batch from the state before it, with the overlay carrying each
//! record's changes to the next, gives exactly the outcomes of deciding one record at a time:
//! where one batch ends and the next begins (which depends on timing) changes nothing, so every
//! replica and every replay decides alike.

mod executor;
mod overlay;
mod reads;
mod recent;
mod restore;
mod shard;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::state::model::{owner_of, EdgeKey, Lsn, Namespace, NumberedEdge, Shared, Vertex};
use crate::state::write::RecordOutcome;

pub use executor::Executor;
pub use reads::{Incidence, Reads};
pub use restore::Restore;
pub use shard::{Plan, RestoreRun, Shard};

/// What an accepted operation changed, for the workers that own its keys to apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    VertexCreated(Shared<Vertex>),
    VertexUpdated { before: Shared<Vertex>, after: Shared<Vertex> },
    VertexDeleted(Shared<Vertex>),
    EdgeCreated(NumberedEdge),
    EdgeDeleted(NumberedEdge),
}

/// An effect at the LSN of its record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    pub lsn: Lsn,
    pub namespace: Namespace,
    pub effect: Effect,
}

impl Decided {
    /// The workers that apply it: a vertex's owner; an edge's owner and its endpoints'
    /// (each once).
    fn owners(&self, workers: usize) -> impl Iterator<Item = usize> {
        let mut owners = [usize::MAX; 3];
        match &self.effect {
            Effect::VertexCreated(vertex)
            | Effect::VertexDeleted(vertex)
            | Effect::VertexUpdated { after: vertex, .. } => {
                owners[0] = vertex.number.owner(workers);
            }
            Effect::EdgeCreated(edge) | Effect::EdgeDeleted(edge) => {
                owners[0] = owner_of(EdgeKey::route(&self.namespace, &edge.edge.id), workers);
                owners[1] = edge.from.owner(workers);
                owners[2] = edge.to.owner(workers);
            }
        }
        (0..3).filter(move |&i| owners[i] != usize::MAX && !owners[..i].contains(&owners[i])).map(move |i| owners[i])
    }
}

/// `effects` split by the worker that applies each (an edge's go to up to three), each
/// worker's in their order.
pub fn by_owner(effects: Vec<Decided>, workers: usize) -> Vec<Vec<Decided>> {
    let mut by_owner: Vec<Vec<Decided>> = vec![Vec::new(); workers];
    for decided in effects {
        let mut owners = decided.owners(workers).peekable();
        while let Some(owner) = owners.next() {
            if owners.peek().is_some() {
                by_owner[owner].push(decided.clone());
            } else {
                by_owner[owner].push(decided);
                break;
            }
        }
    }
    by_owner
}

/// What the executor decided for a batch: every record's outcome, in log order, and the
/// effects of what was accepted, in the order they were made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcomes: Vec<RecordOutcome>,
    pub effects: Vec<Decided>,
}
