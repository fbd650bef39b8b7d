//! The gRPC front of prism-graph and the wiring of a server.
//!
//! This is the only crate that knows tonic and gRPC status codes: [`service`] converts wire
//! messages to the engine's domain types at the edge and maps every outcome to a status;
//! [`serve`] wires the engine, the log and the front together; [`config`] reads the YAML
//! configuration.

pub mod access;
pub mod audit;
pub mod checkpoints;
pub mod codec;
pub mod config;
pub mod convert;
pub mod memory;
pub mod paths;
pub mod prometheus;
pub mod serve;
pub mod service;
pub mod snapshot_cli;
mod snapshot_first_pass;
pub mod snapshot_load;
pub mod snapshots;
pub mod status;
pub mod subscription;
pub mod traversal;

/// The generated GraphService stubs (server and client).
pub mod pb {
    tonic::include_proto!("prism.graph.v1");

    /// The encoded descriptors of graph.proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("graph_descriptor");
}

pub use serve::{serve, ServeError};
