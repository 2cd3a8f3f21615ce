//! `mcp-guard audit verify` and `mcp-guard audit query`: the auditor's view
//! of the tamper-evident decision trail in Envoy access logs.
//!
//! `verify` re-walks every chain and checks it against the checkpoints the
//! control service countersigned (from a file or fetched from the service);
//! exit 0 when every chain verifies, 1 on findings, 2 on bad input.
//! `query` prints the records matching subject, tool, model, decision and
//! time filters; it does not verify.

use std::path::PathBuf;
use std::time::Duration;

use mcp_guard_engine::audit::checkpoint::{parse_list, Countersigned};
use mcp_guard_engine::audit::query::{query, Filter, Match};
use mcp_guard_engine::audit::{
    verify_with_options, Finding, FindingKind, LogFile, Options, Report,
};
use mcp_guard_engine::signing::{self, VerifyingKey};
use serde_json::{json, Value};

use crate::http::{Client, ClientOptions};
use crate::time;

/// Largest answer read from the service (every checkpoint it holds).
const MAX_SERVER_BYTES: u64 = 512 * 1024 * 1024;

/// Where trusted checkpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// None: chains only.
    None,
    /// A file: `GET /v1/checkpoints` output, a JSON array or JSON lines.
    File(PathBuf),
    /// The control service at this URL.
    Server(String),
}

/// `audit verify` arguments.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Examples:
  mcp-guard audit verify access.log --server https://control:8443
  mcp-guard audit verify access.log --checkpoints checkpoints.json --key checkpoint-key.b64
  mcp-guard audit verify --rotated access.log.1 access.log -o json")]
pub struct VerifyArgs {
    /// Log files, oldest first (several files = one stream).
    #[arg(value_name = "LOGFILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Checkpoints from a file (`GET /v1/checkpoints` output); needs --key.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "server",
        requires = "keys"
    )]
    pub checkpoints: Option<PathBuf>,
    /// Fetch the checkpoints (and the key, trust on first use, unless
    /// --key) from the control service.
    #[arg(long, value_name = "URL", value_parser = crate::remote::server_url)]
    pub server: Option<String>,
    /// Trusted checkpoint key (file, base64 or hex); repeat during a key
    /// rotation.
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// The oldest logs were rotated away: chains may start after seq 1.
    #[arg(long)]
    pub rotated: bool,
    #[command(flatten)]
    pub output: crate::output::OutputArg,
}

impl VerifyArgs {
    /// Where trusted checkpoints come from.
    pub fn source(&self) -> Source {
        match (&self.checkpoints, &self.server) {
            (Some(file), _) => Source::File(file.clone()),
            (None, Some(server)) => Source::Server(server.clone()),
            (None, None) => Source::None,
        }
    }
}

/// `audit query` arguments.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Example:
  mcp-guard audit query access.log --sub alice --decision deny --since 2026-01-05T00:00:00Z")]
pub struct QueryArgs {
    /// Log files.
    #[arg(value_name = "LOGFILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Only this subject.
    #[arg(long, value_name = "S")]
    pub sub: Option<String>,
    /// Only this tool.
    #[arg(long, value_name = "T")]
    pub tool: Option<String>,
    /// Only this model.
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// Only this decision.
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// From this time on (RFC 3339 or ms since the epoch).
    #[arg(long, value_name = "TIME", value_parser = millis)]
    pub since: Option<u64>,
    /// Before this time (exclusive; RFC 3339 or ms since the epoch).
    #[arg(long, value_name = "TIME", value_parser = millis)]
    pub until: Option<u64>,
    /// Print JSON lines.
    #[command(flatten)]
    pub output: crate::output::OutputArg,
}

impl QueryArgs {
    /// The engine's filter.
    pub fn filter(&self) -> Filter {
        Filter {
            sub: self.sub.clone(),
            tool: self.tool.clone(),
            model: self.model.clone(),
            decision: self.decision.clone(),
            since: self.since,
            until: self.until,
        }
    }
}

/// An `audit` command.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Audit {
    /// Check the tamper-evident decision trail (chains and checkpoints).
    Verify(VerifyArgs),
    /// Print the decision records matching every filter (does not verify).
    Query(QueryArgs),
}

/// Bad input for `audit`: exit 2.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// The checkpoints are not readable.
    #[error("checkpoints: {0}")]
    Checkpoints(String),
    /// A key is not an Ed25519 public key.
    #[error("--key {0}: {1}")]
    Key(String, String),
    /// The service cannot be asked.
    #[error("control service: {0}")]
    Server(String),
}

/// A time: RFC 3339 or milliseconds since the epoch.
fn millis(text: &str) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| "too large".to_owned());
    }
    time::parse_rfc3339_millis(text)
        .map_err(|_| "not RFC 3339 (2026-01-05T10:00:00Z) or ms since the epoch".to_owned())
}

fn read_logs(files: &[PathBuf]) -> Result<Vec<LogFile>, AuditError> {
    files
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(|bytes| LogFile {
                    name: p.display().to_string(),
                    bytes,
                })
                .map_err(|e| AuditError::Read(p.display().to_string(), e))
        })
        .collect()
}

/// A key from a file (if `text` names one) or the text itself.
fn key(text: &str) -> Result<VerifyingKey, AuditError> {
    let content = match std::fs::read_to_string(text) {
        Ok(c) => c,
        Err(_) => text.to_owned(),
    };
    // A saved `GET /v1/checkpoints/key` answer works too.
    let content = serde_json::from_str::<Value>(&content)
        .ok()
        .and_then(|v| v.get("ed25519").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(content);
    signing::verifying_key_from_text(content.trim())
        .map_err(|e| AuditError::Key(text.to_owned(), e.to_string()))
}

/// What the service holds: checkpoints, conflicts, and its key.
struct Fetched {
    checkpoints: Vec<Countersigned>,
    conflicts: Vec<Value>,
    /// Conflicts the service refused but could not keep (its cap).
    not_kept: u64,
}

fn get_json(client: &Client, url: &str) -> Result<Value, AuditError> {
    let answer = client
        .get(url, &[])
        .map_err(|e| AuditError::Server(e.to_string()))?;
    if answer.status != 200 {
        return Err(AuditError::Server(format!("{url}: HTTP {}", answer.status)));
    }
    serde_json::from_slice(&answer.body)
        .map_err(|e| AuditError::Server(format!("{url}: not JSON ({e})")))
}

fn fetch(client: &Client, server: &str) -> Result<Fetched, AuditError> {
    let base = server.trim_end_matches('/');
    let all = get_json(client, &format!("{base}/v1/checkpoints"))?;
    let checkpoints = serde_json::from_value(all.get("checkpoints").cloned().unwrap_or_default())
        .map_err(|e| AuditError::Checkpoints(e.to_string()))?;
    let conflicts = all
        .get("conflicts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(Fetched {
        checkpoints,
        conflicts,
        not_kept: all
            .get("conflicts_not_kept")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// Runs `audit verify`: the text (or JSON) to print and the exit code.
pub fn run_verify(
    args: &VerifyArgs,
    transport: &ClientOptions,
) -> Result<(String, u8), AuditError> {
    let logs = read_logs(&args.files)?;
    let mut keys: Vec<VerifyingKey> = args.keys.iter().map(|k| key(k)).collect::<Result<_, _>>()?;
    let mut notes = Vec::new();
    let mut not_kept = 0;
    let (checkpoints, conflicts) = match &args.source() {
        Source::None => {
            notes.push("no checkpoints given: only the chains are checked; a rewritten or cut chain cannot be told from a genuine one".to_string());
            (Vec::new(), Vec::new())
        }
        Source::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| AuditError::Read(path.display().to_string(), e))?;
            let list = parse_list(&text).map_err(AuditError::Checkpoints)?;
            notes.push(format!(
                "checkpoints from {} (a file can omit checkpoints; fetch them from the service with --server for completeness)",
                path.display()
            ));
            (list, Vec::new())
        }
        Source::Server(server) => {
            let client = Client::new(transport, Duration::from_secs(30), MAX_SERVER_BYTES)
                .map_err(|e| AuditError::Server(e.to_string()))?;
            if keys.is_empty() {
                let answer = get_json(
                    &client,
                    &format!("{}/v1/checkpoints/key", server.trim_end_matches('/')),
                )?;
                let text = answer
                    .get("ed25519")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let fetched = signing::verifying_key_from_text(text)
                    .map_err(|e| AuditError::Server(format!("checkpoint key: {e}")))?;
                notes.push(format!(
                    "checkpoint key {} fetched from {server}: trust on first use; pin it with --key",
                    signing::key_id(&fetched)
                ));
                keys.push(fetched);
            }
            let fetched = fetch(&client, server)?;
            not_kept = fetched.not_kept;
            (fetched.checkpoints, fetched.conflicts)
        }
    };
    let options = Options {
        rotated: args.rotated,
    };
    let mut report = verify_with_options(&logs, &checkpoints, &keys, options);
    for c in &conflicts {
        let chain = c.get("chain").and_then(Value::as_str).unwrap_or_default();
        let seq = c.get("seq").and_then(Value::as_u64).unwrap_or(0);
        report.add_conflict(
            chain,
            seq,
            format!("the service refused a post for this chain: {c}"),
        );
    }
    if not_kept > 0 {
        // Which chains they were about is lost: none can be ruled out.
        report.findings.push(Finding {
            kind: FindingKind::CheckpointConflict,
            file: None,
            line: None,
            chain: None,
            seq: None,
            detail: format!(
                "the service refused {not_kept} more checkpoint post(s) than it could keep; any chain may be contested"
            ),
        });
    }
    let code = u8::from(!report.ok());
    let out = if args.output.json() {
        let mut value = json!(report);
        if let Some(o) = value.as_object_mut() {
            o.insert("ok".into(), json!(report.ok()));
            o.insert("notes".into(), json!(notes));
            o.insert(
                "keys".into(),
                json!(keys.iter().map(signing::key_id).collect::<Vec<_>>()),
            );
        }
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    } else {
        render(&report, &notes)
    };
    Ok((out, code))
}

/// `2026-01-01T00:00:00.250Z` for milliseconds.
fn rfc3339_ms(ms: u64) -> String {
    let s = time::format_rfc3339(ms / 1000);
    format!("{}.{:03}Z", s.trim_end_matches('Z'), ms % 1000)
}

fn render(report: &Report, notes: &[String]) -> String {
    let mut out = String::new();
    for f in &report.findings {
        out.push_str(&format!("{f}\n"));
    }
    for c in &report.chains {
        let checkpoint = match (c.checkpoint_seq, c.checkpoint_received_at) {
            (Some(seq), Some(at)) => format!("checkpoint at seq {seq} ({})", rfc3339_ms(at)),
            _ => "no checkpoint".into(),
        };
        let head = if c.head_missing {
            " (records before it not given: its own hash unprovable)"
        } else {
            ""
        };
        out.push_str(&format!(
            "chain {}: seq {}{head}..={}, {} records, {checkpoint}, {} after it unprovable, {} findings\n",
            c.chain, c.first_seq, c.last_seq, c.records, c.unprovable_tail, c.findings
        ));
    }
    for f in &report.files {
        out.push_str(&format!(
            "file {}: {} lines, {} records, {} without a record, {} unrecognised\n",
            f.name, f.lines, f.records, f.skipped, f.unrecognised
        ));
    }
    if !report.checkpointed_chains_absent.is_empty() {
        out.push_str(&format!(
            "note: {} checkpointed chain(s) have no record in these logs: {}\n",
            report.checkpointed_chains_absent.len(),
            report.checkpointed_chains_absent.join(", ")
        ));
    }
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&format!(
        "{}: {} chain(s), {} trusted checkpoint(s), {} finding(s)\n",
        if report.ok() { "OK" } else { "FAILED" },
        report.chains.len(),
        report.trusted_checkpoints,
        report.findings.len()
    ));
    out
}

/// A value from a record as one shell-safe token: plain text as is;
/// anything else (empty, whitespace, `=`, quotes, controls, terminal
/// escapes, bidi and other invisible characters) JSON-quoted with those
/// characters as `\\u` escapes. Record values are client-controlled (tool
/// and model names), so one must not forge a field, a line or a terminal
/// sequence in the auditor's output.
fn token(value: &str) -> String {
    let unsafe_char =
        |c: char| crate::output::hidden(c) || c.is_whitespace() || matches!(c, '=' | '"' | '\\');
    if !value.is_empty() && !value.chars().any(unsafe_char) {
        return value.to_owned();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if unsafe_char(c) && c != '=' && c != ' ' {
            crate::output::push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// One `audit query` match as a text line.
fn render_match(m: &Match) -> String {
    let s = |k: &str| {
        m.record.get(k).map_or_else(
            || "-".into(),
            |v| token(&v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
        )
    };
    let ts = m
        .record
        .get("ts")
        .and_then(Value::as_u64)
        .map_or_else(|| "-".into(), rfc3339_ms);
    format!(
        "{ts} {} sub={} tool={} model={} method={} reason={} rule={} status={} chain={} seq={} ({}:{})\n",
        s("decision"),
        s("sub"),
        s("mcp_target"),
        s("model"),
        s("mcp_method"),
        s("reason"),
        s("rule"),
        s("status"),
        s("chain"),
        s("seq"),
        token(&m.file),
        m.line
    )
}

/// Runs `audit query`: what to print.
pub fn run_query(args: &QueryArgs) -> Result<String, AuditError> {
    let logs = read_logs(&args.files)?;
    let mut out = String::new();
    for m in query(&logs, &args.filter()) {
        if args.output.json() {
            out.push_str(&m.record.to_string());
            out.push('\n');
            continue;
        }
        out.push_str(&render_match(&m));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_text_cannot_forge_fields_lines_or_terminal_sequences() {
        // A caller picks its tool and model names: the record escapes them
        // as JSON, and the text output must not decode them back into
        // newlines, `key=value` pairs or escape sequences.
        let record = json!({
            "decision": "deny",
            "sub": "alice",
            "mcp_target": "t\n2026-01-01T00:00:00.000Z allow sub=admin tool=x",
            "model": "m sub=admin",
            "mcp_method": "\u{1b}]0;pwned\u{7}\u{1b}[2J",
            "reason": "tool \u{202e}nimda",
            "rule": "",
            "chain": "n1",
            "seq": 3
        });
        let line = render_match(&Match {
            file: "a.log".into(),
            line: 1,
            record,
        });
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with('\n'));
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{7}'),
            "{line}"
        );
        assert!(!line.contains('\u{202e}'), "{line}");
        assert!(line.starts_with("- deny sub=alice tool=\""), "{line}");
        assert!(line.contains(" model=\"m sub=admin\" "), "{line}");
        assert!(line.contains("tool=\"t\\u000a2026"), "{line}");
        assert!(line.contains("rule=\"\" "), "{line}");
        assert!(line.contains("reason=\"tool \\u202enimda\""), "{line}");
        assert!(line.contains(" chain=n1 seq=3 (a.log:1)"), "{line}");
    }

    #[test]
    fn parses_verify_and_query() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(subcommand)]
            audit: Audit,
        }
        let args =
            |list: &[&str]| T::try_parse_from(std::iter::once("t").chain(list.iter().copied()));
        let Ok(T {
            audit: Audit::Verify(v),
        }) = args(&["verify", "a.log", "b.log", "--server=http://x", "--json"])
        else {
            panic!("verify")
        };
        assert_eq!(v.files, [PathBuf::from("a.log"), PathBuf::from("b.log")]);
        assert_eq!(v.source(), Source::Server("http://x".into()));
        assert!(v.output.json() && v.keys.is_empty());
        assert!(args(&["verify", "a", "--checkpoints", "c"]).is_err());
        assert!(args(&[
            "verify",
            "a",
            "--checkpoints",
            "c",
            "--key",
            "k",
            "--server",
            "s"
        ])
        .is_err());
        let Ok(T {
            audit: Audit::Query(q),
        }) = args(&[
            "query",
            "a.log",
            "--since",
            "2026-01-01T00:00:01.5Z",
            "--until=1767225700000",
            "--decision",
            "deny",
        ])
        else {
            panic!("query")
        };
        assert_eq!(q.filter().since, Some(1_767_225_601_500));
        assert_eq!(q.filter().until, Some(1_767_225_700_000));
        assert!(args(&["query", "a", "--since", "yesterday"]).is_err());
        assert!(args(&["query", "a", "--decision", "maybe"]).is_err());
        assert!(args(&["frob"]).is_err());
    }
}
