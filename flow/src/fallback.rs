//! The cross-cluster fallback of a route: when the chosen cluster answers
//! 5xx or cannot be reached, the request is replayed to the route's
//! `fallback` cluster and its answer replaces the failed one.
//!
//! What is whose: retries *within* a cluster, health checking, outlier
//! ejection and "no healthy upstream" are Envoy's (cluster and route
//! configuration); the filter only adds the step Envoy cannot take per
//! bundle — another cluster, chosen by policy — without per-pair Envoy
//! configuration (an aggregate cluster per pair). It needs the request
//! body held (the default; with headers not held the filter keeps no
//! copy and there is no fallback), keeps a copy of the request as
//! forwarded (injected claims in, the caller's token out, exchanged
//! token in), and replays it with the proxy's HTTP call: the answer
//! arrives whole (a streamed answer from the fallback reaches the client
//! in one piece), is bounded by `pii.max_body_bytes`, scrubbed and
//! filtered by the filter itself (Envoy sends a local reply made after
//! the response started straight to the client, around the filter
//! chain), then sent as a local reply.

use std::sync::Arc;

/// How long the fallback cluster may take to answer.
pub const FALLBACK_TIMEOUT_MS: u64 = 60_000;

/// Most bytes of any HTTP call's answer a host hands the flow (one more
/// than this is enough to refuse it); the flow then applies the limit of
/// the call's kind (token endpoint: 64 KiB; fallback: `pii.max_body_bytes`).
pub const MAX_CALLOUT_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Response-code details of the fallback's answer (access log).
pub const FALLBACK_DETAILS: &str = "mcp_route_fallback";

/// A forwarded request kept to be replayed to the fallback cluster.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The fallback cluster.
    pub cluster: Arc<str>,
    /// The request headers as they went upstream, pseudo-headers
    /// included, hop-by-hop and framing headers out.
    pub headers: Vec<(String, String)>,
    /// The request body as it went upstream.
    pub body: Vec<u8>,
}

/// Headers a replay does not copy: hop-by-hop and framing (the proxy's
/// HTTP call frames the body itself), and Envoy's internal ones.
const NOT_REPLAYED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "expect",
    "trailer",
];

/// The headers of a replay, out of the request's as forwarded.
pub fn replay_headers(headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            // `accept-encoding` too: the reply drops `content-encoding`
            // (the flow checks and frames the body itself), so a
            // compressed answer would reach the client undeclared.
            !NOT_REPLAYED.contains(&k.as_str())
                && !k.starts_with("x-envoy-")
                && k != "accept-encoding"
        })
        .collect()
}

/// The fallback's answer headers a local reply carries: all but
/// pseudo-headers, hop-by-hop and framing ones (the reply is framed
/// anew; `content-encoding` never gets this far).
pub fn reply_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.starts_with(':') && !NOT_REPLAYED.contains(&k.as_str()) && k != "content-encoding"
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Whether an answer's `:status` asks for the fallback: any 5xx,
/// Envoy's own 503s (no healthy upstream, connection failure, timeout)
/// included. An unreadable status counts as a failure.
pub fn failed(status: Option<&str>) -> bool {
    status
        .and_then(|s| s.trim().parse::<u16>().ok())
        .is_none_or(|s| (500..600).contains(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_errors_fall_back() {
        assert!(failed(Some("500")) && failed(Some("503")) && failed(None));
        assert!(!failed(Some("200")) && !failed(Some("404")) && !failed(Some("429")));
        assert!(failed(Some("x")));
    }

    #[test]
    fn framing_and_internal_headers_are_not_replayed() {
        let kept = replay_headers(vec![
            (":method".into(), "POST".into()),
            ("content-length".into(), "12".into()),
            ("x-envoy-expected-rq-timeout-ms".into(), "1".into()),
            ("Transfer-Encoding".into(), "chunked".into()),
            ("x-tenant".into(), "t1".into()),
            ("Accept-Encoding".into(), "gzip".into()),
        ]);
        let names: Vec<_> = kept.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, [":method", "x-tenant"]);
    }
}
