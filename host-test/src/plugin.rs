//! One VM running the filter with its root context configured.

use crate::shared_data::SharedDataHandle;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wasmtime::{Engine, InstancePre, Store, StoreLimitsBuilder};

use crate::error::HostError;
use crate::http_calls::{HttpCall, HttpCallResponse};
use crate::log::{LogEntry, LogLevel, LogSink};
use crate::properties::{PropertyTree, PropertyValue};
use crate::rng::Rng;
use crate::state::{HostState, StreamState};
use crate::stream::Stream;
use crate::vm::Vm;

/// Context id of the root context (streams get 2, 3, ...).
pub const ROOT_CONTEXT_ID: u32 = 1;

/// Settings of a VM that Envoy would take from its `vm_config` and
/// environment, plus limits that keep a misbehaving guest from hurting the
/// test process.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// Bytes of the VM configuration buffer (`proxy_on_vm_start`).
    pub vm_config: Vec<u8>,
    /// VM id, used by shared queues.
    pub vm_id: String,
    /// Level returned by `proxy_get_log_level`; lower lines are dropped as
    /// Envoy would. Default: `Trace` (capture everything).
    pub log_level: LogLevel,
    /// Initial host time. Default: the real time at VM start; afterwards the
    /// clock moves only via `set_time` / `advance`.
    pub start_time: Option<SystemTime>,
    /// Instruction budget (wasmtime fuel) of each guest call; `None` is
    /// unlimited. Default: 5e9, far above any real callback.
    pub fuel_per_call: Option<u64>,
    /// Maximum guest linear memory in bytes. Default: 512 MiB.
    pub max_memory_bytes: usize,
    /// Seed of WASI `random_get`.
    pub random_seed: u64,
    /// When set, HTTP calls to other clusters fail with BadArgument, like
    /// Envoy's "cluster not found". Default: every cluster exists.
    pub known_clusters: Option<Vec<String>>,
    /// Shared data to use instead of a fresh store: pass another plugin's
    /// [`Plugin::shared_data_handle`] to simulate several worker VMs.
    pub shared_data: Option<SharedDataHandle>,
    /// Envoy's Wasm `allow_on_headers_stop_iteration`. On (the default),
    /// a pause at headers holds them and body callbacks still come. Off
    /// (what an Istio `WasmPlugin` gives), a pause at headers stops the
    /// whole direction: data and trailers are buffered without callbacks
    /// until the filter resumes, then the buffered body is delivered to
    /// the filter after the headers went on.
    pub headers_stop_iteration: bool,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            vm_config: Vec::new(),
            vm_id: String::new(),
            log_level: LogLevel::Trace,
            start_time: None,
            fuel_per_call: Some(5_000_000_000),
            max_memory_bytes: 512 << 20,
            random_seed: 0x6d63_702d_6775_6172,
            known_clusters: None,
            shared_data: None,
            headers_stop_iteration: true,
        }
    }
}

/// Everything the guest logged so far, rendered, for start-up errors.
fn log_lines(vm: &Vm) -> Vec<String> {
    vm.state()
        .logs
        .entries
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn nanos_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A filter VM with its configured root context: what one Envoy worker runs
/// for one plugin. Metrics, shared data and logs accumulate across streams.
///
/// Cloning gives another handle on the same VM. Plugins and their streams
/// are single-threaded handles (like an Envoy worker); start one per test
/// thread from a shared [`crate::Host`].
#[derive(Clone)]
pub struct Plugin {
    vm: Rc<RefCell<Vm>>,
}

impl Plugin {
    pub(crate) fn start(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        plugin_config: &[u8],
        options: PluginOptions,
    ) -> Result<Plugin, HostError> {
        let state = HostState {
            memory: None,
            alloc: None,
            limits: StoreLimitsBuilder::new()
                .memory_size(options.max_memory_bytes)
                .instances(1)
                .build(),
            root_id: ROOT_CONTEXT_ID,
            vm_id: options.vm_id.clone(),
            effective: ROOT_CONTEXT_ID,
            in_log: false,
            log_level: options.log_level,
            logs: LogSink::default(),
            now_nanos: nanos_since_epoch(options.start_time.unwrap_or_else(SystemTime::now)),
            tick_period_ms: 0,
            vm_config: options.vm_config.clone(),
            plugin_config: None,
            root_properties: PropertyTree::default(),
            root_filter_state: BTreeMap::new(),
            streams: BTreeMap::new(),
            next_context_id: ROOT_CONTEXT_ID + 1,
            http: Default::default(),
            known_clusters: options
                .known_clusters
                .as_ref()
                .map(|c| c.iter().cloned().collect::<BTreeSet<_>>()),
            metrics: Default::default(),
            shared: options.shared_data.clone().unwrap_or_default(),
            rng: Rng::new(options.random_seed),
            headers_stop_iteration: options.headers_stop_iteration,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limits);
        // Start functions run during instantiation and need fuel too.
        if crate::host::fuel_metering() {
            store
                .set_fuel(options.fuel_per_call.unwrap_or(u64::MAX / 2))
                .map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        }
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        let mut vm = Vm::new(store, instance, options.fuel_per_call)?;
        if vm.has_export("_initialize") {
            vm.call(0, "_initialize", &[])?;
        } else if vm.has_export("_start") {
            vm.call(0, "_start", &[])?;
        }
        let root = ROOT_CONTEXT_ID;
        vm.call(root, "proxy_on_context_create", &[root, 0])?;
        let vm_config_len = options.vm_config.len() as u32;
        if vm.call(root, "proxy_on_vm_start", &[root, vm_config_len])? == Some(0) {
            return Err(HostError::VmStartFailed {
                logs: log_lines(&vm),
            });
        }
        vm.state_mut().plugin_config = Some(plugin_config.to_vec());
        let configured = vm.call(
            root,
            "proxy_on_configure",
            &[root, plugin_config.len() as u32],
        );
        vm.state_mut().plugin_config = None;
        if configured? == Some(0) {
            return Err(HostError::ConfigureFailed {
                logs: log_lines(&vm),
            });
        }
        vm.pump()?;
        Ok(Plugin {
            vm: Rc::new(RefCell::new(vm)),
        })
    }

    /// Opens a new HTTP stream: creates its context
    /// (`proxy_on_context_create(id, root)`).
    pub fn stream(&self) -> Result<Stream, HostError> {
        let mut vm = self.vm.borrow_mut();
        let state = vm.state_mut();
        let id = state.next_context_id;
        state.next_context_id += 1;
        state.streams.insert(id, StreamState::default());
        vm.call(id, "proxy_on_context_create", &[id, ROOT_CONTEXT_ID])?;
        vm.pump()?;
        drop(vm);
        Ok(Stream::new(self.vm.clone(), id))
    }

    /// Why the VM died (it trapped), if it did.
    pub fn failure(&self) -> Option<String> {
        self.vm.borrow().failure().map(str::to_string)
    }

    /// The tick period the filter asked for, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        let ms = self.vm.borrow().state().tick_period_ms;
        (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
    }

    /// Calls `proxy_on_tick` on the root context if the filter set a tick
    /// period; returns whether it did. Time does not move by itself: combine
    /// with [`Plugin::advance`] as needed.
    pub fn tick(&self) -> Result<bool, HostError> {
        let mut vm = self.vm.borrow_mut();
        if vm.state().tick_period_ms == 0 {
            return Ok(false);
        }
        vm.call(ROOT_CONTEXT_ID, "proxy_on_tick", &[ROOT_CONTEXT_ID])?;
        vm.pump()?;
        Ok(true)
    }

    /// Current host time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.vm.borrow().state().now_nanos)
    }

    /// Sets the host time (`proxy_get_current_time_nanoseconds`, WASI
    /// clocks). Pending HTTP calls whose timeout has passed are failed, as
    /// Envoy would.
    pub fn set_time(&self, time: SystemTime) -> Result<(), HostError> {
        let mut vm = self.vm.borrow_mut();
        vm.state_mut().now_nanos = nanos_since_epoch(time);
        vm.expire_http_calls()
    }

    /// Moves the host time forward (see [`Plugin::set_time`]).
    pub fn advance(&self, by: Duration) -> Result<(), HostError> {
        self.set_time(self.now() + by)
    }

    /// Calls dispatched and not yet answered, by token.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.vm
            .borrow()
            .state()
            .http
            .pending
            .values()
            .cloned()
            .collect()
    }

    /// Every call ever dispatched, answered or not, in order.
    pub fn http_call_history(&self) -> Vec<HttpCall> {
        self.vm.borrow().state().http.history.clone()
    }

    /// Answers a pending call: `proxy_on_http_call_response` runs on the
    /// dispatching context with the response headers (`:status` first) and
    /// body readable; then whatever the filter asked for (resume, local
    /// reply) takes effect.
    pub fn respond_http_call(
        &self,
        token: u32,
        response: &HttpCallResponse,
    ) -> Result<(), HostError> {
        self.vm.borrow_mut().answer_http_call(token, Some(response))
    }

    /// Fails a pending call the way Envoy reports a failure or timeout:
    /// `proxy_on_http_call_response` with no headers, body or trailers.
    pub fn fail_http_call(&self, token: u32) -> Result<(), HostError> {
        self.vm.borrow_mut().answer_http_call(token, None)
    }

    /// Counter and gauge values by metric name.
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        self.vm.borrow().state().metrics.values()
    }

    /// Histogram samples by metric name.
    pub fn histograms(&self) -> BTreeMap<String, Vec<u64>> {
        self.vm.borrow().state().metrics.histograms()
    }

    /// Every captured log line so far.
    pub fn logs(&self) -> Vec<LogEntry> {
        self.vm.borrow().state().logs.entries.clone()
    }

    /// Captured log lines from index `from` on (see [`Plugin::log_count`]).
    pub fn logs_since(&self, from: usize) -> Vec<LogEntry> {
        let vm = self.vm.borrow();
        let entries = &vm.state().logs.entries;
        entries[from.min(entries.len())..].to_vec()
    }

    /// Number of captured log lines, to slice later with
    /// [`Plugin::logs_since`].
    pub fn log_count(&self) -> usize {
        self.vm.borrow().state().logs.entries.len()
    }

    /// Drops the captured log lines.
    pub fn clear_logs(&self) {
        self.vm.borrow_mut().state_mut().logs.entries.clear();
    }

    /// Value of a shared data key.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.vm
            .borrow()
            .state()
            .shared
            .borrow()
            .get(key)
            .map(|(v, _)| v.to_vec())
    }

    /// The shared-data store of this VM, to hand to other plugins
    /// (`PluginOptions::shared_data`) so they behave like the worker VMs of
    /// one Envoy process.
    pub fn shared_data_handle(&self) -> SharedDataHandle {
        self.vm.borrow().state().shared.clone()
    }

    /// Every shared data key with its value.
    pub fn all_shared_data(&self) -> BTreeMap<String, Vec<u8>> {
        self.vm.borrow().state().shared.borrow().snapshot()
    }

    /// Sets a shared data key as another VM would (unconditionally).
    pub fn set_shared_data(&self, key: &str, value: impl AsRef<[u8]>) {
        self.vm
            .borrow_mut()
            .state_mut()
            .shared
            .borrow_mut()
            .set(key, value.as_ref().to_vec(), 0);
    }

    /// Sets a plugin-wide property as raw bytes (e.g. `["plugin_name"]`);
    /// visible from every context unless a stream overrides it.
    pub fn set_root_property(&self, path: &[&str], value: impl AsRef<[u8]>) {
        let value = PropertyValue::Raw(value.as_ref().to_vec());
        self.vm
            .borrow_mut()
            .state_mut()
            .root_properties
            .set(path, value);
    }

    /// Sets a plugin-wide property as a JSON value (Envoy encoding).
    pub fn set_root_property_json(&self, path: &[&str], value: Value) {
        let value = PropertyValue::Json(value);
        self.vm
            .borrow_mut()
            .state_mut()
            .root_properties
            .set(path, value);
    }

    /// Filter state the root context wrote with `set_property`.
    pub fn root_filter_state(&self) -> BTreeMap<String, String> {
        self.vm
            .borrow()
            .state()
            .root_filter_state
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }
}
