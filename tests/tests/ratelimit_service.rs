//! The global rate limit service with REAL Envoy as its client: Envoy's
//! own `envoy.filters.http.ratelimit` filter asks `mcp-guard-ratelimit`
//! (backed by a throwaway `redis-server`) before each request and answers
//! 429 on OVER_LIMIT. One route sends a per-descriptor `limit` override
//! (from dynamic metadata set by `set_metadata`, as mcp-guard's filter
//! sends the bundle's limits); another relies on the service's
//! `--default-limit`. When Redis stops, the service answers UNAVAILABLE and
//! Envoy (failure_mode_deny) refuses with 503; when Redis is back,
//! requests pass again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_guard_e2e::paths;
use mcp_guard_e2e::ratelimit::RateLimitProcess;
use mcp_guard_e2e::redis::Redis;

/// Envoy with a given configuration; killed on drop.
struct Envoy {
    child: Child,
    admin: String,
    port: u16,
    log: PathBuf,
}

impl Envoy {
    fn start(yaml: &str, dir: &Path) -> Self {
        let bin = paths::envoy_path();
        assert!(
            bin.exists(),
            "Envoy not found at {} (cargo xtask envoy, or set MCP_GUARD_ENVOY)",
            bin.display()
        );
        let config = dir.join("envoy.yaml");
        let admin_file = dir.join("admin-address");
        let log = dir.join("envoy.log");
        std::fs::write(&config, yaml).unwrap();
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut envoy = Self {
            child,
            admin: String::new(),
            port: 0,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while envoy.port == 0 {
            assert!(
                Instant::now() < deadline,
                "Envoy did not start:\n{}",
                envoy.log_text()
            );
            if let Ok(Some(status)) = envoy.child.try_wait() {
                panic!("Envoy exited ({status}):\n{}", envoy.log_text());
            }
            if envoy.admin.is_empty() {
                envoy.admin = std::fs::read_to_string(&admin_file)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
            } else if let Ok(text) = mcp_guard_e2e::http::get_text(&format!(
                "http://{}/listeners?format=json",
                envoy.admin
            )) {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let ingress = json["listener_statuses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|l| l["name"] == "ingress");
                if let Some(port) = ingress
                    .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
                {
                    envoy.port = u16::try_from(port).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        envoy
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` with `x-user: user`; the status.
    fn get(&self, path: &str, user: &str) -> u16 {
        self.reply(path, user).status
    }

    /// GET `path` with `x-user: user`.
    fn reply(&self, path: &str, user: &str) -> mcp_guard_e2e::http::Reply {
        mcp_guard_e2e::http::send(
            "GET",
            &format!("http://127.0.0.1:{}{path}", self.port),
            None,
            &[("x-user", user)],
            None,
        )
        .unwrap()
    }

    fn stat(&self, name: &str) -> u64 {
        let text =
            mcp_guard_e2e::http::get_text(&format!("http://{}/stats?filter=^{name}$", self.admin))
                .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Ingress on a free port with Envoy's rate limit filter in front of a
/// backend (a second listener answering 200), the service as an HTTP/2
/// cluster named `mcp_guard_ratelimit`.
fn envoy_yaml(ratelimit_port: u16, backend_port: u16) -> String {
    format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/override"}}
                route:
                  cluster: backend
                  rate_limits:
                  - actions:
                    - request_headers: {{header_name: x-user, descriptor_key: user}}
                    - generic_key: {{descriptor_key: route, descriptor_value: override}}
                    limit:
                      dynamic_metadata:
                        metadata_key:
                          key: mcp_guard.test
                          path: [{{key: limit}}]
              - match: {{prefix: "/default"}}
                route:
                  cluster: backend
                  rate_limits:
                  - actions:
                    - request_headers: {{header_name: x-user, descriptor_key: user}}
                    - generic_key: {{descriptor_key: route, descriptor_value: default}}
          http_filters:
          - name: envoy.filters.http.set_metadata
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config
              metadata:
              - metadata_namespace: mcp_guard.test
                value:
                  limit: {{requests_per_unit: 3, unit: HOUR}}
          - name: envoy.filters.http.ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
              domain: mcp
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              failure_mode_deny: true
              status_on_error: {{code: ServiceUnavailable}}
              timeout: 2s
              rate_limit_service:
                transport_api_version: V3
                grpc_service:
                  envoy_grpc: {{cluster_name: mcp_guard_ratelimit}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - name: backend
    address: {{socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: backend
          route_config:
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "ok"}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}}}}}
  - name: mcp_guard_ratelimit
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: mcp_guard_ratelimit
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {ratelimit_port}}}}}}}
"#
    )
}

fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{nanos}")
}

#[test]
fn envoy_ratelimit_filter_gets_ok_over_limit_and_unavailable_from_the_service() {
    let dir = std::env::temp_dir().join(unique("mcp-guard-rl-e2e"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = Redis::start().unwrap();
    let service = RateLimitProcess::start(
        &redis.url(),
        &["--default-limit", "2/hour", "--redis-timeout-ms", "200"],
        dir.join("ratelimit.log"),
    )
    .unwrap();
    let envoy = Envoy::start(&envoy_yaml(service.grpc_port(), free_port()), &dir);

    // The override from the route (3/hour) applies per user.
    let alice = unique("alice");
    let statuses: Vec<u16> = (0..5).map(|_| envoy.get("/override", &alice)).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429], "{}", envoy.log_text());
    // Envoy turns the statuses (current_limit, limit_remaining,
    // duration_until_reset) into X-RateLimit headers.
    let bob = envoy.reply("/override", &unique("bob"));
    assert_eq!(bob.status, 200);
    assert_eq!(bob.header("x-ratelimit-limit"), Some("3, 3;w=3600"));
    assert_eq!(bob.header("x-ratelimit-remaining"), Some("2"));
    let reset: u64 = bob.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&reset), "{reset}");

    // No override: the service's --default-limit (2/hour).
    let carol = unique("carol");
    let statuses: Vec<u16> = (0..3).map(|_| envoy.get("/default", &carol)).collect();
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(envoy.stat("cluster.backend.ratelimit.over_limit"), 3);
    assert!(envoy.stat("cluster.backend.ratelimit.ok") >= 6);

    // Redis stops: the service answers UNAVAILABLE, Envoy fails closed.
    redis.stop();
    let started = Instant::now();
    assert_eq!(envoy.get("/override", &unique("dave")), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(envoy.stat("cluster.backend.ratelimit.error") >= 1);
    let log = service.log_text();
    assert!(log.contains("redis unavailable"), "{log}");

    // Redis is back (empty): requests pass again.
    redis.start_again().unwrap();
    let erin = unique("erin");
    let deadline = Instant::now() + Duration::from_secs(10);
    while envoy.get("/override", &erin) != 200 {
        assert!(
            Instant::now() < deadline,
            "no recovery:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn envoy_fails_closed_when_the_service_is_gone() {
    let dir = std::env::temp_dir().join(unique("mcp-guard-rl-gone"));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start().unwrap();
    let mut service =
        RateLimitProcess::start(&redis.url(), &[], dir.join("ratelimit.log")).unwrap();
    let envoy = Envoy::start(&envoy_yaml(service.grpc_port(), free_port()), &dir);
    assert_eq!(envoy.get("/override", &unique("frank")), 200);
    // SIGTERM: the service drains and exits.
    let status = service.terminate(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{}",
        service.log_text()
    );
    assert_eq!(envoy.get("/override", &unique("grace")), 503);
    let _ = std::fs::remove_dir_all(&dir);
}
