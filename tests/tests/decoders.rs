//! Property tests of every decoder an entrance uses: on arbitrary bytes each gives a value or
//! an error, never a panic; and what the encoders write reads back as it was.
//!
//! (The log's frames and the record codec on arbitrary bytes are tested beside them, in
//! prism-connectors.)

use std::io::Cursor;

use prism_connectors::codec::{decode_record, encode_record};
use prism_connectors::json::{op_to_json, record_from_json};
use prism_connectors::{EmbeddedWal, WalOptions};
use prism_dataflows::Committed;
use prism_dataflows::{CommitSink, Ticket, WriteLog, WriteRecord};
use prism_e2e::arbitrary::{self, Values};
use prism_snapshots::{Compression, Encoding, SnapshotReader, SnapshotWriter};
use proptest::prelude::*;

/// A record as `prism-graph record` reads it.
fn record_to_json(record: &WriteRecord) -> String {
    let mut json = serde_json::json!({
        "namespace": record.namespace.as_str(),
        "atomic": record.atomic,
        "timestamp": record.timestamp,
        "operations": record.ops.iter().map(op_to_json).collect::<Vec<_>>(),
    });
    if let Some(id) = &record.request_id {
        json["request_id"] = serde_json::Value::String(id.clone());
    }
    json.to_string()
}

fn write_snapshot(items: &[prism_snapshots::SnapshotItem], encoding: Encoding, compression: Compression) -> Vec<u8> {
    let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writer = SnapshotWriter::new(SharedBuffer(bytes.clone()), encoding, compression).unwrap();
    for item in items {
        writer.write(item).unwrap();
    }
    writer.finish().unwrap();
    let written = bytes.lock().unwrap().clone();
    written
}

/// Items written as a checkpoint writes them: vertices and edges straight from the engine's
/// elements, the rest as items.
fn write_snapshot_of_elements(items: &[prism_snapshots::SnapshotItem], encoding: Encoding) -> Vec<u8> {
    use prism_snapshots::SnapshotItem;
    let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writer = SnapshotWriter::new(SharedBuffer(bytes.clone()), encoding, Compression::None).unwrap();
    for item in items {
        match item {
            SnapshotItem::Vertex(v) => writer.write_vertex(&prism_dataflows::Vertex::from(v.clone())).unwrap(),
            SnapshotItem::Edge(e) => writer.write_edge(&prism_dataflows::Edge::from(e.clone())).unwrap(),
            other => writer.write(other).unwrap(),
        }
    }
    writer.finish().unwrap();
    let written = bytes.lock().unwrap().clone();
    written
}

/// Whether prost writes `properties` in one order only: no map, theirs or a value's, with more
/// than one entry (prost writes a map in hash order).
fn in_one_order(properties: &prism_dataflows::Properties) -> bool {
    use prism_dataflows::Value;
    fn value(v: &Value) -> bool {
        match v {
            Value::List(items) => items.iter().all(value),
            Value::Map(fields) => fields.len() <= 1 && fields.values().all(value),
            _ => true,
        }
    }
    properties.len() <= 1 && properties.iter().all(|(_, v)| value(v))
}

fn read_snapshot(bytes: Vec<u8>) -> Result<Vec<prism_snapshots::SnapshotItem>, String> {
    let reader = SnapshotReader::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn log_records_round_trip(record in arbitrary::write_record(Values::All)) {
        prop_assert_eq!(decode_record(&encode_record(&record)).unwrap(), record);
    }

    #[test]
    fn json_records_round_trip(record in arbitrary::write_record(Values::Json)) {
        prop_assert_eq!(record_from_json(&record_to_json(&record), 0).unwrap(), record);
    }

    #[test]
    fn json_records_from_arbitrary_text_never_panic(text in "\\PC{0,200}") {
        let _ = record_from_json(&text, 0);
    }

    #[test]
    fn json_records_from_json_shaped_text_never_panic(
        text in r#"\{"operations":\[\{"type":"(create|update|delete)_(vertex|edge)","id":"a","label":"L","from":"a","to":"b","properties":\{"p":[\[\]\{\}0-9a-z":,.-]{0,40}\}\}\]\}"#
    ) {
        let _ = record_from_json(&text, 0);
    }

    #[test]
    fn snapshots_round_trip_in_every_format(
        items in arbitrary::snapshot_items(Values::Json),
        format in 0usize..6,
    ) {
        let encoding = [Encoding::Protobuf, Encoding::JsonLines][format % 2];
        let compression = [Compression::None, Compression::Gzip, Compression::Zstd][format / 2];
        prop_assert_eq!(read_snapshot(write_snapshot(&items, encoding, compression)).unwrap(), items);
    }

    #[test]
    fn protobuf_snapshots_keep_every_value_kind(items in arbitrary::snapshot_items(Values::All)) {
        let written = write_snapshot(&items, Encoding::Protobuf, Compression::None);
        prop_assert_eq!(read_snapshot(written).unwrap(), items);
    }

    /// A checkpoint encodes the engine's elements itself, not through items and prost's
    /// messages: the records read back as the items, and are prost's bytes exactly where the
    /// order of a map's entries cannot differ (prost writes them in hash order).
    #[test]
    fn elements_encoded_straight_read_back_as_their_items(items in arbitrary::snapshot_items(Values::All)) {
        use prism_snapshots::SnapshotItem;
        let written = write_snapshot_of_elements(&items, Encoding::Protobuf);
        prop_assert_eq!(read_snapshot(written.clone()).unwrap(), items.clone());
        let in_one_order = items.iter().all(|item| match item {
            SnapshotItem::Vertex(v) => in_one_order(&v.properties),
            SnapshotItem::Edge(e) => in_one_order(&e.properties),
            // Its results' elements are prost's maps, in its order, either way.
            SnapshotItem::Request(_) => false,
            SnapshotItem::Section(_) => true,
        });
        if in_one_order {
            prop_assert_eq!(written, write_snapshot(&items, Encoding::Protobuf, Compression::None));
        }
    }

    #[test]
    fn snapshots_from_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_snapshot(bytes);
    }

    /// Damage to a valid snapshot is an error naming a record, or (for bytes a compressed
    /// stream does not check) a different reading; never a panic.
    #[test]
    fn damaged_snapshots_never_panic(
        items in arbitrary::snapshot_items(Values::All),
        format in 0usize..6,
        at in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let encoding = [Encoding::Protobuf, Encoding::JsonLines][format % 2];
        let compression = [Compression::None, Compression::Gzip, Compression::Zstd][format / 2];
        let mut damaged = write_snapshot(&items, encoding, compression);
        if !damaged.is_empty() {
            let at = at % damaged.len();
            damaged[at] ^= byte | 1;
            let _ = read_snapshot(damaged.clone());
            damaged.truncate(at);
            let _ = read_snapshot(damaged);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Records appended to the embedded log replay as they were appended.
    #[test]
    fn the_embedded_log_replays_what_it_took(records in proptest::collection::vec(arbitrary::write_record(Values::All), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let (sink, committed) = CommitSink::detached();
        let (wal, _) = EmbeddedWal::open(&WalOptions::new(dir.path()), sink).unwrap();
        for (i, record) in records.iter().enumerate() {
            wal.append(record.clone(), Ticket::unattached(i as u64));
            let appended = matches!(committed.recv().unwrap(), Committed::Record { .. });
            prop_assert!(appended, "record {} was not appended", i + 1);
        }
        drop(wal);
        let (sink, replayed) = CommitSink::detached();
        let (_wal, recovery) = EmbeddedWal::open(&WalOptions::new(dir.path()), sink).unwrap();
        prop_assert_eq!(recovery.records, records.len() as u64);
        for (i, record) in records.iter().enumerate() {
            match replayed.try_recv().unwrap() {
                Committed::Record { lsn, record: back, ticket: None } => {
                    prop_assert_eq!(lsn, i as u64 + 1);
                    prop_assert_eq!(&back, record);
                }
                other => prop_assert!(false, "expected record {}, got {:?}", i + 1, other),
            }
        }
    }

    /// A segment of arbitrary bytes: recovery starts (cutting a torn tail) or refuses with
    /// the file and offset; it never panics.
    #[test]
    fn the_embedded_log_recovers_or_refuses_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(format!("wal-{:020}.log", 1)), &bytes).unwrap();
        let (sink, _) = CommitSink::detached();
        if let Err(error) = EmbeddedWal::open(&WalOptions::new(dir.path()), sink) {
            prop_assert!(error.to_string().contains("wal-"), "{}", error);
        }
    }
}

/// A `Write` into a buffer the test keeps (the writer owns its sink).
struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
