//! The first pass over a snapshot that `serve --snapshot` loads: every record checked
//! (`SnapshotCheck`) before anything is written, its sections listed, and the first section
//! kept as a graph as it passes when it can go into its namespace in bulk, with its edges'
//! ends as the places of their vertices (which the check looks up anyway).
//!
//! One thread decompresses and cuts the records, one per core decodes them into the
//! engine's elements, and one more checks them in order and keeps them.

use std::path::Path;

use prism_dataflows::{Namespace, WholeGraph};
use prism_snapshots::{CheckError, SnapshotCheck, SnapshotReader};

use crate::checkpoints::{cores, Elements, Read};
use crate::convert::now_micros;
use crate::snapshot_load::SectionPlace;
use crate::snapshots::Refused;

/// The records of the first pass, in order: checked, counted by section, and the section
/// read kept as a graph.
struct FirstPass {
    check: SnapshotCheck,
    /// Each section and its elements; the first is what comes before any metadata.
    sections: Vec<(SectionPlace, u64)>,
    reading: Reading,
    graph: WholeGraph,
}

/// Which section the pass keeps.
enum Reading {
    /// Decided at the first record: the first section, unless its namespace is one of these.
    Undecided(Vec<Namespace>),
    Section(usize),
    Nothing,
}

impl FirstPass {
    fn new(occupied: Option<Vec<Namespace>>) -> Self {
        FirstPass {
            check: SnapshotCheck::new(),
            sections: vec![(SectionPlace { index: 0, namespace: Namespace::default() }, 0)],
            reading: occupied.map_or(Reading::Nothing, Reading::Undecided),
            graph: WholeGraph::default(),
        }
    }

    fn take(&mut self, read: Read) -> Result<(), CheckError> {
        if let Reading::Undecided(occupied) = &self.reading {
            // The first section is 1 when the file opens with its metadata, as files
            // written here do, else 0 (elements before any metadata go to the default
            // namespace).
            let (index, namespace) = match &read {
                Read::Section(namespace, _) => (1, namespace),
                _ => (0, &Namespace::default()),
            };
            self.reading = match occupied.contains(namespace) {
                true => Reading::Nothing,
                false => {
                    // The check looks every edge's ends up: the graph read keeps where they
                    // are, so that the workers number them without looking them up again.
                    self.check = std::mem::take(&mut self.check).keeping_ends();
                    Reading::Section(index)
                }
            };
        }
        let at = self.sections.len() - 1;
        let here = self.reads(at);
        match read {
            Read::Section(namespace, section) => {
                self.check.section(&section)?;
                if here {
                    self.graph.ends = self.check.take_ends();
                }
                if self.reads(at + 1) {
                    // Grown element by element, the vectors were copied over and over.
                    let [vertices, edges] = section.room();
                    self.graph.vertices.reserve(vertices);
                    self.graph.edges.reserve(edges);
                }
                self.sections.push((SectionPlace { index: at + 1, namespace }, 0));
            }
            Read::Vertex(vertex) => {
                self.check.vertex(vertex.id.as_str())?;
                self.sections[at].1 += 1;
                if here {
                    self.graph.vertices.push((self.sections[at].0.namespace.clone(), vertex));
                }
            }
            Read::Edge(edge) => {
                self.check.edge(edge.id.as_str(), edge.from.as_str(), edge.to.as_str())?;
                self.sections[at].1 += 1;
                if here {
                    self.graph.edges.push((self.sections[at].0.namespace.clone(), edge));
                }
            }
            Read::Request(_) => self.check.request(),
        }
        Ok(())
    }

    /// Whether section `index` is the one kept.
    fn reads(&self, index: usize) -> bool {
        matches!(self.reading, Reading::Section(read) if read == index)
    }

    /// The sections, and the one read: `(its index, the graph)`. The section before the
    /// first metadata record counts only when it holds something or is the only one.
    fn finish(mut self) -> Result<Passed, CheckError> {
        self.check.finish()?;
        if self.reads(self.sections.len() - 1) {
            self.graph.ends = self.check.take_ends();
        }
        if self.sections.len() > 1 && self.sections[0].1 == 0 {
            self.sections.remove(0);
        }
        let read = match self.reading {
            Reading::Section(index) => Some((index, self.graph)),
            Reading::Undecided(_) | Reading::Nothing => None,
        };
        Ok((self.sections.into_iter().map(|(place, _)| place).collect(), read))
    }
}

/// What the first pass gives: the file's sections, and the one read with its index.
pub(crate) type Passed = (Vec<SectionPlace>, Option<(usize, WholeGraph)>);

/// Records handed to the keeping thread at once.
const KEPT_AT_ONCE: usize = 4096;

/// The first pass: the whole file checked, and its sections. With `occupied` (the load may
/// go in bulk), the first section is read as a graph in the same pass unless its namespace
/// is among them, every element created now.
///
/// The records are decoded on every core while this thread decompresses them, and checked
/// and kept by one more. A check and a read of their own, each a thread decompressing and
/// decoding the whole file, took 15 s for a 10M-edge file; one pass checking on the
/// decompressing thread, 13 s, that thread the one always busy.
pub(crate) fn check(path: &Path, occupied: Option<Vec<Namespace>>) -> Result<Passed, String> {
    let refuse = |e: &dyn std::fmt::Display| format!("snapshot: {e}; the graph is unchanged");
    let (now, elements) = (Some(now_micros()), Elements::default());
    let converter = || {
        let mut elements = elements.sharing();
        move |item| elements.read(item, now)
    };
    let reader = SnapshotReader::open(path).map_err(|e| refuse(&e))?;
    let (passed, kept) = std::thread::scope(|scope| {
        let (keep, kept) = std::sync::mpsc::sync_channel::<Vec<Read>>(4);
        let keeper = scope.spawn(move || {
            let mut pass = FirstPass::new(occupied);
            for read in kept.into_iter().flatten() {
                pass.take(read)?;
            }
            let finished = pass.finish();
            // The parse's own garbage goes back now, not whenever this thread runs again.
            crate::memory::release();
            finished
        });
        let mut batch = Vec::with_capacity(KEPT_AT_ONCE);
        let passed = reader.for_each_parallel(cores(), converter, |read| -> Result<(), Refused> {
            batch.push(read);
            if batch.len() == KEPT_AT_ONCE {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(KEPT_AT_ONCE));
                keep.send(full).map_err(|_| Refused::Stopped)?;
            }
            Ok(())
        });
        if passed.is_ok() && !batch.is_empty() {
            // Refused or not, the keeper says so when joined.
            let _ = keep.send(batch);
        }
        drop(keep);
        let kept = keeper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (passed, kept)
    });
    crate::memory::release();
    // The keeper saw only records before any the stream refused: its refusal comes first.
    let kept = kept.map_err(|e| refuse(&e))?;
    passed.map_err(|e| refuse(&e))?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use prism_snapshots::{Compression, Encoding, Section, SnapshotEdge, SnapshotItem, SnapshotVertex, SnapshotWriter};

    use super::*;

    /// A file of `vertices` vertices `v0, v1, …` in namespace `a`, one of them named twice
    /// when `repeated` says which, and a ring of edges through them from the last down,
    /// then the same in namespace `b`.
    fn file(dir: &Path, vertices: usize, repeated: Option<usize>) -> PathBuf {
        let path = dir.join("graph.snap");
        let sink = std::fs::File::create(&path).unwrap();
        let mut writer = SnapshotWriter::new(sink, Encoding::Protobuf, Compression::Zstd).unwrap();
        for namespace in ["a", "b"] {
            let section = Section { namespace: Some(namespace.into()), ..Default::default() };
            writer.write(&SnapshotItem::Section(section)).unwrap();
            for i in 0..vertices {
                let i = if Some(i) == repeated.map(|r| r + 1) { i - 1 } else { i };
                let vertex = SnapshotVertex { id: format!("v{i}"), label: "V".into(), ..Default::default() };
                writer.write(&SnapshotItem::Vertex(vertex)).unwrap();
            }
            for i in (0..vertices).rev() {
                let (from, to) = (format!("v{i}"), format!("v{}", (i + 1) % vertices));
                let edge = SnapshotEdge { id: format!("e{i}"), label: "E".into(), from, to, ..Default::default() };
                writer.write(&SnapshotItem::Edge(edge)).unwrap();
            }
        }
        writer.finish().unwrap();
        path
    }

    #[test]
    fn the_first_pass_keeps_the_first_free_section_and_lists_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 10, None);
        let (sections, read) = check(&path, Some(vec![])).unwrap();
        let names: Vec<_> = sections.iter().map(|s| (s.index, s.namespace.to_string())).collect();
        assert_eq!(names, [(1, "a".to_string()), (2, "b".to_string())]);
        let (index, graph) = read.expect("the first section is read");
        assert_eq!(index, 1);
        assert_eq!(graph.vertices.len(), 10);
        assert!(graph.vertices.iter().all(|(namespace, _)| namespace.as_str() == "a"));
        // Its edges' ends as the check found them: places among its vertices.
        let ends: Vec<_> = (0..10u32).rev().map(|i| [i, (i + 1) % 10]).collect();
        assert_eq!(graph.ends_placed(), Some(&ends[..]));
        // Its namespace holds a graph already: nothing is read.
        let (_, read) = check(&path, Some(vec![Namespace::new("a")])).unwrap();
        assert!(read.is_none());
    }

    #[test]
    fn the_first_pass_names_the_earliest_record_it_refuses_however_far_the_read_went() {
        let dir = tempfile::tempdir().unwrap();
        // Far more records than the keeper is handed at once, so the read is still going
        // when the keeper stops.
        let path = file(dir.path(), 20 * KEPT_AT_ONCE, Some(3));
        let refused = check(&path, Some(vec![])).err().expect("a repeated id is refused");
        // Record 1 is the section, so vertex `v3` is record 5, repeated at 6.
        assert!(refused.contains("record 6: vertex \"v3\" appears twice"), "{refused}");
    }
}
