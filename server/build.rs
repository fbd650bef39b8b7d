//! Generates the GraphService stubs (server and client) from graph.proto with a vendored
//! protoc. The messages themselves come from `prism-proto`; a file descriptor set is written
//! for gRPC server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .extern_path(".prism.graph.v1", "::prism_proto::prism::graph::v1")
        // Requests that do not decode are INVALID_ARGUMENT, not INTERNAL (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .file_descriptor_set_path(out_dir.join("graph_descriptor.bin"))
        .compile_protos(&[proto_dir.join("graph.proto")], std::slice::from_ref(&proto_dir))?;
    println!("cargo:rerun-if-changed={}", proto_dir.join("graph.proto").display());
    Ok(())
}
