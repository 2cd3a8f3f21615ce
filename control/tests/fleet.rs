//! `GET /v1/status`: every fetch's identity headers update its proxy's
//! row; the table shows synced, behind, rejected (with the refused version
//! from the status report) and stale proxies, and forged or oversize
//! headers never fail a fetch nor reach the table.

mod support;

use std::time::Duration;

use mcp_guard_control::{BundleStore, FleetLimits, Options};
use serde_json::Value;
use support::{get, options, push_demo, request, start_with};

fn poll(instance: &str, active: &str, error: Option<&str>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("x-mcp-guard-instance", instance.to_owned()),
        ("x-mcp-guard-active", active.to_owned()),
    ];
    if let Some(error) = error {
        headers.push(("x-mcp-guard-last-error", error.to_owned()));
    }
    headers
}

async fn fetch(addr: std::net::SocketAddr, headers: &[(&'static str, String)]) -> u16 {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    get(addr, "/v1/bundles/demo", &headers).await.status
}

fn row<'a>(table: &'a Value, instance: &str) -> &'a Value {
    table["instances"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["instance"] == instance))
        .unwrap_or_else(|| panic!("no row for {instance}: {table}"))
}

#[tokio::test]
async fn the_table_follows_each_poll() {
    let server = start_with(
        BundleStore::new(),
        Options {
            fleet_limits: FleetLimits {
                grace_ms: 400,
                ..FleetLimits::default()
            },
            ..options()
        },
    )
    .await;
    push_demo(server.addr, "a").await;
    push_demo(server.addr, "b").await;
    let mut with_pod = poll("sidecar~10.0.0.1~web-0.ns~ns.svc.cluster.local", "2", None);
    with_pod.push(("x-mcp-guard-pod", "web-0".into()));
    assert_eq!(fetch(server.addr, &with_pod).await, 200);
    assert_eq!(fetch(server.addr, &poll("old", "1", None)).await, 200);
    assert_eq!(
        fetch(server.addr, &poll("refuser", "1", Some("untrusted_key"))).await,
        200
    );
    let report = r#"{"instance":"refuser","state":"rejected","version":2,"reason":"untrusted_key","active_version":1}"#;
    let posted = request(
        server.addr,
        "POST",
        "/v1/bundles/demo/status",
        &[("content-type", "application/json")],
        report.as_bytes(),
    )
    .await;
    assert_eq!(posted.status, 202, "{}", posted.text());

    let table = get(server.addr, "/v1/status", &[]).await;
    assert_eq!(table.status, 200);
    let table = table.json();
    let synced = row(&table, "sidecar~10.0.0.1~web-0.ns~ns.svc.cluster.local");
    assert_eq!(
        (
            &synced["state"],
            &synced["pod"],
            &synced["active"],
            &synced["latest"]
        ),
        (
            &Value::from("synced"),
            &Value::from("web-0"),
            &Value::from(2),
            &Value::from(2)
        )
    );
    assert_eq!(row(&table, "old")["state"], "behind");
    let refuser = row(&table, "refuser");
    assert_eq!(refuser["state"], "rejected");
    assert_eq!(
        refuser["rejected"],
        serde_json::json!({"version": 2, "reason": "untrusted_key"})
    );
    assert_eq!(refuser["last_error"], "untrusted_key");
    assert_eq!(
        table["bundles"],
        serde_json::json!([{"name": "demo", "latest": 2, "synced": 1, "behind": 1, "rejected": 1, "stale": 0}])
    );
    // Filtered by bundle; unknown and malformed names are refused.
    let only = get(server.addr, "/v1/status?bundle=demo", &[]).await;
    assert_eq!(only.json()["instances"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        get(server.addr, "/v1/status?bundle=nope", &[]).await.status,
        404
    );
    assert_eq!(
        get(server.addr, "/v1/status?bundle=bad$name", &[])
            .await
            .status,
        400
    );
    assert_eq!(
        request(server.addr, "POST", "/v1/status", &[], b"")
            .await
            .status,
        405
    );

    // Silent for longer than two waits (none asked) + 400 ms: stale;
    // polling again revives the row.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(fetch(server.addr, &poll("old", "2", None)).await, 200);
    let table = get(server.addr, "/v1/status", &[]).await.json();
    assert_eq!(row(&table, "refuser")["state"], "stale");
    assert_eq!(row(&table, "old")["state"], "synced");
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn forged_headers_never_fail_a_fetch_nor_reach_the_table() {
    let server = start_with(BundleStore::new(), options()).await;
    push_demo(server.addr, "a").await;
    let long = "a".repeat(129);
    let long_pod = "p".repeat(254);
    for headers in [
        vec![("x-mcp-guard-instance", long.clone())],
        vec![("x-mcp-guard-instance", "a b".to_owned())],
        vec![("x-mcp-guard-instance", "<script>".to_owned())],
        vec![("x-mcp-guard-instance", "é".to_owned())],
    ] {
        assert_eq!(fetch(server.addr, &headers).await, 200, "{headers:?}");
    }
    // A repeated instance header is ambiguous: ignored.
    assert_eq!(
        get(
            server.addr,
            "/v1/bundles/demo",
            &[
                ("x-mcp-guard-instance", "one"),
                ("x-mcp-guard-instance", "two")
            ]
        )
        .await
        .status,
        200
    );
    // A valid instance with bad fields: the row exists, the fields do not.
    let mut bad = poll("ok-1", "-1", Some("<img src=x>"));
    bad.push(("x-mcp-guard-pod", long_pod));
    assert_eq!(fetch(server.addr, &bad).await, 200);
    let table = get(server.addr, "/v1/status", &[]).await.json();
    assert_eq!(
        table["instances"].as_array().map(Vec::len),
        Some(1),
        "{table}"
    );
    let ok = row(&table, "ok-1");
    assert_eq!(
        (&ok["pod"], &ok["active"], &ok["last_error"], &ok["state"]),
        (
            &Value::Null,
            &Value::Null,
            &Value::Null,
            &Value::from("behind")
        )
    );
    // Unknown bundles make no rows.
    let status = get(
        server.addr,
        "/v1/bundles/nope",
        &[("x-mcp-guard-instance", "x")],
    )
    .await;
    assert_eq!(status.status, 404);
    assert_eq!(
        get(server.addr, "/v1/status", &[]).await.json()["bundles"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    server.stop().await.expect("clean shutdown");
}
