//! Bundle distribution across worker VMs through the real `.wasm`: one VM
//! holds the fetch lease and long-polls, every VM activates what it
//! publishes in shared data, signatures are checked, failures back off and
//! a dead fetcher is replaced.

use std::time::Duration;

use mcp_guard_engine::signing::{self, SigningKey};
use mcp_guard_host_test::{Host, HttpCallResponse, Plugin, PluginOptions};
use serde_json::{json, Value};

const SEED: [u8; 32] = [7; 32];

fn key() -> SigningKey {
    SigningKey::from_bytes(&SEED)
}

fn config(extra: Value) -> String {
    let mut control = json!({
        "cluster": "control", "bundle": "demo", "long_poll_secs": 30,
        "public_keys": [signing::public_key_base64(&key().verifying_key())]
    });
    for (k, v) in extra.as_object().unwrap() {
        control[k] = v.clone();
    }
    json!({ "control": control }).to_string()
}

/// `n` VMs of one Envoy process: they share one shared-data store.
fn workers(n: usize, extra: Value) -> Vec<Plugin> {
    let host = Host::from_env().unwrap();
    let first = host.plugin(config(extra.clone())).unwrap();
    let shared = first.shared_data_handle();
    let mut all = vec![first];
    for i in 1..n {
        let options = PluginOptions {
            shared_data: Some(shared.clone()),
            random_seed: i as u64,
            ..PluginOptions::default()
        };
        all.push(host.plugin_with(config(extra.clone()), options).unwrap());
    }
    all
}

fn bundle(version: u64, role: &str) -> Vec<u8> {
    json!({"name": "demo", "version": version,
           "rules": [{"id": "r", "effect": "allow", "when": {"claims": [{"claim": "roles", "contains_any": [role]}]}}]})
    .to_string()
    .into_bytes()
}

fn signed(bytes: &[u8], etag: &str) -> HttpCallResponse {
    HttpCallResponse::new(200, bytes.to_vec())
        .header("etag", etag)
        .header(signing::SIGNATURE_HEADER, &signing::sign(bytes, &key()))
}

fn tick_all(vms: &[Plugin]) {
    for vm in vms {
        vm.advance(Duration::from_millis(60)).unwrap();
        vm.tick().unwrap();
    }
}

fn version(vm: &Plugin) -> u64 {
    vm.metrics().get("mcp_policy_version").copied().unwrap_or(0)
}

fn allowed(vm: &Plugin, role: &str) -> bool {
    let stream = vm.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", json!({"sub": "a", "roles": [role]}));
    stream
        .request_headers(
            &[(":method", "GET"), (":path", "/"), (":authority", "h")],
            true,
        )
        .unwrap();
    stream.local_reply().is_none()
}

/// Every pending fetch across the VMs, with the VM that made it.
fn pending(vms: &[Plugin]) -> Vec<(usize, mcp_guard_host_test::HttpCall)> {
    vms.iter()
        .enumerate()
        .flat_map(|(i, vm)| vm.pending_http_calls().into_iter().map(move |c| (i, c)))
        .collect()
}

#[test]
fn one_vm_fetches_and_every_vm_enforces_the_new_version() {
    let vms = workers(3, json!({}));
    tick_all(&vms);
    let calls = pending(&vms);
    assert_eq!(
        calls.len(),
        1,
        "exactly one VM holds the lease and fetches: {calls:?}"
    );
    let (leader, call) = &calls[0];
    assert_eq!(
        call.header(":path"),
        Some("/v1/bundles/demo"),
        "no long-poll before a first version"
    );
    vms[*leader]
        .respond_http_call(call.token, &signed(&bundle(1, "user"), "\"e1\""))
        .unwrap();
    tick_all(&vms);
    for vm in &vms {
        assert_eq!(version(vm), 1);
        assert!(allowed(vm, "user"));
    }
    // The leader re-armed at once with a long-poll on the new ETag.
    let calls = pending(&vms);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, *leader);
    assert_eq!(calls[0].1.header(":path"), Some("/v1/bundles/demo?wait=30"));
    assert_eq!(calls[0].1.header("if-none-match"), Some("\"e1\""));

    vms[*leader]
        .respond_http_call(calls[0].1.token, &signed(&bundle(2, "admin"), "\"e2\""))
        .unwrap();
    tick_all(&vms);
    for vm in &vms {
        assert_eq!(version(vm), 2);
        assert!(
            !allowed(vm, "user") && allowed(vm, "admin"),
            "v2 enforced on every worker"
        );
    }
}

#[test]
fn tampered_or_unsigned_bundles_are_rejected_and_the_last_good_one_stays() {
    let vms = workers(2, json!({}));
    tick_all(&vms);
    let (leader, call) = pending(&vms).remove(0);
    vms[leader]
        .respond_http_call(call.token, &signed(&bundle(1, "user"), "\"e1\""))
        .unwrap();
    tick_all(&vms);

    let good = bundle(2, "admin");
    let mut tampered = signed(&good, "\"e2\"");
    tampered.body = bundle(2, "anyone");
    let calls = pending(&vms);
    vms[calls[0].0]
        .respond_http_call(calls[0].1.token, &tampered)
        .unwrap();
    assert_eq!(vms[calls[0].0].metrics()["mcp_bundle_rejected_total"], 1);
    assert!(vms[calls[0].0]
        .logs()
        .iter()
        .any(|l| l.message.contains("signature does not match")));

    for vm in &vms {
        vm.advance(Duration::from_secs(1)).unwrap();
        vm.tick().unwrap();
    }
    let calls = pending(&vms);
    let unsigned = HttpCallResponse::new(200, good.clone()).header("etag", "\"e2\"");
    vms[calls[0].0]
        .respond_http_call(calls[0].1.token, &unsigned)
        .unwrap();
    tick_all(&vms);
    for vm in &vms {
        assert_eq!(version(vm), 1, "v1 still enforced");
        assert!(allowed(vm, "user"));
    }

    let other_key = SigningKey::from_bytes(&[9; 32]);
    for vm in &vms {
        vm.advance(Duration::from_secs(2)).unwrap();
        vm.tick().unwrap();
    }
    let calls = pending(&vms);
    let foreign = HttpCallResponse::new(200, good.clone())
        .header(signing::SIGNATURE_HEADER, &signing::sign(&good, &other_key));
    vms[calls[0].0]
        .respond_http_call(calls[0].1.token, &foreign)
        .unwrap();
    assert!(vms[calls[0].0]
        .logs()
        .iter()
        .any(|l| l.message.contains("not trusted")));
}

#[test]
fn failures_back_off_and_keep_enforcing() {
    let vms = workers(1, json!({"retry_interval_ms": 200, "max_backoff_ms": 800}));
    let vm = &vms[0];
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let mut waited = 0;
        loop {
            vm.advance(Duration::from_millis(50)).unwrap();
            vm.tick().unwrap();
            waited += 50;
            if let Some(call) = vm.pending_http_calls().pop() {
                vm.fail_http_call(call.token).unwrap();
                break;
            }
            assert!(waited < 5_000, "a retry must come");
        }
        gaps.push(waited);
    }
    assert_eq!(vm.metrics()["mcp_bundle_fetch_failures_total"], 5);
    assert!(
        gaps[2] > gaps[1] && gaps[3] > gaps[2],
        "exponential backoff: {gaps:?}"
    );
    assert!(gaps[4] <= 850, "capped at max_backoff_ms: {gaps:?}");
    let stream = vm.stream().unwrap();
    stream
        .request_headers(
            &[(":method", "GET"), (":path", "/"), (":authority", "h")],
            true,
        )
        .unwrap();
    assert_eq!(
        stream.local_reply().unwrap().status,
        503,
        "still no policy: fail closed"
    );
}

#[test]
fn a_dead_fetcher_is_replaced_when_its_lease_expires() {
    let vms = workers(2, json!({"long_poll_secs": 1, "timeout_ms": 500}));
    tick_all(&vms);
    let (leader, call) = pending(&vms).remove(0);
    vms[leader]
        .respond_http_call(call.token, &signed(&bundle(1, "user"), "\"e1\""))
        .unwrap();
    let follower = 1 - leader;
    // The leader's VM stops ticking (its long-poll never completes); the
    // follower keeps ticking and takes over once the lease runs out.
    let mut took_over = false;
    for _ in 0..100 {
        vms[follower].advance(Duration::from_millis(60)).unwrap();
        vms[follower].tick().unwrap();
        if !vms[follower].pending_http_calls().is_empty() {
            took_over = true;
            break;
        }
    }
    assert!(took_over, "the follower fetches after the lease expires");
    assert_eq!(version(&vms[follower]), 1);
}

#[test]
fn a_control_section_without_keys_is_refused_unless_unsigned_is_allowed() {
    let host = Host::from_env().unwrap();
    assert!(host
        .plugin(json!({"control": {"cluster": "c", "bundle": "b"}}).to_string())
        .is_err());
    assert!(host
        .plugin(
            json!({"control": {"cluster": "c", "bundle": "b", "public_keys": ["not-a-key"]}})
                .to_string()
        )
        .is_err());
    assert!(host
        .plugin(
            json!({"control": {"cluster": "c", "bundle": "b", "allow_unsigned": true}}).to_string()
        )
        .is_ok());
}
