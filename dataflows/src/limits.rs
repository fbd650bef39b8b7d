//! The limits that keep every acknowledged record readable: it decodes on replay, fits the
//! log, and each element it writes can be read back through the API.
//!
//! Every entrance (RPC, JSON record, snapshot, Kafka record, checkpoint) refuses a value that
//! nests deeper than [`MAX_VALUE_DEPTH`] when it converts it, and the apply stage refuses an
//! operation that would leave an element larger than [`ElementLimits::max_element_bytes`]
//! (a merge included), so that every server following the log decides alike. The size of a
//! whole record is the log's to check, once it is encoded.

use serde::{Deserialize, Serialize};

use crate::model::{Edge, Properties, Value, Vertex};

/// How deep property values may nest: a scalar is one level, a list of scalars two.
///
/// Protobuf decoders (prost, and upb in Python) stop at 100 levels of messages, and a map
/// inside a value costs three of them (the value, the map, its entry); 20 levels of maps stay
/// well below that with the envelope of any reply around them.
pub const MAX_VALUE_DEPTH: usize = 20;

/// The error text for a value nested too deep, the same on every path.
pub fn too_deep() -> String {
    format!("values nest deeper than max_value_depth ({MAX_VALUE_DEPTH} levels)")
}

/// Bytes counted for each property key and value beyond its own data, and for each element:
/// enough to cover what the protobuf encoding adds (tags, lengths, wrappers), so that an
/// element within the limit also fits a reply of that size.
const OVERHEAD_BYTES: usize = 16;

/// The limits the apply stage enforces on each element it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementLimits {
    /// Largest vertex or edge, as [`Vertex::size_bytes`] and [`Edge::size_bytes`] count it.
    pub max_element_bytes: usize,
}

impl Default for ElementLimits {
    fn default() -> Self {
        // Well within the 4 MiB a gRPC client accepts by default.
        ElementLimits { max_element_bytes: 1 << 20 }
    }
}

impl Value {
    /// Levels of nesting: 1 for a scalar, one more for each list or map around it.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(fields) => 1 + fields.values().map(Value::depth).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// Its data in bytes, with a fixed overhead per value and key.
    pub fn size_bytes(&self) -> usize {
        OVERHEAD_BYTES
            + match self {
                Value::String(s) => s.len(),
                Value::Bytes(b) => b.len(),
                Value::Int(_) | Value::Double(_) => 8,
                Value::Bool(_) => 1,
                Value::List(items) => items.iter().map(Value::size_bytes).sum(),
                Value::Map(fields) => fields.iter().map(|(k, v)| OVERHEAD_BYTES + k.len() + v.size_bytes()).sum(),
            }
    }
}

impl Properties {
    /// The deepest value's depth (0 when empty).
    pub fn depth(&self) -> usize {
        self.iter().map(|(_, v)| v.depth()).max().unwrap_or(0)
    }

    pub fn size_bytes(&self) -> usize {
        self.iter().map(|(k, v)| OVERHEAD_BYTES + k.len() + v.size_bytes()).sum()
    }
}

impl Vertex {
    /// What the element limit counts: its strings and properties, with overheads.
    pub fn size_bytes(&self) -> usize {
        OVERHEAD_BYTES + self.id.len() + self.label.len() + self.properties.size_bytes()
    }
}

impl Edge {
    /// What the element limit counts: its strings and properties, with overheads.
    pub fn size_bytes(&self) -> usize {
        OVERHEAD_BYTES
            + self.id.len()
            + self.label.len()
            + self.from.len()
            + self.to.len()
            + self.properties.size_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        (1..levels).fold(Value::Int(1), |inner, _| Value::List(vec![inner]))
    }

    #[test]
    fn depth_counts_levels() {
        assert_eq!(Value::Int(3).depth(), 1);
        assert_eq!(Value::List(vec![]).depth(), 1);
        assert_eq!(nested(5).depth(), 5);
        let map = Value::Map([("a".to_string(), nested(3))].into_iter().collect());
        assert_eq!(map.depth(), 4);
    }

    #[test]
    fn size_grows_with_the_data() {
        let small = Value::String("x".into()).size_bytes();
        let large = Value::String("x".repeat(1000)).size_bytes();
        assert_eq!(large - small, 999);
    }
}
