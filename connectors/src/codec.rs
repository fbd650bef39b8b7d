//! The log record codec: wal.proto bytes to and from the engine's [`WriteRecord`].
//!
//! Every write path shares this format: the embedded log stores it, Kafka producers write
//! it, recovery reads it. A property value travels as a serialized `prism.graph.v1.Value`
//! (the `bytes` of RFC-055's `VertexRecord.properties`), converted by [`value`].

use prism_dataflows::{Namespace, Properties, WriteOp, WriteRecord};
use prism_proto::snapshot::{EdgeRecord, VertexRecord};
use prism_proto::wal::{wal_operation, WalOperation, WalRecord};
use prost::Message;

/// A log record that does not decode, with what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a prism.wal.v1.WALRecord: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("operation {index}: {message}")]
    Operation { index: usize, message: String },
}

/// Encodes a record as wal.proto bytes.
pub fn encode_record(record: &WriteRecord) -> Vec<u8> {
    to_proto(record).encode_to_vec()
}

/// A record refused for its encoded size: nothing of it was written.
#[derive(Debug, thiserror::Error)]
#[error("the record takes {bytes} bytes encoded, beyond max_record_bytes ({limit}); split the write")]
pub struct TooLarge {
    pub bytes: usize,
    pub limit: usize,
}

/// Encodes a record as wal.proto bytes, refusing it past `limit` bytes: what every log checks
/// before it writes, so that nothing recovery could not read back is ever acknowledged.
pub fn encode_within(record: &WriteRecord, limit: usize) -> Result<Vec<u8>, TooLarge> {
    let payload = encode_record(record);
    if payload.len() > limit {
        return Err(TooLarge { bytes: payload.len(), limit });
    }
    Ok(payload)
}

/// Decodes wal.proto bytes.
pub fn decode_record(bytes: &[u8]) -> Result<WriteRecord, CodecError> {
    from_proto(WalRecord::decode(bytes)?)
}

/// Whether a protobuf decode failed on prost's nesting limit: then what was sent nests
/// deeper than any value may, and the error says so by the limit's name.
pub fn is_too_deep(error: &prost::DecodeError) -> bool {
    // prost does not expose the error's kind; its text is stable.
    error.to_string().contains("recursion limit reached")
}

pub fn to_proto(record: &WriteRecord) -> WalRecord {
    let operations = record.ops.iter().map(|op| op_to_proto(op, record.timestamp)).collect();
    WalRecord {
        operations,
        atomic: record.atomic,
        namespace: record.namespace.as_str().to_owned(),
        request_id: record.request_id.clone().unwrap_or_default(),
        bulk_load: record.bulk_load,
    }
}

fn op_to_proto(op: &WriteOp, timestamp: i64) -> WalOperation {
    use wal_operation::{Operation, OperationType};
    let vertex = |id: &str, label: &str, properties: &Properties| {
        Operation::Vertex(VertexRecord {
            id: id.to_owned(),
            label: label.to_owned(),
            properties: value::encode_properties(properties),
            ..Default::default()
        })
    };
    let edge = |id: &str, label: &str, from: &str, to: &str, properties: &Properties| {
        Operation::Edge(EdgeRecord {
            id: id.to_owned(),
            label: label.to_owned(),
            from_vertex_id: from.to_owned(),
            to_vertex_id: to.to_owned(),
            properties: value::encode_properties(properties),
            ..Default::default()
        })
    };
    let none = Properties::new();
    let set_label = matches!(op, WriteOp::UpdateVertex { label: Some(_), .. });
    let (kind, operation, merge, cascade) = match op {
        WriteOp::CreateVertex { id, label, properties } => {
            (OperationType::CreateVertex, vertex(id, label, properties), false, false)
        }
        WriteOp::UpdateVertex { id, properties, merge, label } => {
            (OperationType::UpdateVertex, vertex(id, label.as_deref().unwrap_or(""), properties), *merge, false)
        }
        WriteOp::DeleteVertex { id, cascade } => (OperationType::DeleteVertex, vertex(id, "", &none), false, *cascade),
        WriteOp::CreateEdge { id, label, from, to, properties } => {
            (OperationType::CreateEdge, edge(id, label, from, to, properties), false, false)
        }
        WriteOp::DeleteEdge { id } => (OperationType::DeleteEdge, edge(id, "", "", "", &none), false, false),
    };
    WalOperation {
        r#type: kind as i32,
        timestamp,
        transaction_id: String::new(),
        operation: Some(operation),
        merge,
        cascade,
        set_label,
    }
}

pub fn from_proto(record: WalRecord) -> Result<WriteRecord, CodecError> {
    // A record's operations share one timestamp when this server writes them; a record
    // from another producer takes its first operation's.
    let timestamp = record.operations.first().map_or(0, |op| op.timestamp);
    let ops = record
        .operations
        .into_iter()
        .enumerate()
        .map(|(index, op)| op_from_proto(op).map_err(|message| CodecError::Operation { index, message }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WriteRecord {
        namespace: Namespace::new(&record.namespace),
        atomic: record.atomic,
        timestamp,
        ops,
        request_id: (!record.request_id.is_empty()).then_some(record.request_id),
        bulk_load: record.bulk_load,
    })
}

fn op_from_proto(op: WalOperation) -> Result<WriteOp, String> {
    use wal_operation::{Operation, OperationType};
    let kind = OperationType::try_from(op.r#type).map_err(|_| format!("type: unknown operation type {}", op.r#type))?;
    match (kind, op.operation) {
        (OperationType::CreateVertex, Some(Operation::Vertex(v))) => {
            Ok(WriteOp::CreateVertex { properties: value::decode_properties(&v.properties)?, id: v.id, label: v.label })
        }
        (OperationType::UpdateVertex, Some(Operation::Vertex(v))) => Ok(WriteOp::UpdateVertex {
            properties: value::decode_properties(&v.properties)?,
            id: v.id,
            merge: op.merge,
            label: (op.set_label || !v.label.is_empty()).then_some(v.label),
        }),
        (OperationType::DeleteVertex, Some(Operation::Vertex(v))) => {
            Ok(WriteOp::DeleteVertex { id: v.id, cascade: op.cascade })
        }
        (OperationType::CreateEdge, Some(Operation::Edge(e))) => Ok(WriteOp::CreateEdge {
            properties: value::decode_properties(&e.properties)?,
            id: e.id,
            label: e.label,
            from: e.from_vertex_id,
            to: e.to_vertex_id,
        }),
        (OperationType::DeleteEdge, Some(Operation::Edge(e))) => Ok(WriteOp::DeleteEdge { id: e.id }),
        (kind, _) => Err(format!(
            "{}: expects a {} record",
            kind.as_str_name(),
            if matches!(kind, OperationType::CreateEdge | OperationType::DeleteEdge) { "edge" } else { "vertex" }
        )),
    }
}

/// `prism.graph.v1.Value` to and from the engine's [`prism_dataflows::Value`].
pub mod value {
    use std::collections::HashMap;

    use prism_dataflows::limits::{too_deep, MAX_VALUE_DEPTH};
    use prism_dataflows::{Properties, Value};
    use prism_proto::graph;
    use prost::Message;

    /// What is wrong with a value, and where inside it (`[2].key`), built only on error.
    struct ValueError {
        path: String,
        problem: String,
    }

    impl ValueError {
        fn under(mut self, step: String) -> Self {
            self.path.insert_str(0, &step);
            self
        }
    }

    /// Converts a wire value; the error names the path of the offending value.
    pub fn from_proto(value: &graph::Value, path: &str) -> Result<Value, String> {
        from_proto_at(value, 1).map_err(|e| format!("{path}{}: {}", e.path, e.problem))
    }

    /// `depth`: the level `value` is at, 1 for a property's own value.
    fn from_proto_at(value: &graph::Value, depth: usize) -> Result<Value, ValueError> {
        use graph::value::Value as Kind;
        if depth > MAX_VALUE_DEPTH {
            return Err(ValueError { path: String::new(), problem: too_deep() });
        }
        Ok(match &value.value {
            None => return Err(ValueError { path: String::new(), problem: "value has no kind set".into() }),
            Some(Kind::StringValue(s)) => Value::String(s.as_str().into()),
            Some(Kind::IntValue(i)) => Value::Int(*i),
            Some(Kind::DoubleValue(d)) => Value::Double(*d),
            Some(Kind::BoolValue(b)) => Value::Bool(*b),
            Some(Kind::BytesValue(b)) => Value::Bytes(b.as_slice().into()),
            Some(Kind::ListValue(list)) => Value::List(
                list.values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| from_proto_at(v, depth + 1).map_err(|e| e.under(format!("[{i}]"))))
                    .collect::<Result<_, _>>()?,
            ),
            Some(Kind::MapValue(map)) => Value::Map(
                map.fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), from_proto_at(v, depth + 1).map_err(|e| e.under(format!(".{k}")))?)))
                    .collect::<Result<std::collections::BTreeMap<_, _>, ValueError>>()
                    .map(Box::new)?,
            ),
        })
    }

    pub fn to_proto(value: &Value) -> graph::Value {
        use graph::value::Value as Kind;
        let kind = match value {
            Value::String(s) => Kind::StringValue(s.to_string()),
            Value::Int(i) => Kind::IntValue(*i),
            Value::Double(d) => Kind::DoubleValue(*d),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Bytes(b) => Kind::BytesValue(b.to_vec()),
            Value::List(list) => Kind::ListValue(graph::ListValue { values: list.iter().map(to_proto).collect() }),
            Value::Map(map) => {
                Kind::MapValue(graph::MapValue { fields: map.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect() })
            }
        };
        graph::Value { value: Some(kind) }
    }

    /// Wire properties to the engine's, naming `field.key` on error.
    pub fn properties_from_proto(
        properties: &HashMap<String, graph::Value>,
        field: &str,
    ) -> Result<Properties, String> {
        properties
            .iter()
            .map(|(k, v)| match from_proto_at(v, 1) {
                Ok(value) => Ok((k.clone(), value)),
                Err(e) => Err(format!("{field}.{k}{}: {}", e.path, e.problem)),
            })
            .collect()
    }

    pub fn properties_to_proto(properties: &Properties) -> HashMap<String, graph::Value> {
        properties.iter().map(|(k, v)| (k.to_owned(), to_proto(v))).collect()
    }

    /// Properties as RFC-055's record maps: each value a serialized `prism.graph.v1.Value`.
    pub fn encode_properties(properties: &Properties) -> HashMap<String, Vec<u8>> {
        properties.iter().map(|(k, v)| (k.to_owned(), to_proto(v).encode_to_vec())).collect()
    }

    pub fn decode_properties(properties: &HashMap<String, Vec<u8>>) -> Result<Properties, String> {
        properties
            .iter()
            .map(|(k, bytes)| {
                let wire = graph::Value::decode(bytes.as_slice()).map_err(|e| {
                    if super::is_too_deep(&e) {
                        format!("properties.{k}: {}", too_deep())
                    } else {
                        format!("properties.{k}: not a prism.graph.v1.Value: {e}")
                    }
                })?;
                let value = from_proto_at(&wire, 1).map_err(|e| format!("properties.{k}{}: {}", e.path, e.problem))?;
                Ok((k.clone(), value))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_dataflows::Value;

    #[test]
    fn every_operation_round_trips() {
        let properties: Properties = [
            ("s".to_string(), Value::String("x".into())),
            ("i".to_string(), Value::Int(-3)),
            ("d".to_string(), Value::Double(2.5)),
            ("b".to_string(), Value::Bool(true)),
            ("y".to_string(), Value::Bytes([0, 255].into())),
            ("l".to_string(), Value::List([Value::Int(1), Value::List([].into())].into())),
            ("m".to_string(), Value::Map(Box::new([("k".to_string(), Value::Double(-0.0))].into_iter().collect()))),
        ]
        .into_iter()
        .collect();
        let record = WriteRecord {
            namespace: Namespace::new("social"),
            atomic: true,
            timestamp: 1_700_000_000_000_000,
            ops: vec![
                WriteOp::CreateVertex { id: "a".into(), label: "User".into(), properties: properties.clone() },
                WriteOp::UpdateVertex { id: "a".into(), properties: properties.clone(), merge: true, label: None },
                WriteOp::DeleteVertex { id: "a".into(), cascade: true },
                WriteOp::CreateEdge { id: "e".into(), label: "F".into(), from: "a".into(), to: "b".into(), properties },
                WriteOp::DeleteEdge { id: "e".into() },
            ],
            request_id: Some("retry-1".into()),
            ..Default::default()
        };
        assert_eq!(decode_record(&encode_record(&record)).unwrap(), record);
    }

    #[test]
    fn a_mismatched_operation_names_its_index() {
        let mut wire = to_proto(&WriteRecord {
            namespace: Namespace::default(),
            atomic: false,
            timestamp: 1,
            ops: vec![WriteOp::DeleteEdge { id: "e".into() }, WriteOp::DeleteEdge { id: "f".into() }],
            ..Default::default()
        });
        wire.operations[1].r#type = wal_operation::OperationType::CreateVertex as i32;
        let err = from_proto(wire).unwrap_err().to_string();
        assert!(err.starts_with("operation 1: CREATE_VERTEX"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_record(&[0xff, 0xff, 0xff]).is_err());
    }

    proptest::proptest! {
        /// Arbitrary bytes decode to a record or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_record(&bytes);
        }

        /// Arbitrary bytes as a property value: a value or an error naming the property.
        #[test]
        fn arbitrary_value_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let properties = std::collections::HashMap::from([("p".to_string(), bytes)]);
            if let Err(error) = value::decode_properties(&properties) {
                proptest::prop_assert!(error.starts_with("properties.p"), "{}", error);
            }
        }
    }

    /// A value nested past the limit is refused by name, however deep (prost's own limit
    /// included), and one at the limit decodes.
    #[test]
    fn nesting_is_refused_by_the_one_limit() {
        use prism_dataflows::limits::MAX_VALUE_DEPTH;
        use prism_proto::graph;
        let nest = |levels: usize| {
            (1..levels).fold(value::to_proto(&Value::Int(1)), |inner, _| graph::Value {
                value: Some(graph::value::Value::MapValue(graph::MapValue {
                    fields: [("k".to_string(), inner)].into_iter().collect(),
                })),
            })
        };
        for levels in [MAX_VALUE_DEPTH + 1, 40, 60, 200] {
            let bytes = prost::Message::encode_to_vec(&nest(levels));
            let properties = std::collections::HashMap::from([("p".to_string(), bytes)]);
            let error = value::decode_properties(&properties).unwrap_err();
            assert!(error.contains("max_value_depth"), "{levels} levels: {error}");
        }
        let bytes = prost::Message::encode_to_vec(&nest(MAX_VALUE_DEPTH));
        let properties = std::collections::HashMap::from([("p".to_string(), bytes)]);
        assert_eq!(value::decode_properties(&properties).unwrap()["p"].depth(), MAX_VALUE_DEPTH);
    }
}
