//! The request file of `explain`: a small JSON description of one HTTP
//! request, read strictly so a typo (`"header"`) is an error, not a silent
//! difference from what the filter would see.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::time::{parse_rfc3339, TimeError};

/// A request as written in the request file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path; a query string is dropped as the filter does.
    pub path: String,
    /// `:authority`; defaults to the `host` header, else empty.
    #[serde(default)]
    pub host: Option<String>,
    /// Request headers (names are matched case-insensitively).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: any JSON value (sent as its JSON text) or a string (sent
    /// as is).
    #[serde(default)]
    pub body: Option<Value>,
    /// When the request happens: RFC 3339 or Unix seconds; default now.
    #[serde(default)]
    pub time: Option<TimeSpec>,
}

/// The request time as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TimeSpec {
    /// Unix seconds.
    Unix(u64),
    /// RFC 3339, e.g. `2026-01-05T10:00:00Z`.
    Text(String),
}

impl TimeSpec {
    /// Unix seconds.
    pub fn unix(&self) -> Result<u64, TimeError> {
        match self {
            TimeSpec::Unix(secs) => Ok(*secs),
            TimeSpec::Text(text) => parse_rfc3339(text),
        }
    }
}

impl RequestSpec {
    /// Header pairs with lower-case names, as the filter fetches them.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    }

    /// The authority: `host`, else the `host` header, else empty.
    pub fn authority(&self) -> String {
        self.host
            .clone()
            .or_else(|| {
                self.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("host"))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default()
    }

    /// The body bytes the filter would receive.
    pub fn body_bytes(&self) -> Option<Vec<u8>> {
        match &self.body {
            None => None,
            Some(Value::String(text)) => Some(text.clone().into_bytes()),
            Some(value) => Some(value.to_string().into_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_request() {
        let spec: RequestSpec = serde_json::from_str(
            r#"{"method":"POST","path":"/mcp","headers":{"Host":"a.b","X-Tenant":"t"},
                "body":{"model":"m"},"time":"1970-01-01T00:01:00Z"}"#,
        )
        .unwrap();
        assert_eq!(spec.authority(), "a.b");
        assert!(spec
            .header_pairs()
            .contains(&("x-tenant".into(), "t".into())));
        assert_eq!(spec.body_bytes().unwrap(), br#"{"model":"m"}"#);
        assert_eq!(spec.time.unwrap().unix(), Ok(60));
    }

    #[test]
    fn typos_and_missing_fields_are_errors() {
        assert!(
            serde_json::from_str::<RequestSpec>(r#"{"method":"GET","path":"/","header":{}}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<RequestSpec>(r#"{"method":"GET"}"#).is_err());
        let raw: RequestSpec =
            serde_json::from_str(r#"{"method":"GET","path":"/","body":"not json"}"#).unwrap();
        assert_eq!(raw.body_bytes().unwrap(), b"not json");
    }
}
