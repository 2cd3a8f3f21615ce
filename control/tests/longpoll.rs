//! Long-poll: a filter holding the current tag waits until a new version
//! is stored (answered within milliseconds) or until its deadline (304).

mod support;

use std::time::{Duration, Instant};

use mcp_guard_control::BundleStore;
use support::{get, options, push_demo, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_within_milliseconds_of_a_push() {
    let server = start_with(BundleStore::new(), options()).await;
    let addr = server.addr;
    let etag = push_demo(addr, "a").await.json()["etag"]
        .as_str()
        .expect("etag")
        .to_owned();
    let mut worst = Duration::ZERO;
    let mut etag = etag;
    for round in 0..5 {
        let condition = etag.clone();
        let poll = tokio::spawn(async move {
            let reply = get(
                addr,
                "/v1/bundles/demo?wait=30",
                &[("if-none-match", &condition)],
            )
            .await;
            (reply, Instant::now())
        });
        // Let the poll arrive and start waiting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pushed = push_demo(addr, &format!("r{round}")).await;
        let acked = Instant::now();
        assert_eq!(pushed.status, 201);
        let (reply, answered) = poll.await.expect("poll task");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("etag"), pushed.json()["etag"].as_str());
        assert!(reply.header("x-bundle-signature").is_some());
        worst = worst.max(answered.saturating_duration_since(acked));
        etag = reply.header("etag").expect("etag").to_owned();
    }
    assert!(
        worst < Duration::from_millis(100),
        "slowest wake-up {worst:?}"
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn deadline_gives_304_and_prefer_header_works() {
    let server = start_with(BundleStore::new(), options()).await;
    let etag = push_demo(server.addr, "a").await.json()["etag"]
        .as_str()
        .expect("etag")
        .to_owned();
    let started = Instant::now();
    let reply = get(
        server.addr,
        "/v1/bundles/demo",
        &[("if-none-match", &etag), ("prefer", "wait=1")],
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 304);
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // A stale tag is answered at once, wait or not.
    let started = Instant::now();
    let fresh = get(
        server.addr,
        "/v1/bundles/demo?wait=30",
        &[("if-none-match", "\"stale\"")],
    )
    .await;
    assert_eq!(fresh.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn shutdown_releases_waiting_polls_with_304() {
    let server = start_with(BundleStore::new(), options()).await;
    let addr = server.addr;
    let etag = push_demo(addr, "a").await.json()["etag"]
        .as_str()
        .expect("etag")
        .to_owned();
    let poll = tokio::spawn(async move {
        get(
            addr,
            "/v1/bundles/demo?wait=60",
            &[("if-none-match", &etag)],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = get(addr, "/metrics", &[]).await;
    assert!(
        waiting
            .text()
            .contains("mcp_guard_control_long_polls_waiting 1"),
        "{}",
        waiting.text()
    );
    let started = Instant::now();
    server.stop().await.expect("clean shutdown");
    let reply = poll.await.expect("poll task");
    assert_eq!(reply.status, 304);
    assert!(started.elapsed() < Duration::from_secs(2));
}
