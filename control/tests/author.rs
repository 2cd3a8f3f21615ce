//! Author signatures on push (`--trusted-signers`): a push must carry a
//! valid `x-bundle-author-signature` by a key trusted for the bundle's
//! name, checked on the exact bytes before anything is parsed or stored;
//! the verifying key id is kept with the version (`signed_by`).

mod support;

use std::sync::Arc;

use mcp_guard_control::author::TrustedSigners;
use mcp_guard_control::{BundleName, BundleStore, Commit, Options, Source};
use mcp_guard_engine::author_signing::{author_sign, AUTHOR_SIGNATURE_HEADER};
use mcp_guard_engine::signing::{self, SigningKey};
use serde_json::{json, Value};
use support::{bearer, bundle, get, options, put, request, scratch_dir, start_with, TEAM_A_TOKEN};

fn team_key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[22; 32])
}

/// Team A's pipeline key may author `team-a-*` (not `demo`).
fn signers() -> Arc<TrustedSigners> {
    let text = json!({"signers": [
        {"key": signing::public_key_base64(&team_key().verifying_key()), "bundles": ["team-a-*"]},
    ]});
    Arc::new(TrustedSigners::parse(text.to_string().as_bytes()).expect("signers"))
}

fn signed_options() -> Options {
    Options {
        trusted_signers: Some(signers()),
        ..options()
    }
}

fn team_id() -> String {
    signing::key_id(&team_key().verifying_key())
}

async fn push_signed(
    addr: std::net::SocketAddr,
    name: &str,
    body: &str,
    header: Option<&str>,
) -> support::Reply {
    let extra: Vec<(&str, &str)> = header
        .map(|h| (AUTHOR_SIGNATURE_HEADER, h))
        .into_iter()
        .collect();
    put(addr, name, Some(TEAM_A_TOKEN), &extra, body).await
}

#[tokio::test]
async fn a_signed_push_is_stored_with_its_signer_and_rollback_keeps_it() {
    let server = start_with(BundleStore::new(), signed_options()).await;
    let v1 = bundle("team-a-x", "one");
    let sig1 = author_sign("team-a-x", v1.as_bytes(), &[&team_key()]);
    let reply = push_signed(server.addr, "team-a-x", &v1, Some(&sig1)).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["signed_by"], team_id());
    let v2 = bundle("team-a-x", "two");
    let sig2 = author_sign("team-a-x", v2.as_bytes(), &[&team_key()]);
    assert_eq!(
        push_signed(server.addr, "team-a-x", &v2, Some(&sig2))
            .await
            .status,
        201
    );
    // Rollback to version 1 stores its old content with its old signer.
    let rollback = request(
        server.addr,
        "POST",
        "/v1/bundles/team-a-x/rollback",
        &[("authorization", &bearer(TEAM_A_TOKEN))],
        br#"{"to": 1}"#,
    )
    .await;
    assert_eq!(rollback.status, 201, "{}", rollback.text());
    assert_eq!(rollback.json()["signed_by"], team_id());
    let history = get(server.addr, "/v1/bundles/team-a-x/versions", &[])
        .await
        .json();
    let versions = history["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3);
    for entry in versions {
        assert_eq!(entry["signed_by"], team_id(), "{entry}");
    }
    assert_eq!(versions[2]["source"], "rollback");
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn refused_pushes_are_403_with_a_reason_and_store_nothing() {
    let server = start_with(BundleStore::new(), signed_options()).await;
    let body = bundle("team-a-x", "one");
    let good = author_sign("team-a-x", body.as_bytes(), &[&team_key()]);
    let tampered = bundle("team-a-x", "evil");
    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        ("missing", body.clone(), None, "author_signature_missing"),
        (
            "empty",
            body.clone(),
            Some(String::new()),
            "author_signature_missing",
        ),
        // The pipeline's header replayed on other bytes.
        (
            "replayed",
            tampered.clone(),
            Some(good.clone()),
            "author_signature_invalid",
        ),
        (
            "garbage",
            body.clone(),
            Some("v=1; key=; ed25519=!!".into()),
            "author_signature_invalid",
        ),
        (
            "not a signature",
            body.clone(),
            Some("hello".into()),
            "author_signature_invalid",
        ),
        (
            "wrong key",
            body.clone(),
            Some(author_sign("team-a-x", body.as_bytes(), &[&other_key()])),
            "author_signature_untrusted",
        ),
        (
            "signed as another name",
            body.clone(),
            Some(author_sign("team-a-y", body.as_bytes(), &[&team_key()])),
            "author_signature_invalid",
        ),
        (
            "oversized",
            body.clone(),
            Some(format!("{good}, {}", "x".repeat(8000))),
            "author_signature_invalid",
        ),
    ];
    for (what, body, header, reason) in cases {
        let reply = push_signed(server.addr, "team-a-x", &body, header.as_deref()).await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.text());
        let answer = reply.json();
        assert_eq!(answer["reason"], reason, "{what}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty() && !e.contains("Some(")),
            "{what}: {answer}"
        );
    }
    // The team key is trusted for team-a-*, not for demo (token may push it).
    let demo = bundle("demo", "one");
    let sig = author_sign("demo", demo.as_bytes(), &[&team_key()]);
    let reply = push_signed(server.addr, "demo", &demo, Some(&sig)).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(reply.json()["reason"], "author_signature_untrusted");
    // Nothing was stored.
    assert_eq!(
        get(server.addr, "/v1/bundles/team-a-x", &[]).await.status,
        404
    );
    assert_eq!(get(server.addr, "/v1/bundles/demo", &[]).await.status, 404);
    // A non-ASCII header value is refused, not a 500.
    let raw = format!(
        "PUT /v1/bundles/team-a-x HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n{AUTHOR_SIGNATURE_HEADER}: v=1; key=\u{e9}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        bearer(TEAM_A_TOKEN),
        body.len()
    );
    let reply = support::exchange(server.addr, raw.as_bytes()).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    // A token is still needed first: no signature check for strangers.
    let reply = put(
        server.addr,
        "team-a-x",
        None,
        &[(AUTHOR_SIGNATURE_HEADER, &good)],
        &body,
    )
    .await;
    assert_eq!(reply.status, 401);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn without_trusted_signers_the_header_is_ignored() {
    let server = start_with(BundleStore::new(), options()).await;
    let body = bundle("team-a-x", "one");
    let reply = push_signed(server.addr, "team-a-x", &body, Some("not even a signature")).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert!(reply.json().get("signed_by").is_none());
    let history: Value = get(server.addr, "/v1/bundles/team-a-x/versions", &[])
        .await
        .json();
    assert!(history["versions"][0].get("signed_by").is_none());
    server.stop().await.expect("clean shutdown");
}

#[test]
fn the_signer_survives_a_restart_of_the_file_store() {
    let dir = scratch_dir("author-persist");
    let key = SigningKey::from_bytes(&[9; 32]);
    let name = BundleName::parse("team-a-x").expect("name");
    let (store, _) = BundleStore::open(&dir, key.clone()).expect("open");
    store
        .commit(Commit {
            name: &name,
            content: bundle("team-a-x", "one").as_bytes(),
            source: Source::Push,
            by: "team-a",
            signed_by: Some("0123456789abcdef"),
            if_match: None,
        })
        .expect("stored");
    drop(store);
    let (store, rejected) = BundleStore::open(&dir, key).expect("reopen");
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(
        store.get(&name).expect("held").signed_by(),
        Some("0123456789abcdef")
    );
}
