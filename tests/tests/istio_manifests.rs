//! The Istio manifests under `istio/`, checked offline (no cluster): each
//! kustomization is rendered (`mcp_guard_e2e::kustomize`, compared with a
//! real `kubectl kustomize` where one is installed), Kubernetes kinds are
//! validated against the Kubernetes 1.37 JSON schemas of the
//! `kubernetes-validate` package (strict: unknown fields are errors),
//! Istio kinds against typed models of the Istio API reference that refuse
//! unknown fields and values, and the security properties an operator
//! relies on are asserted. The filter configurations themselves are run
//! through the real module in `host-test/tests/istio_configs.rs`.

use mcp_guard_e2e::kustomize::{self, kind, name, namespace};
use mcp_guard_e2e::paths;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// Every kustomization an operator may apply.
const LAYOUTS: &[&str] = &[
    "istio/base",
    "istio/overlays/example",
    "istio/envoyfilter-alternative",
];

fn dir(layout: &str) -> PathBuf {
    paths::workspace_root().join(layout)
}

fn render(layout: &str) -> Vec<Value> {
    kustomize::render(&dir(layout)).unwrap_or_else(|e| panic!("{layout}: {e}"))
}

fn all() -> Vec<(&'static str, Vec<Value>)> {
    LAYOUTS.iter().map(|l| (*l, render(l))).collect()
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found = of_kind(docs, k);
    assert_eq!(found.len(), 1, "exactly one {k} expected");
    found[0]
}

// --- Rendering ---------------------------------------------------------

#[test]
fn the_renderer_matches_kubectl_kustomize_where_installed() {
    let Ok(out) = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("kubectl not installed: rendering checked by the unit cases only");
        return;
    };
    assert!(out.status.success());
    for layout in LAYOUTS {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir(layout))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{layout}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs =
            kustomize::parse_documents(&dir(layout), &String::from_utf8(out.stdout).unwrap())
                .unwrap();
        let ours = render(layout);
        assert_eq!(ours.len(), theirs.len(), "{layout}");
        assert_eq!(
            kustomize::by_key(&ours),
            kustomize::by_key(&theirs),
            "{layout}: our rendering differs from kubectl kustomize"
        );
    }
}

#[test]
fn the_renderer_applies_each_feature_and_refuses_what_it_cannot_render() {
    let tmp = std::env::temp_dir().join(format!("mcp-guard-kustomize-{}", std::process::id()));
    let base = tmp.join("base");
    let overlay = tmp.join("overlay");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&overlay).unwrap();
    let write = |p: PathBuf, s: &str| std::fs::write(p, s).unwrap();
    write(
        base.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [r.yaml]\n",
    );
    write(
        base.join("r.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: a}\n\
         spec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      \
         - {name: c, image: 'reg:5000/x/img:1.0'}\n      - {name: o, image: other:2}\n---\n\
         apiVersion: example.io/v1\nkind: Thing\nmetadata: {name: t, namespace: a}\n\
         spec: {list: [1, 2], map: {keep: 1, drop: 2}}\n",
    );
    write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources: [../base]\nnamespace: b\n\
         images: [{name: 'reg:5000/x/img', newTag: '2.0'}]\n\
         replicas: [{name: d, count: 4}]\n\
         patches:\n- path: smp.yaml\n- path: ops.yaml\n  target: {kind: Thing, name: t}\n",
    );
    write(
        overlay.join("smp.yaml"),
        "apiVersion: example.io/v1\nkind: Thing\nmetadata: {name: t}\n\
         spec: {list: [3], map: {drop: null, new: 3}}\n",
    );
    write(
        overlay.join("ops.yaml"),
        "- {op: add, path: /spec/list/-, value: 4}\n- {op: replace, path: /spec/map/keep, value: 9}\n",
    );
    let out = kustomize::by_key(&kustomize::render(&overlay).unwrap());
    assert!(out.contains_key("Namespace//b"), "{out:?}");
    let d = &out["Deployment/b/d"];
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "reg:5000/x/img:2.0"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][1]["image"],
        "other:2"
    );
    let t = &out["Thing/b/t"];
    assert_eq!(t["spec"]["list"], serde_json::json!([3, 4]));
    assert_eq!(t["spec"]["map"], serde_json::json!({"keep": 9, "new": 3}));

    // A list in a strategic merge of a built-in kind is merged by key by
    // kustomize: refused here rather than rendered differently.
    write(
        overlay.join("smp.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n\
         spec: {template: {spec: {containers: [{name: c, image: y}]}}}\n",
    );
    let err = kustomize::render(&overlay).unwrap_err().to_string();
    assert!(err.contains("unsupported"), "{err}");
    // A feature it does not implement is refused, not skipped.
    write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources: [../base]\nnamePrefix: x-\n",
    );
    let err = kustomize::render(&overlay).unwrap_err().to_string();
    assert!(err.contains("namePrefix"), "{err}");
    // A patch that names nothing fails the rendering.
    write(
        overlay.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources: [../base]\npatches:\n- path: ops.yaml\n  target: {kind: Thing, name: nope}\n",
    );
    let err = kustomize::render(&overlay).unwrap_err().to_string();
    assert!(err.contains("matches nothing"), "{err}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Every YAML file of the layout.
fn yaml_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.ends_with("node_modules") {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn no_scalar_reads_differently_in_yaml_1_1_and_1_2() {
    // kubectl reads YAML 1.1 (`on`, `yes`, `0440` are a bool and an octal
    // number), this renderer 1.2 (a string and a decimal): such a value
    // would mean one thing in the cluster and another in these tests.
    let mut files = Vec::new();
    yaml_files(&paths::workspace_root().join("istio"), &mut files);
    assert!(files.len() >= 15, "{files:?}");
    let ambiguous = [
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split(" #").next().unwrap_or_default();
            if code.trim_start().starts_with('#') {
                continue;
            }
            let Some((_, value)) = code.split_once(": ").or_else(|| code.split_once("- ")) else {
                continue;
            };
            let value = value.trim();
            let octal = value.len() > 1
                && value.starts_with('0')
                && value.bytes().all(|b| b.is_ascii_digit());
            assert!(
                !ambiguous.contains(&value) && !octal,
                "{}:{}: `{value}` differs between YAML 1.1 and 1.2: quote it",
                file.display(),
                i + 1
            );
        }
    }
}

// --- Kubernetes kinds: kubernetes-validate schemas -----------------------

/// The Python with `kubernetes-validate`: `MCP_GUARD_PYTHON`, else the
/// workspace's `.venv` (`cargo xtask envoy` installs it there, from
/// `istio/requirements.txt`).
fn validator_python() -> PathBuf {
    let python = std::env::var_os("MCP_GUARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| paths::workspace_root().join(".venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import kubernetes_validate"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} has no kubernetes-validate: run `cargo xtask envoy` (installs istio/requirements.txt \
         into .venv) or set MCP_GUARD_PYTHON",
        python.display()
    );
    python
}

/// Validates documents with kubernetes-validate in strict mode; returns
/// one line per document: `ok KIND NAME` or `error KIND NAME: MESSAGE`.
fn kubernetes_validate(docs: &[&Value]) -> Vec<String> {
    let script = r#"
import json, sys, kubernetes_validate
version = sys.argv[1]
for doc in json.load(sys.stdin):
    label = doc["kind"] + " " + doc["metadata"]["name"]
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        print("ok", label)
    except kubernetes_validate.ValidationError as e:
        print("error", label + ":", e.message.replace("\n", " "))
    except Exception as e:
        print("error", label + ":", type(e).__name__, e)
"#;
    let mut child = Command::new(validator_python())
        .args(["-c", script, KUBERNETES_VERSION])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &docs).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "validator failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The Kubernetes version whose schemas the manifests are checked against.
const KUBERNETES_VERSION: &str = "1.37.0";

const KUBERNETES_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
];

#[test]
fn kubernetes_kinds_validate_against_the_kubernetes_schemas() {
    let rendered = all();
    let mut docs = Vec::new();
    for (layout, list) in &rendered {
        for d in list {
            let k = kind(d);
            if KUBERNETES_KINDS.contains(&k) {
                docs.push(d);
            } else {
                assert!(
                    k.ends_with("Plugin")
                        || d["apiVersion"].as_str().unwrap().contains("istio.io/"),
                    "{layout}: {k} is checked by no test"
                );
            }
        }
    }
    let lines = kubernetes_validate(&docs);
    assert_eq!(lines.len(), docs.len(), "{lines:?}");
    let errors: Vec<_> = lines.iter().filter(|l| !l.starts_with("ok ")).collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // The validator is strict: a misspelt field or a wrong type fails.
    let mut bad = (*one(&rendered[0].1, "Deployment")).clone();
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] =
        Value::Bool(true);
    let mut wrong_type = (*one(&rendered[0].1, "Service")).clone();
    wrong_type["spec"]["ports"][0]["port"] = Value::from("8090");
    let lines = kubernetes_validate(&[&bad, &wrong_type]);
    assert!(lines.iter().all(|l| l.starts_with("error ")), "{lines:?}");
}

// --- Istio kinds: typed models of the Istio API reference ----------------

/// Typed models of the Istio resources, with only the fields these
/// manifests use and every struct refusing unknown fields, every enum
/// unknown values: a typo is an error here, not a field the API server
/// prunes. Field names and values from the Istio API reference:
/// WasmPlugin <https://istio.io/latest/docs/reference/config/proxy_extensions/wasm-plugin/>,
/// RequestAuthentication <https://istio.io/latest/docs/reference/config/security/request_authentication/>,
/// EnvoyFilter <https://istio.io/latest/docs/reference/config/networking/envoy-filter/>,
/// ServiceEntry <https://istio.io/latest/docs/reference/config/networking/service-entry/>,
/// DestinationRule <https://istio.io/latest/docs/reference/config/networking/destination-rule/>.
#[allow(dead_code)] // fields exist to be checked when parsing, not read
mod istio {
    use serde::Deserialize;
    use serde_json::Value;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Resource<S> {
        #[serde(rename = "apiVersion")]
        pub api_version: String,
        pub kind: String,
        pub metadata: Metadata,
        pub spec: S,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Metadata {
        pub name: String,
        pub namespace: String,
        #[serde(default)]
        pub labels: BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Selector {
        #[serde(rename = "matchLabels")]
        pub match_labels: BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WasmPlugin {
        pub selector: Selector,
        pub url: String,
        pub sha256: String,
        #[serde(rename = "imagePullPolicy")]
        pub image_pull_policy: PullPolicy,
        pub phase: Phase,
        #[serde(rename = "failStrategy")]
        pub fail_strategy: FailStrategy,
        #[serde(rename = "match")]
        pub traffic: Vec<TrafficSelector>,
        #[serde(rename = "pluginConfig")]
        pub plugin_config: Value,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    pub enum PullPolicy {
        #[serde(rename = "UNSPECIFIED_POLICY")]
        Unspecified,
        IfNotPresent,
        Always,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Phase {
        #[serde(rename = "UNSPECIFIED_PHASE")]
        Unspecified,
        Authn,
        Authz,
        Stats,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    pub enum FailStrategy {
        #[serde(rename = "FAIL_CLOSE")]
        Close,
        #[serde(rename = "FAIL_OPEN")]
        Open,
        #[serde(rename = "FAIL_RELOAD")]
        Reload,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TrafficSelector {
        pub mode: WorkloadMode,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum WorkloadMode {
        Undefined,
        Client,
        Server,
        ClientAndServer,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RequestAuthentication {
        pub selector: Selector,
        #[serde(rename = "jwtRules")]
        pub jwt_rules: Vec<JwtRule>,
    }

    /// <https://istio.io/latest/docs/reference/config/security/peer_authentication/>
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PeerAuthentication {
        pub selector: Selector,
        pub mtls: Mtls,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Mtls {
        pub mode: MtlsMode,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum MtlsMode {
        Unset,
        Disable,
        Permissive,
        Strict,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct JwtRule {
        pub issuer: String,
        #[serde(rename = "jwksUri")]
        pub jwks_uri: String,
        pub audiences: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct EnvoyFilter {
        #[serde(rename = "workloadSelector")]
        pub workload_selector: WorkloadSelector,
        #[serde(rename = "configPatches")]
        pub config_patches: Vec<ConfigPatch>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WorkloadSelector {
        pub labels: BTreeMap<String, String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConfigPatch {
        #[serde(rename = "applyTo")]
        pub apply_to: ApplyTo,
        #[serde(rename = "match")]
        pub matching: PatchMatch,
        pub patch: Patch,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ApplyTo {
        NetworkFilter,
        HttpFilter,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PatchMatch {
        pub context: PatchContext,
        pub listener: ListenerMatch,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum PatchContext {
        Any,
        SidecarInbound,
        SidecarOutbound,
        Gateway,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ListenerMatch {
        #[serde(rename = "filterChain")]
        pub filter_chain: FilterChainMatch,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FilterChainMatch {
        pub filter: FilterMatch,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FilterMatch {
        pub name: String,
        #[serde(default, rename = "subFilter")]
        pub sub_filter: Option<SubFilterMatch>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SubFilterMatch {
        pub name: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Patch {
        pub operation: Operation,
        pub value: Value,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Operation {
        Merge,
        InsertBefore,
        InsertAfter,
        InsertFirst,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServiceEntry {
        pub hosts: Vec<String>,
        pub location: Location,
        pub resolution: Resolution,
        pub ports: Vec<ServicePort>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Location {
        MeshExternal,
        MeshInternal,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum Resolution {
        None,
        Static,
        Dns,
        DnsRoundRobin,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServicePort {
        pub number: u16,
        pub name: String,
        pub protocol: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DestinationRule {
        pub host: String,
        #[serde(rename = "trafficPolicy")]
        pub traffic_policy: TrafficPolicy,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TrafficPolicy {
        pub tls: ClientTls,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ClientTls {
        pub mode: TlsMode,
        pub sni: String,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum TlsMode {
        Disable,
        Simple,
        Mutual,
        IstioMutual,
    }

    /// The part of Envoy's `envoy.extensions.wasm.v3.PluginConfig` the
    /// EnvoyFilter variant sets
    /// (<https://www.envoyproxy.io/docs/envoy/latest/api-v3/extensions/wasm/v3/wasm.proto>).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WasmFilter {
        pub name: String,
        pub typed_config: WasmTypedConfig,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WasmTypedConfig {
        #[serde(rename = "@type")]
        pub type_url: String,
        pub config: PluginConfig,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PluginConfig {
        pub name: String,
        pub root_id: String,
        pub fail_open: bool,
        pub allow_on_headers_stop_iteration: bool,
        pub vm_config: VmConfig,
        pub configuration: StringValue,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct VmConfig {
        pub vm_id: String,
        pub runtime: String,
        pub code: AsyncDataSource,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AsyncDataSource {
        pub remote: RemoteDataSource,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RemoteDataSource {
        pub http_uri: HttpUri,
        pub sha256: String,
        pub retry_policy: Value,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HttpUri {
        pub uri: String,
        pub cluster: String,
        pub timeout: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StringValue {
        #[serde(rename = "@type")]
        pub type_url: String,
        pub value: String,
    }

    /// Parses a resource into its typed model.
    pub fn parse<S: for<'de> Deserialize<'de>>(doc: &Value) -> Result<Resource<S>, String> {
        serde_json::from_value(doc.clone()).map_err(|e| e.to_string())
    }
}

fn parse_istio(doc: &Value) -> Result<(), String> {
    match kind(doc) {
        "WasmPlugin" => istio::parse::<istio::WasmPlugin>(doc).map(drop),
        "RequestAuthentication" => istio::parse::<istio::RequestAuthentication>(doc).map(drop),
        "PeerAuthentication" => istio::parse::<istio::PeerAuthentication>(doc).map(drop),
        "EnvoyFilter" => {
            let ef = istio::parse::<istio::EnvoyFilter>(doc)?;
            for p in &ef.spec.config_patches {
                if p.apply_to == istio::ApplyTo::HttpFilter {
                    serde_json::from_value::<istio::WasmFilter>(p.patch.value.clone())
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(())
        }
        "ServiceEntry" => istio::parse::<istio::ServiceEntry>(doc).map(drop),
        "DestinationRule" => istio::parse::<istio::DestinationRule>(doc).map(drop),
        other => Err(format!("{other}: no model")),
    }
}

#[test]
fn istio_kinds_parse_into_the_typed_models() {
    for (layout, docs) in all() {
        for d in &docs {
            if d["apiVersion"].as_str().unwrap().contains("istio.io/") {
                parse_istio(d).unwrap_or_else(|e| panic!("{layout}: {} {}: {e}", kind(d), name(d)));
            }
        }
    }
    // The models refuse what the API would not accept.
    let base = render("istio/base");
    for (path, value) in [
        ("/spec/failStrategy", Value::from("FAIL_OPN")),
        ("/spec/phase", Value::from("AUTHORIZATION")),
        ("/spec/selector/labels", serde_json::json!({"app": "x"})),
        ("/spec/pluginconfig", serde_json::json!({})),
    ] {
        let mut wp = (*one(&base, "WasmPlugin")).clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        wp.pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(key.to_owned(), value);
        assert!(parse_istio(&wp).is_err(), "{path} accepted");
    }
}

/// Validates Istio resources with `istio/validate/validate.mjs`: the
/// schemas of Istio's CRDs (Istio 1.29.2's `crd-all.gen.yaml`, compiled by
/// the npm package `@kubernetes-models/istio` 3.0.1, installed by `cargo
/// xtask envoy`). One line per resource: `ok …` or `error …: MESSAGE`.
fn istio_crd_validate(docs: &[&Value]) -> Vec<String> {
    let script = paths::workspace_root().join("istio/validate/validate.mjs");
    assert!(
        paths::workspace_root()
            .join("istio/validate/node_modules/@kubernetes-models/istio")
            .is_dir(),
        "the Istio CRD schemas are not installed: run `cargo xtask envoy` \
         (npm ci --prefix istio/validate)"
    );
    let node = std::env::var_os("MCP_GUARD_NODE").unwrap_or_else(|| "node".into());
    let mut child = Command::new(node)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node (the machine's Node.js) runs the Istio schema check");
    serde_json::to_writer(child.stdin.take().unwrap(), &docs).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "validate.mjs failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn istio_kinds_validate_against_the_schemas_of_istios_crds() {
    let rendered = all();
    let docs: Vec<&Value> = rendered
        .iter()
        .flat_map(|(_, list)| list)
        .filter(|d| d["apiVersion"].as_str().unwrap().contains("istio.io/"))
        .collect();
    assert!(docs.len() >= 10);
    let lines = istio_crd_validate(&docs);
    assert_eq!(lines.len(), docs.len(), "{lines:?}");
    let errors: Vec<_> = lines.iter().filter(|l| !l.starts_with("ok ")).collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // The schemas catch wrong values and types.
    let base = render("istio/base");
    let mut open = (*one(&base, "WasmPlugin")).clone();
    open["spec"]["failStrategy"] = Value::from("FAIL_OPN");
    let mut phase = (*one(&base, "WasmPlugin")).clone();
    phase["spec"]["phase"] = Value::from("AUTHORIZATION");
    let mut jwks = (*one(&base, "RequestAuthentication")).clone();
    jwks["spec"]["jwtRules"][0]["jwksUri"] = Value::from(5);
    let lines = istio_crd_validate(&[&open, &phase, &jwks]);
    assert!(lines.iter().all(|l| l.starts_with("error ")), "{lines:?}");
}

// --- What the filter attachment must be --------------------------------

fn wasmplugin(docs: &[Value]) -> istio::Resource<istio::WasmPlugin> {
    istio::parse(one(docs, "WasmPlugin")).unwrap()
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn the_wasmplugin_fails_closed_after_authentication_on_inbound_traffic_with_a_pinned_module() {
    for layout in ["istio/base", "istio/overlays/example"] {
        let wp = wasmplugin(&render(layout));
        let spec = &wp.spec;
        assert_eq!(spec.fail_strategy, istio::FailStrategy::Close, "{layout}");
        // AUTHN would run before jwt_authn stored the payload: every
        // caller would be anonymous.
        assert_eq!(spec.phase, istio::Phase::Authz, "{layout}");
        assert_eq!(spec.traffic.len(), 1, "{layout}");
        assert_eq!(
            spec.traffic[0].mode,
            istio::WorkloadMode::Server,
            "{layout}"
        );
        assert!(is_sha256_hex(&spec.sha256), "{layout}: {}", spec.sha256);
        assert!(spec.url.starts_with("oci://"), "{layout}");
        if let Some((_, digest)) = spec.url.split_once("@sha256:") {
            assert_eq!(digest, spec.sha256, "{layout}: url and sha256 disagree");
        }
        assert_ne!(spec.image_pull_policy, istio::PullPolicy::Unspecified);
        // Only the EnvoyFilter variant may claim the Envoy flag.
        assert!(
            spec.plugin_config.get("headers_stop_iteration").is_none(),
            "{layout}: a WasmPlugin cannot set allow_on_headers_stop_iteration"
        );
    }
    // An unedited base pins a digest no module has: it fails closed.
    assert_eq!(
        wasmplugin(&render("istio/base")).spec.sha256,
        "0".repeat(64)
    );
}

fn service_cluster(docs: &[Value], service: &str) -> String {
    let svc = of_kind(docs, "Service")
        .into_iter()
        .find(|s| name(s) == service)
        .unwrap();
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    format!(
        "outbound|{port}||{}.{}.svc.cluster.local",
        name(svc),
        namespace(svc)
    )
}

/// Every filter configuration of a rendering: the WasmPlugin's
/// pluginConfig and the EnvoyFilter variant's configuration.
fn filter_configs(docs: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = of_kind(docs, "WasmPlugin")
        .iter()
        .map(|w| w["spec"]["pluginConfig"].clone())
        .collect();
    for ef in of_kind(docs, "EnvoyFilter") {
        let ef = istio::parse::<istio::EnvoyFilter>(ef).unwrap();
        for p in ef.spec.config_patches {
            if p.apply_to == istio::ApplyTo::HttpFilter {
                let wasm: istio::WasmFilter = serde_json::from_value(p.patch.value).unwrap();
                out.push(
                    serde_json::from_str(&wasm.typed_config.config.configuration.value).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn every_filter_configuration_names_the_cluster_istio_creates_for_the_control_service() {
    for (layout, docs) in all() {
        let expected = service_cluster(&docs, "mcp-guard-control");
        let configs = filter_configs(&docs);
        assert_eq!(configs.len(), 1, "{layout}: one attachment");
        for config in configs {
            let control = &config["control"];
            assert_eq!(control["cluster"], expected.as_str(), "{layout}");
            let host = expected.rsplit("||").next().unwrap();
            assert_eq!(control["authority"], host, "{layout}");
            // The seed the control service imports is the bundle the
            // filters start with, so version 1 means one thing.
            let seed = one(&docs, "ConfigMap");
            let bundle = control["bundle"].as_str().unwrap();
            let seeded: Value =
                serde_json::from_str(seed["data"][format!("{bundle}.json")].as_str().unwrap())
                    .unwrap();
            assert_eq!(config["bundle"], seeded, "{layout}: inline bundle != seed");
            assert_eq!(config["bundle"]["name"], bundle, "{layout}");
            // Signed bundles only.
            assert!(control.get("allow_unsigned").is_none(), "{layout}");
            assert!(!control["public_keys"].as_array().unwrap().is_empty());
        }
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn the_filter_the_authentication_and_the_hardening_select_the_same_pods_and_never_the_control_service(
) {
    for (layout, docs) in all() {
        let mut selectors = Vec::new();
        for w in of_kind(&docs, "WasmPlugin") {
            selectors.push(labels(&w["spec"]["selector"]["matchLabels"]));
        }
        for r in of_kind(&docs, "RequestAuthentication") {
            selectors.push(labels(&r["spec"]["selector"]["matchLabels"]));
        }
        for e in of_kind(&docs, "EnvoyFilter") {
            selectors.push(labels(&e["spec"]["workloadSelector"]["labels"]));
        }
        assert!(selectors.len() >= 3, "{layout}");
        assert!(
            selectors
                .iter()
                .all(|s| *s == selectors[0] && !s.is_empty()),
            "{layout}: {selectors:?}"
        );
        // On the control pods the filter would answer the filters' own
        // (token-less) fetches 401: no pod may carry both.
        let control = labels(&one(&docs, "Deployment")["spec"]["template"]["metadata"]["labels"]);
        assert!(
            !selectors[0].iter().all(|(k, v)| control.get(k) == Some(v)),
            "{layout}: the filter selects the control service"
        );
    }
}

#[test]
fn the_envoyfilter_variant_sets_the_envoy_flag_and_tells_the_filter() {
    let docs = render("istio/envoyfilter-alternative");
    assert!(of_kind(&docs, "WasmPlugin").is_empty(), "two attachments");
    let wasm = of_kind(&docs, "EnvoyFilter")
        .into_iter()
        .filter_map(|e| {
            let ef = istio::parse::<istio::EnvoyFilter>(e).unwrap();
            ef.spec
                .config_patches
                .into_iter()
                .find(|p| p.apply_to == istio::ApplyTo::HttpFilter)
        })
        .collect::<Vec<_>>();
    assert_eq!(wasm.len(), 1);
    let patch = &wasm[0];
    assert_eq!(patch.matching.context, istio::PatchContext::SidecarInbound);
    assert_eq!(patch.patch.operation, istio::Operation::InsertBefore);
    assert_eq!(
        patch
            .matching
            .listener
            .filter_chain
            .filter
            .sub_filter
            .as_ref()
            .unwrap()
            .name,
        "envoy.filters.http.router"
    );
    let filter: istio::WasmFilter = serde_json::from_value(patch.patch.value.clone()).unwrap();
    let tc = &filter.typed_config;
    assert_eq!(
        tc.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    let c = &tc.config;
    assert!(!c.fail_open);
    assert!(c.allow_on_headers_stop_iteration);
    assert_eq!(
        c.configuration.type_url,
        "type.googleapis.com/google.protobuf.StringValue"
    );
    let config: Value = serde_json::from_str(&c.configuration.value).unwrap();
    assert_eq!(config["headers_stop_iteration"], true);
    let remote = &c.vm_config.code.remote;
    assert!(is_sha256_hex(&remote.sha256));
    assert!(remote.http_uri.uri.starts_with("https://"));
    // The module's cluster is the one the ServiceEntry creates, with TLS.
    let se = istio::parse::<istio::ServiceEntry>(one(&docs, "ServiceEntry")).unwrap();
    let dr = istio::parse::<istio::DestinationRule>(one(&docs, "DestinationRule")).unwrap();
    let host = remote
        .http_uri
        .uri
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap();
    assert_eq!(se.spec.hosts, [host]);
    assert_eq!(
        remote.http_uri.cluster,
        format!("outbound|{}||{host}", se.spec.ports[0].number)
    );
    assert_eq!(dr.spec.host, host);
    assert_eq!(dr.spec.traffic_policy.tls.mode, istio::TlsMode::Simple);
}

/// What the EnvoyFilters put into the sidecar's inbound listener, as a
/// bootstrap the pinned Envoy checks with `--mode validate`: the
/// request-line patch merged into the HTTP connection manager, the Wasm
/// filter inserted before the router, and the clusters the patches name
/// (Istio creates them; here static placeholders).
fn inbound_bootstrap(docs: &[Value]) -> Value {
    let mut hcm = serde_json::json!({
        "stat_prefix": "inbound",
        "route_config": {"virtual_hosts": [{"name": "model", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "model"}}]}]},
        "http_filters": [],
    });
    let mut clusters = vec!["model".to_owned()];
    for ef in of_kind(docs, "EnvoyFilter") {
        let ef = istio::parse::<istio::EnvoyFilter>(ef).unwrap();
        for p in ef.spec.config_patches {
            match p.apply_to {
                istio::ApplyTo::NetworkFilter => {
                    for (k, v) in p.patch.value["typed_config"].as_object().unwrap() {
                        hcm[k] = v.clone();
                    }
                }
                istio::ApplyTo::HttpFilter => {
                    let config = &p.patch.value["typed_config"]["config"];
                    for pointer in ["/vm_config/code/remote/http_uri/cluster"] {
                        if let Some(c) = config.pointer(pointer).and_then(Value::as_str) {
                            clusters.push(c.to_owned());
                        }
                    }
                    let control: Value =
                        serde_json::from_str(config["configuration"]["value"].as_str().unwrap())
                            .unwrap();
                    clusters.push(control["control"]["cluster"].as_str().unwrap().to_owned());
                    hcm["http_filters"]
                        .as_array_mut()
                        .unwrap()
                        .push(p.patch.value);
                }
            }
        }
    }
    hcm["http_filters"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let clusters: Vec<Value> = clusters
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({"name": name, "type": "STATIC", "load_assignment": {
                "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                    {"socket_address": {"address": "127.0.0.1", "port_value": i + 1}}}}]}]}})
        })
        .collect();
    serde_json::json!({"static_resources": {
        "listeners": [{"name": "inbound", "address": {"socket_address":
            {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm}]}]}],
        "clusters": clusters}})
}

/// `envoy --mode validate` on a bootstrap: (accepted, Envoy's output).
fn envoy_validate(bootstrap: &Value, name: &str) -> (bool, String) {
    let path = std::env::temp_dir().join(format!(
        "mcp-guard-istio-{name}-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, bootstrap.to_string()).unwrap();
    let out = Command::new(paths::envoy_path())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&path)
        .output()
        .expect("envoy runs (MCP_GUARD_ENVOY, or `cargo xtask envoy`)");
    let _ = std::fs::remove_file(&path);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_pinned_envoy_accepts_what_the_envoyfilters_patch_in() {
    let docs = render("istio/envoyfilter-alternative");
    let bootstrap = inbound_bootstrap(&docs);
    let filters = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"];
    assert_eq!(filters.as_array().unwrap().len(), 2, "{filters}");
    let (ok, log) = envoy_validate(&bootstrap, "ok");
    assert!(ok && log.contains("OK"), "{log}");
    // Envoy refuses a misspelt field in either patch: the check is real.
    let text = bootstrap.to_string();
    for (from, to) in [
        (
            "allow_on_headers_stop_iteration",
            "allow_on_header_stop_iteration",
        ),
        ("\"REJECT_REQUEST\"", "\"REJECT\""),
    ] {
        assert!(text.contains(from));
        let bad: Value = serde_json::from_str(&text.replace(from, to)).unwrap();
        let (ok, log) = envoy_validate(&bad, "bad");
        assert!(!ok, "{to}: {log}");
    }
}

// --- The control service ----------------------------------------------

fn containers(d: &Value) -> Vec<&Value> {
    let spec = &d["spec"]["template"]["spec"];
    ["containers", "initContainers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect()
}

/// The effective value of a securityContext field: the container's, else
/// the pod's.
fn effective<'a>(pod: &'a Value, c: &'a Value, field: &str) -> &'a Value {
    match &c["securityContext"][field] {
        Value::Null => &pod["securityContext"][field],
        v => v,
    }
}

#[test]
fn every_container_is_locked_down_probed_and_limited() {
    let http =
        std::fs::read_to_string(paths::workspace_root().join("control/src/http.rs")).unwrap();
    for (layout, docs) in all() {
        let deployments = of_kind(&docs, "Deployment");
        assert!(!deployments.is_empty());
        for d in deployments {
            let pod = &d["spec"]["template"]["spec"];
            let at = format!("{layout}: {}", name(d));
            assert!(
                d["spec"]["replicas"].as_u64().unwrap() >= 2,
                "{at}: replicas"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{at}");
            for c in containers(d) {
                let at = format!("{at}/{}", c["name"]);
                assert_eq!(*effective(pod, c, "runAsNonRoot"), true, "{at}");
                let uid = effective(pod, c, "runAsUser").as_u64().unwrap_or(0);
                assert!(uid > 0, "{at}: numeric non-root runAsUser");
                let sc = &c["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
                assert_eq!(sc["privileged"], Value::Null, "{at}");
                assert_eq!(
                    sc["capabilities"]["drop"],
                    serde_json::json!(["ALL"]),
                    "{at}"
                );
                assert!(sc["capabilities"]["add"].is_null(), "{at}");
                assert_eq!(
                    effective(pod, c, "seccompProfile")["type"],
                    "RuntimeDefault",
                    "{at}"
                );
                for limit in ["cpu", "memory"] {
                    assert!(
                        c["resources"]["limits"][limit].is_string(),
                        "{at}: limits.{limit}"
                    );
                    assert!(
                        c["resources"]["requests"][limit].is_string(),
                        "{at}: requests.{limit}"
                    );
                }
                for probe in ["livenessProbe", "readinessProbe"] {
                    let path = c[probe]["httpGet"]["path"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{at}: {probe}"));
                    // The route the service really answers.
                    assert!(
                        http.contains(&format!("\"{path}\" if readable")),
                        "{at}: {probe} {path}"
                    );
                    let port = &c[probe]["httpGet"]["port"];
                    assert!(
                        c["ports"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == *port || p["containerPort"] == *port),
                        "{at}: {probe} port {port}"
                    );
                }
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{at}");
                assert!(
                    c["image"].as_str().unwrap().contains(['@', ':']),
                    "{at}: unpinned image"
                );
            }
        }
        for sa in of_kind(&docs, "ServiceAccount") {
            assert_eq!(sa["automountServiceAccountToken"], false, "{layout}");
        }
    }
    // The overlay pins the control image by digest.
    let example = render("istio/overlays/example");
    let image = containers(one(&example, "Deployment"))[0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    let digest = image
        .split_once("@sha256:")
        .map(|(_, d)| d)
        .unwrap_or_default();
    assert!(is_sha256_hex(digest), "{image}");
    assert_eq!(one(&example, "Deployment")["spec"]["replicas"], 3);
}

#[test]
fn the_control_service_runs_with_real_flags_shared_keys_and_a_budget() {
    // The flags the binary itself documents (clap's `--help`).
    let help = std::process::Command::new(mcp_guard_e2e::control_process::control_path())
        .arg("--help")
        .output()
        .expect("mcp-guard-control --help (cargo build -p mcp-guard-control)");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for (layout, docs) in all() {
        let d = one(&docs, "Deployment");
        let c = containers(d)[0];
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        let mut flags = BTreeMap::new();
        for arg in c["args"].as_array().unwrap() {
            let arg = arg.as_str().unwrap();
            let (flag, value) = arg
                .split_once('=')
                .unwrap_or_else(|| panic!("{layout}: {arg}: use --flag=value"));
            flags.insert(flag, value);
            assert!(
                help.contains(&format!("{flag} ")),
                "{layout}: mcp-guard-control has no {flag}"
            );
            if value.starts_with('/') {
                assert!(
                    mounts.iter().any(|m| value.starts_with(m)),
                    "{layout}: {arg} is not mounted"
                );
            }
            if let Some(var) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) {
                assert!(env.contains(&var), "{layout}: {arg} names no env var");
            }
        }
        // Replicas must sign with one key and share one store: no
        // per-pod generated key, no per-pod data directory.
        for flag in [
            "--signing-key",
            "--checkpoint-key",
            "--store",
            "--tokens",
            "--listen",
        ] {
            assert!(flags.contains_key(flag), "{layout}: {flag} missing");
        }
        assert!(!flags.contains_key("--data"), "{layout}: per-pod store");
        // The DSN (it holds a password) comes from the Secret.
        let dsn = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "MCP_GUARD_STORE_DSN")
            .unwrap();
        assert_eq!(
            dsn["valueFrom"]["secretKeyRef"]["name"],
            "mcp-guard-control"
        );
        // The Service and the budget select the pods; the port is HTTP.
        let pod_labels = labels(&d["spec"]["template"]["metadata"]["labels"]);
        for selector in [
            &one(&docs, "Service")["spec"]["selector"],
            &one(&docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
            &d["spec"]["selector"]["matchLabels"],
        ] {
            assert!(
                labels(selector)
                    .iter()
                    .all(|(k, v)| pod_labels.get(k) == Some(v)),
                "{layout}"
            );
        }
        assert_eq!(one(&docs, "PodDisruptionBudget")["spec"]["minAvailable"], 1);
        // Only mesh workloads (mTLS) reach the control service.
        let pa =
            istio::parse::<istio::PeerAuthentication>(one(&docs, "PeerAuthentication")).unwrap();
        assert_eq!(pa.spec.mtls.mode, istio::MtlsMode::Strict, "{layout}");
        assert_eq!(pa.spec.selector.match_labels, pod_labels, "{layout}");
        let port = &one(&docs, "Service")["spec"]["ports"][0];
        assert_eq!(port["appProtocol"], "http", "{layout}");
        let listen_port = flags["--listen"].rsplit(':').next().unwrap();
        assert_eq!(
            c["ports"][0]["containerPort"].to_string(),
            listen_port,
            "{layout}"
        );
        // Everything lives in the one namespace the Namespace creates,
        // with sidecar injection on.
        let ns = one(&docs, "Namespace");
        assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
        for r in &docs {
            if kind(r) != "Namespace" {
                assert_eq!(namespace(r), name(ns), "{layout}: {} {}", kind(r), name(r));
            }
        }
    }
}

#[test]
fn no_secret_carries_a_usable_key_token_or_password() {
    for (layout, docs) in all() {
        for s in of_kind(&docs, "Secret") {
            assert!(
                s.get("data").is_none(),
                "{layout}: base64 data hides what it holds"
            );
            let data = s["stringData"].as_object().unwrap();
            for (key, value) in data {
                let value = value.as_str().unwrap();
                assert!(
                    value.contains("REPLACE-ME"),
                    "{layout}: {key} is not a placeholder"
                );
                // The real parsers refuse every placeholder: a Deployment
                // applied with them does not start.
                assert!(
                    mcp_guard_engine::signing::signing_key_from_text(value.trim()).is_err(),
                    "{layout}: {key} is a usable Ed25519 seed"
                );
            }
            let tokens = data["tokens.json"].as_str().unwrap();
            assert!(
                mcp_guard_control::Tokens::parse(tokens.as_bytes()).is_err(),
                "{layout}: the tokens file is usable"
            );
            assert!(
                !tokens
                    .split(|c: char| !c.is_ascii_hexdigit())
                    .any(|w| w.len() >= 32),
                "{layout}: a digest in the tokens file"
            );
        }
        // No key material anywhere else either: a long base64 or hex run
        // outside the WasmPlugin's public keys and the digests.
        for r in &docs {
            let text = serde_json::to_string(r).unwrap();
            let public = ["rPcBiImNWuFeMtEtbpWUx8pjTqtjIBZV1f18y0VSoMk="];
            for word in text
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
            {
                let digest = word.chars().all(|c| c.is_ascii_hexdigit())
                    && word
                        .chars()
                        .collect::<std::collections::BTreeSet<_>>()
                        .len()
                        == 1;
                if word.len() >= 40 && !public.contains(&word) && !digest {
                    panic!("{layout}: {} {} holds {word}", kind(r), name(r));
                }
            }
        }
    }
}
