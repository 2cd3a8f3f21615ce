//! Envoy per variant: one generated configuration (JSON, which Envoy
//! reads as YAML), one worker, started fresh and stopped by PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mcp_guard_e2e::tokens::{DEMO_AUDIENCE, DEMO_ISSUER, DEMO_JWKS};
use serde_json::{json, Value};

use super::procs::Guard;
use super::variants::{self, Runtime, Variant, STREAM_PREFIX};

/// Everything the configurations point at.
pub struct Inputs {
    /// Envoy binary.
    pub envoy: PathBuf,
    /// mcp-guard as proxy-wasm.
    pub wasm: PathBuf,
    /// The no-op proxy-wasm filter.
    pub noop_wasm: PathBuf,
    /// mcp-guard as a dynamic module (`libmcp_guard_native.so`), when given.
    pub native: Option<PathBuf>,
    /// nginx's port.
    pub nginx_port: u16,
    /// The streaming upstream's port.
    pub stream_port: u16,
    /// The global rate limit service's gRPC port, when a variant needs it.
    pub ratelimit_port: Option<u16>,
}

/// A running Envoy.
pub struct Envoy {
    /// Listener port.
    pub port: u16,
    /// The process (stopped on drop).
    pub guard: Guard,
}

/// Module name of the native filter (`lib<name>.so`) and its filter name.
const NATIVE_MODULE: &str = "mcp_guard_native";

fn cluster(name: &str, port: u16) -> Value {
    json!({"name": name, "type": "STATIC", "connect_timeout": "1s",
           "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
               {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})
}

/// nginx, the streaming upstream and, when running, the rate limit
/// service (gRPC: HTTP/2).
fn clusters(inputs: &Inputs) -> Value {
    let mut list = vec![
        cluster("nginx", inputs.nginx_port),
        cluster("stream", inputs.stream_port),
    ];
    if let Some(port) = inputs.ratelimit_port {
        let mut rls = cluster(variants::RATELIMIT_CLUSTER, port);
        rls["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}});
        list.push(rls);
    }
    Value::Array(list)
}

fn wasm_filter(name: &str, path: &Path, configuration: Option<String>, held: bool) -> Value {
    let mut config = json!({
        "name": name, "root_id": name,
        "vm_config": {"vm_id": name, "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": path.display().to_string()}}},
        "allow_on_headers_stop_iteration": held
    });
    if let Some(value) = configuration {
        config["configuration"] =
            json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value});
    }
    json!({"name": name, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}})
}

/// `jwt_authn`; `forward_payload` also hands the verified payload to the
/// native module in a header (its ABI cannot read nested metadata; see
/// docs/native.md), as `envoy/envoy-native.yaml.tmpl` does.
fn jwt_filter(forward_payload: bool) -> Value {
    let mut provider = json!({"issuer": DEMO_ISSUER, "audiences": [DEMO_AUDIENCE],
                              "local_jwks": {"inline_string": DEMO_JWKS},
                              "payload_in_metadata": "jwt_payload"});
    if forward_payload {
        provider["forward_payload_header"] = json!("x-mcp-guard-jwt-payload");
    }
    json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"bench": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}})
}

/// A principal: the verified token's `sub` equals `sub`.
fn sub_is(sub: &str) -> Value {
    json!({"metadata": {"filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": "jwt_payload"}, {"key": "sub"}],
        "value": {"string_match": {"exact": sub}}}})
}

/// RBAC with 100 policies: 99 for other paths and subjects, the last one
/// (by name) allows the bench caller on any path.
fn rbac_filter() -> Value {
    let mut policies = serde_json::Map::new();
    for i in 0..99 {
        policies.insert(
            format!("p{i:03}"),
            json!({"permissions": [{"url_path": {"path": {"exact": format!("/svc-{i}/v1/chat/completions")}}}],
                   "principals": [sub_is(&format!("user-{i}"))]}),
        );
    }
    policies.insert(
        "p099".into(),
        json!({"permissions": [{"any": true}], "principals": [sub_is("alice")]}),
    );
    json!({"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": policies}}})
}

/// A permission on the metadata Envoy's MCP filter writes.
fn mcp_is(path: &[&str], value: &str) -> Value {
    let path: Vec<Value> = path.iter().map(|k| json!({"key": k})).collect();
    json!({"metadata": {"filter": "envoy.filters.http.mcp", "path": path,
        "value": {"string_match": {"exact": value}}}})
}

/// Envoy's MCP filter (parses the JSON-RPC body into dynamic metadata)
/// and RBAC with 100 policies on it: 99 for other tools and callers, the
/// last (by name) lets the bench caller call [`variants::MCP_TOOL`].
fn envoy_mcp_filters() -> Vec<Value> {
    let mut policies = serde_json::Map::new();
    let tool_policy = |tool: &str, sub: &str| {
        json!({"permissions": [{"and_rules": {"rules": [
                   mcp_is(&["method"], "tools/call"),
                   mcp_is(&["params", "name"], tool)]}}],
               "principals": [sub_is(sub)]})
    };
    for i in 0..99 {
        policies.insert(
            format!("p{i:03}"),
            tool_policy(&format!("tool_{i}"), &format!("user-{i}")),
        );
    }
    policies.insert("p099".into(), tool_policy(variants::MCP_TOOL, "alice"));
    vec![
        json!({"name": "envoy.filters.http.mcp", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp"}}),
        json!({"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": policies}}}),
    ]
}

/// The HTTP filter chain of a variant.
fn http_filters(v: &Variant, inputs: &Inputs) -> Vec<Value> {
    let mut filters = Vec::new();
    if v.jwt {
        let native = v
            .guard
            .as_ref()
            .is_some_and(|g| g.runtime == Runtime::Native);
        filters.push(jwt_filter(native));
    }
    if v.rbac {
        filters.push(rbac_filter());
    }
    if v.envoy_mcp {
        filters.extend(envoy_mcp_filters());
    }
    if v.noop_wasm {
        filters.push(wasm_filter("noop", &inputs.noop_wasm, None, true));
    }
    if let Some(g) = &v.guard {
        let config = variants::plugin_config(g);
        filters.push(match g.runtime {
            Runtime::Wasm => wasm_filter("mcp-guard", &inputs.wasm, Some(config), true),
            Runtime::WasmIstio => wasm_filter("mcp-guard", &inputs.wasm, Some(config), false),
            Runtime::Native => json!({"name": "mcp-guard", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                "dynamic_module_config": {"name": NATIVE_MODULE},
                "filter_name": NATIVE_MODULE,
                "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": config}}}),
        });
    }
    filters.push(
        json!({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}),
    );
    filters
}

/// The whole configuration: the same listener, routes and clusters for
/// every variant; only the filter chain differs.
pub fn config(v: &Variant, inputs: &Inputs) -> Value {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress", "normalize_path": true, "merge_slashes": true,
                        "path_with_escaped_slashes_action": "REJECT_REQUEST",
                        "route_config": {"name": "bench", "virtual_hosts": [{"name": "bench", "domains": ["*"],
                            "routes": [
                                {"match": {"prefix": STREAM_PREFIX}, "route": {"cluster": "stream", "timeout": "30s"}},
                                {"match": {"prefix": "/"}, "route": {"cluster": "nginx", "timeout": "30s"}}]}]},
                        "http_filters": http_filters(v, inputs)}}]}]}],
            "clusters": clusters(inputs)
        }
    })
}

/// Writes the configuration into `dir` and starts Envoy with one worker;
/// returns once the listener is bound.
pub fn start(v: &Variant, inputs: &Inputs, dir: &Path) -> Result<Envoy, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let config_path = dir.join("envoy.json");
    let admin_file = dir.join("admin-address");
    let _ = std::fs::remove_file(&admin_file);
    let text = serde_json::to_string_pretty(&config(v, inputs)).map_err(|e| e.to_string())?;
    std::fs::write(&config_path, text).map_err(|e| e.to_string())?;
    let mut command = Command::new(&inputs.envoy);
    command
        .arg("-c")
        .arg(&config_path)
        .arg("--admin-address-path")
        .arg(&admin_file)
        .args(["--disable-hot-restart", "--concurrency", "1"])
        .args(["--log-level", "warn"]);
    if v.guard.is_some_and(|g| g.runtime == Runtime::Native) {
        let so = inputs
            .native
            .as_ref()
            .ok_or("a native variant needs MCP_GUARD_NATIVE")?;
        let so_dir = so.parent().ok_or("MCP_GUARD_NATIVE has no directory")?;
        command.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", so_dir);
    }
    let log = dir.join("envoy.log");
    let mut guard = Guard::spawn("envoy", command, &log)?;
    let started = (|| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            guard.check_alive()?;
            let admin = std::fs::read_to_string(&admin_file).unwrap_or_default();
            let admin = admin.trim();
            if !admin.is_empty() {
                let url = format!("http://{admin}/listeners?format=json");
                if let Ok(text) = mcp_guard_e2e::http::get_text(&url) {
                    let json: Value = serde_json::from_str(&text).unwrap_or_default();
                    let port = json["listener_statuses"][0]["local_address"]["socket_address"]
                        ["port_value"]
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0);
                    if let Some(port) = port {
                        return Ok(port);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("Envoy did not bind its listener in 60 s".to_string())
    })();
    match started {
        Ok(port) => Ok(Envoy { port, guard }),
        Err(e) => {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log_text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{}: {e}; Envoy log ({}):\n{}",
                v.name,
                log.display(),
                tail.join("\n")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            envoy: "envoy".into(),
            wasm: "/x/mcp_guard.wasm".into(),
            noop_wasm: "/x/noop_filter.wasm".into(),
            native: Some("/x/libmcp_guard_native.so".into()),
            nginx_port: 1001,
            stream_port: 1002,
            ratelimit_port: None,
        }
    }

    fn chain(name: &str) -> Vec<Value> {
        let v = variants::all()
            .into_iter()
            .find(|v| v.name == name)
            .unwrap();
        let c = config(&v, &inputs());
        c["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn names(chain: &[Value]) -> Vec<&str> {
        chain.iter().map(|f| f["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn chains_differ_only_by_the_filters_under_test() {
        let router = "envoy.filters.http.router";
        let jwt = "envoy.filters.http.jwt_authn";
        assert_eq!(names(&chain("A0")), [router]);
        assert_eq!(names(&chain("A")), [jwt, router]);
        assert_eq!(names(&chain("N")), [jwt, "envoy.filters.http.rbac", router]);
        assert_eq!(names(&chain("W0")), [jwt, "noop", router]);
        assert_eq!(names(&chain("B")), [jwt, "mcp-guard", router]);
        let policies = &chain("N")[1]["typed_config"]["rules"]["policies"];
        assert_eq!(policies.as_object().unwrap().len(), 100);
        let mcp = chain("E-MCP");
        assert_eq!(
            names(&mcp),
            [
                jwt,
                "envoy.filters.http.mcp",
                "envoy.filters.http.rbac",
                router
            ]
        );
        let policies = &mcp[2]["typed_config"]["rules"]["policies"];
        assert_eq!(policies.as_object().unwrap().len(), 100);
        assert_eq!(names(&chain("G-MCP")), [jwt, "mcp-guard", router]);
    }

    #[test]
    fn mcp_guard_gets_the_same_plugin_config_in_wasm_and_native() {
        let wasm = &chain("B10k")[1]["typed_config"];
        let native = &chain("B10k-native")[1]["typed_config"];
        assert!(native["@type"]
            .as_str()
            .unwrap()
            .ends_with("DynamicModuleFilter"));
        assert_eq!(native["dynamic_module_config"]["name"], "mcp_guard_native");
        let w = wasm["config"]["configuration"]["value"].as_str().unwrap();
        let n = native["filter_config"]["value"].as_str().unwrap();
        assert_eq!(w, n);
        let parsed: Value = serde_json::from_str(w).unwrap();
        assert_eq!(parsed["bundle"]["rules"].as_array().unwrap().len(), 10_000);
    }
}
