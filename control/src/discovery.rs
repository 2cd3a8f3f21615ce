//! Issuer keys by OIDC discovery. An issuer in `identity.verify.issuers[]`
//! may name a `discovery` URL instead of inline `jwks`; the service fetches
//! the discovery document, follows its `jwks_uri`, and embeds the JWKS in
//! the stored bundle, so filters never fetch keys themselves. A periodic
//! refresh ([`refresh_once`]) stores a new version (source `key-rotation`)
//! when an issuer's keys change.
//!
//! Only `http://` URLs are fetched: the service has no TLS client yet, so
//! discovery must point at an in-cluster or loopback endpoint (or a TLS
//! terminating sidecar).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use mcp_guard_engine::bundle::BundleIssue;
use serde_json::{json, Value};

use crate::metrics::Metrics;
use crate::store::{BundleStore, Commit, CommitError, Source};

/// Limit for a discovery document or JWKS: real ones are a few KiB.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Time allowed for one fetch, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Which combinations of `jwks` and `discovery` an issuer may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A push: exactly one of the two.
    Push,
    /// Re-resolving stored content (rollback, refresh), which carries both.
    Stored,
}

/// Why a document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute `http://` URL.
    #[error("{0}")]
    Url(String),
    /// Connecting, sending or reading failed, or took too long.
    #[error("{0}")]
    Transport(String),
    /// The server answered with another status than 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The body is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
}

/// GETs a JSON document over plain HTTP/1.1.
pub async fn fetch_json(url: &str) -> Result<Value, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_json_inner(url))
        .await
        .map_err(|_| {
            FetchError::Transport(format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))
        })?
}

async fn fetch_json_inner(url: &str) -> Result<Value, FetchError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| FetchError::Url(format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(FetchError::Url(
                "https is not supported yet; use an http:// URL".into(),
            ))
        }
        _ => return Err(FetchError::Url("must be an http:// URL".into())),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| FetchError::Url("has no host".into()))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| FetchError::Transport(format!("cannot connect: {e}")))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    let connection = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Url(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    if response.status() != StatusCode::OK {
        connection.abort();
        return Err(FetchError::Status(response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| FetchError::Transport(format!("reading the body: {e}")))?
        .to_bytes();
    connection.abort();
    serde_json::from_slice(&body).map_err(|e| FetchError::Json(e.to_string()))
}

/// The issuers array of a bundle document, if it has one.
fn issuers_mut(doc: &mut Value) -> Option<&mut Vec<Value>> {
    doc.get_mut("identity")?
        .get_mut("verify")?
        .get_mut("issuers")?
        .as_array_mut()
}

/// Whether any issuer of the document uses `discovery`.
pub fn uses_discovery(doc: &Value) -> bool {
    doc.pointer("/identity/verify/issuers")
        .and_then(Value::as_array)
        .is_some_and(|issuers| issuers.iter().any(|i| i.get("discovery").is_some()))
}

/// Fetches the JWKS of every issuer with a `discovery` URL and writes it
/// into that issuer's `jwks`. Every failure is reported as a bundle issue
/// located at the issuer, so a push gets them all at once.
pub async fn resolve(doc: &mut Value, mode: Mode) -> Result<(), Vec<BundleIssue>> {
    let Some(issuers) = issuers_mut(doc) else {
        return Ok(());
    };
    let mut issues = Vec::new();
    for (i, issuer) in issuers.iter_mut().enumerate() {
        let at = format!("$.identity.verify.issuers[{i}]");
        let Some(discovery) = issuer.get("discovery") else {
            continue;
        };
        let Some(url) = discovery.as_str().map(str::to_owned) else {
            issues.push(issue(&at, "discovery", "must be a URL string"));
            continue;
        };
        if mode == Mode::Push && issuer.get("jwks").is_some() {
            issues.push(issue(
                &at,
                "discovery",
                "give either jwks or discovery, not both (the service fills in jwks)",
            ));
            continue;
        }
        let iss = issuer
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match fetch_jwks(&url, iss).await {
            Ok(jwks) => {
                if let Some(object) = issuer.as_object_mut() {
                    object.insert("jwks".into(), jwks);
                }
            }
            Err(message) => issues.push(issue(&at, "discovery", &message)),
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

fn issue(at: &str, field: &str, message: &str) -> BundleIssue {
    BundleIssue {
        path: format!("{at}.{field}"),
        message: message.to_owned(),
    }
}

/// Discovery document → `jwks_uri` → `{"keys": [...]}`.
async fn fetch_jwks(discovery_url: &str, iss: &str) -> Result<Value, String> {
    let document = fetch_json(discovery_url)
        .await
        .map_err(|e| format!("fetching {discovery_url}: {e}"))?;
    if let Some(issuer) = document.get("issuer").and_then(Value::as_str) {
        if issuer != iss {
            return Err(format!(
                "discovery document names issuer \"{issuer}\", not \"{iss}\""
            ));
        }
    }
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{discovery_url} has no jwks_uri"))?;
    let jwks = fetch_json(jwks_uri)
        .await
        .map_err(|e| format!("fetching {jwks_uri}: {e}"))?;
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{jwks_uri} is not a JWKS ({{\"keys\": [...]}})"))?;
    Ok(json!({ "keys": keys }))
}

/// The `jwks` of every issuer, to tell whether a refresh changed keys.
fn jwks_of(doc: &Value) -> Vec<Value> {
    doc.pointer("/identity/verify/issuers")
        .and_then(Value::as_array)
        .map(|issuers| {
            issuers
                .iter()
                .map(|i| i.get("jwks").cloned().unwrap_or(Value::Null))
                .collect()
        })
        .unwrap_or_default()
}

/// Re-resolves every bundle whose latest version uses discovery and
/// stores a new version (source `key-rotation`) for each whose keys
/// changed. Conditional on the version it read, so a push made meanwhile
/// wins (and the next refresh looks again).
pub async fn refresh_once(store: &Arc<BundleStore>, metrics: &Metrics) {
    for latest in store.list() {
        let Ok(mut doc) = serde_json::from_slice::<Value>(latest.bytes()) else {
            continue;
        };
        if !uses_discovery(&doc) {
            continue;
        }
        let before = jwks_of(&doc);
        if let Err(issues) = resolve(&mut doc, Mode::Stored).await {
            metrics.rotation("failed");
            let problems: Vec<String> = issues.iter().map(ToString::to_string).collect();
            tracing::warn!(bundle = %latest.name(), issues = %problems.join("; "), "key refresh failed; keeping the current keys");
            continue;
        }
        if jwks_of(&doc) == before {
            metrics.rotation("unchanged");
            continue;
        }
        let Ok(content) = serde_json::to_vec_pretty(&doc) else {
            continue;
        };
        let store = Arc::clone(store);
        let latest_for_commit = Arc::clone(&latest);
        let committed = tokio::task::spawn_blocking(move || {
            let name = crate::name::BundleName::parse(latest_for_commit.name())
                .map_err(|e| CommitError::Io(std::io::Error::other(e.to_string())))?;
            store.commit(Commit {
                name: &name,
                content: &content,
                source: Source::KeyRotation,
                by: "jwks-refresh",
                if_match: Some(latest_for_commit.etag().as_str()),
            })
        })
        .await;
        match committed {
            Ok(Ok(stored)) => {
                metrics.rotation("rotated");
                tracing::info!(bundle = %stored.name(), version = stored.version(), source = %stored.source().as_str(), etag = %stored.etag().as_str(), "issuer keys changed; stored a new version");
            }
            Ok(Err(e)) => {
                metrics.rotation("failed");
                tracing::warn!(bundle = %latest.name(), error = %e, "key rotation not stored");
            }
            Err(e) => {
                metrics.rotation("failed");
                tracing::error!(bundle = %latest.name(), error = %e, "key rotation task failed");
            }
        }
    }
}
