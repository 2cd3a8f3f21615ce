//! The settable property tree behind `proxy_get_property`.
//!
//! Tests put values at paths (a path is a list of segments; on the wire the
//! segments are NUL-separated). A node is raw bytes (returned as is), a JSON
//! value (encoded like Envoy encodes metadata, and navigable below), or an
//! interior map created by setting deeper paths (encoded as nested pairs).
//! The path `metadata` alone reads like Envoy's: the whole dynamic metadata
//! as a serialised `Metadata` message (see [`crate::envoy_proto`]), unless
//! a test stored raw bytes there.
//! Values the filter writes with `proxy_set_property` do not go here: like
//! Envoy they become filter state (see [`filter_state_key`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::envoy_encoding::encode_envoy_value;
use mcp_guard_flow::envoy_proto::metadata_message;

/// The property holding the request's dynamic metadata.
pub const METADATA: &str = "metadata";

/// Path segments of the dynamic metadata `jwt_authn` writes its verified
/// payloads under; the payload key follows.
pub const JWT_AUTHN_METADATA: [&str; 3] = [
    "metadata",
    "filter_metadata",
    "envoy.filters.http.jwt_authn",
];

/// Prefix Envoy gives filter state written by `proxy_set_property`.
pub const FILTER_STATE_PREFIX: &str = "wasm.";

/// One node of the property tree.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// Bytes returned verbatim (e.g. `request.id`).
    Raw(Vec<u8>),
    /// A JSON value, encoded with [`encode_envoy_value`] when read and
    /// navigable by object key or list index.
    Json(Value),
    /// An interior node; read as a pairs-encoded map of its children.
    Map(BTreeMap<String, PropertyValue>),
}

impl PropertyValue {
    /// Serialises the node the way Envoy would return it.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PropertyValue::Raw(bytes) => bytes.clone(),
            PropertyValue::Json(value) => encode_envoy_value(value),
            PropertyValue::Map(children) => {
                let pairs: Vec<(&str, Vec<u8>)> = children
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.encode()))
                    .collect();
                crate::pairs::encode(&pairs)
            }
        }
    }

    /// The node as JSON: interior maps as objects, raw bytes as (lossy)
    /// strings.
    pub fn to_json(&self) -> Value {
        match self {
            PropertyValue::Raw(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            PropertyValue::Json(value) => value.clone(),
            PropertyValue::Map(children) => Value::Object(
                children
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A tree of properties rooted at an unnamed map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertyTree {
    root: BTreeMap<String, PropertyValue>,
}

impl PropertyTree {
    /// Stores `value` at `path`, creating interior maps and replacing any
    /// leaf that was in the way. An empty path is ignored.
    pub fn set<S: AsRef<str>>(&mut self, path: &[S], value: PropertyValue) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = &mut self.root;
        for segment in parents {
            let entry = node
                .entry(segment.as_ref().to_string())
                .or_insert_with(|| PropertyValue::Map(BTreeMap::new()));
            if !matches!(entry, PropertyValue::Map(_)) {
                *entry = PropertyValue::Map(BTreeMap::new());
            }
            let PropertyValue::Map(children) = entry else {
                return;
            };
            node = children;
        }
        node.insert(last.as_ref().to_string(), value);
    }

    /// Removes the node at `path`, if any.
    pub fn remove<S: AsRef<str>>(&mut self, path: &[S]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut node = &mut self.root;
        for segment in parents {
            match node.get_mut(segment.as_ref()) {
                Some(PropertyValue::Map(children)) => node = children,
                _ => return,
            }
        }
        node.remove(last.as_ref());
    }

    /// Encoded value at `path`, or `None` when nothing is there. Paths may
    /// continue below a JSON node (object keys, list indices).
    pub fn get<S: AsRef<str>>(&self, path: &[S]) -> Option<Vec<u8>> {
        if let [only] = path {
            if only.as_ref() == METADATA {
                return Some(self.metadata_message());
            }
        }
        let (first, rest) = path.split_first()?;
        let mut node = self.root.get(first.as_ref())?;
        for (i, segment) in rest.iter().enumerate() {
            match node {
                PropertyValue::Map(children) => node = children.get(segment.as_ref())?,
                PropertyValue::Json(value) => {
                    return json_at(value, &rest[i..]).map(encode_envoy_value);
                }
                PropertyValue::Raw(_) => return None,
            }
        }
        Some(node.encode())
    }
}

impl PropertyTree {
    /// The `metadata` property as Envoy serialises it: a `Metadata`
    /// message, empty when nothing was stored (Envoy always has one).
    fn metadata_message(&self) -> Vec<u8> {
        match self.root.get(METADATA) {
            Some(PropertyValue::Raw(bytes)) => bytes.clone(),
            Some(node) => metadata_message(&node.to_json()),
            None => Vec::new(),
        }
    }
}

fn json_at<'a, S: AsRef<str>>(mut value: &'a Value, path: &[S]) -> Option<&'a Value> {
    for segment in path {
        let segment = segment.as_ref();
        value = match value {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Splits a NUL-separated wire path into segments. A trailing NUL (some SDKs
/// send one) does not create an empty last segment.
pub fn split_path(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Filter-state key Envoy uses for a property the filter sets: the prefix
/// plus the raw path, nested segments still NUL-joined.
pub fn filter_state_key(raw_path: &[u8]) -> String {
    let raw = raw_path.strip_suffix(&[0]).unwrap_or(raw_path);
    format!("{FILTER_STATE_PREFIX}{}", String::from_utf8_lossy(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs;
    use serde_json::json;

    fn jwt_path(key: &str) -> Vec<&str> {
        let mut path = JWT_AUTHN_METADATA.to_vec();
        path.push(key);
        path
    }

    #[test]
    fn raw_values_round_trip() {
        let mut tree = PropertyTree::default();
        tree.set(&["request", "id"], PropertyValue::Raw(b"abc".to_vec()));
        assert_eq!(tree.get(&["request", "id"]).unwrap(), b"abc");
        assert_eq!(tree.get(&["request", "nope"]), None);
        assert_eq!(tree.get(&["request", "id", "deeper"]), None);
        assert_eq!(tree.get::<&str>(&[]), None);
    }

    #[test]
    fn jwt_payload_map_and_leaves() {
        let mut tree = PropertyTree::default();
        let payload = json!({"sub": "alice", "exp": 10, "groups": ["a"], "ok": true});
        tree.set(
            &jwt_path("jwt_payload"),
            PropertyValue::Json(payload.clone()),
        );
        assert_eq!(
            tree.get(&jwt_path("jwt_payload")).unwrap(),
            encode_envoy_value(&payload)
        );
        let mut sub = jwt_path("jwt_payload");
        sub.push("sub");
        assert_eq!(tree.get(&sub).unwrap(), b"alice");
        let mut group = jwt_path("jwt_payload");
        group.extend(["groups", "0"]);
        assert_eq!(tree.get(&group).unwrap(), b"a");
    }

    #[test]
    fn interior_nodes_read_as_nested_maps() {
        let mut tree = PropertyTree::default();
        tree.set(&jwt_path("p"), PropertyValue::Json(json!({"sub": "x"})));
        let whole = tree.get(&JWT_AUTHN_METADATA).unwrap();
        let outer = pairs::decode(&whole).unwrap();
        assert_eq!(outer.len(), 1);
        assert_eq!(outer[0].0, b"p");
        assert_eq!(
            pairs::decode(&outer[0].1).unwrap(),
            vec![(b"sub".to_vec(), b"x".to_vec())]
        );
    }

    #[test]
    fn metadata_alone_reads_as_a_metadata_message() {
        let mut tree = PropertyTree::default();
        assert_eq!(tree.get(&[METADATA]), Some(Vec::new()));
        let payload = json!({"risk": 0.95, "sub": "alice"});
        tree.set(
            &jwt_path("jwt_payload"),
            PropertyValue::Json(payload.clone()),
        );
        let expected =
            json!({"filter_metadata": {JWT_AUTHN_METADATA[2]: {"jwt_payload": payload}}});
        assert_eq!(tree.get(&[METADATA]), Some(metadata_message(&expected)));
        // Raw bytes stored at `metadata` are served verbatim.
        tree.set(&[METADATA], PropertyValue::Raw(vec![0x0a, 0xff]));
        assert_eq!(tree.get(&[METADATA]), Some(vec![0x0a, 0xff]));
    }

    #[test]
    fn setting_below_a_leaf_replaces_it() {
        let mut tree = PropertyTree::default();
        tree.set(&["a"], PropertyValue::Raw(b"leaf".to_vec()));
        tree.set(&["a", "b"], PropertyValue::Raw(b"v".to_vec()));
        assert_eq!(tree.get(&["a", "b"]).unwrap(), b"v");
        tree.remove(&["a", "b"]);
        assert_eq!(tree.get(&["a", "b"]), None);
    }

    #[test]
    fn wire_paths() {
        assert_eq!(split_path(b"a\0b.c\0d"), vec!["a", "b.c", "d"]);
        assert_eq!(split_path(b"x\0"), vec!["x"]);
        assert!(split_path(b"").is_empty());
        assert_eq!(filter_state_key(b"mcp_decision"), "wasm.mcp_decision");
        assert_eq!(filter_state_key(b"a\0b"), "wasm.a\0b");
    }
}
