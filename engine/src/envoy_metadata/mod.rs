//! The caller's verified JWT payload, read from Envoy's dynamic metadata by
//! its protobuf structure.
//!
//! `jwt_authn` (with `payload_in_metadata`) stores the payload as a
//! `google.protobuf.Struct` under
//! `filter_metadata["envoy.filters.http.jwt_authn"].fields[<key>]`. Asking
//! Envoy for the property `metadata` alone returns the whole
//! `envoy.config.core.v3.Metadata` message in protobuf binary form (Envoy
//! serialises a message-typed property with `SerializeToString`; checked
//! against Envoy 1.40). Unlike the per-path property encoding, where leaves
//! are untyped bytes and a decoder has to guess whether eight bytes are a
//! number or a string, `Struct`/`Value` carry the type of every value, so
//! nothing here guesses.
//!
//! The schema walked (field numbers):
//! - `Metadata`: 1 `filter_metadata` map<string, Struct>;
//! - `Struct`: 1 `fields` map<string, Value> (entry: 1 key, 2 value);
//! - `Value` (oneof): 1 `null_value` enum, 2 `number_value` double,
//!   3 `string_value`, 4 `bool_value`, 5 `struct_value`, 6 `list_value`;
//! - `ListValue`: 1 `values` repeated Value.
//!
//! Decoding is strict (fail-closed): every malformed or ambiguous input is
//! an error, which the filter turns into `invalid_token`. Unknown fields
//! are skipped by wire type. Duplicate map keys, a `Value` with no or two
//! kinds, a non-finite number, invalid UTF-8 and a map entry without key or
//! value are errors, although protobuf itself would accept some of them:
//! Envoy never writes them, so seeing one means the bytes are not what
//! `jwt_authn` wrote. Depth, value count and input size are bounded.

mod wire;

use serde_json::{Map, Number, Value};
use thiserror::Error;

use self::wire::{Reader, WireType};

/// Largest metadata message accepted, a sanity bound far above any real
/// token (Envoy caps request headers at 60 KiB by default).
pub const MAX_METADATA_BYTES: usize = 4 << 20;
/// Deepest nesting of objects and lists in the payload; bounds recursion.
pub const MAX_DEPTH: usize = 32;
/// Most values (of any kind, nested ones included) in one payload; bounds
/// the memory a hostile payload can make the filter allocate.
pub const MAX_VALUES: usize = 65_536;

/// Why the metadata could not be read as a JWT payload.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum MetadataError {
    /// The bytes are not a well-formed encoding of the expected messages.
    #[error("malformed metadata: {0}")]
    Malformed(&'static str),
    /// The message is larger than [`MAX_METADATA_BYTES`].
    #[error("metadata larger than {MAX_METADATA_BYTES} bytes")]
    TooLarge,
    /// Objects or lists nested deeper than [`MAX_DEPTH`].
    #[error("payload nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_VALUES`] values.
    #[error("payload holds more than {MAX_VALUES} values")]
    TooManyValues,
    /// A map (metadata namespaces, struct fields) repeats a key.
    #[error("duplicate map key")]
    DuplicateKey,
    /// A number is NaN or infinite, which no JSON token can hold.
    #[error("non-finite number")]
    NonFinite,
    /// The payload is a `Value` other than an object.
    #[error("payload is not an object")]
    NotAnObject,
}

/// `Metadata.filter_metadata` and `Struct.fields`: both field 1.
const MAP_FIELD: u32 = 1;

/// The JWT payload `jwt_authn` stored under `payload_key`, from the
/// serialised `Metadata` Envoy returns for the property `metadata`.
/// `Ok(None)` when there is no such payload (no token was verified);
/// `Err` when the bytes are not a clean encoding of one.
///
/// Numbers come back as `f64` exactly as Envoy holds them (JSON numbers in
/// a `Struct` are doubles, so integers above 2^53 were already rounded by
/// Envoy). NaN and infinities cannot come from JSON and are errors.
pub fn jwt_payload_from_metadata(
    metadata_proto: &[u8],
    filter_name: &str,
    payload_key: &str,
) -> Result<Option<Map<String, Value>>, MetadataError> {
    if metadata_proto.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge);
    }
    let Some(filter_struct) = find_entry(metadata_proto, filter_name)? else {
        return Ok(None);
    };
    let Some(payload) = find_entry(filter_struct, payload_key)? else {
        return Ok(None);
    };
    let mut budget = MAX_VALUES;
    match decode_value(payload, 0, &mut budget)? {
        Value::Object(map) => Ok(Some(map)),
        _ => Err(MetadataError::NotAnObject),
    }
}

/// The value bytes of the map entry (field 1) whose key is `wanted`, in a
/// `Metadata` or `Struct`. Other entries are only checked for shape; a
/// second entry with the wanted key is an error.
fn find_entry<'a>(message: &'a [u8], wanted: &str) -> Result<Option<&'a [u8]>, MetadataError> {
    let mut reader = Reader::new(message);
    let mut found = None;
    while !reader.is_empty() {
        match reader.tag()? {
            (MAP_FIELD, WireType::Len) => {
                let (key, value) = map_entry(reader.len_delimited()?)?;
                if key == wanted.as_bytes() {
                    if found.is_some() {
                        return Err(MetadataError::DuplicateKey);
                    }
                    found = Some(value);
                }
            }
            (MAP_FIELD, _) => return Err(MetadataError::Malformed("map field wire type")),
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(found)
}

/// Splits a map entry into its key and value bytes. Envoy (protobuf C++)
/// always writes both, once each, so anything else is refused.
fn map_entry(entry: &[u8]) -> Result<(&[u8], &[u8]), MetadataError> {
    let mut reader = Reader::new(entry);
    let (mut key, mut value) = (None, None);
    while !reader.is_empty() {
        let slot = match reader.tag()? {
            (1, WireType::Len) => &mut key,
            (2, WireType::Len) => &mut value,
            (1 | 2, _) => return Err(MetadataError::Malformed("map entry wire type")),
            (_, wire) => {
                reader.skip(wire)?;
                continue;
            }
        };
        if slot.replace(reader.len_delimited()?).is_some() {
            return Err(MetadataError::Malformed("repeated map entry field"));
        }
    }
    match (key, value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(MetadataError::Malformed("incomplete map entry")),
    }
}

/// Decodes one `google.protobuf.Value`; exactly one kind must be set.
fn decode_value(bytes: &[u8], depth: usize, budget: &mut usize) -> Result<Value, MetadataError> {
    if depth > MAX_DEPTH {
        return Err(MetadataError::TooDeep);
    }
    *budget = budget.checked_sub(1).ok_or(MetadataError::TooManyValues)?;
    let mut reader = Reader::new(bytes);
    let mut kind = None;
    while !reader.is_empty() {
        let value = match reader.tag()? {
            (1, WireType::Varint) => match reader.varint()? {
                0 => Value::Null,
                _ => return Err(MetadataError::Malformed("null_value")),
            },
            (2, WireType::I64) => number(f64::from_le_bytes(reader.fixed64()?))?,
            (3, WireType::Len) => Value::String(utf8(reader.len_delimited()?)?),
            (4, WireType::Varint) => match reader.varint()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(MetadataError::Malformed("bool_value")),
            },
            (5, WireType::Len) => {
                Value::Object(decode_struct(reader.len_delimited()?, depth + 1, budget)?)
            }
            (6, WireType::Len) => {
                Value::Array(decode_list(reader.len_delimited()?, depth + 1, budget)?)
            }
            (1..=6, _) => return Err(MetadataError::Malformed("value wire type")),
            (_, wire) => {
                reader.skip(wire)?;
                continue;
            }
        };
        if kind.replace(value).is_some() {
            return Err(MetadataError::Malformed("value with two kinds"));
        }
    }
    kind.ok_or(MetadataError::Malformed("value with no kind"))
}

/// Decodes a `google.protobuf.Struct` into an object; keys must be unique.
fn decode_struct(
    bytes: &[u8],
    depth: usize,
    budget: &mut usize,
) -> Result<Map<String, Value>, MetadataError> {
    let mut reader = Reader::new(bytes);
    let mut map = Map::new();
    while !reader.is_empty() {
        match reader.tag()? {
            (MAP_FIELD, WireType::Len) => {
                let (key, value) = map_entry(reader.len_delimited()?)?;
                let key = utf8(key)?;
                if map.contains_key(&key) {
                    return Err(MetadataError::DuplicateKey);
                }
                let value = decode_value(value, depth, budget)?;
                map.insert(key, value);
            }
            (MAP_FIELD, _) => return Err(MetadataError::Malformed("struct field wire type")),
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(map)
}

/// Decodes a `google.protobuf.ListValue` (field 1: repeated `Value`).
fn decode_list(
    bytes: &[u8],
    depth: usize,
    budget: &mut usize,
) -> Result<Vec<Value>, MetadataError> {
    let mut reader = Reader::new(bytes);
    let mut items = Vec::new();
    while !reader.is_empty() {
        match reader.tag()? {
            (1, WireType::Len) => items.push(decode_value(reader.len_delimited()?, depth, budget)?),
            (1, _) => return Err(MetadataError::Malformed("list wire type")),
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(items)
}

fn number(n: f64) -> Result<Value, MetadataError> {
    Number::from_f64(n)
        .map(Value::Number)
        .ok_or(MetadataError::NonFinite)
}

fn utf8(bytes: &[u8]) -> Result<String, MetadataError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| MetadataError::Malformed("invalid UTF-8"))
}

#[cfg(test)]
mod tests;
