//! The shipped Envoy configuration templates (wasm filter and native
//! module) render to configs that the pinned Envoy accepts
//! (`envoy --mode validate`), with the real filter.

use std::process::Command;

use mcp_guard_e2e::envoy::{render, EnvoySettings};
use mcp_guard_e2e::{paths, target, tokens, Target};

/// Renders the template with `plugin_config` and runs
/// `envoy --mode validate` on it: (success, Envoy's output).
fn validate(target: &Target, plugin_config: &str, name: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!(
        "mcp-guard-{name}-{}-{}",
        target.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = EnvoySettings {
        target: target.clone(),
        jwks: tokens::DEMO_JWKS.replace('\n', ""),
        plugin_config: plugin_config.into(),
        upstream_port: 1,
        h2_upstream_port: 3,
        control_port: 2,
        token_port: 4,
        ratelimit_port: 5,
        headers_stop_iteration: true,
        concurrency: 1,
        downstream_tls: None,
        route_clusters: vec![("llm-private".into(), 5)],
    };
    let template = std::fs::read_to_string(target.template()).unwrap();
    let rendered = render(&template, &settings, &dir.join("access.log"));
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, &rendered).unwrap();
    let output = Command::new(paths::envoy_path())
        .env(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            target.module().parent().unwrap(),
        )
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&config)
        .output()
        .expect("envoy runs");
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), log, rendered)
}

#[test]
fn rendered_template_validates_with_real_envoy() {
    for target in target::available() {
        let (ok, log, rendered) = validate(
            &target,
            r#"{"control":{"cluster":"mcp_guard_control","bundle":"demo","allow_unsigned":true}}"#,
            "validate",
        );
        assert!(
            !rendered.contains("{{"),
            "unfilled placeholder in:\n{rendered}"
        );
        assert!(ok, "{}: {log}", target.name());
        assert!(log.contains("OK"), "{}: {log}", target.name());
    }
}

#[test]
fn an_invalid_plugin_configuration_is_refused_by_envoy() {
    for target in target::available() {
        let (ok, log, _) = validate(
            &target,
            r#"{"bundle":{"name":"x","version":1,"rules":[{"id":"a","effect":"maybe"}]}}"#,
            "invalid",
        );
        assert!(!ok, "{}: {log}", target.name());
        assert!(
            log.contains("invalid inline bundle") && log.contains("rules[0].effect"),
            "{}: {log}",
            target.name()
        );
    }
}

/// The request-line settings Envoy validates above are also in the Istio
/// example's EnvoyFilter, so the two cannot drift apart unnoticed.
#[test]
fn request_line_hardening_is_in_the_template_and_the_istio_example() {
    let template = std::fs::read_to_string(paths::envoy_template()).unwrap();
    let native = std::fs::read_to_string(paths::envoy_native_template()).unwrap();
    let istio = std::fs::read_to_string(
        paths::workspace_root().join("istio/base/envoyfilter-request-line.yaml"),
    )
    .unwrap();
    for setting in [
        "normalize_path: true",
        "merge_slashes: true",
        "path_with_escaped_slashes_action: REJECT_REQUEST",
        "strip_trailing_host_dot: true",
        "headers_with_underscores_action: REJECT_REQUEST",
    ] {
        let live = |text: &str| {
            text.lines()
                .any(|l| l.trim() == setting && !l.trim_start().starts_with('#'))
        };
        assert!(live(&template), "envoy.yaml.tmpl lacks `{setting}`");
        assert!(live(&native), "envoy-native.yaml.tmpl lacks `{setting}`");
        assert!(
            live(&istio),
            "istio/base/envoyfilter-request-line.yaml lacks `{setting}`"
        );
    }
}

#[test]
fn no_access_log_writes_the_query_string() {
    // Queries carry tokens (`?access_token=`, signed URLs): the decision
    // record drops them, and so must every access log Envoy writes.
    for path in [paths::envoy_template(), paths::envoy_native_template()] {
        let text = std::fs::read_to_string(&path).unwrap();
        let live: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        for forbidden in [
            "%REQ(:PATH)%",
            "%REQ(:path)%",
            "%PATH%",
            "%REQ(X-ENVOY-ORIGINAL-PATH",
        ] {
            assert!(
                !live.iter().any(|l| l.contains(forbidden)),
                "{} logs {forbidden}",
                path.display()
            );
        }
        if live.iter().any(|l| l.contains("%REQ_WITHOUT_QUERY(")) {
            assert!(
                live.iter()
                    .any(|l| l.trim() == "- name: envoy.formatter.req_without_query"),
                "{} uses REQ_WITHOUT_QUERY without its formatter",
                path.display()
            );
        }
    }
}
