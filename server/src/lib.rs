pub mod pb {
    tonic::include_proto!("prism.graph.v1");
}
