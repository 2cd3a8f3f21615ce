//! Talking to the control service: `push`, `get`, `history`, `rollback`,
//! `status`.
//! A small blocking HTTP client (plain `http://`; `ureq` without TLS), and
//! the token read from a file so it never appears in `ps` or shell history.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use crate::args::{set_once, ArgsError, Flag};

/// How long one request may take; long enough for a push that resolves
/// issuer keys by discovery.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response read: a bundle is at most 8 MiB.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// One remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Store a new version of the bundle in `file`.
    Push {
        /// Service base URL.
        server: String,
        /// File holding the bearer token.
        token_file: PathBuf,
        /// The bundle JSON.
        file: PathBuf,
        /// Only store if the current version has this ETag.
        if_match: Option<String>,
        /// `--create`: the bundle may be new. Without it a push must update
        /// an existing bundle (sent as `If-Match: *`), so a typo in a name
        /// cannot silently start a second bundle no proxy reads.
        create: bool,
        /// `--wait-rollout`: then wait up to this long until every live
        /// proxy enforces the pushed version.
        wait_rollout: Option<Duration>,
    },
    /// Print a bundle (latest or one version).
    Get {
        /// Service base URL.
        server: String,
        /// Bundle name.
        name: String,
        /// A version, or the latest.
        version: Option<u64>,
    },
    /// Print a bundle's version list.
    History {
        /// Service base URL.
        server: String,
        /// Bundle name.
        name: String,
    },
    /// Without a name: the sync table of every polling proxy
    /// (`GET /v1/status`), as text or `--json`. With a name: what that
    /// bundle's filters report (each instance's active or rejected
    /// version, the rejected versions with their reasons).
    Status {
        /// Service base URL.
        server: String,
        /// Bundle name.
        name: Option<String>,
        /// Print the table as JSON.
        json: bool,
    },
    /// Store an older version's content as the new latest.
    Rollback {
        /// Service base URL.
        server: String,
        /// File holding the bearer token.
        token_file: PathBuf,
        /// Bundle name.
        name: String,
        /// The version to go back to.
        to: u64,
    },
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
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        _ if !value.is_object() => Err(refuse("not a bundle (a JSON object is expected)".into())),
        Some(_) => Err(refuse(
            "not a bundle (`name` must be a non-empty string)".into(),
        )),
        None => Err(refuse("not a bundle (no \"name\" field)".into())),
    }
}

/// Parses the arguments of `push`, `get`, `history`, `rollback`, `status`.
pub fn parse(command: &str, rest: Vec<String>) -> Result<Remote, ArgsError> {
    let mut server = None;
    let mut token_file = None;
    let mut if_match = None;
    let mut version = None;
    let mut to = None;
    let mut wait_rollout = false;
    let mut rollout_timeout = None;
    let mut json = false;
    let mut create = false;
    let mut positional = Vec::new();
    let mut args = rest.into_iter();
    while let Some(arg) = args.next() {
        let flag = Flag::split(&arg);
        let mut value = |name: &'static str| flag.value(&mut args, name);
        match flag.name.as_str() {
            "--server" => set_once(&mut server, value("--server")?, "--server")?,
            "--token-file" if matches!(command, "push" | "rollback") => set_once(
                &mut token_file,
                PathBuf::from(value("--token-file")?),
                "--token-file",
            )?,
            "--if-match" if command == "push" => {
                set_once(&mut if_match, value("--if-match")?, "--if-match")?
            }
            "--version" if command == "get" => {
                let v = value("--version")?;
                let v = v.parse().map_err(|_| ArgsError::Unexpected(v))?;
                set_once(&mut version, v, "--version")?
            }
            "--to" if command == "rollback" => {
                let v = value("--to")?;
                let v = v.parse().map_err(|_| ArgsError::Unexpected(v))?;
                set_once(&mut to, v, "--to")?
            }
            "--wait-rollout" if command == "push" && flag.inline.is_none() => wait_rollout = true,
            "--rollout-timeout" if command == "push" => {
                let v = value("--rollout-timeout")?;
                let secs: u64 = v.parse().map_err(|_| ArgsError::Unexpected(v))?;
                set_once(
                    &mut rollout_timeout,
                    Duration::from_secs(secs),
                    "--rollout-timeout",
                )?
            }
            "--json" if command == "status" && flag.inline.is_none() => json = true,
            "--create" if command == "push" && flag.inline.is_none() => create = true,
            "--help" | "-h" => return Err(ArgsError::UnknownOption(arg)),
            s if s.starts_with('-') && s.len() > 1 => return Err(ArgsError::UnknownOption(arg)),
            _ => positional.push(arg),
        }
    }
    let server = server.ok_or(ArgsError::Missing("--server URL"))?;
    let mut positional = positional.into_iter();
    let what = match command {
        "push" => "bundle file",
        _ => "bundle name",
    };
    let first = positional.next();
    if let Some(extra) = positional.next() {
        return Err(ArgsError::Unexpected(extra));
    }
    if command == "status" {
        return Ok(Remote::Status {
            server,
            name: first,
            json,
        });
    }
    if rollout_timeout.is_some() && !wait_rollout {
        return Err(ArgsError::Missing(
            "--wait-rollout (with --rollout-timeout)",
        ));
    }
    if create && if_match.is_some() {
        return Err(ArgsError::Conflict("--create", "--if-match"));
    }
    let target = first.ok_or(ArgsError::Missing(what))?;
    let token = |t: Option<PathBuf>| t.ok_or(ArgsError::Missing("--token-file FILE"));
    Ok(match command {
        "push" => Remote::Push {
            server,
            token_file: token(token_file)?,
            file: target.into(),
            if_match,
            create,
            wait_rollout: wait_rollout
                .then(|| rollout_timeout.unwrap_or(crate::rollout::DEFAULT_TIMEOUT)),
        },
        "get" => Remote::Get {
            server,
            name: target,
            version,
        },
        "history" => Remote::History {
            server,
            name: target,
        },
        _ => Remote::Rollback {
            server,
            token_file: token(token_file)?,
            name: target,
            to: to.ok_or(ArgsError::Missing("--to VERSION"))?,
        },
    })
}

/// Fetches one stored version of a bundle (for `diff`).
pub fn fetch_version(server: &str, name: &str, version: u64) -> Result<Vec<u8>, RemoteError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let url = format!(
        "{}/v1/bundles/{name}/versions/{version}",
        server.trim_end_matches('/')
    );
    let (status, body) = finish(agent.get(&url).call())?;
    if status == 200 {
        Ok(body)
    } else {
        Err(RemoteError::Refused(format!(
            "{name} v{version} on {server}: {}",
            explain(status, &body)
        )))
    }
}

/// Runs the command; on success returns what to print on stdout.
pub fn run(command: &Remote) -> Result<Vec<u8>, RemoteError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let url = |server: &str, path: &str| format!("{}{path}", server.trim_end_matches('/'));
    let (status, body) = match command {
        Remote::Push {
            server,
            token_file,
            file,
            if_match,
            create,
            wait_rollout,
        } => {
            let token = read_token(token_file)?;
            let bundle = std::fs::read(file).map_err(|source| RemoteError::Read {
                path: file.display().to_string(),
                source,
            })?;
            // The URL name comes from the bundle, so it always matches.
            let name = bundle_name(file, &bundle)?;
            let mut request = agent
                .put(url(server, &format!("/v1/bundles/{name}")))
                .header("authorization", &format!("Bearer {token}"))
                .header("content-type", "application/json");
            let condition = match (if_match, create) {
                (Some(tag), _) => Some(quote(tag)),
                (None, false) => Some("*".to_owned()),
                (None, true) => None,
            };
            if let Some(condition) = &condition {
                request = request.header("if-match", condition);
            }
            let (status, body) = finish(request.send(&bundle[..]))?;
            if status == 412 && condition.as_deref() == Some("*") {
                return Err(RemoteError::Refused(format!(
                    "{server} has no bundle named `{name}`: check the name, or pass --create to \
                     create it"
                )));
            }
            match wait_rollout {
                Some(timeout) if (200..300).contains(&status) => {
                    return rollout(&agent, server, &name, &body, *timeout);
                }
                _ => (status, body),
            }
        }
        Remote::Get {
            server,
            name,
            version,
        } => {
            let path = match version {
                Some(v) => format!("/v1/bundles/{name}/versions/{v}"),
                None => format!("/v1/bundles/{name}"),
            };
            finish(agent.get(url(server, &path)).call())?
        }
        Remote::History { server, name } => finish(
            agent
                .get(url(server, &format!("/v1/bundles/{name}/versions")))
                .call(),
        )?,
        Remote::Status {
            server,
            name: Some(name),
            ..
        } => finish(
            agent
                .get(url(server, &format!("/v1/bundles/{name}/status")))
                .call(),
        )?,
        Remote::Status {
            server,
            name: None,
            json,
        } => {
            let (status, body) = finish(agent.get(url(server, "/v1/status")).call())?;
            match serde_json::from_slice::<Value>(&body) {
                Ok(table) if status == 200 && !json => {
                    return Ok(crate::rollout::render(&table).into_bytes())
                }
                _ => (status, body),
            }
        }
        Remote::Rollback {
            server,
            token_file,
            name,
            to,
        } => {
            let token = read_token(token_file)?;
            let body = serde_json::json!({ "to": to }).to_string();
            finish(
                agent
                    .post(url(server, &format!("/v1/bundles/{name}/rollback")))
                    .header("authorization", &format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .send(body.as_bytes()),
            )?
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
    agent: &ureq::Agent,
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
    let table_url = format!("{}/v1/status?bundle={name}", server.trim_end_matches('/'));
    let fetch = || -> Result<Value, String> {
        let (status, body) = finish(agent.get(&table_url).call()).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(explain(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a status table: {e}"))
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

fn finish(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, Vec<u8>), RemoteError> {
    let mut response = response.map_err(|e| RemoteError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .read_to_vec()
        .map_err(|e| RemoteError::Transport(e.to_string()))?;
    Ok((status, body))
}

/// A refusal as lines for a human: the status, the service's message, and
/// one `PATH: MESSAGE` line per bundle issue.
fn explain(status: u16, body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return format!("HTTP {status}");
    };
    let mut out = format!(
        "HTTP {status} {}",
        json.get("error").and_then(Value::as_str).unwrap_or("error")
    );
    if let Some(message) = json.get("message").and_then(Value::as_str) {
        out.push_str(&format!(": {message}"));
    }
    for issue in json
        .get("issues")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "\n{}: {}",
            issue.get("path").and_then(Value::as_str).unwrap_or("$"),
            issue.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_each_command() {
        assert_eq!(
            parse(
                "push",
                args(&[
                    "--server",
                    "http://x",
                    "--token-file=t",
                    "b.json",
                    "--if-match",
                    "\"e\""
                ])
            ),
            Ok(Remote::Push {
                server: "http://x".into(),
                token_file: "t".into(),
                file: "b.json".into(),
                if_match: Some("\"e\"".into()),
                create: false,
                wait_rollout: None,
            })
        );
        assert_eq!(
            parse(
                "push",
                args(&[
                    "--server",
                    "s",
                    "--token-file",
                    "t",
                    "--wait-rollout",
                    "--rollout-timeout=7",
                    "b.json"
                ])
            ),
            Ok(Remote::Push {
                server: "s".into(),
                token_file: "t".into(),
                file: "b.json".into(),
                if_match: None,
                create: false,
                wait_rollout: Some(Duration::from_secs(7)),
            })
        );
        assert!(parse(
            "push",
            args(&[
                "--server",
                "s",
                "--token-file",
                "t",
                "--rollout-timeout",
                "7",
                "b.json"
            ])
        )
        .is_err());
        assert!(parse("status", args(&["--server", "s", "--wait-rollout"])).is_err());
        assert_eq!(
            parse("status", args(&["--server", "s", "--json"])),
            Ok(Remote::Status {
                server: "s".into(),
                name: None,
                json: true,
            })
        );
        assert_eq!(
            parse(
                "get",
                args(&["--server=http://x", "demo", "--version", "3"])
            ),
            Ok(Remote::Get {
                server: "http://x".into(),
                name: "demo".into(),
                version: Some(3),
            })
        );
        assert_eq!(
            parse(
                "rollback",
                args(&["--server", "s", "--token-file", "t", "demo", "--to", "2"])
            ),
            Ok(Remote::Rollback {
                server: "s".into(),
                token_file: "t".into(),
                name: "demo".into(),
                to: 2,
            })
        );
        assert_eq!(
            parse("status", args(&["--server", "s", "demo"])),
            Ok(Remote::Status {
                server: "s".into(),
                name: Some("demo".into()),
                json: false,
            })
        );
        assert!(matches!(
            parse("push", args(&["--server", "s", "b.json"])),
            Err(ArgsError::Missing(_))
        ));
        assert!(matches!(
            parse("history", args(&["demo"])),
            Err(ArgsError::Missing(_))
        ));
        assert!(matches!(
            parse("get", args(&["--server", "s", "--to", "1", "demo"])),
            Err(ArgsError::UnknownOption(_))
        ));
    }

    #[test]
    fn explains_refusals() {
        let body = br#"{"error":"invalid_bundle","issues":[{"path":"$.rules[0].id","message":"must not be empty"}]}"#;
        assert_eq!(
            explain(400, body),
            "HTTP 400 invalid_bundle\n$.rules[0].id: must not be empty"
        );
        assert_eq!(explain(502, b"<html>"), "HTTP 502");
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("\"abc\""), "\"abc\"");
    }
}
