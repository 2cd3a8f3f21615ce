//! The whole mcp-guard stack on loopback: the control service (persistent,
//! signing, behind a proxy that can tamper with bundles in transit) and the
//! demo upstream, in-process over real HTTP, and a real Envoy running the
//! filter.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use mcp_guard_control::{BundleStore, Options, Tokens};
use mcp_guard_engine::signing::{self, SigningKey};

use crate::envoy::{DownstreamTls, Envoy, EnvoySettings};
use crate::http::{send, Reply};
use crate::tamper::{self, TamperSwitch};
use crate::{paths, tokens, StackError, Target};

/// The bundle the demo serves, also used by the end-to-end tests.
pub const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");

/// The push token the stack's control service accepts (for every bundle).
pub const PUSH_TOKEN: &str = "e2e-push-token-not-a-secret";

/// Where the `/h2/` route points when the stack runs no HTTP/2 upstream:
/// port 1 on loopback, which nothing here listens on (connections fail,
/// Envoy answers 503).
const CLOSED_PORT: u16 = 1;

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Bundles the control service starts with, as (name, JSON).
    pub bundles: Vec<(String, String)>,
    /// Which bundle the filter subscribes to.
    pub bundle_name: String,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// Directory for configs, logs and the control data; a fresh temp dir if `None`.
    pub work_dir: Option<PathBuf>,
    /// Long-poll wait the filter asks for (0: plain polling).
    pub long_poll_secs: u64,
    /// Polling period when not long-polling.
    pub poll_interval_ms: u64,
    /// Let the in-process control service log to stderr (the demo does;
    /// tests keep their output readable).
    pub control_logs: bool,
    /// Port of an HTTP/2 upstream Envoy routes `/h2/` to; `None` points
    /// that route at a closed port.
    pub h2_upstream_port: Option<u16>,
    /// Which build of mcp-guard Envoy runs.
    pub target: Target,
    /// Port of an OAuth token endpoint (cluster `mcp_guard_token`);
    /// `None` points that cluster at a closed port.
    pub token_port: Option<u16>,
    /// Port of the global rate-limit service (cluster
    /// `mcp_guard_ratelimit`); `None` points it at a closed port.
    pub ratelimit_port: Option<u16>,
    /// Extra top-level fields of the plugin configuration (e.g.
    /// `token_exchange`), merged next to `control`.
    pub plugin_extra: serde_json::Map<String, serde_json::Value>,
    /// Extra members of the plugin configuration's `control` section.
    pub control_extra: serde_json::Map<String, serde_json::Value>,
    /// Serve the ingress listener over mutual TLS.
    pub downstream_tls: Option<DownstreamTls>,
    /// Run the wasm filter as an Istio `WasmPlugin` would: Envoy's
    /// `allow_on_headers_stop_iteration` off and no
    /// `headers_stop_iteration` in the plugin configuration. Default
    /// false: the shipped template (both on).
    pub istio_mode: bool,
    /// Extra upstream clusters a bundle's `routes` send requests to,
    /// each served as the stack starts.
    pub route_clusters: Vec<RouteCluster>,
}

/// An extra cluster for routing by policy.
#[derive(Debug, Clone)]
pub struct RouteCluster {
    /// Envoy cluster name (what a route rule names).
    pub name: String,
    /// What answers there.
    pub upstream: RouteUpstream,
}

/// What serves a [`RouteCluster`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteUpstream {
    /// A demo upstream whose answers carry the cluster name in
    /// `x-demo-upstream`.
    Demo,
    /// A demo upstream answering every request with this status.
    Failing(u16),
    /// Nothing (a closed port): Envoy answers 503 itself.
    Closed,
}

impl RouteCluster {
    /// A cluster served by a demo upstream named after it.
    pub fn demo(name: &str) -> Self {
        Self {
            name: name.into(),
            upstream: RouteUpstream::Demo,
        }
    }
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            bundles: vec![("demo".into(), DEMO_BUNDLE.into())],
            bundle_name: "demo".into(),
            concurrency: 2,
            work_dir: None,
            long_poll_secs: 30,
            poll_interval_ms: 5_000,
            control_logs: false,
            h2_upstream_port: None,
            target: Target::wasm(),
            token_port: None,
            ratelimit_port: None,
            plugin_extra: serde_json::Map::new(),
            istio_mode: false,
            control_extra: serde_json::Map::new(),
            downstream_tls: None,
            route_clusters: Vec::new(),
        }
    }
}

/// The in-process control service over its persistent data directory.
struct Control {
    runtime: tokio::runtime::Runtime,
    data_dir: PathBuf,
    signer: SigningKey,
    port: u16,
    stop: Option<watch::Sender<bool>>,
}

/// A running stack; everything stops when it is dropped.
pub struct Stack {
    /// The Envoy in front of the upstream.
    pub envoy: Envoy,
    /// Port of the demo upstream.
    pub upstream_port: u16,
    /// Port of the control service itself (pushes, history).
    pub control_port: u16,
    /// Port Envoy fetches bundles from (the tampering proxy).
    pub proxy_port: u16,
    /// Where configs and logs are.
    pub work_dir: PathBuf,
    /// Turns in-transit tampering of served bundles on and off.
    pub tamper: TamperSwitch,
    /// Which build of mcp-guard Envoy runs.
    pub target: Target,
    control: Option<Control>,
    shutdown: watch::Sender<bool>,
}

fn fresh_dir() -> Result<PathBuf, StackError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("mcp-guard-stack-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn tokens() -> Result<Tokens, StackError> {
    let file = serde_json::json!({"tokens": [{
        "id": "e2e", "sha256": mcp_guard_control::auth::token_digest_hex(PUSH_TOKEN), "bundles": ["*"]}]});
    Tokens::parse(file.to_string().as_bytes()).map_err(StackError::Bundle)
}

/// Completes once a shutdown signal is raised.
async fn stopped(mut signal: watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}

impl Control {
    /// Serves the persistent store on `port` (0: any free port).
    fn start_on(&mut self, port: u16) -> Result<(), StackError> {
        let (store, rejected) = BundleStore::open(&self.data_dir, self.signer.clone())
            .map_err(|e| StackError::Bundle(e.to_string()))?;
        if let Some(first) = rejected.first() {
            return Err(StackError::Bundle(format!("control data: {first}")));
        }
        let (stop, signal) = watch::channel(false);
        let options = Options {
            tokens: tokens()?,
            jwks_refresh: None,
            ..Options::default()
        };
        let listener = self.runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(listener) => break Ok(listener),
                    Err(e) if Instant::now() > deadline => break Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })?;
        self.port = listener.local_addr()?.port();
        self.runtime.spawn(mcp_guard_control::serve_with(
            listener,
            Arc::new(store),
            options,
            stopped(signal),
        ));
        self.stop = Some(stop);
        Ok(())
    }

    /// Stops serving and waits until the port no longer answers.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Stack {
    /// Starts the stack and returns once every worker enforces the bundle.
    pub fn start(options: StackOptions) -> Result<Self, StackError> {
        let work_dir = match &options.work_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                dir.clone()
            }
            None => fresh_dir()?,
        };
        if options.control_logs {
            mcp_guard_control::log::init("info");
        }
        let seed_dir = work_dir.join("seed");
        std::fs::create_dir_all(&seed_dir)?;
        for (name, json) in &options.bundles {
            std::fs::write(seed_dir.join(format!("{name}.json")), json)?;
        }
        let mut control = Control {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            data_dir: work_dir.join("control-data"),
            signer: mcp_guard_control::keys::generate(),
            port: 0,
            stop: None,
        };
        let (seeded, _) = BundleStore::open(&control.data_dir, control.signer.clone())
            .map_err(|e| StackError::Bundle(e.to_string()))?;
        let rejected = seeded
            .seed_dir(&seed_dir)
            .map_err(|e| StackError::Bundle(e.to_string()))?;
        if let Some(first) = rejected.first() {
            return Err(StackError::Bundle(first.to_string()));
        }
        drop(seeded);
        control.start_on(0)?;
        let (shutdown, signal) = watch::channel(false);
        let tamper = TamperSwitch::default();
        let switch = tamper.clone();
        let control_port = control.port;
        let ports_and_routes = control.runtime.block_on(async {
            let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let ports = (proxy.local_addr()?.port(), upstream.local_addr()?.port());
            tokio::spawn(tamper::serve(proxy, control_port, switch));
            tokio::spawn(mcp_guard_demo_upstream::serve(
                upstream,
                stopped(signal.clone()),
            ));
            let mut routed = Vec::new();
            for cluster in &options.route_clusters {
                let fail_status = match cluster.upstream {
                    RouteUpstream::Closed => {
                        routed.push((cluster.name.clone(), CLOSED_PORT));
                        continue;
                    }
                    RouteUpstream::Demo => None,
                    RouteUpstream::Failing(status) => Some(status),
                };
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                routed.push((cluster.name.clone(), listener.local_addr()?.port()));
                let instance = mcp_guard_demo_upstream::Instance {
                    name: cluster.name.clone(),
                    fail_status,
                };
                tokio::spawn(mcp_guard_demo_upstream::serve_as(
                    listener,
                    instance,
                    stopped(signal.clone()),
                ));
            }
            Ok::<_, std::io::Error>((ports, routed))
        })?;
        let ((proxy_port, upstream_port), route_clusters) =
            (ports_and_routes.0, ports_and_routes.1);
        let mut plugin_config = serde_json::json!({
            "control": {
                "cluster": "mcp_guard_control",
                "bundle": options.bundle_name,
                "long_poll_secs": options.long_poll_secs,
                "poll_interval_ms": options.poll_interval_ms,
                "retry_interval_ms": 50,
                "max_backoff_ms": 500,
                "public_keys": [signing::public_key_base64(&control.signer.verifying_key())],
            }
        });
        if let Some(control) = plugin_config["control"].as_object_mut() {
            control.extend(options.control_extra.clone());
        }
        if let Some(config) = plugin_config.as_object_mut() {
            if !options.istio_mode {
                config.insert("headers_stop_iteration".into(), true.into());
            }
            config.extend(options.plugin_extra.clone());
        }
        let settings = EnvoySettings {
            target: options.target.clone(),
            jwks: tokens::DEMO_JWKS.replace('\n', ""),
            plugin_config: plugin_config.to_string(),
            upstream_port,
            h2_upstream_port: options.h2_upstream_port.unwrap_or(CLOSED_PORT),
            control_port: proxy_port,
            token_port: options.token_port.unwrap_or(CLOSED_PORT),
            ratelimit_port: options.ratelimit_port.unwrap_or(CLOSED_PORT),
            headers_stop_iteration: !options.istio_mode,
            concurrency: options.concurrency,
            downstream_tls: options.downstream_tls.clone(),
            route_clusters,
        };
        let envoy = Envoy::start(&paths::envoy_path(), &settings, &work_dir)?;
        let stack = Self {
            envoy,
            upstream_port,
            control_port,
            proxy_port,
            work_dir,
            tamper,
            target: options.target,
            control: Some(control),
            shutdown,
        };
        stack.wait_for_version(1, options.concurrency, Duration::from_secs(30))?;
        Ok(stack)
    }

    /// Stops the control service (as a crash or a deploy would); Envoy keeps
    /// what it enforces.
    pub fn stop_control(&mut self) {
        if let Some(control) = &mut self.control {
            control.stop();
        }
    }

    /// Starts the control service again on the same port and data: every
    /// stored version is recovered from disk.
    pub fn restart_control(&mut self) -> Result<(), StackError> {
        let control = self
            .control
            .as_mut()
            .ok_or_else(|| StackError::Missing("control service".into()))?;
        control.stop();
        let port = control.port;
        control.start_on(port)
    }

    /// Restarts the control service signing with `key` from now on (every
    /// stored version is re-signed with it at load): with a key the
    /// filter does not trust, what it serves next is refused.
    pub fn restart_control_with_key(&mut self, key: SigningKey) -> Result<(), StackError> {
        let control = self
            .control
            .as_mut()
            .ok_or_else(|| StackError::Missing("control service".into()))?;
        control.signer = key;
        self.restart_control()
    }

    /// The control service's current signing key.
    pub fn control_key(&self) -> Option<SigningKey> {
        self.control.as_ref().map(|c| c.signer.clone())
    }

    /// Pushes a bundle to the control service with the stack's token.
    pub fn push(&self, name: &str, json: &str) -> Result<Reply, StackError> {
        let url = format!("http://127.0.0.1:{}/v1/bundles/{name}", self.control_port);
        send("PUT", &url, Some(PUSH_TOKEN), &[], Some(json))
            .map_err(|e| StackError::Missing(e.to_string()))
    }

    /// GETs a control-service path (history, versions).
    pub fn control_get(&self, path: &str) -> Result<Reply, StackError> {
        let url = format!("http://127.0.0.1:{}{path}", self.control_port);
        send("GET", &url, None, &[], None).map_err(|e| StackError::Missing(e.to_string()))
    }

    /// How many enforcers logged activating exactly `version` (wasm: VMs,
    /// workers plus the main-thread VM; native: filter configurations),
    /// with the latest log timestamp among them.
    pub fn activations(&self, version: u64) -> (usize, Option<String>) {
        let needle = format!("@{version} from ");
        let lines: Vec<String> = self
            .envoy
            .log_text()
            .lines()
            .filter(|l| l.contains("activated bundle") && l.contains(&needle))
            .map(str::to_string)
            .collect();
        let latest = lines
            .iter()
            .filter_map(|l| l.get(1..24).map(str::to_string))
            .max();
        (lines.len(), latest)
    }

    /// Waits until every enforcer (see [`Target::enforcers`]) enforces
    /// `version` (each logs its activation).
    pub fn wait_for_version(
        &self,
        version: u64,
        concurrency: u32,
        timeout: Duration,
    ) -> Result<(), StackError> {
        let deadline = Instant::now() + timeout;
        let wanted = self.target.enforcers(concurrency);
        while Instant::now() < deadline {
            if self.activations(version).0 >= wanted {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(StackError::Timeout(format!(
            "version {version} active on {wanted} VMs; Envoy log:\n{}",
            self.envoy.log_text()
        )))
    }

    /// One of the filter's metrics (`mcp_*`) from Envoy's stats, under the
    /// target's prefix.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.envoy.stat(&self.target.stat(name))
    }

    /// Base URL of the Envoy listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.envoy.port)
    }

    /// Stops Envoy and the in-process servers.
    pub fn stop(&mut self) {
        self.envoy.stop();
        let _ = self.shutdown.send(true);
        if let Some(mut control) = self.control.take() {
            if let Some(stop) = control.stop.take() {
                let _ = stop.send(true);
            }
            control.runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
