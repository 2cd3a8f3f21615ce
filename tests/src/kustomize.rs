//! Renders the kustomizations under `istio/` offline, the way `kustomize
//! build` (and `kubectl apply -k`) does, for the features they use:
//! `resources` (files and directories), `patches` (strategic merge by
//! kind and name, `$patch: delete`, and JSON 6902 with a `target`),
//! `namespace`, `replicas` and `images`, applied in kustomize's order
//! (patches, namespace, replicas, images).
//!
//! Anything else in a kustomization is refused rather than ignored, and so
//! is a strategic-merge patch with a list on a built-in kind (kustomize
//! merges those lists by key, which this renderer does not do): a layout
//! that grew a feature cannot be validated against a rendering that
//! silently skipped it. `tests/tests/istio_manifests.rs` compares the
//! output with a real `kubectl kustomize` where one is installed.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Why a kustomization could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// A file could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file is not the YAML it should be.
    #[error("{0}: {1}")]
    Yaml(PathBuf, String),
    /// A patch names no resource, or an operation does not apply.
    #[error("{0}")]
    Patch(String),
    /// The kustomization uses something this renderer does not do.
    #[error("{0}: unsupported: {1}")]
    Unsupported(PathBuf, String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Kustomization {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    patches: Vec<PatchRef>,
    #[serde(default)]
    replicas: Vec<Replica>,
    #[serde(default)]
    images: Vec<Image>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchRef {
    path: String,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    version: Option<String>,
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Replica {
    name: String,
    count: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    name: String,
    #[serde(default, rename = "newName")]
    new_name: Option<String>,
    #[serde(default, rename = "newTag")]
    new_tag: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// Kinds without a namespace that may appear (the namespace transformer
/// renames a `Namespace` instead).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
];

/// Parses every YAML document of a text into JSON values (empty documents,
/// e.g. a comment-only file, are skipped).
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Value>, KustomizeError> {
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc)
            .map_err(|e| KustomizeError::Yaml(path.to_owned(), e.to_string()))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn read(path: &Path) -> Result<String, KustomizeError> {
    std::fs::read_to_string(path).map_err(|e| KustomizeError::Read(path.to_owned(), e))
}

/// Renders the kustomization in `dir` (its `kustomization.yaml`).
pub fn render(dir: &Path) -> Result<Vec<Value>, KustomizeError> {
    let file = dir.join("kustomization.yaml");
    let docs = parse_documents(&file, &read(&file)?)?;
    let [doc] = docs.as_slice() else {
        return Err(KustomizeError::Yaml(file, "one document expected".into()));
    };
    let k: Kustomization = serde_json::from_value(doc.clone())
        .map_err(|e| KustomizeError::Unsupported(file.clone(), e.to_string()))?;
    if k.kind != "Kustomization" || !k.api_version.starts_with("kustomize.config.k8s.io/") {
        return Err(KustomizeError::Unsupported(
            file,
            "not a Kustomization".into(),
        ));
    }
    let mut resources = Vec::new();
    for entry in &k.resources {
        let path = dir.join(entry);
        if path.is_dir() {
            resources.extend(render(&path)?);
        } else {
            resources.extend(parse_documents(&path, &read(&path)?)?);
        }
    }
    for patch in &k.patches {
        let path = dir.join(&patch.path);
        let text = read(&path)?;
        match &patch.target {
            Some(target) => json6902(&mut resources, target, &path, &text)?,
            None => {
                for doc in parse_documents(&path, &text)? {
                    strategic_merge(&mut resources, &path, doc)?;
                }
            }
        }
    }
    if let Some(ns) = &k.namespace {
        for r in &mut resources {
            set_namespace(r, ns);
        }
    }
    for replica in &k.replicas {
        let mut found = false;
        for r in &mut resources {
            if name(r) == replica.name
                && matches!(kind(r), "Deployment" | "StatefulSet" | "ReplicaSet")
            {
                r["spec"]["replicas"] = Value::from(replica.count);
                found = true;
            }
        }
        if !found {
            return Err(KustomizeError::Patch(format!(
                "replicas: no workload named {}",
                replica.name
            )));
        }
    }
    for image in &k.images {
        for r in &mut resources {
            set_image(r, image);
        }
    }
    Ok(resources)
}

/// The `kind` of a resource.
pub fn kind(r: &Value) -> &str {
    r["kind"].as_str().unwrap_or_default()
}

/// The `metadata.name` of a resource.
pub fn name(r: &Value) -> &str {
    r["metadata"]["name"].as_str().unwrap_or_default()
}

/// The `metadata.namespace` of a resource.
pub fn namespace(r: &Value) -> &str {
    r["metadata"]["namespace"].as_str().unwrap_or_default()
}

fn group_version(r: &Value) -> (&str, &str) {
    let api = r["apiVersion"].as_str().unwrap_or_default();
    api.split_once('/').unwrap_or(("", api))
}

fn set_namespace(r: &mut Value, ns: &str) {
    if kind(r) == "Namespace" {
        r["metadata"]["name"] = Value::from(ns);
    } else if !CLUSTER_SCOPED.contains(&kind(r)) {
        r["metadata"]["namespace"] = Value::from(ns);
    }
}

fn set_image(r: &mut Value, image: &Image) {
    // Read-only lookups: indexing a JSON map mutably would insert keys.
    let spec = if kind(r) == "Pod" {
        r.get_mut("spec")
    } else {
        r.pointer_mut("/spec/template/spec")
    };
    let Some(spec) = spec else {
        return;
    };
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let Some(current) = c["image"].as_str() else {
                continue;
            };
            let (rest, digest) = match current.split_once('@') {
                Some((rest, digest)) => (rest, Some(digest)),
                None => (current, None),
            };
            // A ':' after the last '/' starts the tag (a registry port
            // comes before a '/').
            let (base, tag) = match rest.rfind(':') {
                Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
                _ => (rest, None),
            };
            if base != image.name {
                continue;
            }
            let new_base = image.new_name.as_deref().unwrap_or(base);
            let updated = match (&image.digest, &image.new_tag) {
                (Some(d), _) => format!("{new_base}@{d}"),
                (None, Some(t)) => format!("{new_base}:{t}"),
                (None, None) => match (tag, digest) {
                    (_, Some(d)) => format!("{new_base}@{d}"),
                    (Some(t), None) => format!("{new_base}:{t}"),
                    (None, None) => new_base.to_owned(),
                },
            };
            c["image"] = Value::from(updated);
        }
    }
}

fn is_builtin(r: &Value) -> bool {
    !group_version(r).0.contains('.')
}

fn contains_list(v: &Value) -> bool {
    match v {
        Value::Array(_) => true,
        Value::Object(m) => m.values().any(contains_list),
        _ => false,
    }
}

fn strategic_merge(
    resources: &mut Vec<Value>,
    path: &Path,
    mut patch: Value,
) -> Result<(), KustomizeError> {
    let matches = |r: &Value| {
        r["apiVersion"] == patch["apiVersion"]
            && kind(r) == kind(&patch)
            && name(r) == name(&patch)
            && (namespace(&patch).is_empty() || namespace(r) == namespace(&patch))
    };
    let Some(index) = resources.iter().position(matches) else {
        return Err(KustomizeError::Patch(format!(
            "{}: no {} {} to patch",
            path.display(),
            kind(&patch),
            name(&patch)
        )));
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("delete") {
        resources.remove(index);
        return Ok(());
    }
    if let Some(map) = patch.as_object_mut() {
        if map.keys().any(|k| k.starts_with('$')) {
            return Err(KustomizeError::Unsupported(
                path.to_owned(),
                "strategic-merge directives other than a top-level $patch: delete".into(),
            ));
        }
    }
    let target = resources
        .get_mut(index)
        .ok_or_else(|| KustomizeError::Patch("index".into()))?;
    if is_builtin(target) && contains_list(&patch) {
        return Err(KustomizeError::Unsupported(
            path.to_owned(),
            "a list in a strategic-merge patch of a built-in kind (merged by key)".into(),
        ));
    }
    merge(target, patch);
    Ok(())
}

/// RFC 7386 merge: maps merge, `null` deletes, anything else replaces;
/// what kustomize does for kinds it has no schema for.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p,
    }
}

fn json6902(
    resources: &mut [Value],
    target: &Target,
    path: &Path,
    text: &str,
) -> Result<(), KustomizeError> {
    let docs = parse_documents(path, text)?;
    let [Value::Array(ops)] = docs.as_slice() else {
        return Err(KustomizeError::Yaml(
            path.to_owned(),
            "a JSON 6902 patch is one list of operations".into(),
        ));
    };
    let mut hits = 0;
    for r in resources.iter_mut() {
        let (group, version) = group_version(r);
        let selected = kind(r) == target.kind
            && name(r) == target.name
            && target.group.as_deref().is_none_or(|g| g == group)
            && target.version.as_deref().is_none_or(|v| v == version)
            && target
                .namespace
                .as_deref()
                .is_none_or(|n| n == namespace(r));
        if selected {
            for op in ops {
                apply_op(r, op)
                    .map_err(|e| KustomizeError::Patch(format!("{}: {e}: {op}", path.display())))?;
            }
            hits += 1;
        }
    }
    if hits == 0 {
        return Err(KustomizeError::Patch(format!(
            "{}: target {} {} matches nothing",
            path.display(),
            target.kind,
            target.name
        )));
    }
    Ok(())
}

fn pointer_parts(pointer: &str) -> Result<Vec<String>, String> {
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("path {pointer:?} is not a JSON pointer"))?;
    Ok(rest
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = op["path"].as_str().ok_or("op without path")?;
    let mut parts = pointer_parts(path)?;
    let last = parts.pop().ok_or("empty path")?;
    let parent = parts
        .iter()
        .try_fold(&mut *doc, |v, p| match v {
            Value::Object(m) => m.get_mut(p.as_str()),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        })
        .ok_or_else(|| format!("{path}: parent does not exist"))?;
    let value = || op.get("value").cloned().ok_or("op without value");
    match (op["op"].as_str(), parent) {
        (Some("replace"), Value::Object(m)) => {
            let slot = m.get_mut(&last).ok_or("replace of a missing member")?;
            *slot = value()?;
        }
        (Some("replace"), Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| "bad index")?;
            *a.get_mut(i).ok_or("replace past the end")? = value()?;
        }
        (Some("add"), Value::Object(m)) => {
            m.insert(last, value()?);
        }
        (Some("add"), Value::Array(a)) if last == "-" => a.push(value()?),
        (Some("add"), Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| "bad index")?;
            if i > a.len() {
                return Err("add past the end".into());
            }
            a.insert(i, value()?);
        }
        (Some("remove"), Value::Object(m)) => {
            m.remove(&last).ok_or("remove of a missing member")?;
        }
        (Some("remove"), Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| "bad index")?;
            if i >= a.len() {
                return Err("remove past the end".into());
            }
            a.remove(i);
        }
        (Some("test"), parent) => {
            let current = match parent {
                Value::Object(m) => m.get(&last),
                Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            if current != Some(&value()?) {
                return Err("test failed".into());
            }
        }
        (other, _) => return Err(format!("unsupported op {other:?}")),
    }
    Ok(())
}

/// A map of a resource list keyed by `kind/namespace/name`, for comparing
/// renderings regardless of order.
pub fn by_key(resources: &[Value]) -> Map<String, Value> {
    resources
        .iter()
        .map(|r| {
            (
                format!("{}/{}/{}", kind(r), namespace(r), name(r)),
                r.clone(),
            )
        })
        .collect()
}
