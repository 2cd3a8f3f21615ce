//! The root context: holds the active policy, keeps it in step with the
//! control service (see [`crate::sync`]) and creates one stream context per
//! request.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use crate::calls as hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};

use mcp_guard_engine::fleet::{self, LastError, PollIdentity};
use mcp_guard_engine::report::{self, StatusReport};
use mcp_guard_engine::signing::{self, VerifyingKey, SIGNATURE_HEADER};
use mcp_guard_engine::{Bundle, Policy};
use mcp_guard_flow::checkpoints::{CheckpointAnswer, CheckpointSchedule};
use mcp_guard_flow::control::{status_text, ControlRequest};

use crate::accept::{self, Accepted, Expected, Served};
use crate::chain::{ChainSlot, SharedChain};
use crate::config::{ControlConfig, PluginConfig};
use crate::host::{self, now_ms, HeaderMap};
use crate::metrics::Metrics;
use crate::stream::GuardStream;
use crate::sync::{self, SharedKeys};
use mcp_guard_flow::metric_names::FetchResult;

pub use mcp_guard_flow::ActivePolicy;

/// Fetching state, present when a control service is configured.
struct Fetcher {
    control: ControlConfig,
    keys: SharedKeys,
    trusted: Vec<VerifyingKey>,
    /// This VM's identity in the lease.
    holder: String,
    in_flight: Option<u32>,
    next_fetch_ms: u64,
    backoff_ms: u64,
    /// Last version-key value activated from shared data.
    seen: Option<Vec<u8>>,
    /// This Envoy's id in status reports.
    instance: String,
    /// What this instance should report after its last fetch outcome.
    status: Option<StatusReport>,
    /// The last report the control service accepted.
    reported: Option<StatusReport>,
    /// A report on its way: call token and content.
    report_in_flight: Option<(u32, StatusReport)>,
    /// This Envoy's pod (Istio's `node.metadata.NAME`), when Envoy
    /// answers that property at configuration.
    pod: Option<String>,
    /// What went wrong on the last fetch, sent with the next one.
    last_error: Option<LastError>,
}

/// Response header with the served version (covered by the signature).
const VERSION_HEADER: &str = "x-bundle-version";

/// Per-VM root context.
pub struct GuardRoot {
    metrics: Metrics,
    active: Option<Arc<ActivePolicy>>,
    fetcher: Option<Fetcher>,
    /// Client secret for the bundle's token exchange (plugin configuration).
    exchange_secret: Option<Arc<str>>,
    /// Envoy holds headers while bodies are read (plugin configuration
    /// `headers_stop_iteration`).
    held_headers: bool,
    /// This VM's decision chain (one per worker VM, started at the first
    /// configuration with a fresh boot nonce): every stream seals its
    /// record into it when Envoy logs the stream.
    chain: Option<SharedChain>,
    /// When this VM's chain head goes to the control service next.
    checkpoints: CheckpointSchedule,
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Outcome of one fetch, for scheduling the next.
enum Fetched {
    /// A new verified version was published.
    New,
    /// Nothing newer (304, or the active version again).
    Same,
    /// The fetch or the bundle failed (refused bundles included, an older
    /// version too); keep the last good one.
    Failed,
}

impl GuardRoot {
    /// A root with no configuration and no policy (fails closed).
    pub fn new() -> Self {
        Self {
            metrics: Metrics::default(),
            active: None,
            fetcher: None,
            exchange_secret: None,
            held_headers: false,
            chain: None,
            checkpoints: CheckpointSchedule::default(),
        }
    }

    /// Posts this VM's chain head to the control service to be
    /// countersigned, when due (new records, interval passed, none in
    /// flight).
    fn maybe_checkpoint(&mut self) {
        let (Some(f), Some(chain)) = (&self.fetcher, &self.chain) else {
            return;
        };
        let Some(head) = chain.try_borrow().ok().and_then(|c| c.head().cloned()) else {
            return;
        };
        let now = now_ms();
        if !self
            .checkpoints
            .due(&head, now, f.control.checkpoint_interval_ms)
        {
            return;
        }
        let Some(request) = ControlRequest::checkpoint(&f.control, &head) else {
            return;
        };
        match hostcalls::dispatch_http_call(
            &f.control.cluster,
            request.headers(),
            request.body(),
            vec![],
            Duration::from_millis(request.timeout_ms),
        ) {
            Ok(token) => self.checkpoints.posted(u64::from(token), &head, now),
            Err(e) => {
                self.checkpoints.not_sent(now);
                log(
                    LogLevel::Debug,
                    &format!("checkpoint not dispatched: {e:?}"),
                );
            }
        }
    }

    /// Handles the answer to a checkpoint post; `false` if `token_id` is
    /// not one.
    fn on_checkpoint_response(&mut self, token_id: u32) -> bool {
        let status = host::header(HeaderMap::HttpCallResponse, ":status")
            .and_then(|s| s.parse::<u32>().ok());
        match self.checkpoints.answered(u64::from(token_id), status) {
            None => false,
            Some(CheckpointAnswer::Countersigned) => true,
            Some(CheckpointAnswer::Conflict) => {
                log(
                    LogLevel::Error,
                    "checkpoint refused (409): the control service holds another head for this decision chain",
                );
                true
            }
            Some(CheckpointAnswer::Failed) => {
                log(
                    LogLevel::Warn,
                    &format!(
                        "checkpoint not countersigned (status {})",
                        status_text(status.as_ref())
                    ),
                );
                true
            }
        }
    }

    /// Activates a bundle if it is newer than the active one.
    fn activate(&mut self, bundle: Bundle, etag: Option<String>, source: &str) -> bool {
        let version = bundle.version;
        if self
            .active
            .as_ref()
            .is_some_and(|a| version <= a.policy.bundle().version)
        {
            return false;
        }
        let name = bundle.name.clone();
        let policy = match Policy::new(bundle) {
            Ok(policy) => policy,
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("bundle from {source} does not compile, kept the active one: {e}"),
                );
                self.metrics.record_bundle_rejected();
                return false;
            }
        };
        log(
            LogLevel::Info,
            &format!("activated bundle {name}@{version} from {source}"),
        );
        self.metrics.set_policy(&name, version);
        self.active = Some(Arc::new(ActivePolicy::new(policy, etag)));
        true
    }

    /// Activates what another VM (or this one) published in shared data.
    fn pull_shared(&mut self) {
        let Some(fetcher) = &self.fetcher else {
            return;
        };
        let Some(marker) = sync::read(&fetcher.keys.version) else {
            return;
        };
        if fetcher.seen.as_deref() == Some(marker.as_slice()) {
            return;
        }
        let Some((version, etag)) = sync::parse_version_value(&marker) else {
            return;
        };
        let bytes = sync::read(&fetcher.keys.bundle).unwrap_or_default();
        let parsed = Bundle::parse(&bytes);
        if let Some(f) = &mut self.fetcher {
            f.seen = Some(marker);
        }
        let subscribed = self
            .fetcher
            .as_ref()
            .map(|f| f.control.bundle.clone())
            .unwrap_or_default();
        match parsed {
            Ok(bundle) if bundle.version == version && bundle.name == subscribed => {
                self.activate(bundle, etag, "shared data");
            }
            Ok(_) | Err(_) => log(
                LogLevel::Error,
                "shared bundle does not match its version marker; ignored",
            ),
        }
    }

    fn maybe_fetch(&mut self) {
        let now = now_ms();
        let etag = self.active.as_ref().and_then(|a| a.etag.clone());
        let active = self.active.as_ref().map(|a| a.policy.bundle().version);
        let Some(f) = &mut self.fetcher else {
            return;
        };
        if f.in_flight.is_some() || now < f.next_fetch_ms {
            return;
        }
        let identity = PollIdentity {
            instance: f.instance.clone(),
            pod: f.pod.clone(),
            active,
            last_error: f.last_error,
        };
        let request = ControlRequest::fetch(&f.control, etag.as_deref(), Some(&identity));
        let lease_ttl = request.timeout_ms + 4 * f.control.sync_interval_ms.max(10);
        if !sync::acquire_lease(&f.keys, &f.holder, now, lease_ttl) {
            return;
        }
        match hostcalls::dispatch_http_call(
            &f.control.cluster,
            request.headers(),
            None,
            vec![],
            Duration::from_millis(request.timeout_ms),
        ) {
            Ok(token) => f.in_flight = Some(token),
            Err(status) => {
                self.metrics.record_fetch_failure();
                f.last_error = Some(LastError::FetchUnreachable);
                f.next_fetch_ms = now + f.backoff_ms;
                f.backoff_ms = (f.backoff_ms * 2).min(f.control.max_backoff_ms);
                log(
                    LogLevel::Warn,
                    &format!("bundle fetch not dispatched: {status:?}"),
                );
            }
        }
    }

    /// Verifies, publishes and activates a fetched bundle.
    fn on_fetch_response(&mut self, body_size: usize) -> Fetched {
        let outcome = self.check_fetch_response(body_size);
        if let (Some(f), Fetched::New | Fetched::Same) = (&mut self.fetcher, &outcome) {
            f.last_error = None;
        }
        outcome
    }

    fn check_fetch_response(&mut self, body_size: usize) -> Fetched {
        let status = host::header(HeaderMap::HttpCallResponse, ":status");
        match status.as_deref() {
            Some("200") => {}
            Some("304") => {
                self.metrics.record_fetch(FetchResult::NotModified);
                return Fetched::Same;
            }
            other => {
                self.metrics.record_fetch_failure();
                if let Some(f) = &mut self.fetcher {
                    f.last_error = Some(LastError::failed_fetch(other.is_some()));
                }
                log(
                    LogLevel::Warn,
                    &format!(
                        "bundle fetch failed (status {}); keeping the active bundle",
                        status_text(other.as_ref())
                    ),
                );
                return Fetched::Failed;
            }
        }
        let active_version = self.active.as_ref().map(|a| a.policy.bundle().version);
        let Some(f) = &self.fetcher else {
            return Fetched::Failed;
        };
        let etag = host::header(HeaderMap::HttpCallResponse, "etag");
        let signature = host::header(HeaderMap::HttpCallResponse, SIGNATURE_HEADER);
        let announced = host::header(HeaderMap::HttpCallResponse, VERSION_HEADER);
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let checked = accept::check(
            &Served {
                body: &body,
                signature: signature.as_deref(),
                version: announced.as_deref(),
            },
            &Expected {
                name: &f.control.bundle,
                trusted: &f.trusted,
                allow_unsigned: f.control.allow_unsigned,
                active_version,
            },
        );
        match checked {
            Ok(Accepted::Same) => {
                self.metrics.record_fetch(FetchResult::NotModified);
                if let (Some(f), Some(version)) = (&mut self.fetcher, active_version) {
                    if f.status.is_none() {
                        f.status = Some(StatusReport::new(&f.instance, Some(version), None, None));
                    }
                }
                Fetched::Same
            }
            Ok(Accepted::New(bundle)) => {
                let version = bundle.version;
                if let Err(status) = sync::publish(&f.keys, &body, version, etag.as_deref()) {
                    log(
                        LogLevel::Warn,
                        &format!("could not publish bundle to other workers: {status:?}"),
                    );
                }
                // A bundle that does not compile counts as rejected there.
                if self.activate(*bundle, etag, "control service") {
                    self.metrics.record_fetch(FetchResult::Ok);
                }
                if let Some(f) = &mut self.fetcher {
                    f.status = Some(StatusReport::new(&f.instance, Some(version), None, None));
                }
                Fetched::New
            }
            Err(rejection) => {
                self.metrics.record_bundle_rejected();
                log(
                    LogLevel::Error,
                    &format!(
                        "rejected fetched bundle {:?} version {} ({}): {}; keeping the active one",
                        f.control.bundle,
                        rejection
                            .version
                            .map_or_else(|| "?".to_owned(), |v| v.to_string()),
                        rejection.code.as_str(),
                        rejection.detail
                    ),
                );
                if let Some(f) = &mut self.fetcher {
                    f.last_error = Some(LastError::Rejected(rejection.code));
                    f.status = Some(StatusReport::new(
                        &f.instance,
                        rejection.version,
                        Some(rejection.code),
                        active_version,
                    ));
                }
                Fetched::Failed
            }
        }
    }

    /// Sends this instance's status to the control service when it changed
    /// since the last accepted report (one report in flight at a time; a
    /// failed one is retried after the next fetch).
    fn maybe_report(&mut self) {
        let Some(f) = &mut self.fetcher else {
            return;
        };
        if !f.control.report_status || f.report_in_flight.is_some() {
            return;
        }
        let Some(status) = f.status.clone() else {
            return;
        };
        if f.reported.as_ref() == Some(&status) {
            return;
        }
        let request = ControlRequest::report(&f.control, &status);
        match hostcalls::dispatch_http_call(
            &f.control.cluster,
            request.headers(),
            request.body(),
            vec![],
            Duration::from_millis(request.timeout_ms),
        ) {
            Ok(token) => f.report_in_flight = Some((token, status)),
            Err(e) => log(
                LogLevel::Debug,
                &format!("status report not dispatched: {e:?}"),
            ),
        }
    }

    /// Handles the answer to a status report; `false` if `token_id` is not one.
    fn on_report_response(&mut self, token_id: u32) -> bool {
        let Some(f) = &mut self.fetcher else {
            return false;
        };
        if f.report_in_flight.as_ref().map(|(t, _)| *t) != Some(token_id) {
            return false;
        }
        let sent = f.report_in_flight.take().map(|(_, s)| s);
        let code = host::header(HeaderMap::HttpCallResponse, ":status");
        if code.as_deref().is_some_and(|c| c.starts_with('2')) {
            f.reported = sent;
        } else {
            log(
                LogLevel::Warn,
                &format!(
                    "status report not accepted (status {}); will resend",
                    status_text(code.as_ref())
                ),
            );
        }
        true
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
        if self.on_report_response(token_id) || self.on_checkpoint_response(token_id) {
            return;
        }
        if self.fetcher.as_ref().and_then(|f| f.in_flight) != Some(token_id) {
            return;
        }
        if let Some(f) = &mut self.fetcher {
            f.in_flight = None;
        }
        let outcome = self.on_fetch_response(body_size);
        let now = now_ms();
        let long_polling = self.active.as_ref().is_some_and(|a| a.etag.is_some());
        let Some(f) = &mut self.fetcher else {
            return;
        };
        match outcome {
            Fetched::New | Fetched::Same => {
                f.backoff_ms = f.control.retry_interval_ms;
                f.next_fetch_ms = if long_polling && f.control.long_poll_secs > 0 {
                    now
                } else {
                    now + f.control.poll_interval_ms
                };
            }
            Fetched::Failed => {
                f.next_fetch_ms = now + f.backoff_ms;
                f.backoff_ms = (f.backoff_ms * 2).min(f.control.max_backoff_ms);
            }
        }
        self.maybe_report();
        // Re-arm at once rather than waiting for the next tick.
        self.maybe_fetch();
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
        self.exchange_secret = config.exchange_secret();
        self.held_headers = config.headers_stop_iteration;
        log(
            LogLevel::Info,
            if self.held_headers {
                "bodies are read with headers held (Envoy allow_on_headers_stop_iteration on)"
            } else {
                "bodies are read with headers released, bodies held (no headers_stop_iteration: Istio WasmPlugin mode)"
            },
        );
        if self.chain.is_none() {
            let instance = config.control.as_ref().and_then(|c| c.instance_id.clone());
            self.chain = Some(ChainSlot::shared(instance));
        }
        if let Some(inline) = &config.bundle {
            match Bundle::parse(inline.get().as_bytes()) {
                Ok(bundle) => {
                    self.activate(bundle, None, "plugin configuration");
                }
                Err(e) => {
                    log(LogLevel::Critical, &format!("invalid inline bundle: {e}"));
                    return false;
                }
            }
        }
        if let Some(control) = config.control {
            let mut trusted = Vec::new();
            for (i, key) in control.public_keys.iter().enumerate() {
                match signing::verifying_key_from_text(key) {
                    Ok(k) => trusted.push(k),
                    Err(e) => {
                        log(
                            LogLevel::Critical,
                            &format!("invalid plugin configuration: control.public_keys[{i}]: {e}"),
                        );
                        return false;
                    }
                }
            }
            let holder = format!("{:016x}", RandomState::new().hash_one(now_ms()));
            let keys = SharedKeys::new(&control.bundle);
            let instance = control.instance_id.clone().unwrap_or_else(|| {
                crate::chain::node_id()
                    .filter(|id| report::valid_instance(id))
                    .unwrap_or_else(|| sync::shared_instance_id(&keys, &format!("envoy-{holder}")))
            });
            let pod = [
                &["xds", "node", "metadata", "NAME"][..],
                &["node", "metadata", "NAME"][..],
            ]
            .into_iter()
            .find_map(|path| host::property(path).ok().flatten())
            .and_then(|name| String::from_utf8(name).ok())
            .filter(|name| fleet::valid_pod(name));
            let _ =
                hostcalls::set_tick_period(Duration::from_millis(control.sync_interval_ms.max(10)));
            self.fetcher = Some(Fetcher {
                keys,
                backoff_ms: control.retry_interval_ms,
                control,
                trusted,
                holder,
                in_flight: None,
                next_fetch_ms: 0,
                seen: None,
                instance,
                status: None,
                reported: None,
                report_in_flight: None,
                pod,
                last_error: None,
            });
        }
        true
    }

    fn on_tick(&mut self) {
        self.pull_shared();
        self.maybe_fetch();
        self.maybe_checkpoint();
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GuardStream::new(
            context_id,
            self.active.clone(),
            self.metrics.clone(),
            self.exchange_secret.clone(),
            self.held_headers,
            self.chain.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
