//! Issuer keys by OIDC discovery: a local issuer serves a discovery
//! document and a JWKS; the service embeds the keys at push and stores a
//! `key-rotation` version when the issuer rotates them.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mcp_guard_control::discovery::DiscoveryClient;
use mcp_guard_control::{BundleStore, Options};
use mcp_guard_engine::signing::SigningKey;
use mcp_guard_engine::Bundle;
use serde_json::{json, Value};
use support::{get, options, put, start_with, TEAM_A_TOKEN};

/// A local issuer whose current key can be swapped.
struct Issuer {
    addr: SocketAddr,
    key: Arc<Mutex<(String, SigningKey)>>,
}

impl Issuer {
    async fn start() -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let key = Arc::new(Mutex::new((
            "k1".to_owned(),
            SigningKey::from_bytes(&[1; 32]),
        )));
        let shared = Arc::clone(&key);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let key = Arc::clone(&shared);
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let key = Arc::clone(&key);
                    async move {
                        let body = match request.uri().path() {
                            "/.well-known/openid-configuration" => json!({
                                "issuer": format!("http://{addr}"),
                                "jwks_uri": format!("http://{addr}/jwks"),
                            }),
                            _ => {
                                let (kid, key) = key.lock().expect("lock").clone();
                                json!({"keys": [{
                                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                                    "kid": kid,
                                    "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                                }]})
                            }
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Issuer { addr, key }
    }

    fn rotate(&self, kid: &str, seed: u8) {
        *self.key.lock().expect("lock") = (kid.to_owned(), SigningKey::from_bytes(&[seed; 32]));
    }

    fn bundle(&self) -> String {
        json!({
            "name": "demo", "version": 1,
            "identity": {"verify": {"issuers": [{
                "iss": format!("http://{}", self.addr),
                "audiences": ["mcp"],
                "algorithms": ["EdDSA"],
                "discovery": format!("http://{}/.well-known/openid-configuration", self.addr),
            }]}},
            "rules": [{"id": "all", "effect": "allow"}],
        })
        .to_string()
    }
}

fn kids(bundle: &Value) -> Vec<String> {
    bundle["identity"]["verify"]["issuers"][0]["jwks"]["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn push_embeds_keys_and_refresh_follows_rotation() {
    let issuer = Issuer::start().await;
    let server = start_with(
        BundleStore::new(),
        Options {
            jwks_refresh: Some(Duration::from_millis(200)),
            discovery: DiscoveryClient::allowing_plain_http(),
            ..options()
        },
    )
    .await;
    let pushed = put(
        server.addr,
        "demo",
        Some(TEAM_A_TOKEN),
        &[],
        &issuer.bundle(),
    )
    .await;
    assert_eq!(pushed.status, 201, "{}", pushed.text());

    let served = get(server.addr, "/v1/bundles/demo", &[]).await;
    // What filters get carries the fetched keys and still names discovery;
    // the filter's own parser accepts it.
    Bundle::parse(&served.body).expect("filter accepts the resolved bundle");
    let doc = served.json();
    assert_eq!(kids(&doc), ["k1"]);
    assert!(doc["identity"]["verify"]["issuers"][0]["discovery"].is_string());

    // The issuer rotates; within a few refresh periods a new version holds
    // the new key.
    issuer.rotate("k2", 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    let rotated = loop {
        let reply = get(server.addr, "/v1/bundles/demo", &[]).await;
        if kids(&reply.json()) == ["k2"] {
            break reply;
        }
        assert!(Instant::now() < deadline, "keys were not refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rotated.header("x-bundle-version"), Some("2"));
    let history = get(server.addr, "/v1/bundles/demo/versions", &[])
        .await
        .json();
    assert_eq!(history["versions"][1]["source"], "key-rotation");
    assert_eq!(history["versions"][1]["by"], "jwks-refresh");

    // Unchanged keys store nothing new.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let history = get(server.addr, "/v1/bundles/demo/versions", &[])
        .await
        .json();
    assert_eq!(history["versions"].as_array().map(Vec::len), Some(2));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn discovery_problems_are_bundle_issues() {
    let issuer = Issuer::start().await;
    let server = start_with(
        BundleStore::new(),
        Options {
            discovery: DiscoveryClient::allowing_plain_http(),
            ..options()
        },
    )
    .await;
    let push = |body: String| async move {
        put(server.addr, "demo", Some(TEAM_A_TOKEN), &[], &body).await
    };
    // Unreachable issuer.
    let unreachable = issuer
        .bundle()
        .replace(&issuer.addr.to_string(), "127.0.0.1:9");
    let reply = push(unreachable).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["issues"][0]["path"],
        "$.identity.verify.issuers[0].discovery"
    );
    // Both jwks and discovery at push time.
    let mut both: Value = serde_json::from_str(&issuer.bundle()).expect("json");
    both["identity"]["verify"]["issuers"][0]["jwks"] = json!({"keys": []});
    let reply = push(both.to_string()).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["issues"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("not both")));
    // https to a plain-HTTP server: the handshake fails, named with the URL.
    let https = issuer.bundle().replace("http://127", "https://127");
    let reply = push(https).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("https://127"), "{}", reply.text());
    server.stop().await.expect("clean shutdown");
}
