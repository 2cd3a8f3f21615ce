//! The whole mcp-guard stack on loopback: control service and demo upstream
//! (in-process, real HTTP), and a real Envoy running the filter.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use mcp_guard_control::BundleStore;

use crate::envoy::{Envoy, EnvoySettings};
use crate::{paths, tokens, StackError};

/// The bundle the demo serves, also used by the end-to-end tests.
pub const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Bundles the control service serves, as (name, JSON).
    pub bundles: Vec<(String, String)>,
    /// Which bundle the filter subscribes to.
    pub bundle_name: String,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// Directory for the rendered config and logs; a fresh temp dir if `None`.
    pub work_dir: Option<PathBuf>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            bundles: vec![("demo".into(), DEMO_BUNDLE.into())],
            bundle_name: "demo".into(),
            concurrency: 2,
            work_dir: None,
        }
    }
}

/// A running stack; everything stops when it is dropped.
pub struct Stack {
    /// The Envoy in front of the upstream.
    pub envoy: Envoy,
    /// Port of the demo upstream.
    pub upstream_port: u16,
    /// Port of the control service.
    pub control_port: u16,
    /// Where configs and logs are.
    pub work_dir: PathBuf,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let store = BundleStore::from_bundles(
            options
                .bundles
                .iter()
                .map(|(n, b)| (n.clone(), b.clone().into_bytes())),
        )
        .map_err(|e| StackError::Bundle(e.to_string()))?;
        let (shutdown, signal) = watch::channel(false);
        let (control_port, upstream_port) = runtime.block_on(async {
            let control = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let ports = (control.local_addr()?.port(), upstream.local_addr()?.port());
            tokio::spawn(mcp_guard_control::serve(
                control,
                Arc::new(store),
                stopped(signal.clone()),
            ));
            tokio::spawn(mcp_guard_demo_upstream::serve(upstream, stopped(signal)));
            Ok::<_, std::io::Error>(ports)
        })?;
        let plugin_config = serde_json::json!({
            "control": {
                "cluster": "mcp_guard_control",
                "bundle": options.bundle_name,
                "retry_interval_ms": 50,
                "allow_unsigned": true,
            }
        });
        let settings = EnvoySettings {
            wasm: paths::wasm_path(),
            jwks: tokens::DEMO_JWKS.replace('\n', ""),
            plugin_config: plugin_config.to_string(),
            upstream_port,
            control_port,
            concurrency: options.concurrency,
        };
        let envoy = Envoy::start(
            &paths::envoy_path(),
            &paths::envoy_template(),
            &settings,
            &work_dir,
        )?;
        let stack = Self {
            envoy,
            upstream_port,
            control_port,
            work_dir,
            shutdown,
            runtime: Some(runtime),
        };
        stack.wait_until_enforcing(options.concurrency)?;
        Ok(stack)
    }

    /// Waits until every worker VM (and the main-thread VM) logged the
    /// activation of a bundle fetched from the control service.
    fn wait_until_enforcing(&self, concurrency: u32) -> Result<(), StackError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let wanted = concurrency as usize + 1;
        while Instant::now() < deadline {
            let activations = self.envoy.log_text().matches("activated bundle").count();
            if activations >= wanted {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(StackError::Timeout(format!(
            "bundle activation on {wanted} VMs; Envoy log:\n{}",
            self.envoy.log_text()
        )))
    }

    /// Base URL of the Envoy listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.envoy.port)
    }

    /// Stops Envoy and the in-process servers.
    pub fn stop(&mut self) {
        self.envoy.stop();
        let _ = self.shutdown.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Completes once the stack's shutdown signal is raised.
async fn stopped(mut signal: watch::Receiver<bool>) {
    let _ = signal.wait_for(|stop| *stop).await;
}
