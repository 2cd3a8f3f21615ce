//! The connection limit: past it a long-poll is answered 503 with
//! Retry-After at once, while the polls already waiting, pushes, scrapes
//! and probes keep working; idle connections cannot hold the overflow
//! lane for long.

mod support;

use std::time::{Duration, Instant};

use mcp_guard_control::{BundleStore, Options};
use support::{get, options, push_demo, start_with};
use tokio::io::AsyncReadExt as _;

fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_limit_polls_get_503_and_everything_else_works() {
    let server = start_with(
        BundleStore::new(),
        Options {
            max_connections: Some(2),
            ..options()
        },
    )
    .await;
    let addr = server.addr;
    let first = push_demo(addr, "a").await;
    assert_eq!(first.status, 201);
    let etag = first.json()["etag"].as_str().expect("etag").to_owned();
    // The push's connection is closed; its slot is free again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut polls = Vec::new();
    for _ in 0..2 {
        let etag = etag.clone();
        polls.push(tokio::spawn(async move {
            get(
                addr,
                "/v1/bundles/demo?wait=30",
                &[("if-none-match", &etag)],
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A scrape past the limit is served (the overflow lane).
    let page = get(addr, "/metrics", &[]).await;
    assert_eq!(page.status, 200);
    let text = page.text().to_owned();
    assert_eq!(
        metric(&text, "mcp_guard_control_long_polls_waiting"),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "mcp_guard_control_connections_open"),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "mcp_guard_control_connections_max"),
        Some(2.0)
    );

    // A third long-poll is refused at once, with a time to come back.
    let started = Instant::now();
    let refused = get(
        addr,
        "/v1/bundles/demo?wait=30",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(refused.json()["error"], "over_capacity");
    assert!(started.elapsed() < Duration::from_secs(1));
    // So is one that asks to wait through Prefer.
    let refused = get(
        addr,
        "/v1/bundles/demo",
        &[("if-none-match", &etag), ("prefer", "wait=10")],
    )
    .await;
    assert_eq!(refused.status, 503);
    // A plain fetch is not a long-poll: served.
    assert_eq!(get(addr, "/v1/bundles/demo", &[]).await.status, 200);

    // The push the waiting polls wait for still gets through...
    let second = push_demo(addr, "b").await;
    assert_eq!(second.status, 201);
    let new_etag = second.json()["etag"].as_str().expect("etag").to_owned();
    // ...and wakes them.
    for poll in polls {
        let reply = poll.await.expect("poll task");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("etag"), Some(new_etag.as_str()));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Below the limit again: a long-poll is served normally (waits, 304).
    let started = Instant::now();
    let waited = get(
        addr,
        "/v1/bundles/demo?wait=1",
        &[("if-none-match", &new_etag)],
    )
    .await;
    assert_eq!(waited.status, 304);
    assert!(started.elapsed() >= Duration::from_millis(900));

    // An attacker fills the slots and floods idle connections past them:
    // at most 64 are held (2 s each, for their headers), the rest closed.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut idle = Vec::new();
    for _ in 0..72 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut closed_at_once = 0;
    for stream in &mut idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut byte)).await
        {
            closed_at_once += 1;
        }
    }
    assert!(closed_at_once >= 8, "closed at once: {closed_at_once}");
    // Once the idle ones time out, the lane serves again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = get(addr, "/metrics", &[]).await;
    assert_eq!(page.status, 200);
    let refused = metric(page.text(), "mcp_guard_control_connections_refused_total")
        .expect("refused counter");
    assert!(refused >= 2.0 + 8.0, "{refused}");
    drop((held, idle));
    server.stop().await.expect("clean shutdown");
}
