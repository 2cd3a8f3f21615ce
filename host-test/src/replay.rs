//! The replay format: JSON lines of exchanges in, JSON lines of results out.
//!
//! Input line:
//! `{"id", "jwt_payload"?, "properties"?, "request": {"method", "path",
//! "headers"?, "body"? | "body_base64"? | "chunks"?, "trailers"?},
//! "response"?: {"status"?, "headers"?, "body"? | "body_base64"? |
//! "chunks"?, "trailers"?}}`.
//! Header and trailer values are strings (or arrays of strings for repeated
//! names); non-empty `trailers` end the message instead of the last body
//! chunk, as over HTTP/2.
//! Property keys are dot-separated paths (`"request.id"`); string values are
//! raw bytes, other JSON values use the Envoy encoding. `jwt_payload` is
//! stored as `jwt_authn` would, under the metadata key given by `--jwt-key`.
//!
//! Output line: `{"id", "local_reply", "upstream_request", "response",
//! "filter_state", "metrics", "logs", "stalled", "http_calls"}` (the
//! upstream request and the response carry `"trailers"` when they had
//! some), or
//! `{"id", "line", "error"}` for a line that could not be run.
//!
//! One VM serves the whole file, like one Envoy worker: metrics and shared
//! data accumulate from line to line.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::exchange::{Exchange, ExchangeResult, RequestSpec, ResponseSpec};
use crate::header_map::HeaderMap;
use crate::plugin::Plugin;

/// Default metadata key for `jwt_payload` (jwt_authn's `payload_in_metadata`).
pub const DEFAULT_JWT_KEY: &str = "jwt_payload";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    /// Read from the raw line (so errors can echo it); declared for
    /// `deny_unknown_fields`.
    #[serde(rename = "id")]
    _id: Option<Value>,
    jwt_payload: Option<Map<String, Value>>,
    properties: Option<BTreeMap<String, Value>>,
    request: InputRequest,
    response: Option<InputResponse>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputRequest {
    method: String,
    path: String,
    #[serde(default)]
    headers: Map<String, Value>,
    body: Option<String>,
    body_base64: Option<String>,
    chunks: Option<Vec<String>>,
    #[serde(default)]
    trailers: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputResponse {
    status: Option<u16>,
    #[serde(default)]
    headers: Map<String, Value>,
    body: Option<String>,
    body_base64: Option<String>,
    chunks: Option<Vec<String>>,
    #[serde(default)]
    trailers: Map<String, Value>,
}

#[derive(Serialize)]
struct OutputLine {
    id: Value,
    local_reply: Option<OutLocalReply>,
    upstream_request: Option<OutMessage>,
    response: Option<OutResponse>,
    filter_state: BTreeMap<String, String>,
    metrics: BTreeMap<String, u64>,
    logs: Vec<String>,
    stalled: bool,
    http_calls: Vec<OutHttpCall>,
}

#[derive(Serialize)]
struct OutLocalReply {
    status: u32,
    headers: BTreeMap<String, Value>,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    details: String,
}

#[derive(Serialize)]
struct OutMessage {
    headers: BTreeMap<String, Value>,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trailers: BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct OutResponse {
    status: u16,
    headers: BTreeMap<String, Value>,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    chunks: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    trailers: BTreeMap<String, Value>,
}

#[derive(Serialize)]
struct OutHttpCall {
    upstream: String,
    headers: BTreeMap<String, Value>,
    body: String,
    timeout_ms: u128,
}

#[derive(Serialize)]
struct ErrorLine {
    id: Value,
    line: usize,
    error: String,
}

/// Options of a replay run besides the plugin.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Metadata key `jwt_payload` is stored under.
    pub jwt_key: String,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            jwt_key: DEFAULT_JWT_KEY.to_string(),
        }
    }
}

/// Counts of one replay run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Lines that produced a result.
    pub ok: usize,
    /// Lines that produced an error line.
    pub errors: usize,
}

/// Replays every line of `input` on `plugin`, writing one output line each.
/// Blank lines are skipped. Only I/O errors stop the run.
pub fn run(
    plugin: &Plugin,
    options: &ReplayOptions,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rendered = match replay_line(plugin, options, &line) {
            Ok(ok) => {
                summary.ok += 1;
                ok
            }
            Err((id, error)) => {
                summary.errors += 1;
                to_json(&ErrorLine {
                    id,
                    line: index + 1,
                    error,
                })
            }
        };
        writeln!(output, "{rendered}")?;
    }
    output.flush()?;
    Ok(summary)
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!(r#"{{"error":"cannot serialise output: {e}"}}"#))
}

/// Runs one input line; on failure returns the id (if readable) and why.
fn replay_line(
    plugin: &Plugin,
    options: &ReplayOptions,
    line: &str,
) -> Result<String, (Value, String)> {
    let raw: Value =
        serde_json::from_str(line).map_err(|e| (Value::Null, format!("malformed JSON: {e}")))?;
    let id = raw.get("id").cloned().unwrap_or(Value::Null);
    let parsed: InputLine =
        serde_json::from_value(raw).map_err(|e| (id.clone(), format!("invalid exchange: {e}")))?;
    let exchange = to_exchange(parsed, options).map_err(|e| (id.clone(), e))?;
    let result = plugin
        .run_exchange(&exchange)
        .map_err(|e| (id.clone(), e.to_string()))?;
    Ok(to_json(&render(id, result)))
}

fn body_chunks(
    body: Option<String>,
    body_base64: Option<String>,
    chunks: Option<Vec<String>>,
    what: &str,
) -> Result<Vec<Vec<u8>>, String> {
    match (body, body_base64, chunks) {
        (None, None, None) => Ok(Vec::new()),
        (Some(body), None, None) => Ok(non_empty(body.into_bytes())),
        (None, Some(encoded), None) => crate::base64::decode(&encoded)
            .map(non_empty)
            .map_err(|e| format!("{what}.body_base64: {e}")),
        (None, None, Some(chunks)) => Ok(chunks.into_iter().map(String::into_bytes).collect()),
        _ => Err(format!(
            "{what}: give at most one of \"body\", \"body_base64\", \"chunks\""
        )),
    }
}

fn non_empty(body: Vec<u8>) -> Vec<Vec<u8>> {
    if body.is_empty() {
        Vec::new()
    } else {
        vec![body]
    }
}

fn header_pairs(headers: Map<String, Value>, what: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, value) in headers {
        match value {
            Value::String(v) => out.push((name.to_ascii_lowercase(), v)),
            Value::Array(values) => {
                for v in values {
                    let Value::String(v) = v else {
                        return Err(format!("{what}.{name}: values must be strings"));
                    };
                    out.push((name.to_ascii_lowercase(), v));
                }
            }
            _ => {
                return Err(format!(
                    "{what}.{name}: value must be a string or an array of strings"
                ))
            }
        }
    }
    Ok(out)
}

/// Trailers: like headers, but pseudo-headers are not allowed (HTTP/2).
fn trailer_pairs(
    trailers: Map<String, Value>,
    what: &str,
) -> Result<Vec<(String, String)>, String> {
    let pairs = header_pairs(trailers, &format!("{what}.trailers"))?;
    if let Some((name, _)) = pairs.iter().find(|(k, _)| k.starts_with(':')) {
        return Err(format!(
            "{what}.trailers.{name}: pseudo-headers are not allowed in trailers"
        ));
    }
    Ok(pairs)
}

fn to_exchange(line: InputLine, options: &ReplayOptions) -> Result<Exchange, String> {
    let request = line.request;
    let mut headers = vec![
        (":method".to_string(), request.method),
        (":path".to_string(), request.path),
    ];
    let mut rest = header_pairs(request.headers, "request.headers")?;
    // Envoy's codec turns Host into :authority.
    let authority = rest
        .iter()
        .position(|(k, _)| k == ":authority")
        .or_else(|| rest.iter().position(|(k, _)| k == "host"))
        .map(|i| rest.remove(i).1)
        .unwrap_or_else(|| "localhost".to_string());
    headers.push((":authority".to_string(), authority));
    if !rest.iter().any(|(k, _)| k == ":scheme") {
        headers.push((":scheme".to_string(), "http".to_string()));
    }
    headers.extend(rest);
    let request = RequestSpec {
        headers,
        chunks: body_chunks(request.body, request.body_base64, request.chunks, "request")?,
        trailers: trailer_pairs(request.trailers, "request")?,
    };
    let response = match line.response {
        None => None,
        Some(r) => {
            let mut headers = vec![(":status".to_string(), r.status.unwrap_or(200).to_string())];
            headers.extend(header_pairs(r.headers, "response.headers")?);
            Some(ResponseSpec {
                headers,
                chunks: body_chunks(r.body, r.body_base64, r.chunks, "response")?,
                trailers: trailer_pairs(r.trailers, "response")?,
            })
        }
    };
    Ok(Exchange {
        jwt_payload: line
            .jwt_payload
            .map(|claims| (options.jwt_key.clone(), Value::Object(claims))),
        properties: line
            .properties
            .unwrap_or_default()
            .into_iter()
            .map(|(path, value)| (path.split('.').map(str::to_string).collect(), value))
            .collect(),
        request,
        response,
    })
}

/// Headers as a JSON object: one string per name, an array when repeated.
fn header_object(headers: &[(String, String)]) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in headers {
        match out.get_mut(k) {
            None => {
                out.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::Array(values)) => values.push(Value::String(v.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v.clone())]);
            }
        }
    }
    out
}

/// Text of a body, plus base64 when it is not valid UTF-8.
fn body_fields(body: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(body).into_owned(),
            Some(crate::base64::encode(body)),
        ),
    }
}

fn render(id: Value, result: ExchangeResult) -> OutputLine {
    OutputLine {
        id,
        local_reply: result.local_reply.map(|r| {
            let (body, body_base64) = body_fields(&r.body);
            OutLocalReply {
                status: r.status,
                headers: header_object(&HeaderMap::from_pairs(&r.headers).to_pairs()),
                body,
                body_base64,
                details: r.details,
            }
        }),
        upstream_request: result.upstream_request.map(|u| {
            let (body, body_base64) = body_fields(&u.body);
            OutMessage {
                headers: header_object(&u.headers),
                body,
                body_base64,
                trailers: header_object(&u.trailers),
            }
        }),
        response: result.response.map(|r| {
            let (body, body_base64) = body_fields(&r.body);
            OutResponse {
                status: r.status,
                headers: header_object(&r.headers),
                body,
                body_base64,
                chunks: r
                    .chunks
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect(),
                trailers: header_object(&r.trailers),
            }
        }),
        filter_state: result.filter_state,
        metrics: result.metrics,
        logs: result.logs.iter().map(ToString::to_string).collect(),
        stalled: result.stalled,
        http_calls: result
            .http_calls
            .iter()
            .map(|c| OutHttpCall {
                upstream: c.upstream.clone(),
                headers: header_object(&c.headers),
                body: String::from_utf8_lossy(&c.body).into_owned(),
                timeout_ms: c.timeout.as_millis(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(line: Value) -> Result<Exchange, String> {
        let parsed: InputLine = serde_json::from_value(line).map_err(|e| e.to_string())?;
        to_exchange(parsed, &ReplayOptions::default())
    }

    #[test]
    fn builds_pseudo_headers_and_bodies() {
        let exchange = parse(json!({
            "id": 1,
            "jwt_payload": {"sub": "alice"},
            "properties": {"request.id": "r-1", "source.port": 5},
            "request": {"method": "POST", "path": "/mcp", "headers": {"Host": "api", "X-A": ["1", "2"]}, "chunks": ["a", "b"]},
            "response": {"status": 201, "body": "ok"}
        }))
        .unwrap();
        assert_eq!(
            exchange.request.headers,
            vec![
                (":method".into(), "POST".into()),
                (":path".into(), "/mcp".into()),
                (":authority".into(), "api".into()),
                (":scheme".into(), "http".into()),
                ("x-a".into(), "1".into()),
                ("x-a".into(), "2".into()),
            ]
        );
        assert_eq!(exchange.request.chunks, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            exchange.jwt_payload,
            Some(("jwt_payload".into(), json!({"sub": "alice"})))
        );
        assert_eq!(
            exchange.properties[0],
            (vec!["request".into(), "id".into()], json!("r-1"))
        );
        let response = exchange.response.unwrap();
        assert_eq!(response.headers[0], (":status".into(), "201".into()));
        assert_eq!(response.chunks, vec![b"ok".to_vec()]);
    }

    #[test]
    fn rejects_unknown_fields_and_conflicting_bodies() {
        let unknown = parse(json!({"request": {"method": "GET", "path": "/", "bogus": 1}}));
        assert!(unknown.unwrap_err().contains("bogus"));
        let top = parse(json!({"request": {"method": "GET", "path": "/"}, "extra": true}));
        assert!(top.unwrap_err().contains("extra"));
        let both =
            parse(json!({"request": {"method": "GET", "path": "/", "body": "a", "chunks": []}}));
        assert!(both.unwrap_err().contains("at most one"));
        let b64 = parse(json!({"request": {"method": "GET", "path": "/", "body_base64": "/wD+"}}))
            .unwrap();
        assert_eq!(b64.request.chunks, vec![vec![0xff, 0x00, 0xfe]]);
    }

    #[test]
    fn trailers_are_parsed_and_pseudo_headers_refused() {
        let exchange = parse(json!({
            "request": {"method": "POST", "path": "/", "body": "x", "trailers": {"X-T": ["1", "2"]}},
            "response": {"chunks": ["a"], "trailers": {"grpc-status": "0"}}
        }))
        .unwrap();
        assert_eq!(
            exchange.request.trailers,
            vec![("x-t".into(), "1".into()), ("x-t".into(), "2".into())]
        );
        assert_eq!(
            exchange.response.unwrap().trailers,
            vec![("grpc-status".into(), "0".into())]
        );
        let none = parse(json!({"request": {"method": "GET", "path": "/"}})).unwrap();
        assert!(none.request.trailers.is_empty());
        let pseudo =
            parse(json!({"request": {"method": "POST", "path": "/", "trailers": {":path": "/x"}}}));
        assert!(pseudo.unwrap_err().contains("pseudo-headers"));
        let number =
            parse(json!({"request": {"method": "POST", "path": "/", "trailers": {"x": 1}}}));
        assert!(number.unwrap_err().contains("request.trailers.x"));
    }

    #[test]
    fn repeated_headers_render_as_arrays() {
        let headers = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "3".to_string()),
            ("a".to_string(), "4".to_string()),
        ];
        assert_eq!(
            serde_json::to_value(header_object(&headers)).unwrap(),
            json!({"a": ["1", "3", "4"], "b": "2"})
        );
    }
}
