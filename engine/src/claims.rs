//! Verified JWT claims, whatever source they came from.

use serde_json::{Map, Value};

/// The claims of a verified token as a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// Wraps an already parsed claim object.
    pub fn new(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// Parses claims from a JSON object text (a token payload).
    pub fn from_json(text: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text).map(Self)
    }

    /// Looks a claim up by path. A key that itself contains dots (e.g. a
    /// namespaced claim `https://example.com/roles`) wins over nesting;
    /// otherwise `realm_access.roles` walks into nested objects.
    pub fn get(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.0.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut current = self.0.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// The claim as a string, when it is one.
    pub fn get_str(&self, path: &str) -> Option<&str> {
        self.get(path)?.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(text: &str) -> Claims {
        Claims::from_json(text.as_bytes()).unwrap()
    }

    #[test]
    fn nested_paths_resolve() {
        let c = claims(r#"{"realm_access":{"roles":["a","b"]},"sub":"alice"}"#);
        assert_eq!(c.get("realm_access.roles").unwrap()[1], "b");
        assert_eq!(c.get_str("sub"), Some("alice"));
        assert!(c.get("realm_access.missing").is_none());
        assert!(c.get("sub.deeper").is_none());
    }

    #[test]
    fn dotted_keys_win_over_nesting() {
        let c = claims(r#"{"https://x.io/roles":["r"],"https://x":{"io/roles":["n"]}}"#);
        assert_eq!(c.get("https://x.io/roles").unwrap()[0], "r");
    }
}
