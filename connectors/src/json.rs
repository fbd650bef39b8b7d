//! Write records written as JSON, for people and scripts: what `prism-graph record` turns
//! into wal.proto bytes.
//!
//! ```json
//! {"namespace": "default", "atomic": true, "operations": [
//!   {"type": "create_vertex", "id": "alice", "label": "User", "properties": {"name": "Alice", "age": 42}},
//!   {"type": "create_edge", "id": "f1", "label": "FOLLOWS", "from": "alice", "to": "bob"},
//!   {"type": "update_vertex", "id": "alice", "properties": {"age": 43}, "merge": true},
//!   {"type": "delete_edge", "id": "f1"},
//!   {"type": "delete_vertex", "id": "bob", "cascade": true}
//! ]}
//! ```
//!
//! Property values map by JSON type: strings, integers (int), other numbers (double),
//! booleans, arrays (list) and objects (map); `null` is refused. `namespace` defaults to
//! "default", `atomic` to true, `timestamp` (Unix microseconds) to now; `request_id`, if
//! given, makes the record safe to send again (see wal.proto).

use std::collections::BTreeMap;

use prism_dataflows::limits::{too_deep, MAX_VALUE_DEPTH};
use prism_dataflows::{Namespace, Properties, Value, WriteOp, WriteRecord};
use serde_json::Value as Json;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JsonError {
    pub path: String,
    pub message: String,
}

fn error(path: &str, message: impl Into<String>) -> JsonError {
    JsonError { path: path.to_owned(), message: message.into() }
}

/// Parses JSON text; nesting past serde_json's own limit is named as the value limit it is.
pub fn parse(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| {
        if e.to_string().contains("recursion limit exceeded") {
            too_deep()
        } else {
            e.to_string()
        }
    })
}

/// Parses one record; `now` is the timestamp when the record gives none.
pub fn record_from_json(text: &str, now: i64) -> Result<WriteRecord, JsonError> {
    let json = parse(text).map_err(|e| error("record", e))?;
    let object = json.as_object().ok_or_else(|| error("record", "must be a JSON object"))?;
    let namespace = match object.get("namespace") {
        None => Namespace::default(),
        Some(Json::String(name)) => Namespace::new(name),
        Some(_) => return Err(error("namespace", "must be a string")),
    };
    let atomic = match object.get("atomic") {
        None => true,
        Some(Json::Bool(atomic)) => *atomic,
        Some(_) => return Err(error("atomic", "must be true or false")),
    };
    let timestamp = match object.get("timestamp") {
        None => now,
        Some(t) => t.as_i64().ok_or_else(|| error("timestamp", "must be an integer (Unix microseconds)"))?,
    };
    let request_id = match object.get("request_id") {
        None => None,
        Some(Json::String(id)) => (!id.is_empty()).then(|| id.clone()),
        Some(_) => return Err(error("request_id", "must be a string")),
    };
    let operations = object
        .get("operations")
        .and_then(Json::as_array)
        .ok_or_else(|| error("operations", "must be a list of operations"))?;
    let ops = operations
        .iter()
        .enumerate()
        .map(|(i, op)| operation(op, &format!("operations[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WriteRecord { namespace, atomic, timestamp, ops, request_id, ..Default::default() })
}

fn operation(json: &Json, path: &str) -> Result<WriteOp, JsonError> {
    let field = |name: &str| -> Result<String, JsonError> {
        json.get(name)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| error(&format!("{path}.{name}"), "must be a string"))
    };
    let flag = |name: &str| json.get(name).and_then(Json::as_bool).unwrap_or(false);
    let properties = || properties(json.get("properties"), &format!("{path}.properties"));
    match field("type")?.as_str() {
        "create_vertex" => {
            Ok(WriteOp::CreateVertex { id: field("id")?, label: field("label")?, properties: properties()? })
        }
        "update_vertex" => Ok(WriteOp::UpdateVertex {
            id: field("id")?,
            properties: properties()?,
            merge: flag("merge"),
            label: json.get("label").and_then(Json::as_str).map(str::to_owned),
        }),
        "delete_vertex" => Ok(WriteOp::DeleteVertex { id: field("id")?, cascade: flag("cascade") }),
        "create_edge" => Ok(WriteOp::CreateEdge {
            id: field("id")?,
            label: field("label")?,
            from: field("from")?,
            to: field("to")?,
            properties: properties()?,
        }),
        "delete_edge" => Ok(WriteOp::DeleteEdge { id: field("id")? }),
        other => Err(error(
            &format!("{path}.type"),
            format!(
                "unknown operation {other:?}; valid: create_vertex, update_vertex, delete_vertex, create_edge, \
                 delete_edge"
            ),
        )),
    }
}

/// A JSON object of properties (none when absent).
pub fn properties(json: Option<&Json>, path: &str) -> Result<Properties, JsonError> {
    let Some(json) = json else { return Ok(Properties::new()) };
    let object = json.as_object().ok_or_else(|| error(path, "must be an object"))?;
    object.iter().map(|(key, value)| Ok((key.clone(), self::value(value, &format!("{path}.{key}"))?))).collect()
}

/// A property value by its JSON type.
pub fn value(json: &Json, path: &str) -> Result<Value, JsonError> {
    value_at(json, path, 1)
}

/// `depth`: the level `json` is at, 1 for a property's own value.
fn value_at(json: &Json, path: &str, depth: usize) -> Result<Value, JsonError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(error(path, too_deep()));
    }
    let value = |json: &Json, path: &str| value_at(json, path, depth + 1);
    Ok(match json {
        Json::String(s) => Value::String(s.as_str().into()),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64().ok_or_else(|| error(path, "number out of range"))?),
        },
        Json::Array(items) => Value::List(
            items.iter().enumerate().map(|(i, v)| value(v, &format!("{path}[{i}]"))).collect::<Result<_, _>>()?,
        ),
        Json::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), value(v, &format!("{path}.{k}"))?)))
                .collect::<Result<BTreeMap<_, _>, JsonError>>()
                .map(Box::new)?,
        ),
        Json::Null => return Err(error(path, "null is not a property value")),
    })
}

/// An operation as JSON, in the shape [`record_from_json`] reads.
pub fn op_to_json(op: &WriteOp) -> Json {
    let properties = |p: &Properties| Json::Object(p.iter().map(|(k, v)| (k.to_owned(), to_json(v))).collect());
    match op {
        WriteOp::CreateVertex { id, label, properties: p } => {
            serde_json::json!({"type": "create_vertex", "id": id, "label": label, "properties": properties(p)})
        }
        WriteOp::UpdateVertex { id, properties: p, merge, label } => {
            let mut json =
                serde_json::json!({"type": "update_vertex", "id": id, "properties": properties(p), "merge": merge});
            if let Some(label) = label {
                json["label"] = Json::String(label.clone());
            }
            json
        }
        WriteOp::DeleteVertex { id, cascade } => {
            serde_json::json!({"type": "delete_vertex", "id": id, "cascade": cascade})
        }
        WriteOp::CreateEdge { id, label, from, to, properties: p } => serde_json::json!({
            "type": "create_edge", "id": id, "label": label, "from": from, "to": to, "properties": properties(p)
        }),
        WriteOp::DeleteEdge { id } => serde_json::json!({"type": "delete_edge", "id": id}),
    }
}

/// A property value as JSON (bytes as an array of numbers; a double that is whole stays a
/// double only if written with a fraction, so round trips keep ints and doubles apart).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::String(s) => Json::String(s.to_string()),
        Value::Int(i) => Json::from(*i),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::Bool(b) => Json::Bool(*b),
        Value::Bytes(bytes) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(fields) => Json::Object(fields.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_value_kind() {
        let text = r#"{"namespace": "t", "operations": [
            {"type": "create_vertex", "id": "a", "label": "U", "properties": {"s": "x", "i": 4, "d": 1.5, "b": true, "l": [1, "y"], "m": {"k": 2}}},
            {"type": "create_edge", "id": "e", "label": "L", "from": "a", "to": "a"},
            {"type": "update_vertex", "id": "a", "properties": {"i": 5}, "merge": true},
            {"type": "delete_edge", "id": "e"},
            {"type": "delete_vertex", "id": "a", "cascade": true}]}"#;
        let record = record_from_json(text, 99).unwrap();
        assert_eq!(record.namespace, Namespace::new("t"));
        assert!(record.atomic);
        assert_eq!(record.timestamp, 99);
        assert_eq!(record.ops.len(), 5);
        let WriteOp::CreateVertex { properties, .. } = &record.ops[0] else { panic!("{:?}", record.ops[0]) };
        assert_eq!(properties.get("i"), Some(&Value::Int(4)));
        assert_eq!(properties.get("d"), Some(&Value::Double(1.5)));
        assert_eq!(properties.get("l"), Some(&Value::List([Value::Int(1), Value::String("y".into())].into())));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = record_from_json(r#"{"operations": [{"type": "create_vertex", "id": "a"}]}"#, 0).unwrap_err();
        assert_eq!(bad.path, "operations[0].label");
        let bad = record_from_json(r#"{"operations": [{"type": "upsert"}]}"#, 0).unwrap_err();
        assert!(bad.to_string().contains("create_vertex"), "{bad}");
        let bad =
            record_from_json(r#"{"operations": [{"type": "delete_edge", "id": "e", "properties": {"x": null}}]}"#, 0);
        assert!(bad.is_ok(), "properties are only read where an operation has them");
    }
}
