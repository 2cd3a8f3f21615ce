//! `cargo xtask demo`: the whole stack on loopback with ready-to-paste curl
//! lines.

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

/// Builds, starts, prints how to try it, and waits for Ctrl-C.
pub fn run() -> Result<(), String> {
    let envoy = steps::ensure_envoy()?;
    let wasm = steps::build_wasm()?;
    std::env::set_var("MCP_GUARD_ENVOY", &envoy);
    std::env::set_var("MCP_GUARD_WASM", &wasm);
    let work_dir = mcp_guard_e2e::paths::workspace_root().join("target/demo");
    let _ = std::fs::remove_dir_all(&work_dir);
    let bundle = routed_bundle()?;
    let mut stack = Stack::start(StackOptions {
        work_dir: Some(work_dir),
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
         # 9. Push a new policy version (signed by the control service, enforced by every worker in ~50 ms)\n\
         cargo run -q -p mcp-guard-cli -- push --server http://127.0.0.1:{control} --token-file {token_file} {bundle_file}\n\
         cargo run -q -p mcp-guard-cli -- history --server http://127.0.0.1:{control} demo\n\n\
         Decisions land in the access log: tail -f {log}\n\
         Metrics: curl -s http://{admin}/stats/prometheus | grep ^mcp_\n\
         Tokens are valid for 12 hours. Press Ctrl-C to stop.",
        listener = stack.url(""),
        admin = stack.envoy.admin,
        control = stack.control_port,
        upstream = stack.upstream_port,
        token_file = token_file.display(),
        bundle_file = bundle_file.display(),
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
}
