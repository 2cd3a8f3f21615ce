//! The control service and real Envoy (3 workers) together: pushes reach
//! every worker, invalid and tampered bundles never replace the active one,
//! Envoy keeps enforcing while the service is down, and a restarted service
//! recovers every version.

use std::time::Duration;

use mcp_guard_e2e::http::{send, Reply};
use mcp_guard_e2e::prometheus;
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target, DEMO_BUNDLE};
use serde_json::Value;

const CHAT: &str = r#"{"model":"demo-llm","messages":[{"role":"user","content":"hi"}]}"#;
const WORKERS: u32 = 3;

fn chat(stack: &Stack, token: &str) -> Reply {
    send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(token),
        &[],
        Some(CHAT),
    )
    .expect("request completes")
}

/// Statuses of several requests on fresh connections (spread over workers).
fn statuses(stack: &Stack, token: &str) -> Vec<u16> {
    (0..12).map(|_| chat(stack, token).status).collect()
}

fn demo_with(version_note: &str, role: &str) -> String {
    let mut bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    bundle["description"] = Value::String(version_note.into());
    let text = bundle.to_string();
    text.replace("\"model-user\"", &format!("\"{role}\""))
}

fn control_metric(stack: &Stack, name: &str) -> f64 {
    let text = stack.control_get("/metrics").unwrap().body;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn bundles_flow_from_push_to_every_worker_and_failures_never_replace_them() {
    for target in target::available() {
        eprintln!(
            "bundles_flow_from_push_to_every_worker_and_failures_never_replace_them: {}",
            target.name()
        );
        bundles_flow_from_push_to_every_worker_and_failures_never_replace_them_on(&target);
    }
}

fn bundles_flow_from_push_to_every_worker_and_failures_never_replace_them_on(target: &Target) {
    let mut stack = Stack::start(StackOptions {
        target: target.clone(),
        concurrency: WORKERS,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let alice = tokens::alice().unwrap();
    let llm_user = tokens::mint(serde_json::json!({"sub": "lou", "roles": ["llm-user"]})).unwrap();
    assert!(statuses(&stack, &alice).iter().all(|s| *s == 200));

    // v2 renames the role: enforced by every worker.
    let pushed = stack.push("demo", &demo_with("v2", "llm-user")).unwrap();
    assert_eq!(pushed.status, 201, "{pushed:?}");
    assert_eq!(pushed.json()["version"], 2);
    stack
        .wait_for_version(2, WORKERS, Duration::from_secs(5))
        .expect("v2 on every VM");
    assert!(statuses(&stack, &alice).iter().all(|s| *s == 403));
    assert!(statuses(&stack, &llm_user).iter().all(|s| *s == 200));

    // An invalid push is refused with every issue, v2 stays.
    let invalid = stack
        .push(
            "demo",
            r#"{"name":"demo","version":9,"rules":[{"id":"x","effect":"perhaps"}]}"#,
        )
        .unwrap();
    assert_eq!(invalid.status, 400, "{invalid:?}");
    assert!(invalid.body.contains("rules[0].effect"), "{}", invalid.body);
    assert!(statuses(&stack, &llm_user).iter().all(|s| *s == 200));

    // A bundle altered in transit fails its signature and is not activated.
    stack.tamper.set(true);
    assert_eq!(
        stack
            .push("demo", &demo_with("v3", "model-user"))
            .unwrap()
            .status,
        201
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !stack.envoy.log_text().contains("signature does not match") {
        assert!(
            std::time::Instant::now() < deadline,
            "tampered bundle was not rejected:\n{}",
            stack.envoy.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        stack.activations(3).0,
        0,
        "v3 must not activate while tampered"
    );
    assert!(
        statuses(&stack, &alice).iter().all(|s| *s == 403),
        "v2 still enforced"
    );
    let rejected = prometheus::scrape(&stack.envoy.admin)
        .unwrap()
        .sum("mcp_bundle_fetches_total", &[("result", "rejected")]);
    assert!(rejected >= 1.0, "{rejected}");
    stack.tamper.set(false);
    stack
        .wait_for_version(3, WORKERS, Duration::from_secs(5))
        .expect("the genuine v3 arrives after tampering stops");
    assert!(statuses(&stack, &alice).iter().all(|s| *s == 200));

    // One fetch per version for all workers (the lease), plus re-armed polls.
    let served = control_metric(&stack, "mcp_guard_control_serves_total{status=\"200\"");
    assert!(
        served <= 6.0,
        "bundle bodies served: {served} for 3 versions (+1 tampered)"
    );

    // The service goes away: Envoy keeps enforcing v3.
    stack.stop_control();
    std::thread::sleep(Duration::from_millis(300));
    assert!(statuses(&stack, &alice).iter().all(|s| *s == 200));
    assert_eq!(chat(&stack, &tokens::mallory().unwrap()).status, 403);

    // It comes back: every version is recovered, and pushes flow again.
    stack.restart_control().expect("restarts");
    let history = stack
        .control_get("/v1/bundles/demo/versions")
        .unwrap()
        .json();
    let versions: Vec<u64> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(
        stack
            .push("demo", &demo_with("v4", "llm-user"))
            .unwrap()
            .status,
        201
    );
    stack
        .wait_for_version(4, WORKERS, Duration::from_secs(10))
        .expect("v4 after restart");
    assert!(statuses(&stack, &llm_user).iter().all(|s| *s == 200));
}
