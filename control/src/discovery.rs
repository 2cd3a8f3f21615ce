//! Issuer keys by OIDC discovery. An issuer in `identity.verify.issuers[]`
//! may name a `discovery` URL instead of inline `jwks`; the service fetches
//! the discovery document, follows its `jwks_uri`, and embeds the JWKS in
//! the stored bundle, so filters never fetch keys themselves. A periodic
//! refresh ([`refresh_once`]) stores a new version (source `key-rotation`)
//! when an issuer's keys change.
//!
//! Documents are fetched over HTTPS ([`DiscoveryClient`]); plain `http://`
//! only when the operator allowed it (`--allow-plain-http-discovery`), and a
//! discovery document fetched over HTTPS cannot send the keys to `http://`
//! (its `jwks_uri` is refused unless plain HTTP is allowed).

use std::sync::Arc;

use mcp_guard_engine::bundle::BundleIssue;
use serde_json::{json, Value};

pub use crate::fetch::{DiscoveryClient, FetchError};
use crate::metrics::Metrics;
use crate::store::{BundleStore, Commit, CommitError, Source};

/// Which combinations of `jwks` and `discovery` an issuer may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A push: exactly one of the two.
    Push,
    /// Re-resolving stored content (rollback, refresh), which carries both.
    Stored,
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
pub async fn resolve(
    client: &DiscoveryClient,
    doc: &mut Value,
    mode: Mode,
) -> Result<(), Vec<BundleIssue>> {
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
        match fetch_jwks(client, &url, iss).await {
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
async fn fetch_jwks(
    client: &DiscoveryClient,
    discovery_url: &str,
    iss: &str,
) -> Result<Value, String> {
    let document = client
        .fetch_json(discovery_url)
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
    let jwks = client
        .fetch_json(jwks_uri)
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
pub async fn refresh_once(store: &Arc<BundleStore>, metrics: &Metrics, client: &DiscoveryClient) {
    for latest in store.list() {
        let Ok(mut doc) = serde_json::from_slice::<Value>(latest.bytes()) else {
            continue;
        };
        if !uses_discovery(&doc) {
            continue;
        }
        let before = jwks_of(&doc);
        if let Err(issues) = resolve(client, &mut doc, Mode::Stored).await {
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
                // The authored policy is unchanged: only fetched keys moved.
                signed_by: latest_for_commit.signed_by(),
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
