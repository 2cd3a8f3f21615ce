//! `mcp-guard pins --url URL [--token T]`: asks an MCP server (Streamable
//! HTTP) for its tools and prints a `tool_pins` section pinning each one,
//! with the digest the filter computes ([`mcp_guard_engine::pins`]).
//!
//! It sends `initialize`, then `notifications/initialized`, then
//! `tools/list` until no `nextCursor` is left, carrying the server's
//! `Mcp-Session-Id` and the negotiated protocol version. Answers may be
//! `application/json` or `text/event-stream` (the event carrying the
//! answer's id is used). Answers are read as strictly as the filter reads
//! them (duplicate keys refused), so a pin is never made from text the
//! filter would read differently.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use mcp_guard_engine::mcp::for_each_tool;
use mcp_guard_engine::pins::{entry_digest, tool_digest, ToolDigest};
use mcp_guard_engine::strict_json::{self, Options};

/// Time allowed for each request.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read.
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;
/// Most `tools/list` pages followed (a server looping its cursor).
const MAX_PAGES: usize = 256;
/// The protocol version asked for in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// Arguments of `pins`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Example:
  mcp-guard pins --url https://mcp.internal/mcp --token \"$MCP_TOKEN\"")]
pub struct PinsArgs {
    /// The MCP endpoint (`https://host:port/mcp`).
    #[arg(long, value_name = "MCP-URL")]
    pub url: String,
    /// Bearer token sent with every request (never printed).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Why no pins could be made.
#[derive(Debug, Error)]
pub enum PinsError {
    /// The request failed (connection, timeout, read).
    #[error("{step}: {message}")]
    Transport {
        /// Which request.
        step: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an HTTP error.
    #[error("{step}: HTTP {status}")]
    Status {
        /// Which request.
        step: &'static str,
        /// The status.
        status: u16,
    },
    /// The answer is not what the protocol says.
    #[error("{step}: {message}")]
    Protocol {
        /// Which request.
        step: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// One MCP client session over Streamable HTTP.
struct Session<'a> {
    client: crate::http::Client,
    args: &'a PinsArgs,
    session_id: Option<String>,
    protocol: Option<String>,
    next_id: u64,
}

impl Session<'_> {
    /// POSTs one message; returns the answer to `id` (`None` for a
    /// notification).
    fn post(
        &mut self,
        step: &'static str,
        message: &Value,
        id: Option<u64>,
    ) -> Result<Option<Value>, PinsError> {
        let transport = |e: crate::http::HttpError| PinsError::Transport {
            step,
            message: e.to_string(),
        };
        let authorization = self.args.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(authorization) = &authorization {
            headers.push(("authorization", authorization));
        }
        if let Some(session) = &self.session_id {
            headers.push(("mcp-session-id", session));
        }
        if let Some(version) = &self.protocol {
            headers.push(("mcp-protocol-version", version));
        }
        let answer = self
            .client
            .send(
                "POST",
                &self.args.url,
                &headers,
                message.to_string().as_bytes(),
            )
            .map_err(transport)?;
        let status = answer.status;
        if !(200..300).contains(&status) {
            return Err(PinsError::Status { step, status });
        }
        let session_id = answer
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(session) = session_id {
            self.session_id = Some(session);
        }
        let content_type = answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = answer.body;
        let Some(id) = id else {
            return Ok(None);
        };
        let protocol = |message: String| PinsError::Protocol { step, message };
        let answer = if content_type.starts_with("text/event-stream") {
            sse_data(&body)
                .into_iter()
                .filter_map(|data| strict_json::parse(&data, Options::RESPONSE).ok())
                .find(|v| v.get("id") == Some(&json!(id)))
                .ok_or_else(|| protocol("no event answers the request".into()))?
        } else {
            strict_json::parse(&body, Options::RESPONSE)
                .map_err(|e| protocol(format!("answer is not strict JSON: {e}")))?
        };
        if let Some(error) = answer.get("error") {
            // The server is not trusted with the terminal (serde escapes
            // control characters, not bidi ones).
            return Err(protocol(format!(
                "server error {}",
                crate::output::cell(&error.to_string())
            )));
        }
        if answer.get("result").is_none_or(|r| !r.is_object()) {
            return Err(protocol("answer has no result object".into()));
        }
        Ok(Some(answer))
    }

    fn call(
        &mut self,
        step: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, PinsError> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post(step, &message, Some(id))?
            .ok_or(PinsError::Protocol {
                step,
                message: "no answer".into(),
            })
    }
}

/// The `data` of every event of an event stream (lines joined with `\n`).
fn sse_data(body: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() {
            events.extend(data.take().map(String::into_bytes));
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    events.extend(data.map(String::into_bytes));
    events
}

/// Lists the server's tools and returns the `tool_pins` section to print.
pub fn run(args: &PinsArgs, options: &crate::http::ClientOptions) -> Result<String, PinsError> {
    let client = crate::http::Client::new(options, TIMEOUT, MAX_ANSWER_BYTES).map_err(|e| {
        PinsError::Transport {
            step: "initialize",
            message: e.to_string(),
        }
    })?;
    let mut session = Session {
        client,
        args,
        session_id: None,
        protocol: None,
        next_id: 0,
    };
    let init = session.call(
        "initialize",
        "initialize",
        json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "mcp-guard", "version": env!("CARGO_PKG_VERSION")}}),
    )?;
    session.protocol = init
        .pointer("/result/protocolVersion")
        .and_then(Value::as_str)
        .map(str::to_owned);
    session.post(
        "notifications/initialized",
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        None,
    )?;
    let mut pins: BTreeMap<String, ToolDigest> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let answer = session.call("tools/list", "tools/list", params)?;
        collect(&answer, &mut pins)?;
        cursor = answer
            .pointer("/result/nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            return Ok(render(&pins));
        }
    }
    Err(PinsError::Protocol {
        step: "tools/list",
        message: format!("more than {MAX_PAGES} pages"),
    })
}

/// Adds each tool of one `tools/list` answer; refuses a name seen twice
/// with another definition, and a definition the filter could not match.
fn collect(answer: &Value, pins: &mut BTreeMap<String, ToolDigest>) -> Result<(), PinsError> {
    let mut problem = None;
    for_each_tool(answer, |raw_name, entry| {
        // Named in errors: the server chose it.
        let name = crate::output::cell(raw_name);
        let Some(object) = entry.as_object() else {
            return;
        };
        let digest = tool_digest(object);
        if entry_digest(entry) != digest {
            problem.get_or_insert(format!(
                "tool `{name}` has a case variant of name/description/inputSchema; \
                 the filter would never match its pin"
            ));
        }
        match pins.insert(raw_name.to_owned(), digest) {
            Some(other) if other != digest => {
                problem.get_or_insert(format!(
                    "tool `{name}` is listed twice with different definitions"
                ));
            }
            _ => {}
        }
    });
    match problem {
        Some(message) => Err(PinsError::Protocol {
            step: "tools/list",
            message,
        }),
        None => Ok(()),
    }
}

/// The `tool_pins` section, tools sorted by name, as a JSON object ready
/// to paste into (or merge with) a bundle.
fn render(pins: &BTreeMap<String, ToolDigest>) -> String {
    let tools: serde_json::Map<String, Value> = pins
        .iter()
        .map(|(name, digest)| (name.clone(), json!(digest.to_string())))
        .collect();
    let section =
        json!({"tool_pins": {"on_change": "filter", "unobserved": "allow", "tools": tools}});
    serde_json::to_string_pretty(&section).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_data_is_joined_per_event() {
        let body = b"\xef\xbb\xbfevent: message\r\ndata: {\"a\":\r\ndata:1}\r\n\r\n: comment\ndata: x\n\ndata: tail";
        let events = sse_data(body);
        assert_eq!(
            events,
            vec![b"{\"a\":\n1}".to_vec(), b"x".to_vec(), b"tail".to_vec()]
        );
    }

    #[test]
    fn a_tool_listed_twice_differently_gets_no_pin() {
        let mut pins = BTreeMap::new();
        let answer = json!({"result": {"tools": [
            {"name": "a", "description": "x"}, {"name": "a", "description": "y"}]}});
        assert!(collect(&answer, &mut pins).is_err());
        let mut pins = BTreeMap::new();
        let answer = json!({"result": {"tools": [{"name": "a", "Description": "x"}]}});
        assert!(collect(&answer, &mut pins).is_err());
    }

    #[test]
    fn a_hostile_tool_name_is_escaped_in_the_error() {
        let mut pins = BTreeMap::new();
        let answer = json!({"result": {"tools": [
            {"name": "a\u{1b}[2J\u{202e}", "description": "x"},
            {"name": "a\u{1b}[2J\u{202e}", "description": "y"}]}});
        let err = collect(&answer, &mut pins)
            .expect_err("refused")
            .to_string();
        assert!(!err.chars().any(crate::output::hidden), "{err:?}");
    }
}
