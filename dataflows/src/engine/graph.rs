//! The graph dataflow: the vertex and edge collections and their four arrangements.
//!
//! Only worker 0 feeds the inputs (the apply stage runs there); `arrange_by_key` exchanges
//! every update to the worker owning its key, so each worker holds one shard of each index.

use std::sync::Arc;

use differential_dataflow::input::{Input, InputSession};
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use crate::model::{Edge, EdgeKey, Lsn, Vertex, VertexKey};
use crate::query::Indexes;

pub(crate) struct GraphInputs {
    pub vertices: InputSession<Lsn, (VertexKey, Arc<Vertex>), isize>,
    pub edges: InputSession<Lsn, (EdgeKey, Arc<Edge>), isize>,
}

impl GraphInputs {
    /// Moves both inputs to `lsn`; later updates happen at it.
    pub fn advance_to(&mut self, lsn: Lsn) {
        self.vertices.advance_to(lsn);
        self.edges.advance_to(lsn);
    }

    pub fn flush(&mut self) {
        self.vertices.flush();
        self.edges.flush();
    }
}

/// Builds the graph dataflow; `probe` reports when every arrangement is complete through an
/// LSN on every worker.
pub(crate) fn build(worker: &mut Worker, probe: &ProbeHandle<Lsn>) -> (GraphInputs, Indexes) {
    worker.dataflow::<Lsn, _, _>(|scope| {
        let (vertex_input, vertices) = scope.new_collection::<(VertexKey, Arc<Vertex>), isize>();
        let (edge_input, edges) = scope.new_collection::<(EdgeKey, Arc<Edge>), isize>();

        let vertex_index = vertices.arrange_by_key_named("VertexByKey");
        let edge_index = edges.clone().arrange_by_key_named("EdgeByKey");
        let out_index = edges
            .clone()
            .map(|(key, edge)| (VertexKey { namespace: key.namespace, id: edge.from.clone() }, edge))
            .arrange_by_key_named("OutAdjacency");
        let in_index = edges
            .map(|(key, edge)| (VertexKey { namespace: key.namespace, id: edge.to.clone() }, edge))
            .arrange_by_key_named("InAdjacency");

        vertex_index.stream.clone().probe_with(probe);
        edge_index.stream.clone().probe_with(probe);
        out_index.stream.clone().probe_with(probe);
        in_index.stream.clone().probe_with(probe);

        let inputs = GraphInputs { vertices: vertex_input, edges: edge_input };
        let indexes = Indexes {
            vertices: vertex_index.trace,
            edges: edge_index.trace,
            out_edges: out_index.trace,
            in_edges: in_index.trace,
        };
        (inputs, indexes)
    })
}
