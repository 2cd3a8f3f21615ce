//! `mcp-guard diff`: what changed between two bundles (files, or two
//! stored versions on the control service), by meaning rather than by
//! line: rules (and any list of objects with an `id`) are matched by id,
//! so a reordered file shows no change and a renamed rule shows as one
//! removed and one added.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use clap::Args;

use crate::output::OutputArg;

/// Where one side of the diff comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// A bundle file.
    File(PathBuf),
    /// A stored version on the control service.
    Stored {
        /// Service base URL.
        server: String,
        /// Bundle name.
        name: String,
        /// Version.
        version: u64,
    },
}

/// Arguments of `diff`: `OLD.json NEW.json`, or `NAME V1 V2` with a
/// server (`--server` or MCP_GUARD_SERVER).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(after_help = "\
Examples:
  mcp-guard diff old.json new.json
  mcp-guard diff --server https://control:8443 demo 3 4 -o json")]
pub struct DiffArgs {
    /// `OLD.json NEW.json`, or `NAME V1 V2` (stored versions).
    #[arg(value_name = "ARGS", num_args = 2..=3, required = true)]
    pub positional: Vec<String>,
    /// Control service for stored versions.
    #[arg(long, value_name = "URL", env = "MCP_GUARD_SERVER", value_parser = crate::remote::server_url)]
    pub server: Option<String>,
    #[command(flatten)]
    pub output: OutputArg,
}

/// Why the diff arguments do not name two bundles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffArgsError {
    /// Three arguments without a server.
    #[error("NAME V1 V2 needs --server URL (or MCP_GUARD_SERVER)")]
    NoServer,
    /// A name the service would not accept.
    #[error("bundle name: {0}")]
    Name(String),
    /// A version that is not a number.
    #[error("version `{0}` is not a number")]
    Version(String),
}

impl DiffArgs {
    /// The two sides.
    pub fn sides(&self) -> Result<(Side, Side), DiffArgsError> {
        let version = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| DiffArgsError::Version(v.into()))
        };
        match (&self.server, self.positional.as_slice()) {
            (_, [old, new]) => Ok((Side::File(old.into()), Side::File(new.into()))),
            (Some(server), [name, v1, v2]) => {
                let name = &crate::remote::bundle_name_arg(name).map_err(DiffArgsError::Name)?;
                Ok((
                    Side::Stored {
                        server: server.clone(),
                        name: name.clone(),
                        version: version(v1)?,
                    },
                    Side::Stored {
                        server: server.clone(),
                        name: name.clone(),
                        version: version(v2)?,
                    },
                ))
            }
            _ => Err(DiffArgsError::NoServer),
        }
    }
}

/// What happened at one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only the new bundle has it.
    Added,
    /// Only the old bundle has it.
    Removed,
    /// Both have it, with different values.
    Changed,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Added, removed or changed.
    pub kind: Kind,
    /// Where: `rules[id=x].when.claims`, `pii.actions.card`.
    pub path: String,
    /// The old value (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The new value (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// Every difference between two bundle documents: members in key order,
/// listed items in the old list's order, then the added ones.
pub fn changes(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The ids of a list whose members are all objects with a distinct
/// string `id`; `None` for any other list.
fn ids(items: &[Value]) -> Option<Vec<&str>> {
    let ids: Vec<&str> = items
        .iter()
        .map(|item| item.get("id").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == ids.len() && !ids.is_empty()).then_some(ids)
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, before) in a {
                match b.get(key) {
                    Some(after) => walk(&join(path, key), before, after, out),
                    None => out.push(Change {
                        kind: Kind::Removed,
                        path: join(path, key),
                        before: Some(before.clone()),
                        after: None,
                    }),
                }
            }
            for (key, after) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(Change {
                    kind: Kind::Added,
                    path: join(path, key),
                    before: None,
                    after: Some(after.clone()),
                });
            }
        }
        (Value::Array(a), Value::Array(b)) => match (ids(a), ids(b)) {
            (Some(old_ids), Some(new_ids)) => {
                let at = |id: &str| format!("{path}[id={id}]");
                for (id, before) in old_ids.iter().zip(a) {
                    match new_ids.iter().position(|n| n == id).and_then(|i| b.get(i)) {
                        Some(after) => walk(&at(id), before, after, out),
                        None => out.push(Change {
                            kind: Kind::Removed,
                            path: at(id),
                            before: Some(before.clone()),
                            after: None,
                        }),
                    }
                }
                for (id, after) in new_ids.iter().zip(b) {
                    if !old_ids.contains(id) {
                        out.push(Change {
                            kind: Kind::Added,
                            path: at(id),
                            before: None,
                            after: Some(after.clone()),
                        });
                    }
                }
            }
            // Lists of conditions of the same length: item by item, so the
            // change points at the operand that moved.
            _ if a.len() == b.len() && a.iter().chain(b).all(Value::is_object) => {
                for (i, (before, after)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{path}[{i}]"), before, after, out);
                }
            }
            // Lists of values (methods, models...) change as a whole.
            _ => out.push(Change {
                kind: Kind::Changed,
                path: path.to_owned(),
                before: Some(old.clone()),
                after: Some(new.clone()),
            }),
        },
        _ => out.push(Change {
            kind: Kind::Changed,
            path: path.to_owned(),
            before: Some(old.clone()),
            after: Some(new.clone()),
        }),
    }
}

/// Compact JSON cut to `width` characters for the table.
fn cell(value: Option<&Value>, width: usize) -> String {
    let Some(value) = value else {
        return String::new();
    };
    let text = value.to_string();
    if text.chars().count() <= width {
        text
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Text with control, bidi and invisible characters as `\u` escapes: keys
/// and values come from bundle files, which must not drive the terminal.
fn visible(text: &str) -> String {
    crate::output::cell(text)
}

/// The changes as a table with a summary line (what a person reads).
pub fn table(changes: &[Change]) -> String {
    let count = |k: Kind| changes.iter().filter(|c| c.kind == k).count();
    if changes.is_empty() {
        return "no changes\n".to_owned();
    }
    let path_width = changes
        .iter()
        .map(|c| c.path.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let mut out = format!("   {:<path_width$}  {:<40}  AFTER\n", "PATH", "BEFORE");
    for c in changes {
        let mark = match c.kind {
            Kind::Added => '+',
            Kind::Removed => '-',
            Kind::Changed => '~',
        };
        out.push_str(&format!(
            "{mark}  {:<path_width$}  {:<40}  {}\n",
            visible(&c.path),
            visible(&cell(c.before.as_ref(), 40)),
            visible(&cell(c.after.as_ref(), 40)),
        ));
    }
    out.push_str(&format!(
        "{} change{}: {} added, {} removed, {} changed\n",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        count(Kind::Added),
        count(Kind::Removed),
        count(Kind::Changed),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_are_matched_by_id_not_position() {
        let old = json!({"name": "d", "version": 1, "rules": [
            {"id": "a", "effect": "allow", "when": {"methods": ["GET"]}},
            {"id": "b", "effect": "deny"},
            {"id": "c", "effect": "allow"}]});
        let new = json!({"name": "d", "version": 2, "rules": [
            {"id": "c", "effect": "allow"},
            {"id": "a", "effect": "allow", "when": {"methods": ["GET", "POST"]}},
            {"id": "e", "effect": "deny"}]});
        let got: Vec<(Kind, String)> = changes(&old, &new)
            .into_iter()
            .map(|c| (c.kind, c.path))
            .collect();
        assert_eq!(
            got,
            [
                (Kind::Changed, "rules[id=a].when.methods".to_owned()),
                (Kind::Removed, "rules[id=b]".to_owned()),
                (Kind::Added, "rules[id=e]".to_owned()),
                (Kind::Changed, "version".to_owned()),
            ]
        );
    }

    #[test]
    fn sections_added_removed_and_identical_documents() {
        let old = json!({"name": "d", "pii": {"actions": {"card": "partial"}}});
        let new = json!({"name": "d", "pii": {"actions": {}}, "inject": []});
        let got = changes(&old, &new);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].kind, got[0].path.as_str()),
            (Kind::Removed, "pii.actions.card")
        );
        assert_eq!((got[1].kind, got[1].path.as_str()), (Kind::Added, "inject"));
        assert!(changes(&old, &old).is_empty());
        assert_eq!(table(&[]), "no changes\n");
        assert!(table(&got).ends_with("2 changes: 1 added, 1 removed, 0 changed\n"));
    }

    #[test]
    fn same_length_lists_of_objects_point_at_the_operand() {
        let old = json!({"c": [{"claim": "roles", "contains_any": ["a"]}], "m": ["GET"]});
        let new = json!({"c": [{"claim": "roles", "contains_any": ["b"]}], "m": ["GET", "PUT"]});
        let paths: Vec<String> = changes(&old, &new).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["c[0].contains_any", "m"]);
    }

    #[test]
    fn lists_with_duplicate_or_missing_ids_change_as_a_whole() {
        let old = json!({"rules": [{"id": "a"}, {"id": "a", "x": 1}]});
        let new = json!({"rules": [{"id": "a"}]});
        let got = changes(&old, &new);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].kind, got[0].path.as_str()),
            (Kind::Changed, "rules")
        );
    }

    #[test]
    fn terminal_sequences_are_shown_not_sent() {
        assert_eq!(visible("a\u{1b}[2Jb\u{202e}"), "a\\u001b[2Jb\\u202e");
    }
}
