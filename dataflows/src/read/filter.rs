//! Vertex and edge filters: labels and property predicates (RFC-055's `ValuePredicate`).
//!
//! Values compare by type: ints and doubles numerically, strings and bytes in their natural
//! order; any other mismatch of types never matches (not even `NE`), and never panics. A
//! missing property never matches.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::state::model::{Edge, Properties, Value, Vertex};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The property equals one element of the predicate's list.
    In,
    /// A string property contains the predicate's string, or a list property holds the value.
    Contains,
    /// A string property starts with the predicate's string.
    StartsWith,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    pub operator: Operator,
    pub value: Value,
}

/// Labels (any of them; any label when empty) and property predicates (all must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub labels: Vec<String>,
    pub properties: Vec<(String, Predicate)>,
}

impl Filter {
    pub fn matches(&self, label: &str, properties: &Properties) -> bool {
        (self.labels.is_empty() || self.labels.iter().any(|l| l == label))
            && self.properties.iter().all(|(key, predicate)| properties.get(key).is_some_and(|v| predicate.matches(v)))
    }

    pub fn matches_vertex(&self, vertex: &Vertex) -> bool {
        self.matches(&vertex.label, &vertex.properties)
    }

    pub fn matches_edge(&self, edge: &Edge) -> bool {
        self.matches(&edge.label, &edge.properties)
    }
}

impl Predicate {
    pub fn matches(&self, property: &Value) -> bool {
        match self.operator {
            Operator::Eq => compare(property, &self.value) == Some(Ordering::Equal),
            Operator::Ne => compare(property, &self.value).is_some_and(|o| o != Ordering::Equal),
            Operator::Lt => ordered(property, &self.value).is_some_and(|o| o == Ordering::Less),
            Operator::Le => ordered(property, &self.value).is_some_and(|o| o != Ordering::Greater),
            Operator::Gt => ordered(property, &self.value).is_some_and(|o| o == Ordering::Greater),
            Operator::Ge => ordered(property, &self.value).is_some_and(|o| o != Ordering::Less),
            Operator::In => match &self.value {
                Value::List(items) => items.iter().any(|item| compare(property, item) == Some(Ordering::Equal)),
                _ => false,
            },
            Operator::Contains => match (property, &self.value) {
                (Value::String(s), Value::String(part)) => s.contains(part.as_str()),
                (Value::List(items), wanted) => items.iter().any(|item| compare(item, wanted) == Some(Ordering::Equal)),
                _ => false,
            },
            Operator::StartsWith => match (property, &self.value) {
                (Value::String(s), Value::String(prefix)) => s.starts_with(prefix.as_str()),
                _ => false,
            },
        }
    }
}

/// Compares two values of comparable types: numbers with numbers, otherwise the same kind.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        _ if std::mem::discriminant(a) == std::mem::discriminant(b) => Some(a.cmp(b)),
        _ => None,
    }
}

/// Like [`compare`], for the kinds with a natural order (numbers, strings, bytes).
fn ordered(a: &Value, b: &Value) -> Option<Ordering> {
    match a {
        Value::Int(_) | Value::Double(_) | Value::String(_) | Value::Bytes(_) => compare(a, b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(operator: Operator, value: Value) -> Predicate {
        Predicate { operator, value }
    }

    #[test]
    fn numbers_compare_across_int_and_double() {
        assert!(p(Operator::Eq, Value::Double(3.0)).matches(&Value::Int(3)));
        assert!(p(Operator::Lt, Value::Int(4)).matches(&Value::Double(3.5)));
        assert!(p(Operator::Ge, Value::Int(3)).matches(&Value::Int(3)));
        assert!(!p(Operator::Gt, Value::Double(f64::NAN)).matches(&Value::Int(1)));
    }

    #[test]
    fn mismatched_types_never_match() {
        for op in [Operator::Eq, Operator::Ne, Operator::Lt, Operator::Ge, Operator::StartsWith] {
            assert!(!p(op, Value::String("3".into())).matches(&Value::Int(3)), "{op:?}");
        }
        assert!(!p(Operator::Lt, Value::Bool(true)).matches(&Value::Bool(false)));
    }

    #[test]
    fn in_contains_and_starts_with() {
        let list = Value::List([Value::Int(1), Value::String("x".into())].into());
        assert!(p(Operator::In, list.clone()).matches(&Value::Double(1.0)));
        assert!(!p(Operator::In, list.clone()).matches(&Value::Int(2)));
        assert!(p(Operator::Contains, Value::String("x".into())).matches(&list));
        assert!(p(Operator::Contains, Value::String("ell".into())).matches(&Value::String("hello".into())));
        assert!(p(Operator::StartsWith, Value::String("he".into())).matches(&Value::String("hello".into())));
        assert!(!p(Operator::In, Value::Int(1)).matches(&Value::Int(1)));
    }

    #[test]
    fn filters_need_a_listed_label_and_every_predicate() {
        let props: Properties = [("age".to_string(), Value::Int(30))].into_iter().collect();
        let filter =
            Filter { labels: vec!["User".into()], properties: vec![("age".into(), p(Operator::Gt, Value::Int(18)))] };
        assert!(filter.matches("User", &props));
        assert!(!filter.matches("Bot", &props));
        let missing = Filter { labels: vec![], properties: vec![("name".into(), p(Operator::Ne, Value::Int(0)))] };
        assert!(!missing.matches("User", &props));
    }
}
