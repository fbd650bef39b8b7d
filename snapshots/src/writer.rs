//! Writes a snapshot as a stream in either encoding, plain or compressed.

use std::io::{BufWriter, Write};

use prism_connectors::codec::value;
use prism_proto::snapshot::{snapshot_record, EdgeRecord, SnapshotMetadata, SnapshotRecord, VertexRecord};
use prost::Message;
use serde_json::json;

use crate::format::{Compression, Encoding};
use crate::item::{SnapshotItem, SnapshotVertex};
use crate::reader::SnapshotError;

pub struct SnapshotWriter {
    output: Output,
    encoding: Encoding,
    buffer: Vec<u8>,
}

type Sink = BufWriter<Box<dyn Write + Send>>;

/// The stream being written, so that finishing it can write a compressed stream's trailer
/// and report failure (dropping would hide it).
enum Output {
    Plain(Sink),
    Gzip(flate2::write::GzEncoder<Sink>),
    Zstd(zstd::Encoder<'static, Sink>),
}

impl Output {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Plain(w) => w,
            Output::Gzip(w) => w,
            Output::Zstd(w) => w,
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut sink = match self {
            Output::Plain(sink) => sink,
            Output::Gzip(encoder) => encoder.finish()?,
            Output::Zstd(encoder) => encoder.finish()?,
        };
        sink.flush()
    }
}

impl SnapshotWriter {
    /// Writes to `sink` (a file, standard output). zstd is what exports use by default.
    pub fn new(
        sink: impl Write + Send + 'static,
        encoding: Encoding,
        compression: Compression,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let sink: Sink = BufWriter::with_capacity(1 << 16, Box::new(sink));
        let output = match compression {
            Compression::None => Output::Plain(sink),
            Compression::Gzip => Output::Gzip(flate2::write::GzEncoder::new(sink, flate2::Compression::fast())),
            Compression::Zstd => Output::Zstd(zstd::Encoder::new(sink, 3)?),
        };
        Ok(SnapshotWriter { output, encoding, buffer: Vec::new() })
    }

    pub fn write(&mut self, item: &SnapshotItem) -> Result<(), SnapshotError> {
        match self.encoding {
            Encoding::Protobuf => {
                let record = SnapshotRecord { record: Some(to_proto(item)) };
                self.buffer.clear();
                record.encode_length_delimited(&mut self.buffer).map_err(|e| std::io::Error::other(e.to_string()))?;
                self.output.writer().write_all(&self.buffer)?;
            }
            Encoding::JsonLines => {
                let output = self.output.writer();
                serde_json::to_writer(&mut *output, &to_json(item)).map_err(std::io::Error::other)?;
                output.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// Ends the stream (a compressed stream gets its trailer) and flushes it.
    pub fn finish(self) -> Result<(), SnapshotError> {
        Ok(self.output.finish()?)
    }
}

fn vertex_record(vertex: &SnapshotVertex) -> VertexRecord {
    VertexRecord {
        id: vertex.id.clone(),
        label: vertex.label.clone(),
        properties: value::encode_properties(&vertex.properties),
        created_at: vertex.created_at,
        updated_at: vertex.updated_at,
    }
}

fn to_proto(item: &SnapshotItem) -> snapshot_record::Record {
    match item {
        SnapshotItem::Section(section) => snapshot_record::Record::Metadata(SnapshotMetadata {
            snapshot_id: section.snapshot_id.clone(),
            timestamp: section.timestamp,
            vertex_count: section.vertex_count.map_or(-1, |n| n as i64),
            edge_count: section.edge_count.map_or(-1, |n| n as i64),
            previous_snapshot_id: String::new(),
            lsn: section.lsn,
            namespace: section.namespace.clone().unwrap_or_default(),
        }),
        SnapshotItem::Vertex(vertex) => snapshot_record::Record::Vertex(vertex_record(vertex)),
        SnapshotItem::Edge(edge) => snapshot_record::Record::Edge(EdgeRecord {
            id: edge.id.clone(),
            label: edge.label.clone(),
            from_vertex_id: edge.from.clone(),
            to_vertex_id: edge.to.clone(),
            properties: value::encode_properties(&edge.properties),
            created_at: edge.created_at,
        }),
    }
}

fn to_json(item: &SnapshotItem) -> serde_json::Value {
    let properties = |p: &prism_dataflows::Properties| {
        serde_json::Value::Object(p.iter().map(|(k, v)| (k.clone(), prism_connectors::json::to_json(v))).collect())
    };
    match item {
        SnapshotItem::Section(section) => json!({
            "type": "metadata",
            "namespace": section.namespace.clone().unwrap_or_default(),
            "snapshot_id": section.snapshot_id,
            "timestamp": section.timestamp,
            "vertex_count": section.vertex_count.map_or(-1, |n| n as i64),
            "edge_count": section.edge_count.map_or(-1, |n| n as i64),
            "lsn": section.lsn,
        }),
        SnapshotItem::Vertex(v) => json!({
            "type": "vertex", "id": v.id, "label": v.label, "properties": properties(&v.properties),
            "created_at": v.created_at, "updated_at": v.updated_at,
        }),
        SnapshotItem::Edge(e) => json!({
            "type": "edge", "id": e.id, "label": e.label, "from": e.from, "to": e.to,
            "properties": properties(&e.properties), "created_at": e.created_at,
        }),
    }
}
