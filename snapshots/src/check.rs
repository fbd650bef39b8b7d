//! What a snapshot must hold to be loaded or applied, checked as its items pass: each
//! section's metadata counts, every id once, and edges between the section's own vertices
//! (a snapshot is a whole graph, so an edge to a vertex it lacks is an error, not a
//! reference into the running graph).

use std::collections::HashSet;

use crate::item::{Section, SnapshotItem};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("{field}: the snapshot's metadata says {expected}, its records hold {found}")]
    Count { field: &'static str, expected: u64, found: u64 },
    #[error("record {record}: {kind} {id:?} appears twice")]
    Twice { record: u64, kind: &'static str, id: String },
    #[error("record {record}: edge {id:?} names vertex {end:?}, which the snapshot does not hold")]
    MissingEnd { record: u64, id: String, end: String },
}

/// Feed it every item in order, then [`SnapshotCheck::finish`].
#[derive(Default)]
pub struct SnapshotCheck {
    record: u64,
    section: Option<Section>,
    counts: (u64, u64),
    totals: (u64, u64),
    vertex_ids: HashSet<String>,
    edge_ids: HashSet<String>,
    /// Edges of the open section: (record, id, from, to), checked when it closes.
    ends: Vec<(u64, String, String, String)>,
}

impl SnapshotCheck {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn item(&mut self, item: &SnapshotItem) -> Result<(), CheckError> {
        self.record += 1;
        let record = self.record;
        match item {
            SnapshotItem::Section(next) => {
                self.close()?;
                self.section = Some(next.clone());
            }
            SnapshotItem::Vertex(v) => {
                self.counts.0 += 1;
                if !self.vertex_ids.insert(v.id.clone()) {
                    return Err(CheckError::Twice { record, kind: "vertex", id: v.id.clone() });
                }
            }
            SnapshotItem::Edge(e) => {
                self.counts.1 += 1;
                if !self.edge_ids.insert(e.id.clone()) {
                    return Err(CheckError::Twice { record, kind: "edge", id: e.id.clone() });
                }
                self.ends.push((record, e.id.clone(), e.from.clone(), e.to.clone()));
            }
            SnapshotItem::Request(_) => {}
        }
        Ok(())
    }

    /// Closes the last section; the vertices and edges seen in all.
    pub fn finish(mut self) -> Result<(u64, u64), CheckError> {
        self.close()?;
        Ok(self.totals)
    }

    /// The open section's counts and edge ends; the next section starts afresh.
    fn close(&mut self) -> Result<(), CheckError> {
        if let Some(section) = &self.section {
            let (vertices, edges) = self.counts;
            for (field, expected, found) in
                [("vertex_count", section.vertex_count, vertices), ("edge_count", section.edge_count, edges)]
            {
                if let Some(expected) = expected.filter(|e| *e != found) {
                    return Err(CheckError::Count { field, expected, found });
                }
            }
        }
        for (record, id, from, to) in self.ends.drain(..) {
            if let Some(end) = [from, to].into_iter().find(|end| !self.vertex_ids.contains(end)) {
                return Err(CheckError::MissingEnd { record, id, end });
            }
        }
        self.totals.0 += self.counts.0;
        self.totals.1 += self.counts.1;
        self.counts = (0, 0);
        self.vertex_ids.clear();
        self.edge_ids.clear();
        Ok(())
    }
}
