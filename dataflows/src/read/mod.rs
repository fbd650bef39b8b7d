//! The read path: what a worker reads from its arrangement shards with cursors (`query`),
//! the filters reads apply, and the multi-step queries built on many such reads
//! (`traverse`, `paths`) through the engine.

pub mod filter;
pub mod layout;
pub mod paths;
pub mod query;
pub mod reader;
pub mod traverse;
