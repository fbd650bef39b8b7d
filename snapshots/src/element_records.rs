//! The engine's vertices and edges encoded straight into snapshot records' bytes: the record
//! `records::item_to_proto` builds and prost encodes, length-delimited, without building it
//! or the item it is built from. A checkpoint writes every element of the graph, and copying
//! each edge's four strings twice on the way was most of its writing thread's time.
//!
//! The fields follow prost's rules for proto3 (a string, an integer or bytes at its default
//! is left out), and properties come in key order: prost writes its map in hash order, so
//! only the order of several properties differs, and both decode alike.

use prism_connectors::codec::value;
use prism_dataflows::{Edge, Properties, Vertex};
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;

/// `SnapshotRecord`'s fields for an element.
const RECORD_VERTEX: u32 = 2;
const RECORD_EDGE: u32 = 3;

/// Appends `vertex` as one length-delimited `SnapshotRecord`.
pub(crate) fn vertex(vertex: &Vertex, buf: &mut Vec<u8>) {
    let properties = encoded_properties(&vertex.properties);
    let fields = [(1, vertex.id.as_str()), (2, vertex.label.as_str())];
    let len = strings_len(&fields)
        + properties_len(3, &properties)
        + int_len(4, vertex.created_at)
        + int_len(5, vertex.updated_at);
    open_record(RECORD_VERTEX, len, buf);
    put_strings(&fields, buf);
    put_properties(3, &properties, buf);
    put_int(4, vertex.created_at, buf);
    put_int(5, vertex.updated_at, buf);
}

/// Appends `edge` as one length-delimited `SnapshotRecord`.
pub(crate) fn edge(edge: &Edge, buf: &mut Vec<u8>) {
    let properties = encoded_properties(&edge.properties);
    let fields = [(1, edge.id.as_str()), (2, edge.label.as_str()), (3, edge.from.as_str()), (4, edge.to.as_str())];
    let len = strings_len(&fields) + properties_len(5, &properties) + int_len(6, edge.created_at);
    open_record(RECORD_EDGE, len, buf);
    put_strings(&fields, buf);
    put_properties(5, &properties, buf);
    put_int(6, edge.created_at, buf);
}

/// The record's length prefix and its one field's header, for an element of `len` bytes.
fn open_record(field: u32, len: usize, buf: &mut Vec<u8>) {
    let record_len = key_len(field) + encoded_len_varint(len as u64) + len;
    buf.reserve(encoded_len_varint(record_len as u64) + record_len);
    encode_varint(record_len as u64, buf);
    encode_key(field, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn string_len(tag: u32, s: &[u8]) -> usize {
    if s.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn put_string(tag: u32, s: &[u8], buf: &mut Vec<u8>) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s);
    }
}

fn strings_len(fields: &[(u32, &str)]) -> usize {
    fields.iter().map(|(tag, s)| string_len(*tag, s.as_bytes())).sum()
}

fn put_strings(fields: &[(u32, &str)], buf: &mut Vec<u8>) {
    for (tag, s) in fields {
        put_string(*tag, s.as_bytes(), buf);
    }
}

fn int_len(tag: u32, n: i64) -> usize {
    if n == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(n as u64)
    }
}

fn put_int(tag: u32, n: i64, buf: &mut Vec<u8>) {
    if n != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(n as u64, buf);
    }
}

/// Each property's key and its value as a serialized `prism.graph.v1.Value`.
fn encoded_properties(properties: &Properties) -> Vec<(&str, Vec<u8>)> {
    properties.iter().map(|(key, v)| (key, value::to_proto(v).encode_to_vec())).collect()
}

/// A map entry: the key (field 1) and the value (field 2), each left out at its default.
fn entry_len((key, value): &(&str, Vec<u8>)) -> usize {
    string_len(1, key.as_bytes()) + string_len(2, value)
}

fn properties_len(tag: u32, properties: &[(&str, Vec<u8>)]) -> usize {
    properties.iter().map(entry_len).map(|len| key_len(tag) + encoded_len_varint(len as u64) + len).sum()
}

fn put_properties(tag: u32, properties: &[(&str, Vec<u8>)], buf: &mut Vec<u8>) {
    for entry in properties {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(entry_len(entry) as u64, buf);
        put_string(1, entry.0.as_bytes(), buf);
        put_string(2, &entry.1, buf);
    }
}
