//! Plugin configuration: where bundles come from.

use serde::Deserialize;

/// The filter's plugin configuration (Envoy `configuration` /
/// Istio `pluginConfig`), as JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A bundle enforced from start-up until the control service supplies a
    /// newer one; for air-gapped set-ups and Istio `pluginConfig`.
    #[serde(default)]
    pub bundle: Option<serde_json::Value>,
    /// The control service to fetch bundles from.
    #[serde(default)]
    pub control: Option<ControlConfig>,
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
    /// Delay between fetches once a bundle is active.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Delay between fetches while no bundle is active yet.
    #[serde(default = "default_retry_ms")]
    pub retry_interval_ms: u64,
    /// Timeout of one fetch.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
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
    2_000
}

impl PluginConfig {
    /// Parses the configuration; an empty configuration is valid (the filter
    /// then fails closed with `no_policy` on every request).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}
