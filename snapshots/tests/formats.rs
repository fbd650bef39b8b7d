//! Every encoding and compression round-trips, is told apart by its bytes, and damage is
//! reported with the record number and byte offset.

use prism_dataflows::Value;
use prism_snapshots::{
    Compression, Encoding, Section, SnapshotEdge, SnapshotError, SnapshotItem, SnapshotReader, SnapshotRequest,
    SnapshotVertex, SnapshotWriter,
};

fn items() -> Vec<SnapshotItem> {
    let properties = [
        ("name".to_string(), Value::String("Alice".into())),
        ("age".to_string(), Value::Int(42)),
        ("score".to_string(), Value::Double(0.5)),
        ("tags".to_string(), Value::List([Value::String("a".into()), Value::Bool(true)].into())),
    ]
    .into_iter()
    .collect();
    vec![
        SnapshotItem::Section(Section {
            namespace: Some("social".into()),
            snapshot_id: "s1".into(),
            timestamp: 5,
            vertex_count: Some(2),
            edge_count: Some(1),
            lsn: 17,
        }),
        SnapshotItem::Vertex(SnapshotVertex {
            id: "alice".into(),
            label: "User".into(),
            properties,
            created_at: 3,
            updated_at: 4,
        }),
        SnapshotItem::Vertex(SnapshotVertex {
            id: "bob".into(),
            label: "User".into(),
            properties: Default::default(),
            ..Default::default()
        }),
        SnapshotItem::Edge(SnapshotEdge {
            id: "f1".into(),
            label: "FOLLOWS".into(),
            from: "alice".into(),
            to: "bob".into(),
            properties: Default::default(),
            created_at: 9,
        }),
    ]
}

fn write(items: &[SnapshotItem], encoding: Encoding, compression: Compression) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot");
    let mut writer = SnapshotWriter::new(std::fs::File::create(&path).unwrap(), encoding, compression).unwrap();
    for item in items {
        writer.write(item).unwrap();
    }
    writer.finish().unwrap();
    std::fs::read(&path).unwrap()
}

fn read(bytes: Vec<u8>) -> (SnapshotReader, Result<Vec<SnapshotItem>, SnapshotError>) {
    let mut reader = SnapshotReader::new(std::io::Cursor::new(bytes)).unwrap();
    let items = (&mut reader).collect();
    (reader, items)
}

#[test]
fn every_format_round_trips_and_is_told_by_its_bytes() {
    for encoding in [Encoding::Protobuf, Encoding::JsonLines] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (reader, read_back) = read(write(&items(), encoding, compression));
            assert_eq!(read_back.unwrap(), items(), "{encoding:?} {compression:?}");
            assert_eq!((reader.encoding(), reader.compression()), (encoding, compression));
        }
    }
}

/// A protobuf stream opens with its first record's length: 123 is `{`, which JSON lines open
/// with too. Whatever record follows, its tag byte is never the quote JSON would go on with.
#[test]
fn a_protobuf_stream_opening_with_a_123_byte_record_is_protobuf() {
    for first in 0..3 {
        let mut pad = 0;
        loop {
            let item = match first {
                0 => SnapshotItem::Request(SnapshotRequest {
                    request_id: "r".repeat(pad),
                    lsn: 1,
                    timestamp: 2,
                    results: Vec::new(),
                }),
                1 => SnapshotItem::Vertex(SnapshotVertex {
                    id: "v".repeat(pad),
                    label: "L".into(),
                    ..Default::default()
                }),
                _ => SnapshotItem::Section(Section { snapshot_id: "s".repeat(pad), ..Default::default() }),
            };
            let bytes = write(std::slice::from_ref(&item), Encoding::Protobuf, Compression::None);
            if bytes[0] == b'{' {
                let (reader, read_back) = read(bytes);
                assert_eq!(reader.encoding(), Encoding::Protobuf, "record {first}");
                assert_eq!(read_back.unwrap(), vec![item]);
                break;
            }
            assert!(bytes[0] < b'{', "record {first}: no padding gives a 123-byte record");
            pad += 1;
        }
    }
}

fn record_error(result: Result<Vec<SnapshotItem>, SnapshotError>) -> (u64, u64, String) {
    match result {
        Err(SnapshotError::Record { record, offset, problem }) => (record, offset, problem),
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[test]
fn damage_names_the_record_and_the_offset() {
    // A zstd stream cut in the middle.
    let mut bytes = write(&items(), Encoding::Protobuf, Compression::Zstd);
    bytes.truncate(bytes.len() - 8);
    let (record, _, problem) = record_error(read(bytes).1);
    assert!(record >= 1, "{record} {problem}");

    // A length varint of eleven bytes, after two good records: the third.
    let mut bytes = write(&items()[..2], Encoding::Protobuf, Compression::None);
    let good = bytes.len() as u64;
    bytes.extend([0xff; 11]);
    let (record, offset, problem) = record_error(read(bytes).1);
    assert_eq!((record, offset), (3, good), "{problem}");
    assert!(problem.contains("varint"), "{problem}");

    // A record cut short.
    let mut bytes = write(&items(), Encoding::Protobuf, Compression::None);
    bytes.truncate(bytes.len() - 3);
    let (record, _, problem) = record_error(read(bytes).1);
    assert_eq!(record, 4);
    assert!(problem.contains("cut short"), "{problem}");

    // An unknown record type, in either encoding.
    let mut bytes = write(&items()[..1], Encoding::Protobuf, Compression::None);
    bytes.extend([0x00]);
    let (record, _, problem) = record_error(read(bytes).1);
    assert_eq!(record, 2);
    assert!(problem.contains("unknown record type"), "{problem}");
    let json = b"{\"type\":\"vertex\",\"id\":\"a\",\"label\":\"L\"}\n{\"type\":\"hyperedge\",\"id\":\"h\"}\n".to_vec();
    let (record, offset, problem) = record_error(read(json).1);
    assert_eq!((record, offset), (2, 39), "the second line starts at byte 39: {problem}");
    assert!(problem.contains("hyperedge"), "{problem}");
}
