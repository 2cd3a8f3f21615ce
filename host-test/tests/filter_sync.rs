//! Bundle distribution across worker VMs through the real `.wasm`: one VM
//! holds the fetch lease and long-polls, every VM activates what it
//! publishes in shared data, signatures are checked (as the subscribed
//! bundle's and the announced version's), older versions are refused,
//! keys rotate, status is reported, failures back off and a dead fetcher is
//! replaced.

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

/// A 200 as the control service sends it: body, ETag, version and the
/// signature of `keys` over the body as version `version` of `name`.
fn signed_as(
    name: &str,
    version: u64,
    bytes: &[u8],
    keys: &[&SigningKey],
    etag: &str,
) -> HttpCallResponse {
    let header = signing::sign(
        &signing::Signed {
            name,
            version,
            bytes,
        },
        keys,
    );
    HttpCallResponse::new(200, bytes.to_vec())
        .header("etag", etag)
        .header("x-bundle-version", &version.to_string())
        .header(signing::SIGNATURE_HEADER, &header)
}

/// Version `version` of `demo`, allowing `role`, signed by the test key.
fn signed_version(version: u64, role: &str, etag: &str) -> HttpCallResponse {
    signed_as("demo", version, &bundle(version, role), &[&key()], etag)
}

fn tick_all(vms: &[Plugin]) {
    for vm in vms {
        vm.advance(Duration::from_millis(60)).unwrap();
        vm.tick().unwrap();
    }
}

fn version(vm: &Plugin) -> u64 {
    // The `mcp_policy_info` series at 1 names the active version.
    vm.metrics()
        .iter()
        .filter(|(_, v)| **v == 1)
        .find_map(|(k, _)| {
            k.strip_prefix("mcp_policy_info.")?
                .rsplit_once(".version=")?
                .1
                .parse()
                .ok()
        })
        .unwrap_or(0)
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

/// Every pending bundle fetch across the VMs, with the VM that made it.
fn pending(vms: &[Plugin]) -> Vec<(usize, mcp_guard_host_test::HttpCall)> {
    calls(vms, "GET")
}

/// Every pending status report across the VMs.
fn reports(vms: &[Plugin]) -> Vec<(usize, mcp_guard_host_test::HttpCall)> {
    calls(vms, "POST")
}

fn calls(vms: &[Plugin], method: &str) -> Vec<(usize, mcp_guard_host_test::HttpCall)> {
    vms.iter()
        .enumerate()
        .flat_map(|(i, vm)| vm.pending_http_calls().into_iter().map(move |c| (i, c)))
        .filter(|(_, c)| c.header(":method") == Some(method))
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
        .respond_http_call(call.token, &signed_version(1, "user", "\"e1\""))
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
        .respond_http_call(calls[0].1.token, &signed_version(2, "admin", "\"e2\""))
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
        .respond_http_call(call.token, &signed_version(1, "user", "\"e1\""))
        .unwrap();
    tick_all(&vms);

    let good = bundle(2, "admin");
    let mut tampered = signed_version(2, "admin", "\"e2\"");
    tampered.body = bundle(2, "anyone");
    let calls = pending(&vms);
    vms[calls[0].0]
        .respond_http_call(calls[0].1.token, &tampered)
        .unwrap();
    assert_eq!(
        vms[calls[0].0].metrics()["mcp_bundle_fetches_total.result=rejected"],
        1
    );
    assert!(vms[calls[0].0]
        .logs()
        .iter()
        .any(|l| l.message.contains("signature does not match")));

    for vm in &vms {
        vm.advance(Duration::from_secs(1)).unwrap();
        vm.tick().unwrap();
    }
    let calls = pending(&vms);
    let unsigned = HttpCallResponse::new(200, good.clone())
        .header("etag", "\"e2\"")
        .header("x-bundle-version", "2");
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
    let foreign = signed_as("demo", 2, &good, &[&other_key], "\"e2\"");
    vms[calls[0].0]
        .respond_http_call(calls[0].1.token, &foreign)
        .unwrap();
    assert!(vms[calls[0].0]
        .logs()
        .iter()
        .any(|l| l.message.contains("none of which is trusted")));
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
    assert_eq!(vm.metrics()["mcp_bundle_fetches_total.result=error"], 5);
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
        .respond_http_call(call.token, &signed_version(1, "user", "\"e1\""))
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

/// Starts `vms`, lets the leader activate version 1 of `demo` and returns
/// the leader's index.
fn with_v1(vms: &[Plugin]) -> usize {
    tick_all(vms);
    let (leader, call) = pending(vms).remove(0);
    vms[leader]
        .respond_http_call(call.token, &signed_version(1, "user", "\"e1\""))
        .unwrap();
    tick_all(vms);
    leader
}

/// Answers the pending fetch with `response` and lets every VM sync.
fn answer_fetch(vms: &[Plugin], response: &HttpCallResponse) {
    for vm in vms {
        vm.advance(Duration::from_secs(11)).unwrap();
        vm.tick().unwrap();
    }
    let calls = pending(vms);
    assert_eq!(calls.len(), 1, "{calls:?}");
    vms[calls[0].0]
        .respond_http_call(calls[0].1.token, response)
        .unwrap();
    tick_all(vms);
}

/// Rejections logged with `code`, across the VMs (whichever fetched).
fn rejected_logs(vms: &[Plugin], code: &str) -> usize {
    vms.iter()
        .flat_map(Plugin::logs)
        .filter(|l| l.message.contains("rejected fetched bundle") && l.message.contains(code))
        .count()
}

fn rejected_total(vms: &[Plugin]) -> u64 {
    vms.iter()
        .filter_map(|vm| {
            vm.metrics()
                .get("mcp_bundle_fetches_total.result=rejected")
                .copied()
        })
        .sum()
}

#[test]
fn another_bundles_genuine_signed_bundle_is_refused() {
    let vms = workers(2, json!({}));
    with_v1(&vms);
    // Team B's bundle, signed by the same service key as team B's, allowing
    // everyone: what a misrouted cache or a proxy could serve for "demo".
    let team_b = json!({"name": "team-b", "version": 5,
        "rules": [{"id": "r", "effect": "allow"}]})
    .to_string()
    .into_bytes();
    answer_fetch(&vms, &signed_as("team-b", 5, &team_b, &[&key()], "\"b5\""));
    assert_eq!(rejected_total(&vms), 1);
    assert_eq!(rejected_logs(&vms, "wrong_name"), 1);
    for vm in &vms {
        assert_eq!(version(vm), 1, "demo v1 still enforced");
        assert!(!allowed(vm, "anyone"));
    }
    // Signed under our name but naming another bundle: refused too.
    let renamed = signed_as("demo", 5, &team_b, &[&key()], "\"b5\"");
    answer_fetch(&vms, &renamed);
    assert_eq!(rejected_total(&vms), 2);
    assert_eq!(rejected_logs(&vms, "wrong_name"), 2);
    assert_eq!(version(&vms[0]), 1);
}

#[test]
fn an_older_genuine_version_is_refused() {
    let vms = workers(2, json!({}));
    with_v1(&vms);
    answer_fetch(&vms, &signed_version(3, "admin", "\"e3\""));
    for vm in &vms {
        assert_eq!(version(vm), 3);
    }
    // A replay of v1, genuinely signed as v1.
    answer_fetch(&vms, &signed_version(1, "user", "\"e1\""));
    assert_eq!(rejected_logs(&vms, "rollback"), 1);
    // v1's bytes and signature announced as v4 to pass the version check.
    let mut relabelled = signed_version(1, "user", "\"e1\"");
    for (name, value) in &mut relabelled.headers {
        if name == "x-bundle-version" {
            *value = "4".into();
        }
    }
    answer_fetch(&vms, &relabelled);
    assert_eq!(rejected_logs(&vms, "bad_signature"), 1);
    for vm in &vms {
        assert_eq!(version(vm), 3, "never goes backwards");
        assert!(allowed(vm, "admin") && !allowed(vm, "user"));
    }
}

#[test]
fn key_rotation_overlap() {
    let old = key();
    let new = SigningKey::from_bytes(&[8; 32]);
    let trust = |keys: &[&SigningKey]| {
        json!({"public_keys": keys
            .iter()
            .map(|k| signing::public_key_base64(&k.verifying_key()))
            .collect::<Vec<_>>()})
    };
    // During the overlap the service signs with both keys: filters trusting
    // the old key, the new key, or both all accept.
    for trusted in [vec![&old], vec![&new], vec![&old, &new]] {
        let vms = workers(1, trust(&trusted));
        tick_all(&vms);
        let (_, call) = pending(&vms).remove(0);
        let both = signed_as("demo", 1, &bundle(1, "user"), &[&old, &new], "\"e1\"");
        vms[0].respond_http_call(call.token, &both).unwrap();
        tick_all(&vms);
        assert_eq!(version(&vms[0]), 1, "trusting {} key(s)", trusted.len());
    }
    // A filter trusting both keeps working before and after promotion.
    let vms = workers(1, trust(&[&old, &new]));
    tick_all(&vms);
    let (_, call) = pending(&vms).remove(0);
    let before = signed_as("demo", 1, &bundle(1, "user"), &[&old], "\"e1\"");
    vms[0].respond_http_call(call.token, &before).unwrap();
    answer_fetch(
        &vms,
        &signed_as("demo", 2, &bundle(2, "admin"), &[&new], "\"e2\""),
    );
    assert_eq!(version(&vms[0]), 2, "signed by the promoted key");
    // A filter that dropped the old key too early refuses old-only bundles.
    let vms = workers(1, trust(&[&new]));
    tick_all(&vms);
    let (_, call) = pending(&vms).remove(0);
    vms[0].respond_http_call(call.token, &before).unwrap();
    assert_eq!(version(&vms[0]), 0);
    assert_eq!(rejected_logs(&vms, "untrusted_key"), 1);
}

#[test]
fn the_fetcher_reports_status_to_the_control_service() {
    let vms = workers(2, json!({"instance_id": "envoy-a"}));
    let leader = with_v1(&vms);
    let sent = reports(&vms);
    assert_eq!(sent.len(), 1, "one report, from the fetcher: {sent:?}");
    let (who, call) = &sent[0];
    assert_eq!(*who, leader);
    assert_eq!(call.header(":path"), Some("/v1/bundles/demo/status"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        body,
        json!({"instance": "envoy-a", "state": "active", "version": 1})
    );
    vms[leader]
        .respond_http_call(call.token, &HttpCallResponse::new(202, b"{}".to_vec()))
        .unwrap();

    // A rejected version is reported with its reason and the active one.
    let team_b = json!({"name": "team-b", "version": 2})
        .to_string()
        .into_bytes();
    answer_fetch(&vms, &signed_as("team-b", 2, &team_b, &[&key()], "\"b\""));
    let sent = reports(&vms);
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].1.body).unwrap();
    assert_eq!(
        body,
        json!({"instance": "envoy-a", "state": "rejected", "version": 2,
               "reason": "wrong_name", "active_version": 1})
    );
    // Not accepted (e.g. rate-limited): resent after the next fetch.
    vms[sent[0].0]
        .respond_http_call(sent[0].1.token, &HttpCallResponse::new(429, Vec::new()))
        .unwrap();
    assert!(reports(&vms).is_empty());
    answer_fetch(&vms, &HttpCallResponse::new(304, Vec::new()));
    let sent = reports(&vms);
    assert_eq!(sent.len(), 1, "resent");
    vms[sent[0].0]
        .respond_http_call(sent[0].1.token, &HttpCallResponse::new(202, Vec::new()))
        .unwrap();
    // Accepted and unchanged: not sent again.
    answer_fetch(&vms, &HttpCallResponse::new(304, Vec::new()));
    assert!(reports(&vms).is_empty());
}

#[test]
fn status_reports_can_be_turned_off() {
    let vms = workers(1, json!({"report_status": false}));
    with_v1(&vms);
    assert_eq!(version(&vms[0]), 1);
    assert!(reports(&vms).is_empty());
}
