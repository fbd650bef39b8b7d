//! What a snapshot must hold to be loaded or applied, checked as its items pass: each
//! section's metadata counts, every id once, and edges between the section's own vertices
//! (a snapshot is a whole graph, so an edge to a vertex it lacks is an error, not a
//! reference into the running graph).

use prism_dataflows::IdTable;

use crate::item::{Section, SnapshotItem};

/// A set of ids: each held inline in the table's 16-byte slot, so checking 10M ids costs no
/// allocation per id (a `HashSet<String>` of clones made the check the slowest part of
/// reading a snapshot), and edges' ends looked up many at a time in bucket order. Vertex
/// ids map to their vertex's place among its section's, which edges' ends are kept as.
type Ids<V = ()> = IdTable<V>;

/// An edge's ends, checked when its section closes: (record, the edge's place among its
/// section's, and edge id, from, to as indexes into one string of them all).
#[derive(Default)]
struct Ends {
    text: String,
    edges: Vec<(u64, u32, [usize; 4])>,
}

impl Ends {
    fn len(&self) -> usize {
        self.edges.len()
    }

    fn push(&mut self, record: u64, place: u32, id: &str, from: &str, to: &str) {
        let start = self.text.len();
        for part in [id, from, to] {
            self.text.push_str(part);
        }
        let (a, b) = (start + id.len(), start + id.len() + from.len());
        self.edges.push((record, place, [start, a, b, self.text.len()]));
    }

    /// Each edge: (record, place, id, from, to).
    fn iter(&self) -> impl Iterator<Item = (u64, u32, &str, &str, &str)> {
        self.edges.iter().map(|(record, place, [s, a, b, e])| {
            (*record, *place, &self.text[*s..*a], &self.text[*a..*b], &self.text[*b..*e])
        })
    }

    fn clear(&mut self) {
        self.text.clear();
        self.edges.clear();
    }
}

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
    vertex_ids: Ids<u32>,
    /// None when the caller checks the edges (ids once, ends held) itself.
    edge_ids: Option<Ids>,
    /// With [`SnapshotCheck::keeping_ends`]: the open section's edges' ends, by the edge's
    /// place, as their vertices' places (filled as they settle), and the last closed
    /// section's, for [`SnapshotCheck::take_ends`].
    kept: Option<Vec<[u32; 2]>>,
    closed: Option<Vec<[u32; 2]>>,
    /// Edges of the open section not yet looked for, up to [`ENDS_AT_ONCE`].
    unsettled: Ends,
    /// Edges of the open section whose ends were not known when looked for: checked again
    /// when it closes.
    ends: Ends,
}

/// Edges whose ends are looked for at once: two ids each.
const ENDS_AT_ONCE: usize = Ids::<()>::LOOKUPS_AT_ONCE / 2;

impl SnapshotCheck {
    pub fn new() -> Self {
        SnapshotCheck { edge_ids: Some(Ids::default()), ..Default::default() }
    }

    /// Checks the counts and that each vertex id comes once, leaving the edges (ids once,
    /// ends held) to a caller that compares them with a running graph anyway (an
    /// ApplySnapshot): the set of every edge id was a cache miss an edge and most of the
    /// check's memory, and looking up both ends of every edge a third of its time.
    pub fn leaving_edges_to_the_caller() -> Self {
        SnapshotCheck { edge_ids: None, ..Default::default() }
    }

    /// Keeps each section's edges' ends as it finds them: the places of its vertices among
    /// the section's, which a reader holding the vertices in order can take instead of
    /// looking every end up again.
    pub fn keeping_ends(mut self) -> Self {
        self.kept = Some(Vec::new());
        self
    }

    /// The ends of the last section closed (by the next section's metadata, or
    /// [`SnapshotCheck::finish`]), edge by edge in the section's order, if kept.
    pub fn take_ends(&mut self) -> Option<Vec<[u32; 2]>> {
        self.closed.take()
    }

    pub fn item(&mut self, item: &SnapshotItem) -> Result<(), CheckError> {
        match item {
            SnapshotItem::Section(next) => self.section(next),
            SnapshotItem::Vertex(v) => self.vertex(&v.id),
            SnapshotItem::Edge(e) => self.edge(&e.id, &e.from, &e.to),
            SnapshotItem::Request(_) => {
                self.request();
                Ok(())
            }
        }
    }

    /// The next record, a request id: nothing to check, but it counts in the records' numbers.
    pub fn request(&mut self) {
        self.record += 1;
    }

    /// The next record, a section's metadata: the one before it closes.
    pub fn section(&mut self, next: &Section) -> Result<(), CheckError> {
        self.record += 1;
        self.close()?;
        let [vertices, edges] = next.room();
        self.vertex_ids.reserve(vertices);
        if let Some(edge_ids) = &mut self.edge_ids {
            edge_ids.reserve(edges);
        }
        self.section = Some(next.clone());
        Ok(())
    }

    /// The next record, a vertex: for a reader that holds it as something other than a
    /// [`SnapshotItem`] by now.
    pub fn vertex(&mut self, id: &str) -> Result<(), CheckError> {
        self.record += 1;
        // Past the places ends can name, none are kept (no one machine holds such a graph).
        let place = u32::try_from(self.counts.0).unwrap_or(u32::MAX);
        self.counts.0 += 1;
        match self.vertex_ids.insert(id, place) {
            true => Ok(()),
            false => Err(CheckError::Twice { record: self.record, kind: "vertex", id: id.to_owned() }),
        }
    }

    /// The next record, an edge.
    pub fn edge(&mut self, id: &str, from: &str, to: &str) -> Result<(), CheckError> {
        self.record += 1;
        let place = u32::try_from(self.counts.1).unwrap_or(u32::MAX);
        self.counts.1 += 1;
        if self.edge_ids.is_none() {
            return Ok(());
        }
        // Sections list their vertices first, as this crate writes them: an edge whose
        // ends are known is settled soon, and only the others wait for the section to
        // close (holding every edge's ends cost 40 bytes an edge in pages touched).
        // Its id is noted when it settles, with a batch of others.
        self.unsettled.push(self.record, place, id, from, to);
        if self.unsettled.len() >= ENDS_AT_ONCE {
            self.settle()?;
        }
        Ok(())
    }

    /// Closes the last section; the vertices and edges seen in all.
    pub fn finish(&mut self) -> Result<(u64, u64), CheckError> {
        self.close()?;
        Ok(self.totals)
    }

    /// Notes the unsettled edges' ids and looks for their ends, a batch at a time in the
    /// tables' order (one by one, each edge id was a cache miss: a fifth of the check's time
    /// on a 10M-edge file); the edges with an end not yet known wait in `ends`, in record
    /// order. An id seen before is named at the earliest record that repeats it.
    fn settle(&mut self) -> Result<(), CheckError> {
        if let Some(edge_ids) = &mut self.edge_ids {
            let ids: Vec<&str> = self.unsettled.iter().map(|(_, _, id, _, _)| id).collect();
            let new = edge_ids.insert_many(&ids, ());
            if let Some(((record, _, id, _, _), _)) = self.unsettled.iter().zip(new).find(|(_, new)| !new) {
                return Err(CheckError::Twice { record, kind: "edge", id: id.to_owned() });
            }
        }
        let ends: Vec<&str> = self.unsettled.iter().flat_map(|(_, _, _, from, to)| [from, to]).collect();
        let held = self.vertex_ids.get_many(&ends);
        if let Some(kept) = &mut self.kept {
            kept.resize(self.counts.1 as usize, [u32::MAX; 2]);
        }
        for ((record, place, id, from, to), both) in self.unsettled.iter().zip(held.chunks(2)) {
            match (both, &mut self.kept) {
                ([Some(from), Some(to)], Some(kept)) => kept[place as usize] = [*from, *to],
                ([Some(_), Some(_)], None) => {}
                _ => self.ends.push(record, place, id, from, to),
            }
        }
        self.unsettled.clear();
        Ok(())
    }

    /// The open section's counts and edge ends; the next section starts afresh.
    fn close(&mut self) -> Result<(), CheckError> {
        self.settle()?;
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
        for (record, place, id, from, to) in self.ends.iter() {
            match (self.vertex_ids.get(from), self.vertex_ids.get(to)) {
                (Some(from), Some(to)) => {
                    if let Some(kept) = &mut self.kept {
                        kept[place as usize] = [from, to];
                    }
                }
                (from_held, _) => {
                    let end = if from_held.is_none() { from } else { to };
                    return Err(CheckError::MissingEnd { record, id: id.to_owned(), end: end.to_owned() });
                }
            }
        }
        self.ends.clear();
        if let Some(kept) = &mut self.kept {
            let vertices_placed = self.counts.0 <= u64::from(u32::MAX);
            self.closed = Some(std::mem::take(kept)).filter(|_| vertices_placed);
        }
        self.totals.0 += self.counts.0;
        self.totals.1 += self.counts.1;
        self.counts = (0, 0);
        self.vertex_ids.clear();
        if let Some(edge_ids) = &mut self.edge_ids {
            edge_ids.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(id: &str) -> SnapshotItem {
        SnapshotItem::Vertex(crate::item::SnapshotVertex { id: id.into(), ..Default::default() })
    }

    fn edge(id: &str, from: &str, to: &str) -> SnapshotItem {
        SnapshotItem::Edge(crate::item::SnapshotEdge {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            ..Default::default()
        })
    }

    fn check(items: &[SnapshotItem]) -> Result<(u64, u64), CheckError> {
        check_by(SnapshotCheck::new(), items)
    }

    fn check_by(mut check: SnapshotCheck, items: &[SnapshotItem]) -> Result<(u64, u64), CheckError> {
        for item in items {
            check.item(item)?;
        }
        check.finish()
    }

    #[test]
    fn edge_ends_are_checked_against_their_own_section_in_any_order() {
        let section = || SnapshotItem::Section(Section::default());
        // Ends listed after their edge are found when the section closes.
        let later = [section(), edge("e", "a", "b"), vertex("a"), vertex("b"), edge("f", "b", "b")];
        assert_eq!(check(&later), Ok((2, 2)));
        // The first edge with a missing end is named, whether its other end was known or not.
        let missing = [section(), vertex("a"), edge("e", "a", "a"), edge("f", "a", "x"), edge("g", "y", "a")];
        assert_eq!(check(&missing), Err(CheckError::MissingEnd { record: 4, id: "f".into(), end: "x".into() }));
        // A vertex of another section is no end.
        let elsewhere = [section(), vertex("a"), section(), vertex("b"), edge("e", "b", "a")];
        assert_eq!(check(&elsewhere), Err(CheckError::MissingEnd { record: 5, id: "e".into(), end: "a".into() }));
    }

    #[test]
    fn an_edge_id_given_twice_in_a_section_is_named_at_its_first_repeat() {
        let section = || SnapshotItem::Section(Section::default());
        let twice = |record, id: &str| Err(CheckError::Twice { record, kind: "edge", id: id.into() });
        let close = [section(), vertex("a"), edge("e", "a", "a"), edge("f", "a", "a"), edge("f", "a", "a")];
        assert_eq!(check(&close), twice(5, "f"));
        let more = [edge("e", "a", "a")];
        assert_eq!(check(&[&close[..], &more[..]].concat()), twice(5, "f"), "the earliest repeat");
        // Across batches the ids settle in: the repeat is found whichever batch holds it.
        let mut far = vec![section(), vertex("a"), edge("first", "a", "a")];
        far.extend((0..ENDS_AT_ONCE + 10).map(|i| edge(&format!("e{i}"), "a", "a")));
        far.push(edge("first", "a", "a"));
        let record = far.len() as u64;
        assert_eq!(check(&far), twice(record, "first"));
        // Another section may use the id again; a check leaving edges to its caller allows
        // a repeat, and an end it does not hold, but not a vertex twice.
        let again = [section(), vertex("a"), edge("e", "a", "a"), section(), vertex("a"), edge("e", "a", "a")];
        assert_eq!(check(&again), Ok((2, 2)));
        let lenient = |items: &[SnapshotItem]| check_by(SnapshotCheck::leaving_edges_to_the_caller(), items);
        assert_eq!(lenient(&close), Ok((1, 3)));
        assert_eq!(lenient(&[section(), vertex("a"), edge("e", "a", "x")]), Ok((1, 1)));
        let vertex_twice = [section(), vertex("a"), vertex("a")];
        assert_eq!(lenient(&vertex_twice), Err(CheckError::Twice { record: 3, kind: "vertex", id: "a".into() }));
    }

    #[test]
    fn kept_ends_are_the_places_of_each_edges_vertices_in_its_section() {
        let section = || SnapshotItem::Section(Section::default());
        let mut check = SnapshotCheck::new().keeping_ends();
        // Settled in batches or when the section closes (an end listed after its edge), the
        // ends come in the edges' order; request ids and vertices between them count for
        // nothing.
        let mut first = vec![section(), vertex("a"), vertex("b"), edge("late", "b", "c"), vertex("c")];
        let request =
            crate::item::SnapshotRequest { request_id: "r".into(), lsn: 1, timestamp: 0, results: Vec::new() };
        first.push(SnapshotItem::Request(request));
        first.extend((0..ENDS_AT_ONCE + 3).map(|i| edge(&format!("e{i}"), ["a", "c"][i % 2], "b")));
        let second = [section(), vertex("z"), edge("y", "z", "z")];
        for item in &first {
            check.item(item).unwrap();
        }
        assert_eq!(check.take_ends(), Some(vec![]), "only what came before the first metadata has closed");
        check.item(&second[0]).unwrap();
        let ends = check.take_ends().expect("the first section's ends");
        assert_eq!(ends.len(), ENDS_AT_ONCE + 4);
        assert_eq!(ends[0], [1, 2]);
        assert!(ends[1..].iter().enumerate().all(|(i, &end)| end == [[0, 2][i % 2], 1]));
        for item in &second[1..] {
            check.item(item).unwrap();
        }
        check.finish().unwrap();
        assert_eq!(check.take_ends(), Some(vec![[0, 0]]), "a section's places start afresh");
        // Not kept unless asked for.
        let mut plain = SnapshotCheck::new();
        second.iter().for_each(|item| plain.item(item).unwrap());
        plain.finish().unwrap();
        assert_eq!(plain.take_ends(), None);
    }
}
