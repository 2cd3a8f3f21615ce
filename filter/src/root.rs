//! The root context: holds the active policy, fetches bundles from the
//! control service and creates one stream context per request.

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use mcp_guard_engine::{Bundle, Policy};

use crate::config::{ControlConfig, PluginConfig};
use crate::host::{self, HeaderMap};
use crate::metrics::Metrics;
use crate::stream::GuardStream;

/// A compiled bundle plus what identifies the version it came from.
#[derive(Debug)]
pub struct ActivePolicy {
    /// The compiled policy.
    pub policy: Policy,
    /// ETag the control service gave it, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// The PII scanner compiled from the bundle, shared by every stream.
    pub scanner: Option<std::sync::Arc<mcp_guard_engine::pii::Scanner>>,
    /// Tokens this VM verified under this policy's issuers (never shared
    /// across bundles: a new bundle may trust other keys).
    pub token_cache: std::cell::RefCell<mcp_guard_engine::jwt::TokenCache>,
}

/// Per-VM root context.
pub struct GuardRoot {
    config: PluginConfig,
    metrics: Metrics,
    active: Option<Rc<ActivePolicy>>,
    fetch_in_flight: Option<u32>,
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

impl GuardRoot {
    /// A root with no configuration and no policy (fails closed).
    pub fn new() -> Self {
        Self {
            config: PluginConfig::default(),
            metrics: Metrics::default(),
            active: None,
            fetch_in_flight: None,
        }
    }

    /// Activates a bundle if it is newer than the active one.
    fn activate(&mut self, bundle: Bundle, etag: Option<String>, source: &str) {
        let version = bundle.version;
        if let Some(current) = &self.active {
            if version <= current.policy.bundle().version {
                return;
            }
        }
        log(
            LogLevel::Info,
            &format!("activated bundle {}@{version} from {source}", bundle.name),
        );
        self.metrics.set_policy_version(version);
        let policy = Policy::new(bundle);
        let pii = &policy.bundle().pii;
        let scanner = pii
            .enabled
            .then(|| mcp_guard_engine::pii::Scanner::new(&pii.scanner_config()).ok())
            .flatten()
            .map(std::sync::Arc::new);
        let token_cache = policy.verifier().map_or_else(
            || mcp_guard_engine::jwt::TokenCache::new(0),
            |v| v.new_cache(),
        );
        self.active = Some(Rc::new(ActivePolicy {
            policy,
            etag,
            scanner,
            token_cache: std::cell::RefCell::new(token_cache),
        }));
    }

    fn schedule(&self, control: &ControlConfig) {
        let ms = if self.active.is_some() {
            control.poll_interval_ms
        } else {
            control.retry_interval_ms
        };
        let _ = hostcalls::set_tick_period(Duration::from_millis(ms.max(10)));
    }

    fn fetch(&mut self) {
        let Some(control) = &self.config.control else {
            return;
        };
        if self.fetch_in_flight.is_some() {
            return;
        }
        let path = format!("/v1/bundles/{}", control.bundle);
        let mut headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", control.authority.as_str()),
        ];
        let etag = self.active.as_ref().and_then(|a| a.etag.clone());
        if let Some(etag) = &etag {
            headers.push(("if-none-match", etag.as_str()));
        }
        match hostcalls::dispatch_http_call(
            &control.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(control.timeout_ms),
        ) {
            Ok(token) => self.fetch_in_flight = Some(token),
            Err(status) => {
                self.metrics.record_fetch_failure();
                log(
                    LogLevel::Warn,
                    &format!("bundle fetch not dispatched: {status:?}"),
                );
            }
        }
    }

    fn on_fetch_response(&mut self, body_size: usize) {
        let status = host::header(HeaderMap::HttpCallResponse, ":status");
        match status.as_deref() {
            Some("200") => {}
            Some("304") => return,
            other => {
                self.metrics.record_fetch_failure();
                log(
                    LogLevel::Warn,
                    &format!("bundle fetch failed (status {other:?}); keeping the active bundle"),
                );
                return;
            }
        }
        let etag = host::header(HeaderMap::HttpCallResponse, "etag");
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match Bundle::parse(&body) {
            Ok(bundle) => self.activate(bundle, etag, "control service"),
            Err(e) => {
                self.metrics.record_bundle_rejected();
                log(
                    LogLevel::Error,
                    &format!("rejected fetched bundle, keeping the active one: {e}"),
                );
            }
        }
    }
}

impl Default for GuardRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl Context for GuardRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if self.fetch_in_flight != Some(token_id) {
            return;
        }
        self.fetch_in_flight = None;
        self.on_fetch_response(body_size);
        if let Some(control) = self.config.control.clone() {
            self.schedule(&control);
        }
    }
}

impl RootContext for GuardRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.metrics = Metrics::define();
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let config = match PluginConfig::parse(&bytes) {
            Ok(config) => config,
            Err(e) => {
                log(
                    LogLevel::Critical,
                    &format!("invalid plugin configuration: {e}"),
                );
                return false;
            }
        };
        if let Some(inline) = &config.bundle {
            let text = inline.to_string();
            match Bundle::parse(text.as_bytes()) {
                Ok(bundle) => self.activate(bundle, None, "plugin configuration"),
                Err(e) => {
                    log(LogLevel::Critical, &format!("invalid inline bundle: {e}"));
                    return false;
                }
            }
        }
        self.config = config;
        if let Some(control) = self.config.control.clone() {
            self.schedule(&control);
        }
        true
    }

    fn on_tick(&mut self) {
        self.fetch();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GuardStream::new(
            context_id,
            self.active.clone(),
            self.metrics,
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
