//! Runs a real Envoy (V8) with the mcp-guard filter as a child process.

use std::io::Read;
use std::path::{Path, PathBuf};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{StackError, Target};

/// What to fill into the Envoy configuration template.
#[derive(Debug, Clone)]
pub struct EnvoySettings {
    /// Which build of the filter Envoy loads, and from where.
    pub target: Target,
    /// JWKS the `jwt_authn` provider trusts.
    pub jwks: String,
    /// Plugin configuration JSON handed to the filter.
    pub plugin_config: String,
    /// Port of the model upstream.
    pub upstream_port: u16,
    /// Port of the HTTP/2 upstream behind `/h2/` (a closed port when the
    /// stack runs none).
    pub h2_upstream_port: u16,
    /// Port of the control service.
    pub control_port: u16,
    /// Port of the OAuth token endpoint (cluster `mcp_guard_token`; a
    /// closed port when the stack runs none).
    pub token_port: u16,
    /// Port of the global rate-limit service (cluster
    /// `mcp_guard_ratelimit`, HTTP/2; a closed port when none runs).
    pub ratelimit_port: u16,
    /// Envoy's `allow_on_headers_stop_iteration` on the Wasm filter
    /// (false: as an Istio `WasmPlugin` runs it).
    pub headers_stop_iteration: bool,
    /// Worker threads.
    pub concurrency: u32,
    /// Serve the ingress listener over mutual TLS (workload identity
    /// tests); plain HTTP when `None`.
    pub downstream_tls: Option<DownstreamTls>,
    /// Extra clusters a bundle's `routes` name, as (name, port on
    /// 127.0.0.1).
    pub route_clusters: Vec<(String, u16)>,
}

/// One static cluster on loopback, as a YAML list entry under `clusters`.
fn cluster_yaml(name: &str, port: u16) -> String {
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      \
         cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            \
         address:\n              socket_address: {{ address: 127.0.0.1, port_value: {port} }}\n"
    )
}

/// PEM files of an mTLS listener: Envoy's certificate and key, and the CA
/// client certificates must chain to.
#[derive(Debug, Clone)]
pub struct DownstreamTls {
    /// Server certificate chain (PEM file).
    pub cert_chain: PathBuf,
    /// Server private key (PEM file).
    pub private_key: PathBuf,
    /// CA that issues accepted client certificates (PEM file).
    pub client_ca: PathBuf,
}

impl DownstreamTls {
    /// The filter chain's `transport_socket`, as one flow-style YAML
    /// mapping entry: client certificates required and validated against
    /// `client_ca`.
    fn transport_socket(&self) -> String {
        let file = |p: &Path| {
            format!(
                "{{filename: '{}'}}",
                yaml_single_quoted(&p.display().to_string())
            )
        };
        format!(
            "transport_socket: {{name: envoy.transport_sockets.tls, typed_config: {{\
             '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, \
             require_client_certificate: true, common_tls_context: {{\
             tls_certificates: [{{certificate_chain: {}, private_key: {}}}], \
             validation_context: {{trusted_ca: {}}}}}}}}}",
            file(&self.cert_chain),
            file(&self.private_key),
            file(&self.client_ca)
        )
    }
}

/// A running Envoy; killed when dropped.
pub struct Envoy {
    child: Child,
    /// Admin address, `127.0.0.1:PORT`.
    pub admin: String,
    /// Port of the ingress listener.
    pub port: u16,
    /// Access log file.
    pub access_log: PathBuf,
    /// Envoy's own log file.
    pub log: PathBuf,
    /// Rendered configuration file.
    pub config: PathBuf,
}

/// Escapes a value for a single-quoted YAML scalar.
fn yaml_single_quoted(value: &str) -> String {
    value.replace('\'', "''")
}

/// Fills the template's `{{NAME}}` placeholders.
pub fn render(template: &str, settings: &EnvoySettings, access_log: &Path) -> String {
    template
        .replace("{{ACCESS_LOG}}", &access_log.display().to_string())
        .replace("{{JWKS}}", &yaml_single_quoted(&settings.jwks))
        .replace("{{WASM}}", &settings.target.module().display().to_string())
        .replace(
            "{{PLUGIN_CONFIG}}",
            &yaml_single_quoted(&settings.plugin_config),
        )
        .replace("{{UPSTREAM_PORT}}", &settings.upstream_port.to_string())
        .replace(
            "{{H2_UPSTREAM_PORT}}",
            &settings.h2_upstream_port.to_string(),
        )
        .replace("{{CONTROL_PORT}}", &settings.control_port.to_string())
        .replace("{{TOKEN_PORT}}", &settings.token_port.to_string())
        .replace("{{RATELIMIT_PORT}}", &settings.ratelimit_port.to_string())
        .replace(
            "{{HEADERS_STOP_ITERATION}}",
            if settings.headers_stop_iteration {
                "true"
            } else {
                "false"
            },
        )
        .replace(
            "{{ROUTE_CLUSTERS}}",
            &settings
                .route_clusters
                .iter()
                .map(|(name, port)| cluster_yaml(name, *port))
                .collect::<String>(),
        )
        .replace(
            "{{DOWNSTREAM_TLS}}",
            &settings
                .downstream_tls
                .as_ref()
                .map(DownstreamTls::transport_socket)
                .unwrap_or_default(),
        )
}

impl Envoy {
    /// Envoy's process id (the native module's default instance id is
    /// `envoy-<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Renders the target's template into `dir` and starts Envoy, returning once
    /// its listener is bound. Envoy runs in its own process group so a
    /// Ctrl-C aimed at the parent does not race its orderly stop.
    pub fn start(
        envoy_bin: &Path,
        settings: &EnvoySettings,
        dir: &Path,
    ) -> Result<Self, StackError> {
        if !envoy_bin.exists() {
            return Err(StackError::Missing(format!(
                "Envoy not found at {} (run `cargo xtask envoy` or set MCP_GUARD_ENVOY)",
                envoy_bin.display()
            )));
        }
        let module = settings.target.module();
        if !module.exists() {
            return Err(StackError::Missing(format!(
                "filter module not found at {} (run `cargo xtask build-wasm` or set MCP_GUARD_WASM; \
                 for the native module build mcp-guard-native and set MCP_GUARD_NATIVE)",
                module.display()
            )));
        }
        let template_text = std::fs::read_to_string(settings.target.template())?;
        let access_log = dir.join("access.log");
        let log = dir.join("envoy.log");
        let config = dir.join("envoy.yaml");
        let admin_file = dir.join("admin-address");
        std::fs::write(&config, render(&template_text, settings, &access_log))?;
        std::fs::write(&access_log, b"")?;
        let log_file = std::fs::File::create(&log)?;
        let mut command = Command::new(envoy_bin);
        command
            .arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg(settings.concurrency.to_string())
            .arg("--file-flush-interval-msec")
            .arg("20")
            .arg("--log-level")
            .arg("info")
            .stdin(Stdio::null())
            .env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                module.parent().unwrap_or(Path::new(".")),
            )
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
            // SAFETY: prctl is async-signal-safe; it asks the kernel to
            // stop Envoy if the thread that started it dies, so a crashed
            // test or demo never leaves an Envoy behind.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        let child = command.spawn()?;
        let mut envoy = Self {
            child,
            admin: String::new(),
            port: 0,
            access_log,
            log,
            config,
        };
        envoy.admin = envoy.wait_for_admin(&admin_file)?;
        envoy.port = envoy.wait_for_listener()?;
        Ok(envoy)
    }

    fn check_alive(&mut self) -> Result<(), StackError> {
        if let Some(status) = self.child.try_wait()? {
            let mut log = String::new();
            let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut log));
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            return Err(StackError::EnvoyExited(format!(
                "{status}; last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(())
    }

    fn wait_for_admin(&mut self, admin_file: &Path) -> Result<String, StackError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            self.check_alive()?;
            if let Ok(text) = std::fs::read_to_string(admin_file) {
                if !text.trim().is_empty() {
                    return Ok(text.trim().to_string());
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(StackError::Timeout("Envoy admin address".into()))
    }

    fn wait_for_listener(&mut self) -> Result<u16, StackError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            self.check_alive()?;
            if let Ok(text) =
                crate::http::get_text(&format!("http://{}/listeners?format=json", self.admin))
            {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let port = json["listener_statuses"][0]["local_address"]["socket_address"]
                    ["port_value"]
                    .as_u64();
                if let Some(port) = port.filter(|p| *p > 0) {
                    return u16::try_from(port)
                        .map_err(|_| StackError::Timeout("listener port".into()));
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Err(StackError::Timeout("Envoy listener".into()))
    }

    /// The value of one admin `/stats` entry, e.g. `wasmcustom.mcp_pii_blocked_total` (labelled metrics:
    /// [`crate::prometheus`]).
    pub fn stat(&self, name: &str) -> Option<u64> {
        let text = crate::http::get_text(&format!("http://{}/stats?filter=^{}$", self.admin, name))
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Envoy's own log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Access-log lines so far, parsed as JSON.
    pub fn access_log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Lines of the `json_format` log with the flat keys (written for
    /// every stream, also those the filter never saw).
    pub fn flat_log_lines(&self) -> Vec<serde_json::Value> {
        let mut path = self.access_log.clone().into_os_string();
        path.push(".flat");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Stops Envoy: SIGTERM, then SIGKILL if it has not exited in 5 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}
