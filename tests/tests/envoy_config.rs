//! The shipped Envoy configuration template renders to a config that the
//! pinned Envoy accepts (`envoy --mode validate`), with the real filter.

use std::process::Command;

use mcp_guard_e2e::envoy::{render, EnvoySettings};
use mcp_guard_e2e::{paths, tokens};

#[test]
fn rendered_template_validates_with_real_envoy() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = EnvoySettings {
        wasm: paths::wasm_path(),
        jwks: tokens::DEMO_JWKS.replace('\n', ""),
        plugin_config:
            r#"{"control":{"cluster":"mcp_guard_control","bundle":"demo","allow_unsigned":true}}"#
                .into(),
        upstream_port: 1,
        control_port: 2,
        concurrency: 1,
    };
    let template = std::fs::read_to_string(paths::envoy_template()).unwrap();
    let rendered = render(&template, &settings, &dir.join("access.log"));
    assert!(
        !rendered.contains("{{"),
        "unfilled placeholder in:\n{rendered}"
    );
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, rendered).unwrap();
    let output = Command::new(paths::envoy_path())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&config)
        .output()
        .expect("envoy runs");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("OK"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_invalid_plugin_configuration_is_refused_by_envoy() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-invalid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = EnvoySettings {
        wasm: paths::wasm_path(),
        jwks: tokens::DEMO_JWKS.replace('\n', ""),
        plugin_config:
            r#"{"bundle":{"name":"x","version":1,"rules":[{"id":"a","effect":"maybe"}]}}"#.into(),
        upstream_port: 1,
        control_port: 2,
        concurrency: 1,
    };
    let template = std::fs::read_to_string(paths::envoy_template()).unwrap();
    let config = dir.join("envoy.yaml");
    std::fs::write(
        &config,
        render(&template, &settings, &dir.join("access.log")),
    )
    .unwrap();
    let output = Command::new(paths::envoy_path())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&config)
        .output()
        .expect("envoy runs");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("invalid inline bundle") && log.contains("rules[0].effect"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
