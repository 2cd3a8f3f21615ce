//! Every filter configuration of the Istio layout (the WasmPlugin's
//! `pluginConfig` and the EnvoyFilter variant's `configuration`, as each
//! kustomization renders them) run through the real module: it starts,
//! refuses a caller without identity, admits the example's allowed
//! claims, refuses other roles, and fetches from the cluster Istio creates
//! for the control service. A typo in a configuration stops the module
//! from starting (Istio's FAIL_CLOSE then refuses the traffic).
//!
//! Needs the module (`cargo build -p mcp-guard-filter --target
//! wasm32-wasip1 --release`, or `MCP_GUARD_WASM`).

#[path = "../../tests/src/kustomize.rs"]
#[allow(dead_code)]
mod kustomize;

use std::path::PathBuf;
use std::time::Duration;

use mcp_guard_engine::signing::{self, SigningKey};
use mcp_guard_host_test::{Host, HttpCallResponse, Plugin, PluginOptions};
use serde_json::{json, Value};

const LAYOUTS: &[&str] = &[
    "istio/base",
    "istio/overlays/example",
    "istio/envoyfilter-alternative",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// (where it came from, the configuration as JSON text) of a rendering.
fn configs(layout: &str) -> Vec<(String, String)> {
    let docs = kustomize::render(&root().join(layout)).unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for d in &docs {
        match kustomize::kind(d) {
            "WasmPlugin" => out.push((
                format!("{layout}: WasmPlugin pluginConfig"),
                d["spec"]["pluginConfig"].to_string(),
            )),
            "EnvoyFilter" => {
                for p in d["spec"]["configPatches"].as_array().unwrap() {
                    let config = &p["patch"]["value"]["typed_config"]["config"];
                    if let Some(text) = config["configuration"]["value"].as_str() {
                        out.push((
                            format!("{layout}: EnvoyFilter configuration"),
                            text.to_owned(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(out.len(), 1, "{layout}: one filter configuration");
    out
}

/// Starts the module on a configuration, in the Envoy it is written
/// for: a configuration that says `headers_stop_iteration` (the
/// EnvoyFilter alternative) in an Envoy that holds headers, any other (a
/// WasmPlugin's) in one that does not.
fn start(host: &Host, at: &str, config: &str) -> Plugin {
    let value: Value = serde_json::from_str(config).unwrap();
    let options = PluginOptions {
        headers_stop_iteration: value["headers_stop_iteration"] == json!(true),
        ..PluginOptions::default()
    };
    host.plugin_with(config, options)
        .unwrap_or_else(|e| panic!("{at}: the filter refuses its configuration: {e}"))
}

/// The status of a chat completion with these verified claims (`None`:
/// no identity at all); 0 when the request went on to the model.
fn chat(plugin: &Plugin, claims: Option<Value>) -> u32 {
    let stream = plugin.stream().unwrap();
    if let Some(claims) = claims {
        // Istio's RequestAuthentication stores the payload under "payload".
        stream.set_jwt_payload("payload", claims);
    }
    stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":authority", "llm-server"),
                ("content-type", "application/json"),
            ],
            false,
        )
        .unwrap();
    let status = match stream.local_reply() {
        Some(reply) => reply.status,
        None => {
            stream
                .request_body(br#"{"model":"m","messages":[]}"#, true)
                .unwrap();
            match stream.local_reply() {
                Some(reply) => reply.status,
                None => {
                    assert!(stream.upstream_request().is_some());
                    0
                }
            }
        }
    };
    stream.finish().unwrap();
    status
}

#[test]
fn every_rendered_configuration_starts_and_decides_as_documented() {
    let host = Host::from_env().unwrap_or_else(|e| panic!("{e}"));
    for layout in LAYOUTS {
        for (at, config) in configs(layout) {
            let plugin = start(&host, &at, &config);
            assert!(plugin.failure().is_none(), "{at}: {:?}", plugin.failure());
            let exp = 1.9e9;
            assert_eq!(chat(&plugin, None), 401, "{at}: anonymous");
            assert_eq!(
                chat(
                    &plugin,
                    Some(json!({"sub": "alice", "roles": ["model-user"], "exp": exp}))
                ),
                0,
                "{at}: model-user"
            );
            assert_eq!(
                chat(
                    &plugin,
                    Some(json!({"sub": "mallory", "roles": ["guest"], "exp": exp}))
                ),
                403,
                "{at}: another role"
            );
            // A role that looks like the allowed one is not it.
            assert_eq!(
                chat(
                    &plugin,
                    Some(json!({"sub": "eve", "roles": "model-user-x", "exp": exp}))
                ),
                403,
                "{at}: a lookalike role"
            );
        }
    }
}

/// Ticks until the module's bundle fetch is pending; returns it.
fn bundle_fetch(plugin: &Plugin, at: &str) -> mcp_guard_host_test::HttpCall {
    for _ in 0..20 {
        plugin.advance(Duration::from_millis(100)).unwrap();
        plugin.tick().unwrap();
        if let Some(call) = plugin
            .pending_http_calls()
            .into_iter()
            .find(|c| c.header(":method") == Some("GET"))
        {
            return call;
        }
    }
    panic!("{at}: no bundle fetch")
}

/// Answers a fetch with version 2 of `models` allowing every caller,
/// signed by `key`, and lets the module activate it.
fn serve_open_version(plugin: &Plugin, fetch: &mcp_guard_host_test::HttpCall, key: &SigningKey) {
    let body = json!({"name": "models", "version": 2,
        "identity": {"jwt_authn_metadata": "payload", "subject_claim": "sub"},
        "rules": [{"id": "everyone", "effect": "allow", "when": {}}]})
    .to_string();
    let header = signing::sign(
        &signing::Signed {
            name: "models",
            version: 2,
            bytes: body.as_bytes(),
        },
        &[key],
    );
    plugin
        .respond_http_call(
            fetch.token,
            &HttpCallResponse::new(200, body.into_bytes())
                .header("etag", "\"v2\"")
                .header("x-bundle-version", "2")
                .header(signing::SIGNATURE_HEADER, &header),
        )
        .unwrap();
    for _ in 0..3 {
        plugin.advance(Duration::from_millis(100)).unwrap();
        plugin.tick().unwrap();
    }
}

#[test]
fn the_filter_fetches_from_the_istio_cluster_and_refuses_versions_the_example_key_did_not_sign() {
    let host = Host::from_env().unwrap();
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let guest = || Some(json!({"sub": "mallory", "roles": ["guest"], "exp": 1.9e9}));
    for layout in ["istio/overlays/example", "istio/envoyfilter-alternative"] {
        for (at, config) in configs(layout) {
            let value: Value = serde_json::from_str(&config).unwrap();
            let cluster = value["control"]["cluster"].as_str().unwrap().to_owned();
            let authority = value["control"]["authority"].as_str().unwrap().to_owned();
            let plugin = start(&host, &at, &config);
            let fetch = bundle_fetch(&plugin, &at);
            assert_eq!(fetch.upstream, cluster, "{at}");
            assert_eq!(fetch.header(":authority"), Some(authority.as_str()), "{at}");
            assert!(
                fetch
                    .header(":path")
                    .unwrap()
                    .starts_with("/v1/bundles/models"),
                "{at}"
            );
            // Until the operator puts the real key in, a version signed by
            // anyone (here: a key of this test) is refused and the inline
            // bundle stays in force.
            serve_open_version(&plugin, &fetch, &stranger);
            assert_eq!(
                chat(&plugin, guest()),
                403,
                "{at}: a forged version took over"
            );

            // The same answer is taken once the configuration trusts the
            // key that signed it: the refusal above was the signature's.
            let mut trusting = value.clone();
            trusting["control"]["public_keys"] =
                json!([signing::public_key_base64(&stranger.verifying_key())]);
            let plugin = start(&host, &at, &trusting.to_string());
            let fetch = bundle_fetch(&plugin, &at);
            serve_open_version(&plugin, &fetch, &stranger);
            assert_eq!(
                chat(&plugin, guest()),
                0,
                "{at}: the trusted version was not taken"
            );
        }
    }
}

/// One way to get a configuration wrong.
type Typo = Box<dyn Fn(&mut Value)>;

#[test]
fn a_typo_in_a_configuration_stops_the_filter_from_starting() {
    let host = Host::from_env().unwrap();
    let (at, config) = configs("istio/overlays/example").remove(0);
    let good: Value = serde_json::from_str(&config).unwrap();
    let typos: Vec<(&str, Typo)> = vec![
        (
            "a misspelt top-level key",
            Box::new(|v| {
                let control = v["control"].take();
                v.as_object_mut().unwrap().remove("control");
                v["contrl"] = control;
            }),
        ),
        (
            "public_key for public_keys",
            Box::new(|v| {
                let keys = v["control"]["public_keys"].take();
                v["control"].as_object_mut().unwrap().remove("public_keys");
                v["control"]["public_key"] = keys;
            }),
        ),
        (
            "a misspelt rule field",
            Box::new(|v| {
                let rule = &mut v["bundle"]["rules"][0];
                let effect = rule["effect"].take();
                rule.as_object_mut().unwrap().remove("effect");
                rule["efect"] = effect;
            }),
        ),
        (
            "an effect that is not one",
            Box::new(|v| v["bundle"]["rules"][0]["effect"] = json!("alow")),
        ),
        (
            "a public key that is not one",
            Box::new(|v| v["control"]["public_keys"] = json!(["<base64 Ed25519 public key>"])),
        ),
        (
            "no key and no allow_unsigned",
            Box::new(|v| v["control"]["public_keys"] = json!([])),
        ),
    ];
    for (what, typo) in typos {
        let mut bad = good.clone();
        typo(&mut bad);
        match host.plugin(bad.to_string()) {
            Err(_) => {}
            Ok(plugin) => assert!(
                plugin.failure().is_some(),
                "{at}: {what}: the filter started on {bad}"
            ),
        }
    }
}
