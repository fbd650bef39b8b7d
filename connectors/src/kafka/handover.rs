//! Hands records to the engine in offset order from two sources: the follower, which reads
//! every record of the topic in order, and the producer's delivery reports, which tell this
//! server where the broker put its own records.
//!
//! A record of this server's is handed over as soon as the broker has placed it and every
//! record before it has been handed over — without waiting for the follower's next fetch to
//! bring it back. When the follower reaches it, it is skipped; if records of other producers
//! came before it, it waits for them. Either way each LSN is handed over once, in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use prism_dataflows::{CommitSink, Lsn, Ticket, WriteRecord};

pub(crate) struct Handover {
    state: Mutex<State>,
    sink: CommitSink,
}

struct State {
    /// Writes whose record is on its way to the broker, by sequence number.
    waiting: HashMap<u64, (Ticket, WriteRecord)>,
    /// The next LSN to hand over.
    next: Lsn,
    /// This server's records the broker placed beyond `next`.
    placed: BTreeMap<Lsn, (Ticket, WriteRecord)>,
}

/// What the follower should do with a record it read.
pub(crate) enum Consumed {
    /// Handed over already, or now (this server's record).
    Done,
    /// Another producer's record: decode it and hand it over with [`Handover::decoded`].
    Decode,
}

impl Handover {
    pub fn new(sink: CommitSink, start_offset: i64) -> Self {
        let state = State { waiting: HashMap::new(), next: start_offset.max(0) as Lsn + 1, placed: BTreeMap::new() };
        Handover { state: Mutex::new(state), sink }
    }

    /// A write's record is being sent.
    pub fn waiting(&self, sequence: u64, ticket: Ticket, record: WriteRecord) {
        if let Ok(mut state) = self.state.lock() {
            state.waiting.insert(sequence, (ticket, record));
        }
    }

    /// A record refused before it was sent (`message` names the limit): its write fails.
    pub fn too_large(&self, ticket: Ticket, message: String) {
        self.sink.too_large(ticket, message);
    }

    /// The broker did not take a record: its write fails.
    pub fn not_taken(&self, sequence: u64, error: String) {
        let taken = self.state.lock().ok().and_then(|mut state| state.waiting.remove(&sequence));
        if let Some((ticket, _)) = taken {
            self.sink.failed(ticket, error);
        }
    }

    /// The broker placed a record of this server's at `offset`.
    pub fn placed(&self, sequence: u64, offset: i64) {
        let Ok(mut state) = self.state.lock() else { return };
        let Some((ticket, record)) = state.waiting.remove(&sequence) else { return };
        let lsn = offset as Lsn + 1;
        if lsn == state.next {
            self.hand_over(&mut state, lsn, record, Some(ticket));
        } else if lsn > state.next {
            state.placed.insert(lsn, (ticket, record));
        }
        // (Below `next`: the follower read it first and found it waiting; nothing is left.)
    }

    /// The follower read the record at `offset`, this server's own when `own` names its
    /// sequence number.
    pub fn consumed(&self, offset: i64, own: Option<u64>) -> Consumed {
        let Ok(mut state) = self.state.lock() else { return Consumed::Done };
        let lsn = offset as Lsn + 1;
        if lsn < state.next {
            return Consumed::Done;
        }
        let mine = state.placed.remove(&lsn).or_else(|| own.and_then(|sequence| state.waiting.remove(&sequence)));
        match mine {
            Some((ticket, record)) => {
                self.hand_over(&mut state, lsn, record, Some(ticket));
                Consumed::Done
            }
            None => Consumed::Decode,
        }
    }

    /// Another producer's record at `offset`, decoded (or not: `None` skips its LSN).
    pub fn decoded(&self, offset: i64, record: Option<WriteRecord>) {
        let Ok(mut state) = self.state.lock() else { return };
        let lsn = offset as Lsn + 1;
        match record {
            Some(record) => self.hand_over(&mut state, lsn, record, None),
            None => self.advance(&mut state, lsn + 1),
        }
    }

    fn hand_over(&self, state: &mut State, lsn: Lsn, record: WriteRecord, ticket: Option<Ticket>) {
        self.sink.committed(lsn, record, ticket);
        self.advance(state, lsn + 1);
    }

    /// Moves `next` to `to`, then hands over this server's records placed right after.
    fn advance(&self, state: &mut State, to: Lsn) {
        state.next = state.next.max(to);
        state.placed.retain(|lsn, _| *lsn >= to);
        while let Some((ticket, record)) = state.placed.remove(&state.next) {
            let lsn = state.next;
            self.sink.committed(lsn, record, Some(ticket));
            state.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use prism_dataflows::{Committed, Namespace, WriteOp};

    use super::*;

    fn record(id: &str) -> WriteRecord {
        let op = WriteOp::CreateVertex { id: id.into(), label: "V".into(), properties: Default::default() };
        WriteRecord { namespace: Namespace::default(), atomic: true, timestamp: 1, ops: vec![op], ..Default::default() }
    }

    fn handed(received: &crossbeam_channel::Receiver<Committed>) -> Vec<(Lsn, String, Option<Ticket>)> {
        received
            .try_iter()
            .map(|c| match &c {
                Committed::Record { lsn, record, ticket } => match &record.ops[0] {
                    WriteOp::CreateVertex { id, .. } => (*lsn, id.clone(), *ticket),
                    other => panic!("{other:?}"),
                },
                Committed::Failed { .. } | Committed::Restore { .. } => panic!("unexpected {c:?}"),
            })
            .collect()
    }

    #[test]
    fn own_records_go_as_soon_as_placed_but_never_ahead_of_earlier_offsets() {
        let (sink, received) = CommitSink::detached();
        let handover = Handover::new(sink, 0);
        let (t1, t2) = (Ticket::unattached(1), Ticket::unattached(2));
        // Placed at offset 0: nothing before it, so it goes at once.
        handover.waiting(1, t1, record("a"));
        handover.placed(1, 0);
        assert_eq!(handed(&received), vec![(1, "a".into(), Some(t1))]);
        // The follower reads it afterwards: skipped.
        assert!(matches!(handover.consumed(0, Some(1)), Consumed::Done));
        // Placed at offset 2 while another producer's offset 1 is unread: it waits.
        handover.waiting(2, t2, record("c"));
        handover.placed(2, 2);
        assert!(handed(&received).is_empty());
        assert!(matches!(handover.consumed(1, None), Consumed::Decode));
        handover.decoded(1, Some(record("b")));
        assert_eq!(handed(&received), vec![(2, "b".into(), None), (3, "c".into(), Some(t2))]);
        assert!(matches!(handover.consumed(2, Some(2)), Consumed::Done));
        // The follower first: an own record still waiting for its report goes with its ticket.
        let t3 = Ticket::unattached(3);
        handover.waiting(3, t3, record("d"));
        assert!(matches!(handover.consumed(3, Some(3)), Consumed::Done));
        handover.placed(3, 3);
        assert_eq!(handed(&received), vec![(4, "d".into(), Some(t3))]);
        // An undecodable record leaves its LSN unused.
        assert!(matches!(handover.consumed(4, None), Consumed::Decode));
        handover.decoded(4, None);
        handover.decoded(5, Some(record("e")));
        assert_eq!(handed(&received), vec![(6, "e".into(), None)]);
    }
}
