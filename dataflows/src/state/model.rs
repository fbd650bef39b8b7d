//! The domain types of the graph: what the engine stores, orders and exchanges.
//!
//! These are not the wire messages (those live in `prism-proto`): they carry the total
//! orderings and the serde encodings that differential dataflow needs, and nothing else.
//! The server converts between the two at its edge.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thin_vec::ThinVec;

/// A log sequence number: the position of a record in the write-ahead log, and the logical
/// time at which its changes enter the dataflow. The first record is LSN 1; LSN 0 is the
/// empty graph.
pub type Lsn = u64;

/// Microseconds since the Unix epoch, as written in the log record that set it.
pub type Micros = i64;

/// The namespace a vertex or edge lives in (request metadata `x-prism-namespace`).
///
/// A [`Name`], because every key carries one: a thin pointer (8 bytes in each key), and the
/// apply stage hands out one copy per namespace, so keys usually compare by that pointer
/// before they compare names. It hashes as the name's string, which routing relies on
/// (`VertexKey::route`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Namespace(Name);

impl Namespace {
    pub const DEFAULT: &'static str = "default";

    pub fn new(name: &str) -> Self {
        Namespace(Name::from(if name.is_empty() { Self::DEFAULT } else { name }))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Namespace::new(Self::DEFAULT)
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A vertex's or an edge's id, RFC-055's string id: 16 bytes, holding ids of up to 15 bytes
/// inline, so the ids most graphs use cost no allocation of their own in any index and
/// compare without following a pointer (which is most of what merging an arrangement
/// does); a longer id is one shared heap block, so copies of it into several indexes cost
/// a pointer each. An edge holds three ids, so every byte here counts three times.
pub type Id = ecow::EcoString;

/// The key of a vertex: its id within a namespace. Arrangements are sharded by its hash.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VertexKey {
    pub namespace: Namespace,
    pub id: Id,
}

/// The key of an edge: its id within a namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeKey {
    pub namespace: Namespace,
    pub id: Id,
}

impl VertexKey {
    pub fn new(namespace: &Namespace, id: &str) -> Self {
        VertexKey { namespace: namespace.clone(), id: id.into() }
    }

    /// The hash the arrangements shard vertex `id` of `namespace` by ([`route`]).
    pub fn route(namespace: &Namespace, id: &str) -> u64 {
        route(namespace, id)
    }
}

/// The hash a vertex's or an edge's key shards by: the key's own hash (a derived `Hash`
/// hashes the fields in order, as a tuple of them does), computed without building the key.
pub(crate) fn route(namespace: &Namespace, id: &str) -> u64 {
    use differential_dataflow::hashable::Hashable;
    (namespace, id).hashed()
}

/// The worker a route hash lands on: timely's exchange rule (a mask when the number of
/// workers is a power of two, the remainder otherwise).
pub(crate) fn owner_of(route: u64, peers: usize) -> usize {
    let peers = peers as u64;
    if peers.is_power_of_two() {
        (route & (peers - 1)) as usize
    } else {
        (route % peers) as usize
    }
}

/// A vertex's number: what the arrangements and algorithms know it by, instead of its
/// string id. The apply stage gives it when the vertex is created, dense per owning
/// worker (the worker its key's hash shards it to), as `index * workers + owner`, so the
/// owner follows from the number alone. A number freed by a delete is given again.
///
/// Numbers are per process and per namespace: they follow from the log and the number of
/// workers, never leave the engine, and are given afresh when a checkpoint is restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VertexNumber(pub u64);

impl VertexNumber {
    /// What a vertex built outside the apply stage (read from a snapshot) carries until the
    /// apply stage numbers it.
    pub const UNASSIGNED: VertexNumber = VertexNumber(u64::MAX);

    pub fn new(index: u64, owner: usize, workers: usize) -> Self {
        VertexNumber(index * workers as u64 + owner as u64)
    }

    /// The owning worker: timely's exchange sends the number itself there.
    pub fn owner(self, workers: usize) -> usize {
        (self.0 % workers as u64) as usize
    }

    /// Its place among the owner's numbers.
    pub fn index(self, workers: usize) -> u64 {
        self.0 / workers as u64
    }
}

impl Default for VertexNumber {
    fn default() -> Self {
        VertexNumber::UNASSIGNED
    }
}

/// A value of the adjacency arrangements: an edge and the number of the vertex at its other
/// end, inline, so that merges and the algorithms' reads compare and take numbers without
/// following the pointer to the edge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Adjacent {
    pub neighbour: VertexNumber,
    pub edge: Shared<Edge>,
}

/// The key of the adjacency arrangements: a vertex by number. Numbers order first, so keys
/// compare as integers (the namespace only tells apart equal numbers of two namespaces).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AdjacencyKey {
    pub number: VertexNumber,
    pub namespace: Namespace,
}

impl EdgeKey {
    pub fn new(namespace: &Namespace, id: &str) -> Self {
        EdgeKey { namespace: namespace.clone(), id: id.into() }
    }

    /// The hash the arrangements shard edge `id` of `namespace` by ([`route`]).
    pub fn route(namespace: &Namespace, id: &str) -> u64 {
        route(namespace, id)
    }
}

/// A string property value: 16 bytes, holding strings of up to 15 bytes inline, as [`Id`]
/// does, so the short strings most properties hold cost no allocation of their own.
pub type Text = ecow::EcoString;

/// A property value.
///
/// Totally ordered so that it can live in arrangements: doubles order by `f64::total_cmp`,
/// and values of different kinds order by kind. (Query predicates compare by type instead;
/// see the query path.)
///
/// 24 bytes: every property of every element holds one, so each kind keeps its payload in
/// at most 16 (a boxed slice, not a vector's three words; a map, rare, behind a pointer).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    String(Text),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Box<[u8]>),
    List(Box<[Value]>),
    Map(Box<BTreeMap<String, Value>>),
}

impl Value {
    fn kind_rank(&self) -> u8 {
        match self {
            Value::String(_) => 0,
            Value::Int(_) => 1,
            Value::Double(_) => 2,
            Value::Bool(_) => 3,
            Value::Bytes(_) => 4,
            Value::List(_) => 5,
            Value::Map(_) => 6,
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        use Value::*;
        match (self, other) {
            (String(a), String(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Double(a), Double(b)) => a.total_cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (List(a), List(b)) => a.cmp(b),
            (Map(a), Map(b)) => a.cmp(b),
            _ => self.kind_rank().cmp(&other.kind_rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

/// Consistent with the total order: doubles hash by their bits, as `total_cmp` tells them apart.
impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind_rank().hash(state);
        match self {
            Value::String(s) => s.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Double(d) => d.to_bits().hash(state),
            Value::Bool(b) => b.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::List(items) => items.hash(state),
            Value::Map(fields) => fields.hash(state),
        }
    }
}

/// A label or a property key: shared, because a namespace has few of them and every element
/// names some (the apply stage hands out one copy of each per namespace, see
/// `state::names`).
///
/// A thin pointer (8 bytes; a shared `str` would be 16): every edge and vertex holds a label
/// and every property a key, and those 8 bytes are what keep an edge in the allocator's
/// 80-byte size class. Names compare by pointer first, as copies handed out by the
/// namespace usually are the same one; otherwise, and in order and hash, as strings.
#[derive(Clone, Serialize, Deserialize)]
pub struct Name(Shared<Box<str>>);

impl Name {
    /// The empty name, one copy for the process: a search key's label
    /// (`least_with_number`), built on every lookup, allocates nothing.
    pub fn empty() -> Name {
        static EMPTY: std::sync::LazyLock<Name> = std::sync::LazyLock::new(|| Name::from(""));
        EMPTY.clone()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether both are the same copy.
    pub fn ptr_eq(a: &Name, b: &Name) -> bool {
        Shared::ptr_eq(&a.0, &b.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// So that a table of names finds one by a `&str` (hashes agree: both hash the `str`).
impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(name: &str) -> Self {
        Name(Shared::new(name.into()))
    }
}

impl From<String> for Name {
    fn from(name: String) -> Self {
        Name(Shared::new(name.into_boxed_str()))
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        Name::ptr_eq(self, other) || self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        if Name::ptr_eq(self, other) {
            Ordering::Equal
        } else {
            self.as_str().cmp(other.as_str())
        }
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A property map: keys unique and sorted, so equal maps compare equal in arrangements.
///
/// A sorted vector rather than a `BTreeMap`: vertices carry a handful of properties, and a
/// B-tree node is sized for eleven entries, which for three small properties costs several
/// times their own size. A thin one (its length with its entries): most edges have no
/// properties, and an empty map is then one pointer in the element, not three words.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Properties(ThinVec<(Name, Value)>);

impl Properties {
    pub fn new() -> Self {
        Properties(ThinVec::new())
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &self.0[i].1)
    }

    /// Sets `key`, replacing a value it had.
    pub fn insert(&mut self, key: impl Into<Name> + AsRef<str>, value: Value) {
        match self.0.binary_search_by(|(k, _)| (**k).cmp(key.as_ref())) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key.into(), value)),
        }
    }

    /// Sets every key of `other`, keeping the keys it does not have.
    pub fn merge(&mut self, other: &Properties) {
        for (key, value) in &other.0 {
            self.insert(key.clone(), value.clone());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }

    /// Each key as `share` gives it (the namespace's one copy of the name).
    pub fn share_keys(&mut self, mut share: impl FnMut(&Name) -> Name) {
        for (key, _) in &mut self.0 {
            *key = share(key);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Name>> FromIterator<(K, Value)> for Properties {
    /// Collects pairs; of repeated keys, the last wins (as in a map).
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut pairs: Vec<(Name, Value)> = iter.into_iter().map(|(k, v)| (k.into(), v)).collect();
        // Stable, so equal keys keep their order and the last can be kept.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: ThinVec<(Name, Value)> = ThinVec::with_capacity(pairs.len());
        for (key, value) in pairs {
            match unique.last_mut() {
                Some(last) if last.0 == key => last.1 = value,
                _ => unique.push((key, value)),
            }
        }
        unique.shrink_to_fit();
        Properties(unique)
    }
}

impl std::ops::Index<&str> for Properties {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no property {key:?}"),
        }
    }
}

/// A vertex or an edge as every index holds it: one copy per process, pointed at by the
/// apply stage and each arrangement. Counted without weak references, so its header is 8
/// bytes, not `std::sync::Arc`'s 16: that puts an edge in the allocator's 80-byte size
/// class instead of 96, and a vertex in 64 instead of 80.
pub type Shared<T> = triomphe::Arc<T>;

/// A vertex as stored: shared between the apply stage and the arrangements, so each vertex
/// is held once per process however many indexes point at it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vertex {
    /// First: `VertexByNumber` holds each vertex as its own key, found by its number.
    pub number: VertexNumber,
    pub id: Id,
    pub label: Name,
    pub properties: Properties,
    pub created_at: Micros,
    pub updated_at: Micros,
}

impl Vertex {
    /// The least vertex numbered `number`: every vertex that ever had the number orders
    /// after it and before any greater number, so a search of vertices ordered by number
    /// (`VertexByNumber`) starts here.
    pub fn least_with_number(number: VertexNumber) -> Self {
        Vertex {
            number,
            id: Id::new(),
            label: Name::empty(),
            properties: Properties::new(),
            created_at: Micros::MIN,
            updated_at: Micros::MIN,
        }
    }
}

/// An edge as stored, shared like [`Vertex`]. Its endpoints' numbers are not in it: they
/// key the adjacencies, which is the only place they are needed, so the edge travels beside
/// them ([`NumberedEdge`]) into the dataflow and is stored without them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    pub id: Id,
    pub label: Name,
    pub from: Id,
    pub to: Id,
    pub properties: Properties,
    pub created_at: Micros,
}

/// An edge with the numbers of the vertices at its ends: what the apply stage hands the
/// dataflow, which arranges the edge by each number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NumberedEdge {
    pub from: VertexNumber,
    pub to: VertexNumber,
    pub edge: Shared<Edge>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::hashable::Hashable;

    #[test]
    fn namespaces_compare_and_hash_by_name_whichever_copy_they_are() {
        let (a, also_a, b) = (Namespace::new("a"), Namespace::new("a"), Namespace::new("b"));
        assert_eq!(a, also_a);
        assert_eq!(a.cmp(&also_a), Ordering::Equal);
        assert_eq!(a.hashed(), also_a.hashed());
        assert!(a < b && b > also_a);
        assert_eq!(Namespace::new(""), Namespace::default());
        assert_eq!(std::mem::size_of::<Namespace>(), 8, "one pointer in every key");
    }

    #[test]
    fn an_edge_and_a_vertex_fit_the_allocators_80_and_64_byte_classes() {
        // With the shared pointer's 8-byte count: mimalloc's classes past 64 are 80, 96, ...
        assert_eq!(std::mem::size_of::<Name>(), 8);
        assert!(std::mem::size_of::<Edge>() + 8 <= 80, "an edge: {} bytes", std::mem::size_of::<Edge>());
        assert!(std::mem::size_of::<Vertex>() + 8 <= 64, "a vertex: {} bytes", std::mem::size_of::<Vertex>());
    }

    #[test]
    fn a_value_is_24_bytes_and_holds_short_strings_inline() {
        assert_eq!(std::mem::size_of::<Value>(), 24, "every property holds one");
        assert_eq!(Value::String("fifteen-bytes!!".into()), Value::String(Text::from("fifteen-bytes!!")));
    }

    #[test]
    fn names_compare_and_hash_as_strings_whichever_copy_they_are() {
        use std::collections::HashSet;
        let (a, also_a, b) = (Name::from("a"), Name::from("a"), Name::from("b"));
        assert!(a == also_a && !Name::ptr_eq(&a, &also_a) && a < b);
        let names: HashSet<Name> = [a.clone()].into_iter().collect();
        assert!(names.contains("a") && names.contains(&also_a) && !names.contains("b"));
        assert_eq!(format!("{a:?} {b}"), "\"a\" b");
    }

    #[test]
    fn ids_up_to_fifteen_bytes_are_held_inline_in_sixteen() {
        assert_eq!(std::mem::size_of::<Id>(), 16, "an edge holds three");
        for id in ["", "v1", "e123456789abcde", "a-longer-id-on-the-heap", "ünïcödé-ïd"] {
            let held = Id::from(id);
            assert_eq!(held.as_str(), id);
            assert_eq!(held.clone(), held);
        }
        let mut ids: Vec<Id> = ["b", "ab", "a", "a-longer-id-on-the-heap"].into_iter().map(Id::from).collect();
        ids.sort();
        assert_eq!(
            ids.iter().map(Id::as_str).collect::<Vec<_>>(),
            ["a", "a-longer-id-on-the-heap", "ab", "b"],
            "as strings"
        );
    }

    #[test]
    fn a_vertex_is_numbered_on_the_worker_its_key_is_sharded_to() {
        let namespace = Namespace::new("social");
        for id in ["a", "bob", "v123456"] {
            let key = VertexKey::new(&namespace, id);
            assert_eq!(VertexKey::route(&namespace, id), key.hashed(), "{id}");
        }
        for id in ["e", "knows-1"] {
            assert_eq!(EdgeKey::route(&namespace, id), EdgeKey::new(&namespace, id).hashed(), "{id}");
        }
        for workers in [1, 2, 3, 4, 7] {
            for owner in 0..workers {
                let number = VertexNumber::new(5, owner, workers);
                assert_eq!((number.owner(workers), number.index(workers)), (owner, 5));
                // Timely's exchange sends the number, as a route, to its owner.
                assert_eq!(owner_of(number.0, workers), owner);
            }
        }
    }
}
