//! Talking to the control service: `push`, `get`, `history`, `rollback`,
//! `status`, through the one HTTP client ([`crate::http`]: https by
//! default, plain http only with `--allow-plain-http`). The push token
//! comes from a file or the environment so it never appears in `ps` or
//! shell history, and is never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use mcp_guard_engine::author_signing::{SignatureFile, AUTHOR_SIGNATURE_HEADER};
use serde_json::Value;
use thiserror::Error;

use crate::http::{Client, ClientOptions, HttpError};
use crate::output::{cell, columns, OutputArg};

/// How long one request may take; long enough for a push that resolves
/// issuer keys by discovery.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response read: a bundle is at most 8 MiB.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// A bundle name as the service accepts it (letters, digits, `.`, `_`,
/// `-`): checked before it becomes part of a URL path, so a name from a
/// file or the command line cannot add path segments or a query.
pub fn bundle_name_arg(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a bundle name cannot be empty".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(bad) => Err(format!(
            "{} is not allowed in a bundle name (letters, digits, '.', '_', '-')",
            bad.escape_default()
        )),
        None if name == "." || name == ".." => Err("not a bundle name".into()),
        None => Ok(name.to_owned()),
    }
}

/// A `--server` base URL as the CLI uses it: `http(s)://host[:port][/path]`
/// with no credentials, query or fragment, checked before any request.
///
/// Credentials (`https://user:pass@host`) would be printed by every error
/// that names the server (and the CI log keeps them); the push token goes
/// in its own header. A query or fragment would swallow the API path the
/// CLI appends (`https://h/?x=` + `/v1/bundles/a` asks for `/`), and
/// whitespace or control characters have no place in a URL.
pub fn server_url(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let Some(rest) = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme).map(|_| &text[scheme.len()..]))
    else {
        return Err("expected an http:// or https:// URL".into());
    };
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a URL cannot contain whitespace or control characters".into());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not used and would be printed in errors: pass the token \
             with --token-file or MCP_GUARD_TOKEN"
                .into(),
        );
    }
    if authority.is_empty() {
        return Err("the URL names no host".into());
    }
    if rest.contains(['?', '#']) {
        return Err("a base URL cannot have a query or fragment (`?`, `#`)".into());
    }
    Ok(text.to_owned())
}

/// The control service's base URL.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServerArg {
    /// Base URL of the control service (https://..., or http:// with
    /// --allow-plain-http).
    #[arg(long, value_name = "URL", env = "MCP_GUARD_SERVER", value_parser = server_url)]
    pub server: String,
}

/// The push token: from a file, or the environment (`--token` on the
/// command line is visible in `ps`; prefer the file or MCP_GUARD_TOKEN).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[group(required = true, multiple = true)]
pub struct TokenArg {
    /// File holding the bearer token (surrounding whitespace ignored).
    #[arg(long, value_name = "FILE", env = "MCP_GUARD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The bearer token itself (never printed).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MCP_GUARD_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl TokenArg {
    /// Keeps one token source: a flag on the command line wins over the
    /// environment (an exported MCP_GUARD_TOKEN must not block
    /// `--token-file`); two given the same way exclude each other.
    pub fn settle(&mut self, matches: &clap::ArgMatches) -> Result<(), String> {
        use clap::parser::ValueSource::CommandLine;
        if self.token.is_none() || self.token_file.is_none() {
            return Ok(());
        }
        let token = matches.value_source("token") == Some(CommandLine);
        let file = matches.value_source("token_file") == Some(CommandLine);
        match (token, file) {
            (true, false) => self.token_file = None,
            (false, true) => self.token = None,
            (true, true) => return Err("--token and --token-file exclude each other".into()),
            (false, false) => {
                return Err(
                    "MCP_GUARD_TOKEN and MCP_GUARD_TOKEN_FILE are both set: unset one, or \
                     pass --token-file"
                        .into(),
                )
            }
        }
        Ok(())
    }

    /// The token, read from its file when given that way.
    fn read(&self) -> Result<String, RemoteError> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.trim().to_owned(),
            (None, Some(path)) => read_token(path)?,
            (None, None) => String::new(),
        };
        if token.is_empty() {
            return Err(RemoteError::Input(
                "the push token is empty (--token-file FILE or MCP_GUARD_TOKEN)".into(),
            ));
        }
        Ok(token)
    }
}

/// `push`: store a bundle file as the next version of its bundle.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(after_help = "\
Examples:
  mcp-guard push --server https://control:8443 --token-file push.token demo.json
  mcp-guard push --create --signature demo.json.sig demo.json
  MCP_GUARD_SERVER=https://control:8443 MCP_GUARD_TOKEN_FILE=push.token \\
    mcp-guard push --wait-rollout --rollout-timeout 60 demo.json")]
pub struct PushArgs {
    #[command(flatten)]
    pub server: ServerArg,
    #[command(flatten)]
    pub token: TokenArg,
    /// The bundle JSON file (its `name` picks the bundle).
    #[arg(value_name = "BUNDLE.json")]
    pub file: PathBuf,
    /// Only store if the current version still has this ETag.
    #[arg(long, value_name = "ETAG", conflicts_with = "create")]
    pub if_match: Option<String>,
    /// The bundle may be new. Without it a push must update an existing
    /// bundle (sent as `If-Match: *`), so a typo in a name cannot silently
    /// start a second bundle no proxy reads.
    #[arg(long)]
    pub create: bool,
    /// Then wait until every live proxy enforces the pushed version.
    #[arg(long)]
    pub wait_rollout: bool,
    /// How long --wait-rollout waits (default 120).
    #[arg(long, value_name = "SECONDS", requires = "wait_rollout")]
    pub rollout_timeout: Option<u64>,
    /// Author signature file (`mcp-guard sign` output) to send; default
    /// BUNDLE.json.sig when it exists.
    #[arg(long, value_name = "SIG")]
    pub signature: Option<PathBuf>,
}

/// `get`: print the latest bundle, or one version.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Bundle name.
    #[arg(value_parser = bundle_name_arg)]
    pub name: String,
    /// A stored version instead of the latest.
    #[arg(long, value_name = "V")]
    pub version: Option<u64>,
}

/// `history`: a bundle's stored versions.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Bundle name.
    #[arg(value_parser = bundle_name_arg)]
    pub name: String,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `status`: who enforces what.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Only this bundle: what its filters report (JSON).
    #[arg(value_parser = bundle_name_arg)]
    pub name: Option<String>,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `rollback`: store an older version's content as the new latest.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub server: ServerArg,
    #[command(flatten)]
    pub token: TokenArg,
    /// Bundle name.
    #[arg(value_parser = bundle_name_arg)]
    pub name: String,
    /// The version to go back to.
    #[arg(long, value_name = "V")]
    pub to: u64,
}

/// One remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// `push`.
    Push(PushArgs),
    /// `get`.
    Get(GetArgs),
    /// `history`.
    History(HistoryArgs),
    /// `status`.
    Status(StatusArgs),
    /// `rollback`.
    Rollback(RollbackArgs),
}

/// Why a remote command failed.
#[derive(Debug, Error)]
pub enum RemoteError {
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The service could not be reached or answered garbage.
    #[error("{0}")]
    Transport(String),
    /// No request was made: the URL, the CA file, the signature file.
    #[error("{0}")]
    Input(String),
    /// The service refused: status and its explanation, already rendered.
    #[error("{0}")]
    Refused(String),
    /// The push was stored but did not roll out (`--wait-rollout`).
    #[error("{0}")]
    Rollout(String),
}

/// The `name` of the bundle in `file`, or why the file is not a bundle:
/// not JSON (with line and column), not an object, or no string `name`.
fn bundle_name(file: &std::path::Path, bundle: &[u8]) -> Result<String, RemoteError> {
    let refuse = |why: String| {
        RemoteError::Refused(format!(
            "{}: {why}; try `mcp-guard validate`",
            file.display()
        ))
    };
    // serde_json's message ends with the line and column.
    let value: Value =
        serde_json::from_slice(bundle).map_err(|e| refuse(format!("not JSON ({e})")))?;
    match value.get("name") {
        Some(Value::String(name)) if !name.is_empty() => {
            bundle_name_arg(name).map_err(|why| refuse(format!("`name`: {why}")))
        }
        _ if !value.is_object() => Err(refuse("not a bundle (a JSON object is expected)".into())),
        Some(_) => Err(refuse(
            "not a bundle (`name` must be a non-empty string)".into(),
        )),
        None => Err(refuse("not a bundle (no \"name\" field)".into())),
    }
}

/// The client for a remote command.
fn client(options: &ClientOptions) -> Result<Client, RemoteError> {
    Client::new(options, TIMEOUT, MAX_RESPONSE_BYTES).map_err(RemoteError::from)
}

impl From<HttpError> for RemoteError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::PlainHttp(_) | HttpError::BadUrl(_) | HttpError::CaFile { .. } => {
                Self::Input(e.to_string())
            }
            _ => Self::Transport(e.to_string()),
        }
    }
}

fn url(server: &str, path: &str) -> String {
    format!("{}{path}", server.trim_end_matches('/'))
}

/// Fetches one stored version of a bundle (for `diff`).
pub fn fetch_version(
    options: &ClientOptions,
    server: &str,
    name: &str,
    version: u64,
) -> Result<Vec<u8>, RemoteError> {
    let client = client(options)?;
    let answer = client.get(
        &url(server, &format!("/v1/bundles/{name}/versions/{version}")),
        &[],
    )?;
    if answer.status == 200 {
        Ok(answer.body)
    } else {
        Err(RemoteError::Refused(format!(
            "{name} v{version} on {server}: {}",
            explain(answer.status, &answer.body)
        )))
    }
}

/// The author signature to send with a push of `bytes` (bundle `name`
/// from `file`): the `--signature` file, else `<file>.sig` when it
/// exists, else none. A signature made for other bytes or another name is
/// refused here, before anything is sent.
pub fn signature_for(
    file: &Path,
    explicit: Option<&Path>,
    name: &str,
    bytes: &[u8],
) -> Result<Option<SignatureFile>, RemoteError> {
    let beside = PathBuf::from(format!("{}.sig", file.display()));
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if beside.exists() => beside,
        None => return Ok(None),
    };
    let text = std::fs::read(&path).map_err(|source| RemoteError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let sig: SignatureFile = serde_json::from_slice(&text).map_err(|e| {
        RemoteError::Input(format!(
            "{}: not a signature file from `mcp-guard sign` ({e})",
            path.display()
        ))
    })?;
    if !sig.covers(name, bytes) {
        return Err(RemoteError::Input(format!(
            "{}: stale signature: it signs bundle `{}` with sha256 {}, but {} is `{name}` with \
             sha256 {}; run `mcp-guard sign` again",
            path.display(),
            cell(&sig.name),
            cell(&sig.sha256),
            file.display(),
            mcp_guard_engine::author_signing::sha256_hex(bytes)
        )));
    }
    Ok(Some(sig))
}

/// History as a table: one line per version, newest last.
fn history_table(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let rows: Vec<Vec<String>> = json
        .get("versions")?
        .as_array()?
        .iter()
        .map(|v| {
            vec![
                text(&v["version"]),
                text(&v["stored_at"]),
                text(&v["source"]),
                text(&v["by"]),
                match v.get("signed_by") {
                    Some(Value::String(id)) => cell(id),
                    _ => "unsigned".into(),
                },
                text(&v["etag"]),
                text(&v["digest"]),
            ]
        })
        .collect();
    Some(columns(
        &[
            "VERSION",
            "STORED-AT",
            "SOURCE",
            "BY",
            "SIGNED-BY",
            "ETAG",
            "DIGEST",
        ],
        &rows,
    ))
}

/// A JSON member as a table cell: `-` for null or absent, strings
/// unquoted, control characters escaped (the service is not trusted with
/// the terminal).
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => cell(s),
        other => cell(&other.to_string()),
    }
}

/// `GET /v1/bundles/{name}/status` as tables: the latest version, each
/// instance's last report, and per refused version why and how many
/// refuse it. `None` when the answer is not that shape (printed as is).
fn bundle_status_table(body: &[u8]) -> Option<String> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let missing = Value::Null;
    let field = |v: &Value, name: &str| text(v.get(name).unwrap_or(&missing));
    let instances: Vec<Vec<String>> = json
        .get("instances")?
        .as_array()?
        .iter()
        .map(|i| {
            [
                "instance",
                "state",
                "version",
                "active_version",
                "reason",
                "received_at",
            ]
            .iter()
            .map(|name| field(i, name))
            .collect()
        })
        .collect();
    let mut out = format!(
        "bundle {} latest version {}\n",
        field(&json, "name"),
        field(&json, "latest")
    );
    out.push_str(&columns(
        &[
            "INSTANCE",
            "STATE",
            "VERSION",
            "ACTIVE",
            "REASON",
            "RECEIVED-AT",
        ],
        &instances,
    ));
    let rejected: Vec<Vec<String>> = json
        .get("rejected")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|r| {
                    ["version", "reason", "instances"]
                        .iter()
                        .map(|name| field(r, name))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    if !rejected.is_empty() {
        out.push('\n');
        out.push_str(&columns(
            &["REFUSED-VERSION", "REASON", "INSTANCES"],
            &rejected,
        ));
    }
    Some(out)
}

/// Runs the command with the transport `options`; on success returns
/// what to print on stdout.
pub fn run(command: &Remote, options: &ClientOptions) -> Result<Vec<u8>, RemoteError> {
    let client = client(options)?;
    let (status, body) = match command {
        Remote::Push(args) => {
            let server = &args.server.server;
            // Checked before the token or the bundle is read.
            client.check(server)?;
            let token = args.token.read()?;
            let bundle = std::fs::read(&args.file).map_err(|source| RemoteError::Read {
                path: args.file.display().to_string(),
                source,
            })?;
            // The URL name comes from the bundle, so it always matches.
            let name = bundle_name(&args.file, &bundle)?;
            let signature = signature_for(&args.file, args.signature.as_deref(), &name, &bundle)?;
            let authorization = format!("Bearer {token}");
            let mut headers = vec![
                ("authorization", authorization.as_str()),
                ("content-type", "application/json"),
            ];
            let condition = match (&args.if_match, args.create) {
                (Some(tag), _) => Some(quote(tag)),
                (None, false) => Some("*".to_owned()),
                (None, true) => None,
            };
            if let Some(condition) = &condition {
                headers.push(("if-match", condition));
            }
            if let Some(sig) = &signature {
                headers.push((AUTHOR_SIGNATURE_HEADER, sig.signature.as_str()));
            }
            let answer = client.send(
                "PUT",
                &url(server, &format!("/v1/bundles/{name}")),
                &headers,
                &bundle,
            )?;
            let (status, body) = (answer.status, answer.body);
            if status == 412 && condition.as_deref() == Some("*") {
                return Err(RemoteError::Refused(format!(
                    "{server} has no bundle named `{name}`: check the name, or pass --create to \
                     create it"
                )));
            }
            match args.wait_rollout {
                true if (200..300).contains(&status) => {
                    let timeout = args
                        .rollout_timeout
                        .map_or(crate::rollout::DEFAULT_TIMEOUT, Duration::from_secs);
                    return rollout(&client, server, &name, &body, timeout);
                }
                _ => (status, body),
            }
        }
        Remote::Get(args) => {
            let name = &args.name;
            let path = match args.version {
                Some(v) => format!("/v1/bundles/{name}/versions/{v}"),
                None => format!("/v1/bundles/{name}"),
            };
            let answer = client.get(&url(&args.server.server, &path), &[])?;
            (answer.status, answer.body)
        }
        Remote::History(args) => {
            let answer = client.get(
                &url(
                    &args.server.server,
                    &format!("/v1/bundles/{}/versions", args.name),
                ),
                &[],
            )?;
            if answer.status == 200 && !args.output.json() {
                if let Some(table) = history_table(&answer.body) {
                    return Ok(table.into_bytes());
                }
            }
            (answer.status, answer.body)
        }
        Remote::Status(args) => match &args.name {
            Some(name) => {
                let answer = client.get(
                    &url(&args.server.server, &format!("/v1/bundles/{name}/status")),
                    &[],
                )?;
                if answer.status == 200 && !args.output.json() {
                    if let Some(table) = bundle_status_table(&answer.body) {
                        return Ok(table.into_bytes());
                    }
                }
                (answer.status, answer.body)
            }
            None => {
                let answer = client.get(&url(&args.server.server, "/v1/status"), &[])?;
                match serde_json::from_slice::<Value>(&answer.body) {
                    Ok(table) if answer.status == 200 && !args.output.json() => {
                        return Ok(crate::rollout::render(&table).into_bytes())
                    }
                    _ => (answer.status, answer.body),
                }
            }
        },
        Remote::Rollback(args) => {
            client.check(&args.server.server)?;
            let token = args.token.read()?;
            let body = serde_json::json!({ "to": args.to }).to_string();
            let authorization = format!("Bearer {token}");
            let answer = client.send(
                "POST",
                &url(
                    &args.server.server,
                    &format!("/v1/bundles/{}/rollback", args.name),
                ),
                &[
                    ("authorization", authorization.as_str()),
                    ("content-type", "application/json"),
                ],
                body.as_bytes(),
            )?;
            (answer.status, answer.body)
        }
    };
    if (200..300).contains(&status) {
        let mut body = body;
        if body.last() != Some(&b'\n') {
            body.push(b'\n');
        }
        Ok(body)
    } else {
        Err(RemoteError::Refused(explain(status, &body)))
    }
}

/// After a stored push: prints its answer, then waits for the rollout of
/// the version it names.
fn rollout(
    client: &Client,
    server: &str,
    name: &str,
    pushed: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, RemoteError> {
    use std::io::Write as _;
    let version = serde_json::from_slice::<Value>(pushed)
        .ok()
        .and_then(|v| v.get("version").and_then(Value::as_u64))
        .ok_or_else(|| RemoteError::Transport("push answer without a version".into()))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(pushed);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
    let table_url = url(server, &format!("/v1/status?bundle={name}"));
    let fetch = || -> Result<Value, String> {
        let answer = client.get(&table_url, &[]).map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(explain(answer.status, &answer.body));
        }
        serde_json::from_slice(&answer.body).map_err(|e| format!("not a status table: {e}"))
    };
    match crate::rollout::wait(fetch, name, version, timeout) {
        Ok(line) => Ok(format!("{line}\n").into_bytes()),
        Err(why) => Err(RemoteError::Rollout(why)),
    }
}

/// An ETag as the header wants it: quoted (users often paste it bare).
fn quote(tag: &str) -> String {
    let tag = tag.trim();
    if tag.starts_with('"') || tag == "*" {
        tag.to_owned()
    } else {
        format!("\"{tag}\"")
    }
}

fn read_token(path: &std::path::Path) -> Result<String, RemoteError> {
    let text = std::fs::read_to_string(path).map_err(|source| RemoteError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.trim().to_owned())
}

/// A refusal as lines for a human: the status, the service's message, and
/// one `PATH: MESSAGE` line per bundle issue.
fn explain(status: u16, body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return format!("HTTP {status}");
    };
    // The service is not trusted with the terminal: every string it sent
    // is escaped (an ESC sequence in `message` must not clear the screen or
    // forge a line).
    let mut out = format!(
        "HTTP {status} {}",
        cell(json.get("error").and_then(Value::as_str).unwrap_or("error"))
    );
    if let Some(message) = json.get("message").and_then(Value::as_str) {
        out.push_str(&format!(": {}", cell(message)));
    }
    if let Some(reason) = json.get("reason").and_then(Value::as_str) {
        out.push_str(&format!(" ({})", cell(reason)));
        if reason.starts_with("author_signature") {
            out.push_str(
                "\nthe service wants a bundle signed by a trusted key: `mcp-guard sign --key KEY \
                 BUNDLE.json`, then push again (BUNDLE.json.sig is sent)",
            );
        }
    }
    for issue in json
        .get("issues")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "\n{}: {}",
            cell(issue.get("path").and_then(Value::as_str).unwrap_or("$")),
            cell(issue.get("message").and_then(Value::as_str).unwrap_or(""))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_their_path_segment() {
        assert_eq!(bundle_name_arg("demo-1.v_2"), Ok("demo-1.v_2".into()));
        for bad in [
            "", ".", "..", "a/b", "a?x=1", "a#f", "a%2f", "a b", "é", "a\n",
        ] {
            assert!(bundle_name_arg(bad).is_err(), "{bad:?}");
        }
        let refused =
            bundle_name(Path::new("b.json"), br#"{"name":"../status?x="}"#).expect_err("refused");
        assert!(
            refused.to_string().contains("`name`: / is not allowed"),
            "{refused}"
        );
    }

    #[test]
    fn bundle_status_reads_as_tables() {
        let body = br#"{"name":"demo","latest":3,"reports":"unauthenticated",
            "instances":[{"instance":"pod-a\u001b[2J","state":"rejected","version":3,
              "reason":"bad_signature","active_version":2,"received_at":"2026-12-01T09:00:00Z"},
              {"instance":"pod-b","state":"synced","version":3,"reason":null,
              "active_version":3,"received_at":"2026-12-01T09:00:01Z"}],
            "rejected":[{"version":3,"reason":"bad_signature","instances":1}]}"#;
        let table = bundle_status_table(body).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "bundle demo latest version 3");
        assert!(lines[1].starts_with("INSTANCE"), "{table}");
        assert!(
            lines[2].contains("pod-a\\u001b[2J") && lines[2].contains("bad_signature"),
            "{table}"
        );
        assert!(
            !table.contains('\u{1b}'),
            "escape sequences are not passed to the terminal"
        );
        assert!(
            lines[3].starts_with("pod-b") && lines[3].contains(" - "),
            "{table}"
        );
        assert!(lines[5].starts_with("REFUSED-VERSION"), "{table}");
        assert!(
            lines[6].starts_with("3 ") && lines[6].ends_with(" 1"),
            "{table}"
        );
        assert!(bundle_status_table(b"[1]").is_none());
    }

    #[test]
    fn server_urls_carry_no_credentials_query_or_fragment() {
        for good in [
            "https://h.example",
            "HTTPS://h.example:8443/guard/",
            "http://127.0.0.1:9",
            "http://[::1]:80",
        ] {
            assert_eq!(server_url(good), Ok(good.to_owned()), "{good}");
        }
        for bad in [
            "https://user:secret@h.example",
            "https://token@h.example/",
            "https://h.example/?x=",
            "https://h.example#",
            "https://h.example/a b",
            "https://h.example\n",
            "https://",
            "ftp://h.example",
            "h.example",
        ] {
            assert!(server_url(bad).is_err(), "{bad:?}");
        }
        // The parser is wired: clap refuses the URL before any request.
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            server: ServerArg,
        }
        let err = T::try_parse_from(["t", "--server", "https://u:s3cret@h"])
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("credentials"), "{err}");
    }

    #[test]
    fn explains_refusals() {
        let body = br#"{"error":"invalid_bundle","issues":[{"path":"$.rules[0].id","message":"must not be empty"}]}"#;
        assert_eq!(
            explain(400, body),
            "HTTP 400 invalid_bundle\n$.rules[0].id: must not be empty"
        );
        assert_eq!(explain(502, b"<html>"), "HTTP 502");
        // The service does not drive the terminal: escapes, newlines and
        // bidi controls in any string it sends are shown escaped.
        let hostile = br#"{"error":"x\u001b]0;owned\u0007","message":"ok\u001b[2J","reason":"r\u202e","issues":[{"path":"$\n$.fake","message":"m\u001b[31m"}]}"#;
        let shown = explain(400, hostile);
        assert!(
            !shown.chars().any(|c| c != '\n' && crate::output::hidden(c)),
            "{shown:?}"
        );
        assert_eq!(shown.lines().count(), 2, "{shown}");
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("\"abc\""), "\"abc\"");
    }
}
