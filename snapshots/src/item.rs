//! What a snapshot holds, as domain values: sections, vertices and edges (no timestamps: a
//! snapshot says what the graph is, not when each part was written).

use prism_dataflows::{Lsn, OpEffect, Properties, Rejection};

/// Opens a section: the items after it, up to the next section, are one namespace's graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    /// `None`: the namespace the snapshot is loaded into.
    pub namespace: Option<String>,
    pub snapshot_id: String,
    pub timestamp: i64,
    /// Expected counts (`None`: unknown), checked when the section is loaded.
    pub vertex_count: Option<u64>,
    pub edge_count: Option<u64>,
    /// The log position the state covers (checkpoints).
    pub lsn: Lsn,
}

impl Section {
    /// The most elements of a kind a section's counts make room for before they are read.
    const ROOM_AT_MOST: u64 = 1 << 26;

    /// Room to make for its vertices and edges before they are read, as its counts say.
    /// They are the file's word, not yet checked: at most a bound (untouched capacity costs
    /// address space, not memory).
    pub fn room(&self) -> [usize; 2] {
        [self.vertex_count, self.edge_count].map(|count| count.unwrap_or(0).min(Self::ROOM_AT_MOST) as usize)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotVertex {
    pub id: String,
    pub label: String,
    pub properties: Properties,
    /// Unix microseconds; 0 when the snapshot does not say (checkpoints do).
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotEdge {
    pub id: String,
    pub label: String,
    pub from: String,
    pub to: String,
    pub properties: Properties,
    pub created_at: i64,
}

/// A write that carried a request id, as a checkpoint keeps it for retries (see
/// `prism_dataflows::request_ids`); its namespace is its section's.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotRequest {
    pub request_id: String,
    /// Where the write was applied.
    pub lsn: Lsn,
    /// Its record's timestamp.
    pub timestamp: i64,
    pub results: Vec<Result<OpEffect, Rejection>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotItem {
    Section(Section),
    Vertex(SnapshotVertex),
    Edge(SnapshotEdge),
    Request(SnapshotRequest),
}

impl SnapshotVertex {
    /// A vertex of the engine's, timestamps kept.
    pub fn of(vertex: &prism_dataflows::Vertex) -> SnapshotVertex {
        SnapshotVertex {
            id: vertex.id.to_string(),
            label: vertex.label.to_string(),
            properties: vertex.properties.clone(),
            created_at: vertex.created_at,
            updated_at: vertex.updated_at,
        }
    }
}

impl From<SnapshotVertex> for prism_dataflows::Vertex {
    fn from(v: SnapshotVertex) -> Self {
        prism_dataflows::Vertex {
            // The apply stage numbers it when it restores or writes it.
            number: prism_dataflows::VertexNumber::UNASSIGNED,
            id: v.id.into(),
            label: v.label.into(),
            properties: v.properties,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl From<SnapshotEdge> for prism_dataflows::Edge {
    fn from(e: SnapshotEdge) -> Self {
        prism_dataflows::Edge {
            id: e.id.into(),
            label: e.label.into(),
            from: e.from.into(),
            to: e.to.into(),
            properties: e.properties,
            created_at: e.created_at,
        }
    }
}

impl SnapshotEdge {
    /// An edge of the engine's, its timestamp kept.
    pub fn of(edge: &prism_dataflows::Edge) -> SnapshotEdge {
        SnapshotEdge {
            id: edge.id.to_string(),
            label: edge.label.to_string(),
            from: edge.from.to_string(),
            to: edge.to.to_string(),
            properties: edge.properties.clone(),
            created_at: edge.created_at,
        }
    }
}

impl SnapshotItem {
    /// The vertex or edge as the engine's snapshot diff takes it (`None` for a section).
    pub fn into_element(self) -> Option<prism_dataflows::snapshot_diff::Element> {
        use prism_dataflows::snapshot_diff::Element;
        match self {
            SnapshotItem::Section(_) | SnapshotItem::Request(_) => None,
            SnapshotItem::Vertex(v) => Some(Element::Vertex { id: v.id, label: v.label, properties: v.properties }),
            SnapshotItem::Edge(e) => {
                Some(Element::Edge { id: e.id, label: e.label, from: e.from, to: e.to, properties: e.properties })
            }
        }
    }
}
