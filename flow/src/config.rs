//! Plugin configuration: where bundles come from.

use serde::Deserialize;

/// The filter's plugin configuration (Envoy `configuration` /
/// Istio `pluginConfig`), as JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A bundle enforced from start-up until the control service supplies a
    /// newer one; for air-gapped set-ups and Istio `pluginConfig`. Kept
    /// as its raw text, parsed once by `Bundle::parse`: a 10,000-rule
    /// bundle built as a JSON tree first, then printed and parsed again,
    /// peaked at several times its size, and wasm memory never shrinks.
    #[serde(default)]
    pub bundle: Option<Box<serde_json::value::RawValue>>,
    /// The control service to fetch bundles from.
    #[serde(default)]
    pub control: Option<ControlConfig>,
    /// Native Envoy module only (the wasm filter reads `jwt_authn`
    /// metadata directly and ignores it): the `forward_payload_header` of
    /// the `jwt_authn` provider, which carries the verified payload to the
    /// module. Default `x-mcp-guard-jwt-payload`.
    #[serde(default)]
    pub jwt_payload_header: Option<String>,
    /// The filter's credentials at the identity provider for the bundle's
    /// RFC 8693 `token_exchange`. The secret is here, not in the bundle:
    /// bundles are signed, not encrypted, and anyone who can fetch one
    /// from the control service can read it.
    #[serde(default)]
    pub token_exchange: Option<TokenExchangeClient>,
    /// Set to `true` when (and only when) Envoy's Wasm `PluginConfig`
    /// sets `allow_on_headers_stop_iteration: true`: the filter then holds
    /// request and response headers while it reads a body, so nothing of
    /// an undecided request reaches the upstream. Off (the default, and
    /// all an Istio `WasmPlugin` can do), Envoy never delivers a body to
    /// a filter that paused at headers, so the filter lets headers go on
    /// and holds the body instead ([`crate::Exchange::with_held_headers`]).
    #[serde(default)]
    pub headers_stop_iteration: bool,
}

/// Client credentials for token exchange.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeClient {
    /// The secret of the bundle's `token_exchange.client_id` (HTTP Basic).
    pub client_secret: String,
}

impl std::fmt::Debug for TokenExchangeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never printed, not even in debug output.
        f.write_str("TokenExchangeClient { client_secret: \"<redacted>\" }")
    }
}

/// How to reach the control service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Envoy cluster name of the control service.
    pub cluster: String,
    /// `:authority` sent with fetches.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Name of the bundle to enforce.
    pub bundle: String,
    /// Long-poll: the control service holds a fetch up to this long and
    /// answers as soon as a new version is stored. 0 turns long-polling off
    /// (plain polling every `poll_interval_ms`).
    #[serde(default = "default_long_poll_secs")]
    pub long_poll_secs: u64,
    /// Delay between fetches when not long-polling.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// First delay after a failed fetch; doubles up to `max_backoff_ms`.
    #[serde(default = "default_retry_ms")]
    pub retry_interval_ms: u64,
    /// Longest delay between retries after failures.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Timeout of one fetch, on top of the long-poll wait.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often each worker VM checks shared data for a bundle another VM
    /// fetched (bounds how long workers lag behind the fetching one).
    #[serde(default = "default_sync_ms")]
    pub sync_interval_ms: u64,
    /// Ed25519 public keys (base64 or hex) whose signatures are trusted.
    /// During a key rotation list both the old and the new key.
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// Report to the control service which version this Envoy enforces or
    /// refused (`POST /v1/bundles/<bundle>/status`), so pushers see
    /// rejected versions.
    #[serde(default = "default_true")]
    pub report_status: bool,
    /// The instance id in status reports; default: Envoy's node id.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Accept unsigned bundles: for local demos only.
    #[serde(default)]
    pub allow_unsigned: bool,
    /// How often each decision chain's head is sent to the control
    /// service to be countersigned (`POST /v1/checkpoints`) when it has
    /// new records; 0 turns checkpoints off. Records after the last
    /// countersigned checkpoint are the trail's unprovable tail.
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_interval_ms: u64,
}

fn default_checkpoint_ms() -> u64 {
    10_000
}

fn default_true() -> bool {
    true
}

fn default_authority() -> String {
    "mcp-guard-control".into()
}

fn default_poll_ms() -> u64 {
    5_000
}

fn default_retry_ms() -> u64 {
    250
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_long_poll_secs() -> u64 {
    30
}

fn default_max_backoff_ms() -> u64 {
    10_000
}

fn default_sync_ms() -> u64 {
    50
}

impl PluginConfig {
    /// The token-exchange client secret, shared by every stream.
    pub fn exchange_secret(&self) -> Option<std::sync::Arc<str>> {
        self.token_exchange
            .as_ref()
            .map(|t| std::sync::Arc::from(t.client_secret.as_str()))
    }

    /// Parses the configuration; an empty configuration is valid (the filter
    /// then fails closed with `no_policy` on every request).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let config: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if config.jwt_payload_header.as_deref().is_some_and(|h| {
            h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            return Err("jwt_payload_header must be a header name of [A-Za-z0-9-]".into());
        }
        if config
            .token_exchange
            .as_ref()
            .is_some_and(|t| t.client_secret.is_empty())
        {
            return Err("token_exchange.client_secret must not be empty".into());
        }
        if let Some(control) = &config.control {
            if control.public_keys.is_empty() && !control.allow_unsigned {
                return Err(
                    "control.public_keys is required (set allow_unsigned only for local demos)"
                        .into(),
                );
            }
            if control
                .instance_id
                .as_deref()
                .is_some_and(|id| !mcp_guard_engine::report::valid_instance(id))
            {
                return Err(
                    "control.instance_id must be 1 to 128 characters of [A-Za-z0-9._~:@/-]".into(),
                );
            }
            if control.long_poll_secs > 300 {
                return Err("control.long_poll_secs must be at most 300".into());
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_exchange_secret_is_read_checked_and_never_printed() {
        let config =
            PluginConfig::parse(br#"{"token_exchange": {"client_secret": "s3cret"}}"#).unwrap();
        assert_eq!(config.exchange_secret().as_deref(), Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(PluginConfig::parse(br#"{"token_exchange": {"client_secret": ""}}"#).is_err());
        assert!(PluginConfig::parse(
            br#"{"token_exchange": {"client_secret": "x", "client_id": "y"}}"#
        )
        .is_err());
        assert_eq!(PluginConfig::parse(b"").unwrap().exchange_secret(), None);
    }
}
