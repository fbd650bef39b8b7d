//! Generates the prost messages of graph.proto, wal.proto and snapshot.proto with a vendored
//! protoc, so that a build needs nothing installed beyond Rust.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&["graph.proto", "wal.proto", "snapshot.proto"], &["."])?;
    Ok(())
}
