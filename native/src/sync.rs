//! Bundle sync for the native module: the same long-poll of the control
//! service, the same verification (shared [`accept::check`]: signature,
//! name, rollback) and the same status reports as the wasm filter.
//!
//! The fetches are Envoy HTTP callouts to the configured `cluster`, made
//! from the filter configuration on Envoy's main thread (so the cluster's
//! timeouts, TLS and addresses apply, no HTTP client lives in the module,
//! and Envoy cancels them when the configuration goes). Envoy has no timer
//! for a configuration, so one small thread per configuration only keeps
//! time: it sleeps until the next fetch is due and posts an event to the
//! main thread through Envoy's config scheduler. It holds no policy and
//! does no I/O; it is stopped and joined in the config-destroy hook.
//!
//! One policy serves every worker thread (an `Arc` swapped under a lock),
//! so one fetch per configuration replaces the wasm filter's lease among
//! per-worker VMs. The last good policy stays on any failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcp_guard_engine::fleet::{self, LastError, PollIdentity};
use mcp_guard_engine::report::StatusReport;
use mcp_guard_engine::signing::{self, VerifyingKey, SIGNATURE_HEADER};
use mcp_guard_flow::accept::{self, Accepted, Expected, Served};
use mcp_guard_flow::config::ControlConfig;
use mcp_guard_flow::control::{status_text, ControlRequest};

use crate::abi::{self, log_level, ModuleBuffer, ModuleHeader};
use crate::config::{ConfigError, Shared};
use crate::host::log;
use mcp_guard_flow::checkpoints::{CheckpointAnswer, CheckpointSchedule};
use mcp_guard_flow::metric_names::FetchResult;

/// Response header with the served version (covered by the signature).
const VERSION_HEADER: &str = "x-bundle-version";

/// The one event the timer posts: "a fetch is due".
pub const EVENT_FETCH: u64 = 1;

/// Envoy's config scheduler; Envoy allows commits from any thread.
struct Scheduler(abi::ConfigSchedulerPtr);

// SAFETY: `commit` is documented thread-safe; `delete` runs once, from the
// config-destroy hook after the timer thread was joined.
unsafe impl Send for Scheduler {}
// SAFETY: as above.
unsafe impl std::marker::Sync for Scheduler {}

/// When the next fetch is due; shared with the timer thread.
#[derive(Default)]
struct Clock {
    due: Option<Instant>,
    stop: bool,
}

/// The timer: a due time, a condition variable, the scheduler it posts to.
struct Timer {
    clock: Mutex<Clock>,
    wake: Condvar,
    scheduler: Scheduler,
}

impl Timer {
    fn arm(&self, delay: Duration) {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        clock.due = Some(Instant::now() + delay);
        self.wake.notify_all();
    }

    /// The thread: wait for the due time, post, repeat until stopped.
    fn run(&self) {
        let mut clock = self.clock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if clock.stop {
                return;
            }
            match clock.due {
                Some(due) if Instant::now() >= due => {
                    clock.due = None;
                    // SAFETY: a live scheduler (deleted only after join).
                    unsafe {
                        abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                            self.scheduler.0,
                            EVENT_FETCH,
                        )
                    };
                }
                Some(due) => {
                    let wait = due.saturating_duration_since(Instant::now());
                    clock = self
                        .wake
                        .wait_timeout(clock, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => {
                    clock = self
                        .wake
                        .wait(clock)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// Fetch state, touched only on the main thread (the mutex is for the
/// type system: the hooks that use it all run there).
struct Fetcher {
    control: ControlConfig,
    trusted: Vec<VerifyingKey>,
    in_flight: Option<u64>,
    backoff_ms: u64,
    instance: String,
    status: Option<StatusReport>,
    reported: Option<StatusReport>,
    report_in_flight: Option<(u64, StatusReport)>,
    /// Checkpoint pace per decision chain (one chain per worker thread).
    checkpoints: BTreeMap<String, CheckpointSchedule>,
    /// This Envoy's pod (`POD_NAME` in its environment), when known.
    pod: Option<String>,
    /// What went wrong on the last fetch, sent with the next one.
    last_error: Option<LastError>,
}

/// Sync state of one configuration.
pub struct Sync {
    fetcher: Mutex<Fetcher>,
    timer: Option<Arc<Timer>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Outcome of one fetch, for scheduling the next.
enum Fetched {
    New,
    Same,
    Failed,
}

/// An answer of the control service, as the callout hook delivers it.
pub struct Answer {
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body, slices joined.
    pub body: Vec<u8>,
    /// The callout completed (not reset, not over the buffer limit).
    pub completed: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Sync {
    /// Checks the control settings; no thread yet.
    pub fn new(control: ControlConfig) -> Result<Self, ConfigError> {
        let mut trusted = Vec::new();
        for (index, key) in control.public_keys.iter().enumerate() {
            trusted.push(
                signing::verifying_key_from_text(key).map_err(|e| ConfigError::Key {
                    index,
                    detail: e.to_string(),
                })?,
            );
        }
        let instance = control
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("envoy-{}", std::process::id()));
        Ok(Self {
            fetcher: Mutex::new(Fetcher {
                backoff_ms: control.retry_interval_ms,
                control,
                trusted,
                in_flight: None,
                instance,
                status: None,
                reported: None,
                report_in_flight: None,
                checkpoints: BTreeMap::new(),
                pod: std::env::var("POD_NAME")
                    .ok()
                    .filter(|pod| fleet::valid_pod(pod)),
                last_error: None,
            }),
            timer: None,
            thread: Mutex::new(None),
        })
    }

    /// Creates the scheduler and starts the timer with the first fetch due
    /// at once (it runs once Envoy's main loop does).
    pub fn start(&mut self, config: crate::config::ConfigPtr) -> std::io::Result<()> {
        // SAFETY: called from the config-new hook with Envoy's live config.
        let scheduler = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(config.0)
        };
        let timer = Arc::new(Timer {
            clock: Mutex::new(Clock {
                due: Some(Instant::now()),
                stop: false,
            }),
            wake: Condvar::new(),
            scheduler: Scheduler(scheduler),
        });
        let runner = Arc::clone(&timer);
        let handle = std::thread::Builder::new()
            .name("mcp-guard-sync".into())
            .spawn(move || runner.run());
        self.timer = Some(timer);
        match handle {
            Ok(handle) => {
                *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Stops and joins the timer, then frees the scheduler (config-destroy
    /// hook, main thread). Callouts still in flight are Envoy's to cancel.
    pub fn stop(&self) {
        let Some(timer) = &self.timer else {
            return;
        };
        {
            let mut clock = timer.clock.lock().unwrap_or_else(PoisonError::into_inner);
            clock.stop = true;
            timer.wake.notify_all();
        }
        if let Some(handle) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = handle.join();
        }
        // SAFETY: the only thread that committed is gone; deleted once.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                timer.scheduler.0,
            )
        };
    }

    fn arm(&self, delay_ms: u64) {
        if let Some(timer) = &self.timer {
            timer.arm(Duration::from_millis(delay_ms));
        }
    }

    fn fetcher(&self) -> std::sync::MutexGuard<'_, Fetcher> {
        self.fetcher.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fetch is due (main thread): dispatch it unless one is in flight.
    pub fn on_due(&self, shared: &Shared) {
        let active = shared.active();
        let etag = active.as_ref().and_then(|a| a.etag.clone());
        let mut f = self.fetcher();
        maybe_checkpoint(shared, &mut f);
        let checkpoint_ms = f.control.checkpoint_interval_ms;
        if f.in_flight.is_some() {
            // A long poll is out: come back for the next checkpoint.
            drop(f);
            if checkpoint_ms > 0 {
                self.arm(checkpoint_ms);
            }
            return;
        }
        let identity = PollIdentity {
            instance: f.instance.clone(),
            pod: f.pod.clone(),
            active: active.as_ref().map(|a| a.policy.bundle().version),
            last_error: f.last_error,
        };
        let request = ControlRequest::fetch(&f.control, etag.as_deref(), Some(&identity));
        match callout(
            shared,
            &f.control.cluster,
            &request.headers(),
            request.body().unwrap_or_default(),
            request.timeout_ms,
        ) {
            Ok(id) => {
                f.in_flight = Some(id);
                drop(f);
                if checkpoint_ms > 0 {
                    self.arm(checkpoint_ms);
                }
            }
            Err(code) => {
                shared.metrics.count_fetch(shared.envoy, FetchResult::Error);
                f.last_error = Some(LastError::FetchUnreachable);
                log(
                    log_level::WARN,
                    &format!("bundle fetch not dispatched (callout status {code})"),
                );
                let delay = f.backoff_ms;
                f.backoff_ms = (f.backoff_ms * 2).min(f.control.max_backoff_ms);
                drop(f);
                self.arm(delay);
            }
        }
    }

    /// A callout finished (main thread).
    pub fn on_answer(&self, shared: &Shared, id: u64, answer: &Answer) {
        let mut f = self.fetcher();
        if checkpoint_answered(&mut f, id, answer) {
            return;
        }
        if f.report_in_flight.as_ref().map(|(t, _)| *t) == Some(id) {
            let sent = f.report_in_flight.take().map(|(_, s)| s);
            let code = answer.header(":status");
            if answer.completed && code.is_some_and(|c| c.starts_with('2')) {
                f.reported = sent;
            } else {
                log(
                    log_level::WARN,
                    &format!(
                        "status report not accepted (status {}); will resend",
                        status_text(code.as_ref())
                    ),
                );
            }
            return;
        }
        if f.in_flight != Some(id) {
            return;
        }
        f.in_flight = None;
        let outcome = fetched(shared, &mut f, answer);
        if matches!(outcome, Fetched::New | Fetched::Same) {
            f.last_error = None;
        }
        let long_polling = shared.active().is_some_and(|a| a.etag.is_some());
        let delay = match outcome {
            Fetched::New | Fetched::Same => {
                f.backoff_ms = f.control.retry_interval_ms;
                if long_polling && f.control.long_poll_secs > 0 {
                    0
                } else {
                    f.control.poll_interval_ms
                }
            }
            Fetched::Failed => {
                let delay = f.backoff_ms;
                f.backoff_ms = (f.backoff_ms * 2).min(f.control.max_backoff_ms);
                delay
            }
        };
        maybe_report(shared, &mut f);
        drop(f);
        self.arm(delay);
    }
}

/// Verifies and activates a fetched bundle (the wasm filter's rules).
fn fetched(shared: &Shared, f: &mut Fetcher, answer: &Answer) -> Fetched {
    match (answer.completed, answer.header(":status")) {
        (true, Some("200")) => {}
        (true, Some("304")) => {
            shared
                .metrics
                .count_fetch(shared.envoy, FetchResult::NotModified);
            return Fetched::Same;
        }
        (completed, status) => {
            shared.metrics.count_fetch(shared.envoy, FetchResult::Error);
            f.last_error = Some(LastError::failed_fetch(completed && status.is_some()));
            log(
                log_level::WARN,
                &format!(
                    "bundle fetch failed (status {}); keeping the active bundle",
                    status_text(status.as_ref())
                ),
            );
            return Fetched::Failed;
        }
    }
    let active_version = shared.active_version();
    let checked = accept::check(
        &Served {
            body: &answer.body,
            signature: answer.header(SIGNATURE_HEADER),
            version: answer.header(VERSION_HEADER),
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
            shared
                .metrics
                .count_fetch(shared.envoy, FetchResult::NotModified);
            if let (None, Some(version)) = (&f.status, active_version) {
                f.status = Some(StatusReport::new(&f.instance, Some(version), None, None));
            }
            Fetched::Same
        }
        Ok(Accepted::New(bundle)) => {
            let version = bundle.version;
            let etag = answer.header("etag").map(str::to_owned);
            if shared.activate(*bundle, etag, "control service") {
                shared.metrics.count_fetch(shared.envoy, FetchResult::Ok);
                f.status = Some(StatusReport::new(&f.instance, Some(version), None, None));
                Fetched::New
            } else {
                Fetched::Failed
            }
        }
        Err(rejection) => {
            shared
                .metrics
                .count_fetch(shared.envoy, FetchResult::Rejected);
            log(
                log_level::ERROR,
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
            f.last_error = Some(LastError::Rejected(rejection.code));
            f.status = Some(StatusReport::new(
                &f.instance,
                rejection.version,
                Some(rejection.code),
                active_version,
            ));
            Fetched::Failed
        }
    }
}

/// Reports this instance's state when it changed since the last accepted
/// report (one in flight at a time; a failed one is resent after the next
/// fetch).
fn maybe_report(shared: &Shared, f: &mut Fetcher) {
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
    match callout(
        shared,
        &f.control.cluster,
        &request.headers(),
        request.body().unwrap_or_default(),
        request.timeout_ms,
    ) {
        Ok(id) => f.report_in_flight = Some((id, status)),
        Err(code) => log(
            log_level::DEBUG,
            &format!("status report not dispatched (callout status {code})"),
        ),
    }
}

/// Posts the head of every decision chain of this process that is due
/// (see [`CheckpointSchedule`]).
fn maybe_checkpoint(shared: &Shared, f: &mut Fetcher) {
    let now = crate::host::now_ms();
    for head in crate::trail::heads() {
        let interval = f.control.checkpoint_interval_ms;
        let schedule = f.checkpoints.entry(head.chain.clone()).or_default();
        if !schedule.due(&head, now, interval) {
            continue;
        }
        let Some(request) = ControlRequest::checkpoint(&f.control, &head) else {
            continue;
        };
        match callout(
            shared,
            &f.control.cluster,
            &request.headers(),
            request.body().unwrap_or_default(),
            request.timeout_ms,
        ) {
            Ok(id) => schedule.posted(id, &head, now),
            Err(code) => {
                schedule.not_sent(now);
                log(
                    log_level::DEBUG,
                    &format!("checkpoint not dispatched (callout status {code})"),
                );
            }
        }
    }
}

/// Handles a checkpoint answer; `false` when `id` is no checkpoint post.
fn checkpoint_answered(f: &mut Fetcher, id: u64, answer: &Answer) -> bool {
    let status = answer
        .completed
        .then(|| answer.header(":status").and_then(|s| s.parse::<u32>().ok()))
        .flatten();
    for schedule in f.checkpoints.values_mut() {
        match schedule.answered(id, status) {
            None => continue,
            Some(CheckpointAnswer::Countersigned) => {}
            Some(CheckpointAnswer::Conflict) => log(
                log_level::ERROR,
                "checkpoint refused (409): the control service holds another head for this decision chain",
            ),
            Some(CheckpointAnswer::Failed) => log(
                log_level::WARN,
                &format!("checkpoint not countersigned (status {})", status_text(status.as_ref())),
            ),
        }
        return true;
    }
    false
}

/// Sends one request to `cluster` from the configuration; the callout id.
fn callout(
    shared: &Shared,
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Result<u64, u32> {
    let mut headers: Vec<ModuleHeader> = headers
        .iter()
        .map(|(k, v)| ModuleHeader::of(k, v))
        .collect();
    let mut id = 0u64;
    // SAFETY: main thread (scheduled or callout hook); every buffer
    // outlives the call.
    let code = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
            shared.envoy.0,
            &mut id,
            ModuleBuffer::of(cluster.as_bytes()),
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            timeout_ms,
        )
    };
    if code == abi::CALLOUT_INIT_SUCCESS {
        Ok(id)
    } else {
        Err(code)
    }
}
