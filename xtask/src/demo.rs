//! `cargo xtask demo`: the whole stack on loopback with ready-to-paste curl
//! lines, a push that changes one of their answers and a rollback that
//! changes it back. Each demo has its own directory (`target/demo/<pid>`)
//! and free ports, so several can run side by side.

use mcp_guard_e2e::{tokens, RouteCluster, Stack, StackOptions, DEMO_BUNDLE};
use serde_json::json;

use crate::steps;

/// Demo tokens stay valid this long.
const TOKEN_LIFETIME_SECS: u64 = 12 * 3600;

fn demo_token(claims: serde_json::Value) -> Result<String, String> {
    let mut claims = claims;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    claims["exp"] = json!(now + TOKEN_LIFETIME_SECS);
    tokens::mint(claims).map_err(|e| e.to_string())
}

/// The demo's `routes` section: restricted tenants and prompts holding a
/// card number go to the private deployment.
const DEMO_ROUTES: &str = include_str!("demo_routes.json");

/// The demo bundle with routing by policy: `policies/demo.json` plus
/// [`DEMO_ROUTES`] (kept apart so the end-to-end tests' demo bundle, which
/// every other suite runs, stays as it is).
fn routed_bundle() -> Result<String, String> {
    let mut bundle: serde_json::Value =
        serde_json::from_str(DEMO_BUNDLE).map_err(|e| e.to_string())?;
    bundle["routes"] = serde_json::from_str(DEMO_ROUTES).map_err(|e| e.to_string())?;
    mcp_guard_engine::Bundle::parse(bundle.to_string().as_bytes()).map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())
}

/// The rule version 2 of the demo bundle widens, and the role it adds.
const WIDENED_RULE: &str = "model-users-chat";
const WIDENED_ROLE: &str = "viewer";

/// Version 2 for the push step: `bundle` with [`WIDENED_ROLE`] added to
/// [`WIDENED_RULE`]'s roles, so mallory (a viewer) may chat: curl line 2
/// answers 200 after the push and 403 again after the rollback.
fn widened_bundle(bundle: &str) -> Result<String, String> {
    let mut bundle: serde_json::Value = serde_json::from_str(bundle).map_err(|e| e.to_string())?;
    let rule = bundle["rules"]
        .as_array_mut()
        .and_then(|rules| rules.iter_mut().find(|r| r["id"] == WIDENED_RULE))
        .ok_or_else(|| format!("demo bundle has no rule {WIDENED_RULE}"))?;
    let roles = rule["when"]["claims"]
        .as_array_mut()
        .and_then(|claims| claims.iter_mut().find(|c| c["claim"] == "roles"))
        .and_then(|c| c["contains_any"].as_array_mut())
        .ok_or_else(|| format!("rule {WIDENED_RULE} tests no roles"))?;
    roles.push(json!(WIDENED_ROLE));
    mcp_guard_engine::Bundle::parse(bundle.to_string().as_bytes()).map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())
}

/// One demo's own directory under `target/demo`, named by its process id
/// (`-1`, `-2`... when taken), so demos run side by side never share a
/// file (configs, logs, control data, token and bundle files). Removed
/// when dropped, after the stack has stopped.
struct DemoDir(std::path::PathBuf);

impl DemoDir {
    /// Creates a directory no other demo uses under `root`; first removes
    /// the directories of demos whose process is gone (killed, not
    /// stopped with Ctrl-C).
    fn create(root: &std::path::Path) -> Result<Self, String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        remove_stale(root);
        let pid = std::process::id();
        for n in 0..100u32 {
            let name = if n == 0 {
                pid.to_string()
            } else {
                format!("{pid}-{n}")
            };
            let dir = root.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Self(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
            }
        }
        Err(format!("no free demo directory under {}", root.display()))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes `root/<pid>[-n]` directories whose process no longer runs.
fn remove_stale(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Builds, starts, prints how to try it, and waits for Ctrl-C.
pub fn run() -> Result<(), String> {
    let envoy = steps::ensure_envoy()?;
    let wasm = steps::build_wasm()?;
    std::env::set_var("MCP_GUARD_ENVOY", &envoy);
    std::env::set_var("MCP_GUARD_WASM", &wasm);
    // Declared before the stack: dropped (removed) after it has stopped.
    let demo_dir = DemoDir::create(&mcp_guard_e2e::paths::workspace_root().join("target/demo"))?;
    let bundle = routed_bundle()?;
    let mut stack = Stack::start(StackOptions {
        work_dir: Some(demo_dir.0.clone()),
        control_logs: true,
        bundles: vec![("demo".into(), bundle.clone())],
        // A second, "private" model deployment: answers say which one
        // answered in `x-demo-upstream` (`1`: the default one).
        route_clusters: vec![RouteCluster::demo("llm-private")],
        ..StackOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let bundle_file = stack.work_dir.join("demo.json");
    std::fs::write(&bundle_file, &bundle).map_err(|e| e.to_string())?;
    let widened_file = stack.work_dir.join("demo-v2.json");
    std::fs::write(&widened_file, widened_bundle(&bundle)?).map_err(|e| e.to_string())?;

    let token_file = stack.work_dir.join("push-token");
    std::fs::write(&token_file, mcp_guard_e2e::PUSH_TOKEN).map_err(|e| e.to_string())?;
    let alice = demo_token(
        json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"], "scope": "openid mcp:tools"}),
    )?;
    let mallory = demo_token(json!({"sub": "mallory", "tenant": "acme", "roles": ["viewer"]}))?;
    let rita = demo_token(json!({"sub": "rita", "tenant": "restricted", "roles": ["model-user"]}))?;
    let card_body = r#"{"model":"demo-llm","messages":[{"role":"user","content":"Refund card 4111 1111 1111 1111"}]}"#;
    let chat = stack.url("/v1/chat/completions");
    let mcp = stack.url("/mcp");
    let body = r#"{"model":"demo-llm","messages":[{"role":"user","content":"Who can I call?"}]}"#;
    let json_header = "-H 'content-type: application/json'";
    println!(
        "\nmcp-guard demo is running: Envoy on {listener}, admin on http://{admin}\n\
         control service on 127.0.0.1:{control}, demo model upstream on 127.0.0.1:{upstream}\n\n\
         # 1. Allowed: alice is a model-user; the e-mail in the answer comes back as [EMAIL]\n\
         curl -s {chat} {json_header} -H 'authorization: Bearer {alice}' -d '{body}'\n\n\
         # 2. Denied with 403: mallory has no model-user role (reason default_deny)\n\
         curl -s -i {chat} {json_header} -H 'authorization: Bearer {mallory}' -d '{body}'\n\n\
         # 3. No token: 401 with reason missing_token\n\
         curl -s -i {chat} {json_header} -d '{body}'\n\n\
         # 4. MCP tools/list: alice sees only the tools she may call (delete_customer is hidden)\n\
         curl -s {mcp} {json_header} -H 'authorization: Bearer {alice}' -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}}'\n\n\
         # 5. MCP tools/call: allowed, and the customer e-mail is scrubbed\n\
         curl -s {mcp} {json_header} -H 'authorization: Bearer {alice}' -d '{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"search_customers\",\"arguments\":{{\"query\":\"jane\"}}}}}}'\n\n\
         # 6. MCP tools/call delete_customer: 403, only admins may delete\n\
         curl -s -i {mcp} {json_header} -H 'authorization: Bearer {alice}' -d '{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{{\"name\":\"delete_customer\",\"arguments\":{{\"id\":1}}}}}}'\n\n\
         # 7. Routing by policy: rita's tenant is restricted, so the private deployment answers\n\
         #    (x-demo-upstream: llm-private) and sees the model rewritten to demo-private-llm\n\
         curl -s -i {chat} {json_header} -H 'authorization: Bearer {rita}' -d '{body}'\n\n\
         # 8. A prompt holding a card number goes private too; a client-sent route header is ignored\n\
         curl -s -i {chat} {json_header} -H 'authorization: Bearer {alice}' -H 'x-mcp-guard-cluster: model' -d '{card_body}'\n\n\
         #    (alice's plain prompt of line 1 is answered by the default deployment: x-demo-upstream: 1)\n\n\
         # 9. Push version 2 (signed by the control service, enforced by every worker in ~50 ms):\n\
         #    demo-v2.json is demo.json (version 1) with the viewer role added to rule {widened_rule},\n\
         #    so mallory's line 2 now answers 200\n\
         {cli} push --allow-plain-http --server {server} --token-file {token_file} {widened_file}\n\
         curl -s -i {chat} {json_header} -H 'authorization: Bearer {mallory}' -d '{body}'\n\n\
         # 10. Roll back to version 1 (stored as version 3): mallory gets 403 again\n\
         {cli} rollback --allow-plain-http --server {server} --token-file {token_file} demo --to 1\n\
         curl -s -i {chat} {json_header} -H 'authorization: Bearer {mallory}' -d '{body}'\n\
         {cli} history --allow-plain-http --server {server} demo\n\n\
         Decisions land in the access log: tail -f {log}\n\
         Metrics: curl -s http://{admin}/stats/prometheus | grep ^mcp_\n\
         Tokens are valid for 12 hours. Press Ctrl-C to stop.",
        listener = stack.url(""),
        admin = stack.envoy.admin,
        control = stack.control_port,
        upstream = stack.upstream_port,
        token_file = token_file.display(),
        widened_file = widened_file.display(),
        widened_rule = WIDENED_RULE,
        cli = "cargo run -q -p mcp-guard-cli --",
        server = format_args!("http://127.0.0.1:{}", stack.control_port),
        log = stack.envoy.access_log.display(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(tokio::signal::ctrl_c())
        .map_err(|e| e.to_string())?;
    println!("\nstopping…");
    stack.stop();
    drop(stack);
    drop(demo_dir);
    println!("stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_bundle_routes_restricted_tenants_and_cards_privately() {
        let text = super::routed_bundle().expect("demo bundle with routes");
        let policy = mcp_guard_engine::Policy::compile(text.as_bytes()).expect("compiles");
        let routes = &policy.bundle().routes.as_ref().expect("routes").rules;
        let ids: Vec<&str> = routes.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["restricted-private", "cards-private"]);
        assert!(routes.iter().all(|r| r.cluster == "llm-private"));
    }

    #[test]
    fn version_2_lets_mallory_chat_and_nothing_else_changes() {
        use mcp_guard_engine::{Claims, Effect, Policy, RequestAttrs};
        let v1 = super::routed_bundle().unwrap();
        let v2 = super::widened_bundle(&v1).unwrap();
        let chat = |bundle: &str, roles: serde_json::Value| {
            let policy = Policy::compile(bundle.as_bytes()).unwrap();
            let claims = serde_json::json!({"sub": "mallory", "roles": roles});
            let claims = Claims(claims.as_object().unwrap().clone());
            let request = RequestAttrs {
                method: "POST",
                path: "/v1/chat/completions",
                host: "localhost",
                model: Some("demo-llm"),
                ..RequestAttrs::default()
            };
            policy.decide(&claims, &request).effect
        };
        let viewer = serde_json::json!(["viewer"]);
        assert_eq!(chat(&v1, viewer.clone()), Effect::Deny);
        assert_eq!(chat(&v2, viewer), Effect::Allow);
        // Other roles are still refused.
        assert_eq!(chat(&v2, serde_json::json!(["guest"])), Effect::Deny);
        let mut a: serde_json::Value = serde_json::from_str(&v1).unwrap();
        let b: serde_json::Value = serde_json::from_str(&v2).unwrap();
        a["rules"][1]["when"]["claims"][0]["contains_any"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!("viewer"));
        assert_eq!(a, b, "version 2 differs from version 1 in that role only");
    }

    #[test]
    fn two_demos_get_their_own_directories_removed_at_exit() {
        let root = std::env::temp_dir().join(format!("mcp-guard-demo-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // A leftover of a demo that was killed (no such process).
        let stale = root.join("4194304999");
        std::fs::create_dir_all(&stale).unwrap();
        let first = super::DemoDir::create(&root).unwrap();
        let second = super::DemoDir::create(&root).unwrap();
        assert!(!stale.exists(), "a dead demo's directory is removed");
        assert_ne!(first.0, second.0);
        // Every file a demo writes (the stack's configs, logs and control
        // data, the token and bundle files) lives under its directory.
        for dir in [&first.0, &second.0] {
            for name in [
                "envoy.yaml",
                "access.log",
                "push-token",
                "demo.json",
                "demo-v2.json",
            ] {
                std::fs::write(dir.join(name), dir.display().to_string()).unwrap();
            }
        }
        for dir in [&first.0, &second.0] {
            let text = std::fs::read_to_string(dir.join("access.log")).unwrap();
            assert_eq!(text, dir.display().to_string());
        }
        let (a, b) = (first.0.clone(), second.0.clone());
        drop(first);
        assert!(!a.exists());
        assert!(b.join("access.log").exists(), "the other demo's files stay");
        drop(second);
        assert!(!b.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
