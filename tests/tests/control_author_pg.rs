//! Author signatures with the shared PostgreSQL store: the verifying key
//! id (`signed_by`) of a pushed version is stored in the database, so a
//! second replica (and a restarted one) reports it in the history; a push
//! refused for its author signature leaves no row.

use std::time::{Duration, Instant};

use mcp_guard_control::auth::token_digest_hex;
use mcp_guard_control::keys;
use mcp_guard_e2e::control_process::ControlProcess;
use mcp_guard_e2e::http::send;
use mcp_guard_e2e::postgres::Postgres;
use mcp_guard_engine::author_signing::{author_sign, AUTHOR_SIGNATURE_HEADER};
use mcp_guard_engine::signing::{self, SigningKey};
use serde_json::{json, Value};

const TOKEN: &str = "author-pg-token";

fn history(r: &ControlProcess) -> Value {
    send("GET", &r.url("/v1/bundles/pay-x/versions"), None, &[], None)
        .map(|reply| reply.json())
        .unwrap_or(Value::Null)
}

#[test]
fn signed_by_is_shared_through_the_database() {
    let pg = match Postgres::start() {
        Ok(pg) => pg,
        Err(e) => panic!("PostgreSQL: {e}"),
    };
    let dir = std::env::temp_dir().join(format!("mcp-guard-author-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let author = SigningKey::from_bytes(&[31; 32]);
    std::fs::write(
        dir.join("signing.key"),
        signing::seed_base64(&keys::generate()),
    )
    .expect("key");
    let tokens =
        json!({"tokens": [{"id": "ci", "sha256": token_digest_hex(TOKEN), "bundles": ["*"]}]});
    std::fs::write(dir.join("tokens.json"), tokens.to_string()).expect("tokens");
    let signers = json!({"signers": [{
        "key": signing::public_key_base64(&author.verifying_key()),
        "bundles": ["pay-*"],
    }]});
    std::fs::write(dir.join("signers.json"), signers.to_string()).expect("signers");
    let path = |f: &str| dir.join(f).display().to_string();
    let args: Vec<String> = vec![
        "--store".into(),
        pg.url(),
        "--signing-key".into(),
        path("signing.key"),
        "--tokens".into(),
        path("tokens.json"),
        "--trusted-signers".into(),
        path("signers.json"),
        "--jwks-refresh".into(),
        "0".into(),
    ];
    let a = ControlProcess::start(&args, dir.join("a.log")).expect("replica a");
    let b = ControlProcess::start(&args, dir.join("b.log")).expect("replica b");

    let body = json!({"name": "pay-x", "version": 1, "description": "signed"}).to_string();
    let header = author_sign("pay-x", body.as_bytes(), &[&author]);
    // Unsigned first: refused, nothing stored.
    let refused = send(
        "PUT",
        &a.url("/v1/bundles/pay-x"),
        Some(TOKEN),
        &[],
        Some(&body),
    )
    .expect("PUT completes");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["reason"], "author_signature_missing");
    let pushed = send(
        "PUT",
        &a.url("/v1/bundles/pay-x"),
        Some(TOKEN),
        &[(AUTHOR_SIGNATURE_HEADER, &header)],
        Some(&body),
    )
    .expect("PUT completes");
    assert_eq!(pushed.status, 201, "{}", pushed.json());
    let key_id = signing::key_id(&author.verifying_key());
    assert_eq!(pushed.json()["signed_by"], key_id);
    assert_eq!(
        pushed.json()["version"],
        1,
        "the refused push took no version"
    );

    // Replica b learns the version from the database, signer included.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = history(&b);
        if listed["versions"][0]["signed_by"] == key_id {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica b never saw signed_by: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(a);
    drop(b);
    // A replica started afresh loads it from the table.
    let c = ControlProcess::start(&args, dir.join("c.log")).expect("replica c");
    let listed = history(&c);
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["versions"][0]["signed_by"], key_id, "{listed}");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
