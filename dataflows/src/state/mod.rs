//! The graph's state and the rules that change it: the domain types, the limits every
//! element is held to, write records, the rules decided where the keys live (`sharded`),
//! the request ids remembered, and the difference between two versions of a graph.
//!
//! Nothing here knows timely's runtime except `snapshot_diff`, which runs its own.

// The apply stage as it was, on one worker: the reference the sharded decision is
// property-tested against.
#[cfg(test)]
pub mod apply;
pub mod graph;
pub mod id_table;
pub mod ids;
pub mod limits;
pub mod model;
pub mod names;
pub mod request_ids;
pub mod rules;
pub mod sharded;
pub mod snapshot_diff;
pub mod write;
