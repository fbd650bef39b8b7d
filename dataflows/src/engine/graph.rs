//! The graph dataflow: the vertex and edge collections and their four arrangements.
//!
//! Only worker 0 feeds the inputs (the apply stage runs there); `arrange_by_key` exchanges
//! every update to the worker owning its key, so each worker holds one shard of each index.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::input::{Input, InputSession};
use differential_dataflow::operators::arrange::arrangement::{arrange_core, Arranged};
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::implementations::{ValBatcher, ValSpine};
use differential_dataflow::VecCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Probe};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

use crate::engine::subscriptions::Hub;
use crate::read::query::Indexes;
use crate::state::apply::Change;
use crate::state::model::{AdjacencyKey, Adjacent, Edge, EdgeKey, Lsn, Namespace, NumberedEdge, Vertex, VertexKey};

pub(crate) struct GraphInputs {
    pub vertices: InputSession<Lsn, (VertexKey, Arc<Vertex>), isize>,
    pub edges: InputSession<Lsn, (EdgeKey, NumberedEdge), isize>,
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
/// LSN on every worker. The collections' changes also go, unexchanged, to `hub` (worker 0's
/// standing PageRanks; the changes originate on worker 0, so no other worker sees any).
pub(crate) fn build(
    worker: &mut Worker,
    probe: &ProbeHandle<Lsn>,
    hub: Option<Rc<RefCell<Hub>>>,
) -> (GraphInputs, Indexes) {
    worker.dataflow::<Lsn, _, _>(|scope| {
        let (vertex_input, vertices) = scope.new_collection::<(VertexKey, Arc<Vertex>), isize>();
        let (edge_input, edges) = scope.new_collection::<(EdgeKey, NumberedEdge), isize>();

        let vertex_changes =
            vertices.inner.clone().map(|((key, vertex), lsn, diff)| (Change::Vertex(key, vertex, diff), lsn));
        let edge_changes = edges.inner.clone().map(|((key, edge), lsn, diff)| (Change::Edge(key, edge, diff), lsn));
        feed_subscriptions(vertex_changes.concat(edge_changes), hub);

        let vertex_index = vertices.arrange_by_key_named("VertexByKey");
        let edge_index = edge_by_key(edges.clone().map(|(key, numbered)| ((key.namespace, numbered.edge), ())));
        let out_index = adjacency(
            edges.clone().map(|(key, NumberedEdge { from, to, edge })| {
                (AdjacencyKey { number: from, namespace: key.namespace }, Adjacent { neighbour: to, edge })
            }),
            "OutAdjacency",
        );
        let in_index = adjacency(
            edges.map(|(key, NumberedEdge { from, to, edge })| {
                (AdjacencyKey { number: to, namespace: key.namespace }, Adjacent { neighbour: from, edge })
            }),
            "InAdjacency",
        );

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

type EdgeIndex<'scope> = Arranged<'scope, TraceAgent<ValSpine<(Namespace, Arc<Edge>), (), Lsn, isize>>>;

/// Arranges edges by themselves: an edge orders by its id first, so the edge is its own key
/// and its id is held once. Exchanged by its key's hash, where `Query::GetEdge` routes.
fn edge_by_key<'scope>(edges: VecCollection<'scope, Lsn, ((Namespace, Arc<Edge>), ())>) -> EdgeIndex<'scope> {
    type Update = (((Namespace, Arc<Edge>), ()), Lsn, isize);
    let by_key = Exchange::new(|(((namespace, edge), ()), _, _): &Update| EdgeKey::route(namespace, &edge.id));
    arrange_core::<_, _, ValBatcher<(Namespace, Arc<Edge>), (), Lsn, isize>, _>(
        edges.inner,
        by_key,
        "EdgeByKey",
        ValBatcher::new,
    )
}

type Adjacency<'scope> = Arranged<'scope, TraceAgent<ValSpine<AdjacencyKey, Adjacent, Lsn, isize>>>;

/// Arranges edges by vertex number, each on the worker its number names: the worker that
/// holds the vertex by key, so a vertex and its edges are read together.
fn adjacency<'scope>(edges: VecCollection<'scope, Lsn, (AdjacencyKey, Adjacent)>, name: &str) -> Adjacency<'scope> {
    let by_number = Exchange::new(|((key, _), _, _): &((AdjacencyKey, Adjacent), Lsn, isize)| key.number.0);
    arrange_core::<_, _, ValBatcher<AdjacencyKey, Adjacent, Lsn, isize>, _>(
        edges.inner,
        by_number,
        name,
        ValBatcher::new,
    )
}

/// Hands each LSN's changes to the hub once the LSN is complete (the frontier has passed it),
/// in LSN order, and tells it how far the changes are complete.
fn feed_subscriptions<'scope>(
    changes: timely::dataflow::StreamVec<'scope, Lsn, (Change, Lsn)>,
    hub: Option<Rc<RefCell<Hub>>>,
) {
    let mut stash: BTreeMap<Lsn, Vec<Change>> = BTreeMap::new();
    changes.sink(Pipeline, "PageRankSubscriptions", move |(input, frontier)| {
        let Some(hub) = hub.as_ref() else {
            input.for_each(|_, _| {});
            return;
        };
        let mut hub = hub.borrow_mut();
        // With no standing PageRank, changes are dropped: a new one starts from the apply
        // stage's graph, which already holds them.
        let idle = hub.is_idle();
        input.for_each(|_, data| {
            if !idle {
                for (change, lsn) in data.drain(..) {
                    stash.entry(lsn).or_default().push(change);
                }
            }
        });
        while let Some(entry) = stash.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let lsn = *entry.key();
            hub.completed(lsn, entry.remove());
        }
        if let Some(next) = frontier.frontier().first() {
            hub.processed_through(next.saturating_sub(1));
        }
    });
}
