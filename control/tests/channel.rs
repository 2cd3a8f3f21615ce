//! The control channel's integrity: signatures name the bundle and version,
//! the signing key rotates with an overlap during which filters trusting
//! the old key, the new key or both keep verifying, and filters' status
//! reports reach the pusher.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::net::SocketAddr;
use std::process::Stdio;

use mcp_guard_control::{BundleStore, Options, SigningKeys, StatusLimits};
use mcp_guard_engine::signing::{self, SignatureError, Signed, SigningKey, VerifyingKey};
use support::{
    blocking_request, get, options, push_demo, put, request, scratch_dir, spawn_binary, start_with,
    tokens_json, Reply, TEAM_A_TOKEN,
};

fn old_key() -> SigningKey {
    SigningKey::from_bytes(&[1; 32])
}

fn new_key() -> SigningKey {
    SigningKey::from_bytes(&[2; 32])
}

/// Verifies a served bundle as version `x-bundle-version` of `name`.
fn verify_as(
    reply: &Reply,
    name: &str,
    trusted: &[VerifyingKey],
) -> Result<String, SignatureError> {
    let version = reply
        .header("x-bundle-version")
        .and_then(|v| v.parse().ok())
        .expect("x-bundle-version");
    signing::verify(
        &Signed {
            name,
            version,
            bytes: &reply.body,
        },
        reply.header("x-bundle-signature"),
        trusted,
    )
}

#[tokio::test]
async fn another_bundles_signature_does_not_verify_for_our_name() {
    let server = start_with(BundleStore::in_memory(old_key()), options()).await;
    push_demo(server.addr, "a").await;
    let team_a = support::bundle("team-a-x", "r");
    assert_eq!(
        put(server.addr, "team-a-x", Some(TEAM_A_TOKEN), &[], &team_a)
            .await
            .status,
        201
    );
    let trusted = [old_key().verifying_key()];
    let other = get(server.addr, "/v1/bundles/team-a-x", &[]).await;
    assert!(verify_as(&other, "team-a-x", &trusted).is_ok());
    // Served (by a proxy, a cache) for the subscribed name "demo".
    assert!(matches!(
        verify_as(&other, "demo", &trusted),
        Err(SignatureError::BadSignature(_))
    ));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn rotation_overlap_then_promotion() {
    // Overlap: current = old, next = new; every version carries both.
    let server = start_with(
        BundleStore::in_memory_with(SigningKeys::with_next(old_key(), Some(new_key()))),
        options(),
    )
    .await;
    push_demo(server.addr, "a").await;
    let keys = get(server.addr, "/v1/keys", &[]).await.json();
    let old_id = signing::key_id(&old_key().verifying_key());
    let new_id = signing::key_id(&new_key().verifying_key());
    assert_eq!(keys["current"], old_id.as_str());
    assert_eq!(keys["keys"][0]["id"], old_id.as_str());
    assert_eq!(keys["keys"][0]["status"], "current");
    assert_eq!(keys["keys"][1]["id"], new_id.as_str());
    assert_eq!(keys["keys"][1]["status"], "next");
    assert_eq!(
        keys["keys"][1]["ed25519"],
        signing::public_key_base64(&new_key().verifying_key()).as_str()
    );
    let reply = get(server.addr, "/v1/bundles/demo", &[]).await;
    let old = old_key().verifying_key();
    let new = new_key().verifying_key();
    assert_eq!(verify_as(&reply, "demo", &[old]), Ok(old_id.clone()));
    assert_eq!(verify_as(&reply, "demo", &[new]), Ok(new_id.clone()));
    assert!(verify_as(&reply, "demo", &[old, new]).is_ok());
    let stranger = SigningKey::from_bytes(&[3; 32]).verifying_key();
    assert!(matches!(
        verify_as(&reply, "demo", &[stranger]),
        Err(SignatureError::UnknownKey(ids)) if ids == [old_id.clone(), new_id.clone()]
    ));
    server.stop().await.expect("clean shutdown");
}

#[test]
fn the_binary_signs_with_both_keys_and_promotion_drops_the_old_one() {
    let dir = scratch_dir("rotation-binary");
    let data = dir.join("data");
    let old_file = dir.join("old.key");
    let new_file = dir.join("new.key");
    fs::write(&old_file, signing::seed_base64(&old_key())).expect("write key");
    fs::write(&new_file, signing::seed_base64(&new_key())).expect("write key");
    let tokens = dir.join("tokens.json");
    fs::write(&tokens, tokens_json()).expect("write tokens");
    let start = |args: &[&OsStr]| {
        let mut all: Vec<&OsStr> = vec![
            OsStr::new("--data"),
            data.as_os_str(),
            OsStr::new("--tokens"),
            tokens.as_os_str(),
        ];
        all.extend_from_slice(args);
        spawn_binary(&all, Stdio::null())
    };
    let fetch = |addr: SocketAddr| {
        blocking_request(addr, "GET", "/v1/bundles/demo", &[], b"").expect("fetch")
    };
    let old = old_key().verifying_key();
    let new = new_key().verifying_key();

    // Step 1: add the next key.
    let (mut child, addr) = start(&[
        OsStr::new("--signing-key"),
        old_file.as_os_str(),
        OsStr::new("--next-signing-key"),
        new_file.as_os_str(),
    ]);
    let body = support::bundle("demo", "a");
    let pushed = blocking_request(
        addr,
        "PUT",
        "/v1/bundles/demo",
        &[("authorization", &support::bearer(TEAM_A_TOKEN))],
        body.as_bytes(),
    )
    .expect("push");
    assert_eq!(pushed.status, 201, "{}", pushed.text());
    let reply = fetch(addr);
    for trusted in [vec![old], vec![new], vec![old, new]] {
        assert!(verify_as(&reply, "demo", &trusted).is_ok(), "overlap");
    }
    child.kill().expect("stop");
    let _ = child.wait();

    // Step 3: promote the next key; history is re-signed on start.
    let (mut child, addr) = start(&[OsStr::new("--signing-key"), new_file.as_os_str()]);
    let reply = fetch(addr);
    assert!(
        matches!(
            verify_as(&reply, "demo", &[old]),
            Err(SignatureError::UnknownKey(_))
        ),
        "a filter still trusting only the old key stops accepting"
    );
    assert!(verify_as(&reply, "demo", &[new]).is_ok());
    assert!(verify_as(&reply, "demo", &[old, new]).is_ok());
    let keys = blocking_request(addr, "GET", "/v1/keys", &[], b"")
        .expect("keys")
        .json();
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(keys["current"], signing::key_id(&new).as_str());
    child.kill().expect("stop");
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
}

async fn report(addr: SocketAddr, name: &str, body: &str) -> Reply {
    request(
        addr,
        "POST",
        &format!("/v1/bundles/{name}/status"),
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn status_reports_show_rejected_versions() {
    let server = start_with(BundleStore::new(), options()).await;
    push_demo(server.addr, "a").await;
    push_demo(server.addr, "b").await;
    let accepted = report(
        server.addr,
        "demo",
        r#"{"instance":"envoy-1","state":"active","version":2}"#,
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    for instance in ["envoy-2", "envoy-3"] {
        let body = format!(
            r#"{{"instance":"{instance}","state":"rejected","version":2,"reason":"bad_signature","active_version":1}}"#
        );
        assert_eq!(report(server.addr, "demo", &body).await.status, 202);
    }
    // A later report of the same instance replaces its earlier one.
    assert_eq!(
        report(
            server.addr,
            "demo",
            r#"{"instance":"envoy-3","state":"active","version":2}"#
        )
        .await
        .status,
        202
    );
    let status = get(server.addr, "/v1/bundles/demo/status", &[]).await;
    assert_eq!(status.status, 200);
    let status = status.json();
    assert_eq!(status["latest"], 2);
    assert!(status["reports"]
        .as_str()
        .is_some_and(|s| s.contains("unauthenticated")));
    let instances = status["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 3);
    assert_eq!(instances[1]["instance"], "envoy-2");
    assert_eq!(instances[1]["state"], "rejected");
    assert_eq!(instances[1]["reason"], "bad_signature");
    assert_eq!(instances[1]["active_version"], 1);
    assert_eq!(
        status["rejected"],
        serde_json::json!([{"version": 2, "reason": "bad_signature", "instances": 1}])
    );
    let metrics = get(server.addr, "/metrics", &[]).await;
    assert!(metrics
        .text()
        .contains("mcp_guard_control_status_reports_total{result=\"rejected\"} 2"));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn status_reports_are_bounded() {
    let server = start_with(
        BundleStore::new(),
        Options {
            status_limits: StatusLimits {
                max_instances: 2,
                per_second: 0.001,
                burst: 6.0,
            },
            ..options()
        },
    )
    .await;
    push_demo(server.addr, "a").await;
    let active = |i: &str| format!(r#"{{"instance":"{i}","state":"active","version":1}}"#);
    // Unknown bundles cannot grow the board.
    assert_eq!(report(server.addr, "nope", &active("x")).await.status, 404);
    for bad in [
        r#"{"instance":"x","state":"rejected","reason":"because I said so"}"#.to_owned(),
        r#"{"instance":"x y","state":"active"}"#.to_owned(),
        r#"{"instance":"x","state":"active","note":"free text"}"#.to_owned(),
        "not json".to_owned(),
    ] {
        assert_eq!(report(server.addr, "demo", &bad).await.status, 400, "{bad}");
    }
    let huge = format!(r#"{{"instance":"{}","state":"active"}}"#, "a".repeat(4096));
    assert_eq!(report(server.addr, "demo", &huge).await.status, 413);
    for i in ["a", "b", "c"] {
        assert_eq!(report(server.addr, "demo", &active(i)).await.status, 202);
    }
    let status = get(server.addr, "/v1/bundles/demo/status", &[])
        .await
        .json();
    let ids: Vec<&str> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["instance"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "capped per bundle: {ids:?}");
    assert!(ids.contains(&"c"), "the newest is kept: {ids:?}");
    // Bad bodies are refused before the bucket; 3 good ones used 3 of 6.
    let mut limited = None;
    for i in 0..10 {
        let reply = report(server.addr, "demo", &active(&format!("r{i}"))).await;
        if reply.status == 429 {
            limited = Some((i, reply.header("retry-after").map(str::to_owned)));
            break;
        }
    }
    assert_eq!(limited, Some((3, Some("1".to_owned()))));
    server.stop().await.expect("clean shutdown");
}
