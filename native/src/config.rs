//! One filter configuration: the plugin configuration (the same JSON as
//! the wasm filter's, parsed by the shared [`PluginConfig`]), its metrics
//! and the active policy every worker thread reads.

use std::sync::{Arc, PoisonError, RwLock};

use mcp_guard_engine::{Bundle, Policy};
use mcp_guard_flow::config::PluginConfig;
use mcp_guard_flow::ActivePolicy;

use crate::abi::{self, log_level};
use crate::host::log;
use crate::identity::DEFAULT_PAYLOAD_HEADER;
use crate::metrics::Metrics;
use crate::sync::Sync;
use mcp_guard_flow::metric_names::FetchResult;

/// Envoy's config pointer, usable from the main thread whichever thread
/// holds this struct (Envoy guarantees it outlives the module config).
#[derive(Debug, Clone, Copy)]
pub struct ConfigPtr(pub abi::ConfigEnvoyPtr);

// SAFETY: the pointer is only dereferenced by Envoy, in callbacks the ABI
// allows from the thread the module calls them on (metrics: any thread;
// callouts and schedulers: the main thread or as documented there).
unsafe impl Send for ConfigPtr {}
// SAFETY: as above.
unsafe impl std::marker::Sync for ConfigPtr {}

/// Why a configuration is refused (Envoy then refuses the listener).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The plugin configuration JSON is invalid.
    #[error("invalid plugin configuration: {0}")]
    Plugin(String),
    /// The inline bundle does not parse or compile.
    #[error("invalid inline bundle: {0}")]
    Bundle(String),
    /// A trusted key does not parse.
    #[error("invalid plugin configuration: control.public_keys[{index}]: {detail}")]
    Key {
        /// Position in `public_keys`.
        index: usize,
        /// Why.
        detail: String,
    },
}

/// What every stream of this configuration shares.
pub struct Shared {
    /// Envoy's side of this configuration.
    pub envoy: ConfigPtr,
    /// Counter and gauge ids.
    pub metrics: Metrics,
    /// The `jwt_authn` `forward_payload_header` carrying verified payloads.
    pub payload_header: String,
    /// The policy new streams run under; swapped whole on activation.
    policy: RwLock<Option<Arc<ActivePolicy>>>,
    /// Bundle sync with the control service, when configured.
    pub sync: Option<Sync>,
    /// Client secret for the bundle's token exchange.
    pub exchange_secret: Option<Arc<str>>,
    /// Instance name the decision chains of this process are named after.
    pub chain_node: String,
}

impl Shared {
    /// Parses the plugin configuration and defines the metrics (inside the
    /// config-new hook, the only place Envoy allows it); starts no thread.
    pub fn new(envoy: ConfigPtr, bytes: &[u8]) -> Result<Self, ConfigError> {
        let config = PluginConfig::parse(bytes).map_err(ConfigError::Plugin)?;
        let mut shared = Self {
            envoy,
            metrics: Metrics::define(envoy),
            payload_header: config
                .jwt_payload_header
                .clone()
                .unwrap_or_else(|| DEFAULT_PAYLOAD_HEADER.to_owned())
                .to_ascii_lowercase(),
            policy: RwLock::new(None),
            sync: None,
            exchange_secret: config.exchange_secret(),
            chain_node: config
                .control
                .as_ref()
                .and_then(|c| c.instance_id.clone())
                .unwrap_or_else(|| format!("envoy-{}", std::process::id())),
        };
        if let Some(inline) = &config.bundle {
            let bundle = Bundle::parse(inline.get().as_bytes())
                .map_err(|e| ConfigError::Bundle(e.to_string()))?;
            let policy = Policy::new(bundle).map_err(|e| ConfigError::Bundle(e.to_string()))?;
            shared.install(policy, None, "plugin configuration");
        }
        if let Some(control) = config.control {
            shared.sync = Some(Sync::new(control)?);
        }
        Ok(shared)
    }

    /// The policy a new stream runs under.
    pub fn active(&self) -> Option<Arc<ActivePolicy>> {
        self.policy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The version enforced now.
    pub fn active_version(&self) -> Option<u64> {
        self.active().map(|a| a.policy.bundle().version)
    }

    /// Compiles and activates a bundle newer than the active one; `false`
    /// when it is not newer or does not compile (the active one stays).
    pub fn activate(&self, bundle: Bundle, etag: Option<String>, source: &str) -> bool {
        if self
            .active_version()
            .is_some_and(|active| bundle.version <= active)
        {
            return false;
        }
        match Policy::new(bundle) {
            Ok(policy) => {
                self.install(policy, etag, source);
                true
            }
            Err(e) => {
                log(
                    log_level::ERROR,
                    &format!("bundle from {source} does not compile, kept the active one: {e}"),
                );
                self.metrics.count_fetch(self.envoy, FetchResult::Rejected);
                false
            }
        }
    }

    fn install(&self, policy: Policy, etag: Option<String>, source: &str) {
        let (name, version) = (policy.bundle().name.clone(), policy.bundle().version);
        let active = Arc::new(ActivePolicy::new(policy, etag));
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Some(active);
        self.metrics.set_policy(self.envoy, &name, version);
        log(
            log_level::INFO,
            &format!("activated bundle {name}@{version} from {source}"),
        );
    }
}

#[cfg(test)]
mod tests {
    // The policy crosses Envoy's worker threads: it must be shareable.
    fn assert_shared<T: Send + std::marker::Sync>() {}

    #[test]
    fn the_active_policy_can_be_shared_across_threads() {
        assert_shared::<mcp_guard_flow::ActivePolicy>();
    }
}
