//! The request attributes a decision looks at.

use crate::mcp::McpCall;
use crate::peer::SpiffeId;
use crate::prompt_pii::PiiSet;

/// What the filter knows about a request when it decides.
///
/// Borrowed from the host's values so building one costs no copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestAttrs<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// `:authority` without port, lower case expected.
    pub host: &'a str,
    /// Request headers the policy reads (lower-case names).
    pub headers: &'a [(&'a str, &'a str)],
    /// Model named by the request (body `model` or the model header).
    pub model: Option<&'a str>,
    /// The MCP JSON-RPC call being decided, if any.
    pub mcp: Option<&'a McpCall>,
    /// Current time (Unix seconds, UTC) for time windows.
    pub now_unix: u64,
    /// The peer's SPIFFE ID from the downstream mTLS certificate, if any.
    pub peer: Option<&'a SpiffeId>,
    /// The caller is identified by `peer` alone (no token): only allow
    /// rules that name peers and test no claims can admit it.
    pub workload_only: bool,
    /// PII types found in the request body (empty when it was not read).
    pub prompt_pii: PiiSet,
}

impl<'a> RequestAttrs<'a> {
    /// Builds attributes from a raw `:path` and `:authority`, dropping any
    /// query string or fragment so rules cannot be bypassed by appending
    /// `?x`, and any port from the host.
    pub fn new(method: &'a str, raw_path: &'a str, authority: &'a str) -> Self {
        let path = raw_path.split(['?', '#']).next().unwrap_or_default();
        let host = strip_port(authority);
        Self {
            method,
            path,
            host,
            ..Self::default()
        }
    }

    /// The same request with the headers the policy reads.
    pub fn with_headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Self { headers, ..self }
    }

    /// The same request naming a model.
    pub fn with_model(self, model: Option<&'a str>) -> Self {
        Self { model, ..self }
    }

    /// The same request carrying one MCP call.
    pub fn with_mcp(self, mcp: Option<&'a McpCall>) -> Self {
        Self { mcp, ..self }
    }

    /// The same request from a peer workload; `workload_only` when that
    /// peer is the whole identity (no token).
    pub fn with_peer(self, peer: Option<&'a SpiffeId>, workload_only: bool) -> Self {
        Self {
            peer,
            workload_only: workload_only && peer.is_some(),
            ..self
        }
    }

    /// The same request with the PII types its body holds.
    pub fn with_prompt_pii(self, prompt_pii: PiiSet) -> Self {
        Self { prompt_pii, ..self }
    }

    /// The same request at a given time.
    pub fn at(self, now_unix: u64) -> Self {
        Self { now_unix, ..self }
    }

    /// A header value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }
}

/// `host:port` → `host`; IPv6 literals (`[::1]:80`) keep their brackets.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..h.len() + 1]);
    }
    authority.split(':').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_port_are_dropped() {
        let r = RequestAttrs::new("GET", "/a/b?x=1#f", "model.local:8080");
        assert_eq!((r.path, r.host), ("/a/b", "model.local"));
        assert_eq!(RequestAttrs::new("GET", "/", "[::1]:80").host, "[::1]");
    }
}
