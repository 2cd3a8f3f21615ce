//! Serving bundles over real HTTP.

mod support;

use mcp_guard_control::{BundleStore, ETag};
use support::{get, request, Server};

/// A valid bundle with unusual spacing, to show it is served byte for byte.
const DEMO: &str = "{ \"name\": \"demo\",\n  \"version\": 42,\n  \"rules\": [] }\n";

fn demo_store() -> BundleStore {
    BundleStore::from_bundles([("demo", DEMO)]).expect("valid demo bundle")
}

#[tokio::test]
async fn serves_the_stored_bytes_with_tag_and_version() {
    let server = Server::start(demo_store()).await;
    let reply = get(server.addr, "/v1/bundles/demo", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, DEMO.as_bytes());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-bundle-version"), Some("42"));
    let etag = reply.header("etag").expect("etag");
    assert_eq!(etag, ETag::of(DEMO.as_bytes()).as_str());
    let hex = etag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .expect("quoted");
    assert_eq!(hex.len(), 32);
    assert!(hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn if_none_match_gets_304_while_unchanged() {
    let server = Server::start(demo_store()).await;
    let first = get(server.addr, "/v1/bundles/demo", &[]).await;
    let etag = first.header("etag").expect("etag").to_owned();

    for condition in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let reply = get(
            server.addr,
            "/v1/bundles/demo",
            &[("if-none-match", &condition)],
        )
        .await;
        assert_eq!(reply.status, 304, "{condition}");
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
        assert_eq!(reply.header("x-bundle-version"), Some("42"));
        assert!(reply.body.is_empty());
    }

    let stale = get(
        server.addr,
        "/v1/bundles/demo",
        &[("if-none-match", "\"00000000000000000000000000000000\"")],
    )
    .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, DEMO.as_bytes());
}

#[tokio::test]
async fn unknown_bundle_is_404_json() {
    let server = Server::start(demo_store()).await;
    let reply = get(server.addr, "/v1/bundles/prod", &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({ "error": "not_found" }));
}

#[tokio::test]
async fn bad_names_are_400() {
    let server = Server::start(demo_store()).await;
    let too_long = format!("/v1/bundles/{}", "a".repeat(65));
    for path in [
        "/v1/bundles/",
        "/v1/bundles/..%2Fetc",
        "/v1/bundles/de%20mo",
        "/v1/bundles/demo!",
        too_long.as_str(),
    ] {
        let reply = get(server.addr, path, &[]).await;
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.json()["error"], "bad_name", "{path}");
    }
    let longest = format!("/v1/bundles/{}", "a".repeat(64));
    assert_eq!(get(server.addr, &longest, &[]).await.status, 404);
}

#[tokio::test]
async fn probes_and_other_paths() {
    let server = Server::start(demo_store()).await;
    assert_eq!(get(server.addr, "/healthz", &[]).await.status, 200);
    assert_eq!(get(server.addr, "/readyz", &[]).await.status, 200);
    assert_eq!(get(server.addr, "/", &[]).await.status, 404);
    let put = request(server.addr, "PUT", "/v1/bundles/demo", &[], DEMO.as_bytes()).await;
    // Writes need a token; this store was started without any.
    assert_eq!(put.status, 401);
    assert_eq!(put.header("www-authenticate"), Some("Bearer"));
    let delete = request(server.addr, "DELETE", "/v1/bundles/demo", &[], b"").await;
    assert_eq!(delete.status, 405);
    assert_eq!(delete.header("allow"), Some("GET, HEAD, PUT"));
}

#[tokio::test]
async fn head_sends_headers_without_body() {
    let server = Server::start(demo_store()).await;
    let reply = request(server.addr, "HEAD", "/v1/bundles/demo", &[], b"").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("x-bundle-version"), Some("42"));
    assert_eq!(
        reply.header("content-length"),
        Some(DEMO.len().to_string().as_str())
    );
}
