//! Pushing, versioning, history, rollback and signatures over real HTTP.

mod support;

use mcp_guard_control::BundleStore;
use mcp_guard_engine::signing;
use mcp_guard_engine::Bundle;
use serde_json::Value;
use support::{
    bearer, bundle, get, options, push_demo, put, request, start_with, TEAM_A_TOKEN, TEAM_B_TOKEN,
};

#[tokio::test]
async fn push_assigns_versions_and_serves_them() {
    let server = start_with(BundleStore::new(), options()).await;
    let first = push_demo(server.addr, "a").await;
    assert_eq!(first.status, 201, "{}", first.text());
    let created = first.json();
    assert_eq!(created["name"], "demo");
    assert_eq!(created["version"], 1);
    let digest = created["digest"].as_str().expect("digest");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 7 + 64,
        "{digest}"
    );

    // The pushed version number is ignored: the service counts.
    let body = bundle("demo", "b").replace("\"version\":1", "\"version\":77");
    let second = put(server.addr, "demo", Some(TEAM_A_TOKEN), &[], &body).await;
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(second.json()["version"], 2);

    let latest = get(server.addr, "/v1/bundles/demo", &[]).await;
    assert_eq!(latest.status, 200);
    assert_eq!(latest.header("x-bundle-version"), Some("2"));
    assert_eq!(latest.header("etag"), second.json()["etag"].as_str());
    let served: Value = latest.json();
    assert_eq!(served["version"], 2);
    assert_eq!(served["rules"][0]["id"], "b");
    // Only the version bytes changed: the rest is as pushed.
    assert_eq!(
        latest.text(),
        body.replace("\"version\":77", "\"version\":2")
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn push_auth_is_enforced() {
    let server = start_with(BundleStore::new(), options()).await;
    let body = bundle("demo", "a");
    let none = put(server.addr, "demo", None, &[], &body).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let unknown = put(server.addr, "demo", Some("guess"), &[], &body).await;
    assert_eq!(unknown.status, 401);
    let out_of_scope = put(server.addr, "demo", Some(TEAM_B_TOKEN), &[], &body).await;
    assert_eq!(out_of_scope.status, 403);
    assert_eq!(out_of_scope.json()["error"], "forbidden");
    let globbed = put(
        server.addr,
        "team-b-prod",
        Some(TEAM_B_TOKEN),
        &[],
        &bundle("team-b-prod", "a"),
    )
    .await;
    assert_eq!(globbed.status, 201, "{}", globbed.text());
    // Nothing was stored by the refused pushes.
    assert_eq!(get(server.addr, "/v1/bundles/demo", &[]).await.status, 404);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn invalid_bundles_get_every_issue() {
    let server = start_with(BundleStore::new(), options()).await;
    let body = r#"{"name":"demo","version":1,"rules":[
        {"id":"","effect":"allow"},{"id":"x","effect":"allow"},{"id":"x","effect":"deny"}],
        "pii":{"max_body_bytes":0}}"#;
    let reply = put(server.addr, "demo", Some(TEAM_A_TOKEN), &[], body).await;
    assert_eq!(reply.status, 400);
    let json = reply.json();
    assert_eq!(json["error"], "invalid_bundle");
    let paths: Vec<&str> = json["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| i["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        ["$.rules[0].id", "$.rules[2].id", "$.pii.max_body_bytes"],
        "{json}"
    );
    assert!(json["issues"][1]["message"].is_string());

    let typo = put(
        server.addr,
        "demo",
        Some(TEAM_A_TOKEN),
        &[],
        r#"{"name":"demo","version":1,"rulez":[]}"#,
    )
    .await;
    assert_eq!(typo.status, 400);
    assert_eq!(typo.json()["issues"].as_array().map(Vec::len), Some(1));

    let mismatch = put(
        server.addr,
        "demo",
        Some(TEAM_A_TOKEN),
        &[],
        &bundle("team-a-x", "a"),
    )
    .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(mismatch.json()["error"], "name_mismatch");

    let huge = format!(
        r#"{{"name":"demo","version":1,"description":"{}"}}"#,
        "x".repeat(mcp_guard_engine::bundle::MAX_BUNDLE_BYTES)
    );
    let too_large = put(server.addr, "demo", Some(TEAM_A_TOKEN), &[], &huge).await;
    assert_eq!(too_large.status, 413);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn if_match_guards_against_lost_updates() {
    let server = start_with(BundleStore::new(), options()).await;
    let v1 = push_demo(server.addr, "a").await;
    let etag1 = v1.json()["etag"].as_str().expect("etag").to_owned();
    // Conditional on a version nobody has: 412, with the current tag.
    let stale = put(
        server.addr,
        "demo",
        Some(TEAM_A_TOKEN),
        &[("if-match", "\"0123\"")],
        &bundle("demo", "b"),
    )
    .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.header("etag"), Some(etag1.as_str()));
    let ok = put(
        server.addr,
        "demo",
        Some(TEAM_A_TOKEN),
        &[("if-match", &etag1)],
        &bundle("demo", "b"),
    )
    .await;
    assert_eq!(ok.status, 201);
    // The same precondition again is now stale.
    let again = put(
        server.addr,
        "demo",
        Some(TEAM_A_TOKEN),
        &[("if-match", &etag1)],
        &bundle("demo", "c"),
    )
    .await;
    assert_eq!(again.status, 412);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn history_and_rollback() {
    let server = start_with(BundleStore::new(), options()).await;
    for rule in ["a", "b", "c"] {
        let reply = push_demo(server.addr, rule).await;
        assert_eq!(reply.status, 201);
    }
    let auth = bearer(TEAM_A_TOKEN);
    let rollback = request(
        server.addr,
        "POST",
        "/v1/bundles/demo/rollback",
        &[("authorization", &auth)],
        br#"{"to": 1}"#,
    )
    .await;
    assert_eq!(rollback.status, 201, "{}", rollback.text());
    assert_eq!(rollback.json()["version"], 4);

    let latest = get(server.addr, "/v1/bundles/demo", &[]).await;
    assert_eq!(latest.json()["rules"][0]["id"], "a");
    assert_eq!(latest.json()["version"], 4);

    let history = get(server.addr, "/v1/bundles/demo/versions", &[]).await;
    assert_eq!(history.status, 200);
    let versions = history.json()["versions"].clone();
    let summary: Vec<(u64, &str, &str)> = versions
        .as_array()
        .expect("list")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().expect("version"),
                v["source"].as_str().expect("source"),
                v["by"].as_str().expect("by"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "push", "team-a"),
            (2, "push", "team-a"),
            (3, "push", "team-a"),
            (4, "rollback", "team-a")
        ]
    );
    assert!(versions[0]["stored_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let v2 = get(server.addr, "/v1/bundles/demo/versions/2", &[]).await;
    assert_eq!(v2.status, 200);
    assert_eq!(v2.json()["rules"][0]["id"], "b");
    assert_eq!(v2.header("etag"), versions[1]["etag"].as_str());

    for (token, body, status) in [
        (None, &br#"{"to": 1}"#[..], 401),
        (Some(TEAM_B_TOKEN), &br#"{"to": 1}"#[..], 403),
        (Some(TEAM_A_TOKEN), &br#"{"to": 9}"#[..], 404),
        (Some(TEAM_A_TOKEN), &br#"{"back": 1}"#[..], 400),
    ] {
        let auth = token.map(bearer);
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = request(
            server.addr,
            "POST",
            "/v1/bundles/demo/rollback",
            &headers,
            body,
        )
        .await;
        assert_eq!(reply.status, status, "{}", reply.text());
    }
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn signatures_verify_with_the_published_key() {
    let server = start_with(BundleStore::new(), options()).await;
    push_demo(server.addr, "a").await;
    let keys = get(server.addr, "/v1/keys", &[]).await.json();
    let key = signing::verifying_key_from_text(keys["keys"][0]["ed25519"].as_str().expect("key"))
        .expect("valid public key");
    assert_eq!(keys["keys"][0]["id"], signing::key_id(&key));

    assert_eq!(keys["keys"][0]["status"], "current");
    assert_eq!(keys["current"], signing::key_id(&key));

    let reply = get(server.addr, "/v1/bundles/demo", &[]).await;
    let header = reply.header("x-bundle-signature").expect("signed");
    let version: u64 = reply
        .header("x-bundle-version")
        .and_then(|v| v.parse().ok())
        .expect("version header");
    let signed = |name, version, bytes| signing::Signed {
        name,
        version,
        bytes,
    };
    assert!(signing::verify(&signed("demo", version, &reply.body), header, &[key]).is_ok());
    Bundle::parse(&reply.body).expect("valid bundle");
    let mut tampered = reply.body.clone();
    tampered[3] ^= 0x20;
    assert!(matches!(
        signing::verify(&signed("demo", version, &tampered), header, &[key]),
        Err(signing::SignatureError::BadSignature(_))
    ));
    // The signature says which bundle and which version it is.
    for (name, v) in [("team-a-x", version), ("demo", version + 1)] {
        assert!(matches!(
            signing::verify(&signed(name, v, &reply.body), header, &[key]),
            Err(signing::SignatureError::BadSignature(_))
        ));
    }
    // Old versions are signed too, as their own version.
    let v1 = get(server.addr, "/v1/bundles/demo/versions/1", &[]).await;
    assert!(signing::verify(
        &signed("demo", 1, &v1.body),
        v1.header("x-bundle-signature"),
        &[key]
    )
    .is_ok());
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let server = start_with(BundleStore::new(), options()).await;
    push_demo(server.addr, "a").await;
    put(server.addr, "demo", None, &[], &bundle("demo", "a")).await;
    let etag = get(server.addr, "/v1/bundles/demo", &[])
        .await
        .header("etag")
        .map(str::to_owned);
    let etag = etag.expect("etag");
    get(server.addr, "/v1/bundles/demo", &[("if-none-match", &etag)]).await;
    let metrics = get(server.addr, "/metrics", &[]).await;
    let text = metrics.text();
    for line in [
        "mcp_guard_control_pushes_total{result=\"created\"} 1",
        "mcp_guard_control_pushes_total{result=\"unauthorized\"} 1",
        "mcp_guard_control_serves_total{status=\"200\"} 1",
        "mcp_guard_control_serves_total{status=\"304\"} 1",
        "mcp_guard_control_long_polls_waiting 0",
        "mcp_guard_control_bundle_version{name=\"demo\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    server.stop().await.expect("clean shutdown");
}
