//! The graph's state and the rules that change it: the domain types, the limits every
//! element is held to, write records, the apply stage, the request ids it remembers, and
//! the difference between two versions of a graph.
//!
//! Nothing here knows timely's runtime except `snapshot_diff`, which runs its own.

pub mod apply;
pub mod ids;
pub mod limits;
pub mod model;
pub mod names;
pub mod request_ids;
pub mod rules;
// Built and checked against `apply`, which it replaces once the engine runs it.
#[cfg_attr(not(test), allow(dead_code, unused_imports))]
pub mod sharded;
pub mod snapshot_diff;
pub mod write;
