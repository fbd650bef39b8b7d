//! The embedded log on real files: group commit, replay, torn tails and damage.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use prism_connectors::{EmbeddedWal, WalError, WalOptions};
use prism_dataflows::{CommitSink, Committed, Namespace, Ticket, WriteLog, WriteOp, WriteRecord};

fn record(i: u64) -> WriteRecord {
    WriteRecord {
        namespace: Namespace::default(),
        atomic: true,
        timestamp: i as i64,
        ops: vec![WriteOp::CreateVertex { id: format!("v{i}"), label: "User".into(), properties: Default::default() }],
        ..Default::default()
    }
}

/// Appends `count` records from 8 threads; returns (lsn, record) as committed.
fn append_concurrently(wal: &Arc<EmbeddedWal>, committed: &Receiver<Committed>, count: u64) -> Vec<(u64, WriteRecord)> {
    std::thread::scope(|scope| {
        for t in 0..8 {
            let wal = wal.clone();
            scope.spawn(move || {
                for i in (t..count).step_by(8) {
                    wal.append(record(i), Ticket::unattached(i));
                }
            });
        }
    });
    (0..count)
        .map(|_| match committed.recv_timeout(Duration::from_secs(10)).expect("every append commits") {
            Committed::Record { lsn, record, ticket } => {
                assert!(ticket.is_some());
                (lsn, record)
            }
            Committed::Failed { error, .. } => panic!("append failed: {error}"),
            Committed::Restore { .. } => panic!("no checkpoint here"),
        })
        .collect()
}

fn replayed(rx: &Receiver<Committed>) -> Vec<(u64, WriteRecord)> {
    rx.try_iter()
        .map(|c| match c {
            Committed::Record { lsn, record, ticket: None } => (lsn, record),
            other => panic!("replay delivers records without tickets, got {other:?}"),
        })
        .collect()
}

fn open(dir: &Path) -> Result<(Arc<EmbeddedWal>, prism_connectors::Recovery, Receiver<Committed>), WalError> {
    let (sink, rx) = CommitSink::detached();
    let (wal, recovery) = EmbeddedWal::open(&WalOptions::new(dir), sink)?;
    Ok((wal, recovery, rx))
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut files: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

#[test]
fn concurrent_appends_get_consecutive_lsns_and_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovery, rx) = open(dir.path()).unwrap();
    assert_eq!(recovery.last_lsn, 0);
    let committed = append_concurrently(&wal, &rx, 400);
    let lsns: Vec<u64> = committed.iter().map(|(lsn, _)| *lsn).collect();
    assert_eq!(lsns, (1..=400).collect::<Vec<_>>());
    drop(wal);

    let (wal, recovery, rx) = open(dir.path()).unwrap();
    assert_eq!((recovery.records, recovery.last_lsn, recovery.torn_bytes), (400, 400, 0));
    assert_eq!(replayed(&rx), committed);
    // Appends continue after the replayed LSNs.
    let next = append_concurrently(&wal, &rx, 1);
    assert_eq!(next[0].0, 401);
}

#[test]
fn a_torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, rx) = open(dir.path()).unwrap();
    append_concurrently(&wal, &rx, 10);
    drop(wal);
    let segment = only_segment(dir.path());
    let full = fs::read(&segment).unwrap();
    fs::write(&segment, &full[..full.len() - 3]).unwrap();

    let (_wal, recovery, rx) = open(dir.path()).unwrap();
    assert_eq!(recovery.records, 9);
    assert_eq!(replayed(&rx).len(), 9);
    assert!(recovery.torn_bytes > 0 && recovery.torn_bytes < full.len() as u64);
    assert_eq!(fs::metadata(&segment).unwrap().len(), full.len() as u64 - 3 - recovery.torn_bytes);
}

#[test]
fn damage_in_the_middle_stops_the_start_unless_truncation_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _, rx) = open(dir.path()).unwrap();
    append_concurrently(&wal, &rx, 10);
    drop(wal);
    let segment = only_segment(dir.path());
    let mut bytes = fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&segment, &bytes).unwrap();

    let err = open(dir.path()).err().expect("a damaged log must not open");
    match &err {
        WalError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &segment);
            assert!(*offset <= middle as u64, "offset {offset} is the start of the damaged frame");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains(&segment.display().to_string()) && message.contains("offset"), "{message}");

    let (sink, rx) = CommitSink::detached();
    let options = WalOptions { truncate_corrupt: true, ..WalOptions::new(dir.path()) };
    let (_wal, recovery) = EmbeddedWal::open(&options, sink).unwrap();
    assert!(recovery.records < 10 && recovery.truncated_bytes > 0);
    assert_eq!(replayed(&rx).len() as u64, recovery.records);
}

#[test]
fn records_span_segments_and_replay_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let small = |dir: &Path| WalOptions { segment_bytes: 1024, ..WalOptions::new(dir) };
    let (sink, rx) = CommitSink::detached();
    let (wal, _) = EmbeddedWal::open(&small(dir.path()), sink).unwrap();
    let committed = append_concurrently(&wal, &rx, 200);
    drop(wal);
    let segments: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    // Rotation happens between group commits, so a group may overfill a segment.
    assert!(segments.len() > 1, "1 KiB segments for 200 records: {}", segments.len());

    let (sink, rx) = CommitSink::detached();
    let (wal, recovery) = EmbeddedWal::open(&small(dir.path()), sink).unwrap();
    assert_eq!((recovery.records, recovery.last_lsn), (200, 200));
    assert_eq!(replayed(&rx), committed);
    // Appending goes on in the last segment, at the next LSN.
    assert_eq!(append_concurrently(&wal, &rx, 1)[0].0, 201);
    drop(wal);

    // A segment cut short that is not the last is damage, not a torn tail.
    let mut sorted = segments.clone();
    sorted.sort();
    let first = &sorted[0];
    let bytes = fs::read(first).unwrap();
    fs::write(first, &bytes[..bytes.len() - 2]).unwrap();
    let (sink, _rx) = CommitSink::detached();
    match EmbeddedWal::open(&small(dir.path()), sink) {
        Err(WalError::Corrupt { path, .. }) => assert_eq!(&path, first),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a cut segment in the middle of the log must not open"),
    }
}
