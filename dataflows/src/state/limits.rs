//! The limits that keep every acknowledged record readable: it decodes on replay, fits the
//! log, and each element it writes can be read back through the API.
//!
//! Every entrance (RPC, JSON record, snapshot, Kafka record, checkpoint) refuses a value that
//! nests deeper than [`MAX_VALUE_DEPTH`] when it converts it, and the apply stage refuses an
//! operation that would leave an element larger than [`ElementLimits::max_element_bytes`]
//! (a merge included), so that every server following the log decides alike. The size of a
//! whole record is the log's to check, once it is encoded.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::state::model::{Edge, Namespace, Properties, Value, Vertex};

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

/// How many vertices and edges a namespace may hold (0: no limit). The apply stage refuses a
/// create past them, so every server following the log with the same configuration decides
/// alike; a delete makes room again. A checkpoint is restored whole, even past a limit
/// lowered since it was written: limits refuse new elements, they never drop acknowledged ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub max_vertices: u64,
    pub max_edges: u64,
}

/// Each namespace's [`Capacity`]: its own, or `otherwise` for a namespace not listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacities {
    pub namespaces: HashMap<String, Capacity>,
    pub otherwise: Capacity,
}

impl Capacities {
    pub fn of(&self, namespace: &Namespace) -> Capacity {
        self.namespaces.get(namespace.as_str()).copied().unwrap_or(self.otherwise)
    }
}

/// The limits the apply stage enforces on each element it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElementLimits {
    /// Largest vertex or edge, as [`Vertex::measure`] and [`Edge::measure`] count it.
    pub max_element_bytes: usize,
}

impl Default for ElementLimits {
    fn default() -> Self {
        // Well within the 4 MiB a gRPC client accepts by default.
        ElementLimits { max_element_bytes: 1 << 20 }
    }
}

/// What the limits look at in a value, a property map or an element, taken in one walk:
/// its size in bytes (with a fixed overhead per value and key) and how deep its values nest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measure {
    pub bytes: usize,
    /// Levels: 1 for a scalar, one more for each list or map around it; 0 for no value.
    pub depth: usize,
}

impl Measure {
    /// `self` and `other` side by side: their bytes add up, the deeper one counts.
    fn beside(self, other: Measure) -> Measure {
        Measure { bytes: self.bytes + other.bytes, depth: self.depth.max(other.depth) }
    }

    /// Strings and overheads that add bytes but no depth.
    fn plus(self, bytes: usize) -> Measure {
        Measure { bytes: self.bytes + bytes, ..self }
    }
}

impl Value {
    pub fn measure(&self) -> Measure {
        let scalar = |bytes: usize| Measure { bytes: OVERHEAD_BYTES + bytes, depth: 1 };
        let nested = |inner: Measure| Measure { bytes: OVERHEAD_BYTES + inner.bytes, depth: 1 + inner.depth };
        match self {
            Value::String(s) => scalar(s.len()),
            Value::Bytes(b) => scalar(b.len()),
            Value::Int(_) | Value::Double(_) => scalar(8),
            Value::Bool(_) => scalar(1),
            Value::List(items) => nested(items.iter().map(Value::measure).fold(Measure::default(), Measure::beside)),
            Value::Map(fields) => nested(measure_fields(fields.iter())),
        }
    }

    /// Levels of nesting: 1 for a scalar, one more for each list or map around it.
    pub fn depth(&self) -> usize {
        self.measure().depth
    }

    pub fn size_bytes(&self) -> usize {
        self.measure().bytes
    }
}

/// Keyed values: each key's bytes and overhead, and its value's measure.
fn measure_fields<'a, K: AsRef<str>>(fields: impl Iterator<Item = (K, &'a Value)>) -> Measure {
    fields.map(|(k, v)| v.measure().plus(OVERHEAD_BYTES + k.as_ref().len())).fold(Measure::default(), Measure::beside)
}

impl Properties {
    pub fn measure(&self) -> Measure {
        measure_fields(self.iter())
    }

    pub fn size_bytes(&self) -> usize {
        self.measure().bytes
    }
}

impl Vertex {
    /// What the element limits look at: its strings and properties, with overheads.
    pub fn measure(&self) -> Measure {
        self.properties.measure().plus(OVERHEAD_BYTES + self.id.len() + self.label.len())
    }
}

impl Edge {
    /// What the element limits look at: its strings and properties, with overheads.
    pub fn measure(&self) -> Measure {
        let strings = self.id.len() + self.label.len() + self.from.len() + self.to.len();
        self.properties.measure().plus(OVERHEAD_BYTES + strings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        (1..levels).fold(Value::Int(1), |inner, _| Value::List([inner].into()))
    }

    #[test]
    fn depth_counts_levels() {
        assert_eq!(Value::Int(3).depth(), 1);
        assert_eq!(Value::List([].into()).depth(), 1);
        assert_eq!(nested(5).depth(), 5);
        let map = Value::Map(Box::new([("a".to_string(), nested(3))].into_iter().collect()));
        assert_eq!(map.depth(), 4);
    }

    #[test]
    fn size_grows_with_the_data() {
        let small = Value::String("x".into()).size_bytes();
        let large = Value::String("x".repeat(1000).into()).size_bytes();
        assert_eq!(large - small, 999);
    }
}
