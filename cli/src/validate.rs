//! `mcp-guard validate`: offline bundle validation with the engine's own
//! parser, so a bundle that passes here is one the filter accepts.
//!
//! The engine stops at the first structural error (serde); then the bundle
//! JSON Schema runs too, so one run lists every structural error, each at
//! its line and column, like a compiler.

use std::path::Path;

use mcp_guard_engine::bundle::{BundleError, BundleIssue};
use mcp_guard_engine::Bundle;
use serde::Serialize;
use serde_json::Value;

use crate::locate::{position, Position};
use crate::output::cell;

/// One issue, located in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Issue {
    /// JSON path and message.
    #[serde(flatten)]
    pub issue: BundleIssue,
    /// Line (from 1) of the value the path names, or of the object that
    /// lacks it; absent when the text gives no place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column (from 1, in characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Issue {
    fn at(issue: BundleIssue, place: Option<Position>) -> Self {
        Self {
            issue,
            line: place.map(|p| p.line),
            column: place.map(|p| p.column),
        }
    }
}

/// The verdict on one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The engine accepts the bundle.
    Valid {
        /// Bundle name.
        name: String,
        /// Bundle version.
        version: u64,
        /// Number of rules.
        rules: usize,
    },
    /// The engine rejects the bundle; every issue found.
    Invalid {
        /// Issues, each located by JSON path and, where the text allows,
        /// line and column.
        issues: Vec<Issue>,
    },
    /// The file could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

/// One file's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// The file as named on the command line.
    pub file: String,
    /// What the engine said.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl FileReport {
    /// Text lines for humans: `ok: …` or one
    /// `file:line:column: path: message` per issue.
    pub fn lines(&self) -> Vec<String> {
        // A bundle under review (a pull request) is not trusted with the
        // reviewer's terminal: its name, keys (in paths and serde's
        // messages) and the file name are shown with escapes.
        let file = cell(&self.file);
        match &self.outcome {
            Outcome::Valid {
                name,
                version,
                rules,
            } => vec![format!(
                "ok: {file}: {} v{version}, {rules} rule{}",
                cell(name),
                if *rules == 1 { "" } else { "s" }
            )],
            Outcome::Invalid { issues } => issues
                .iter()
                .map(|i| {
                    let (path, message) = (cell(&i.issue.path), cell(&i.issue.message));
                    match (i.line, i.column) {
                        (Some(line), Some(column)) => {
                            format!("{file}:{line}:{column}: {path}: {message}")
                        }
                        _ => format!("{file}: {path}: {message}"),
                    }
                })
                .collect(),
            Outcome::Unreadable { error } => vec![format!("{file}: error: {}", cell(error))],
        }
    }
}

/// Arguments of `validate`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Prints `ok: FILE: NAME vVERSION, N rules`, or one `FILE:LINE:COLUMN: JSON-PATH: MESSAGE`
line per issue. Exit 0 when all are valid, 1 when one is invalid, 2 when a file cannot be read.

Example:
  mcp-guard validate policies/*.json")]
pub struct ValidateArgs {
    /// Bundle files.
    #[arg(value_name = "BUNDLE.json", required = true)]
    pub files: Vec<std::path::PathBuf>,
    #[command(flatten)]
    pub output: crate::output::OutputArg,
}

/// Validates one bundle file.
pub fn check_file(path: &Path) -> FileReport {
    match std::fs::read(path) {
        Err(e) => FileReport {
            file: path.display().to_string(),
            outcome: Outcome::Unreadable {
                error: format!("cannot read: {e}"),
            },
        },
        Ok(bytes) => check_bytes(path, &bytes),
    }
}

/// Validates the bytes of a bundle file read as `path`.
pub fn check_bytes(path: &Path, bytes: &[u8]) -> FileReport {
    let outcome = match Bundle::parse(bytes) {
        Ok(bundle) => Outcome::Valid {
            rules: bundle.rules.len(),
            name: bundle.name,
            version: bundle.version,
        },
        Err(e) => Outcome::Invalid {
            issues: located_issues(bytes, &e),
        },
    };
    FileReport {
        file: path.display().to_string(),
        outcome,
    }
}

/// Every issue of a rejected bundle, located and in file order. A
/// structural error (the engine reports the first only) adds the JSON
/// Schema's errors; text that is not JSON gets serde's own position.
fn located_issues(bytes: &[u8], error: &BundleError) -> Vec<Issue> {
    let text = String::from_utf8_lossy(bytes);
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => value,
        Err(e) => {
            let place = (e.line() > 0).then_some(Position {
                line: e.line(),
                column: e.column(),
            });
            return error
                .issues()
                .into_iter()
                .map(|i| Issue::at(i, place))
                .collect();
        }
    };
    let mut issues = error.issues();
    if matches!(error, BundleError::Parse(_)) {
        // The engine's message wins where both speak of the same place
        // (it names the operators, fields and limits it means); the schema
        // adds the places the engine never reached.
        let covered = |schema: &BundleIssue| {
            issues.iter().any(|engine| {
                engine.path == schema.path
                    || engine
                        .path
                        .strip_prefix(schema.path.as_str())
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
        };
        let from_schema: Vec<BundleIssue> = schema_issues(&value)
            .into_iter()
            .filter(|s| !covered(s))
            .collect();
        issues.extend(from_schema);
    }
    let mut located: Vec<Issue> = issues
        .into_iter()
        .map(|mut i| {
            let place = position(&text, &i.path);
            if place.is_some() {
                i.message = without_serde_position(&i.message).to_owned();
            }
            Issue::at(i, place)
        })
        .collect();
    located.sort_by_key(|i| (i.line.unwrap_or(usize::MAX), i.column.unwrap_or(0)));
    located
}

/// serde's messages end with ` at line L column C`; once the issue is
/// printed at its place that tail only repeats it.
fn without_serde_position(message: &str) -> &str {
    let Some((head, tail)) = message.rsplit_once(" at line ") else {
        return message;
    };
    let numbers = tail.split_once(" column ").is_some_and(|(l, c)| {
        !l.is_empty()
            && !c.is_empty()
            && l.bytes().all(|b| b.is_ascii_digit())
            && c.bytes().all(|b| b.is_ascii_digit())
    });
    if numbers {
        head
    } else {
        message
    }
}

/// What the bundle JSON Schema says of `value`, paths in the engine's
/// notation (`$.rules[0].id`).
fn schema_issues(value: &Value) -> Vec<BundleIssue> {
    let Ok(schema) = serde_json::from_str::<Value>(crate::schema::BUNDLE_V1) else {
        return Vec::new();
    };
    let Ok(validator) = jsonschema::draft202012::new(&schema) else {
        return Vec::new();
    };
    let mut issues: Vec<BundleIssue> = Vec::new();
    for error in validator.iter_errors(value) {
        let issue = BundleIssue {
            path: engine_path(value, &error.instance_path.to_string()),
            message: error.to_string(),
        };
        if !issues.contains(&issue) {
            issues.push(issue);
        }
    }
    issues
}

/// A JSON Pointer (`/rules/0/id`) as the engine writes paths; a number is
/// an index where the value there is an array, a key otherwise.
fn engine_path(root: &Value, pointer: &str) -> String {
    let mut path = String::from("$");
    let mut node = Some(root);
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                let index = token.parse::<usize>().ok();
                path.push_str(&format!("[{token}]"));
                node = index.and_then(|i| items.get(i));
            }
            other => {
                node = other.and_then(|v| v.get(&token));
                path.push('.');
                path.push_str(&token);
            }
        }
    }
    path
}

/// The report over every file, and the exit code it implies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Whether every file is a valid bundle.
    pub ok: bool,
    /// One entry per file, in command-line order.
    pub files: Vec<FileReport>,
}

impl Report {
    /// Validates every file.
    pub fn check(files: &[impl AsRef<Path>]) -> Self {
        let files: Vec<FileReport> = files.iter().map(|f| check_file(f.as_ref())).collect();
        Self {
            ok: files
                .iter()
                .all(|f| matches!(f.outcome, Outcome::Valid { .. })),
            files,
        }
    }

    /// 0 when all are valid, 2 when a file could not be read, else 1.
    pub fn exit_code(&self) -> u8 {
        if self
            .files
            .iter()
            .any(|f| matches!(f.outcome, Outcome::Unreadable { .. }))
        {
            2
        } else if self.ok {
            0
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_bundle_does_not_drive_the_terminal() {
        // Keys and names a pull request chose: escape sequences and bidi
        // controls reach the output escaped.
        let bad = check_bytes(
            Path::new("pr\u{1b}[2J.json"),
            br#"{"name":"demo","version":1,"\u001b[31mevil\u202e":1}"#,
        );
        let good = check_bytes(
            Path::new("ok.json"),
            br#"{"name":"demo\u001b]0;t\u0007","version":1}"#,
        );
        for line in bad.lines().into_iter().chain(good.lines()) {
            assert!(!line.chars().any(crate::output::hidden), "{line:?}");
        }
    }

    #[test]
    fn issue_lines_carry_file_and_path() {
        let report = FileReport {
            file: "b.json".into(),
            outcome: Outcome::Invalid {
                issues: vec![Issue {
                    issue: BundleIssue {
                        path: "$.rules[0].id".into(),
                        message: "duplicate rule id".into(),
                    },
                    line: Some(3),
                    column: Some(14),
                }],
            },
        };
        assert_eq!(
            report.lines(),
            ["b.json:3:14: $.rules[0].id: duplicate rule id"]
        );
        let ok = FileReport {
            file: "a.json".into(),
            outcome: Outcome::Valid {
                name: "demo".into(),
                version: 2,
                rules: 1,
            },
        };
        assert_eq!(ok.lines(), ["ok: a.json: demo v2, 1 rule"]);
    }

    #[test]
    fn every_structural_error_is_reported_with_its_place() {
        let text = "{\n  \"name\": \"demo\",\n  \"version\": \"one\",\n  \"rules\": [\n    {\"id\": \"a\", \"effect\": \"maybe\"},\n    {\"id\": \"b\", \"effect\": \"allow\", \"whne\": {}}\n  ]\n}\n";
        let error = Bundle::parse(text.as_bytes()).expect_err("invalid");
        let issues = located_issues(text.as_bytes(), &error);
        let places: Vec<(String, Option<usize>)> = issues
            .iter()
            .map(|i| (i.issue.path.clone(), i.line))
            .collect();
        assert!(
            places.contains(&("$.version".into(), Some(3))),
            "{places:?}"
        );
        assert!(
            places
                .iter()
                .any(|(p, l)| p.starts_with("$.rules[0]") && *l == Some(5)),
            "{places:?}"
        );
        assert!(
            places
                .iter()
                .any(|(p, l)| p.starts_with("$.rules[1]") && *l == Some(6)),
            "{places:?}"
        );
        let lines: Vec<usize> = issues.iter().filter_map(|i| i.line).collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "file order");
    }

    #[test]
    fn text_that_is_not_json_gets_serde_position() {
        let text = b"{\n  \"name\": \"demo\",,\n}";
        let error = Bundle::parse(text).expect_err("invalid");
        let issues = located_issues(text, &error);
        assert_eq!(issues.len(), 1);
        assert_eq!((issues[0].line, issues[0].column), (Some(2), Some(18)));
    }

    #[test]
    fn serde_positions_are_dropped_from_messages() {
        assert_eq!(
            without_serde_position("unknown field `x` at line 3 column 14"),
            "unknown field `x`"
        );
        assert_eq!(without_serde_position("at line one"), "at line one");
        assert_eq!(
            without_serde_position("text at line 2 column x"),
            "text at line 2 column x"
        );
    }

    #[test]
    fn pointers_become_engine_paths() {
        let value: Value = serde_json::json!({"rules": [{"id": "x"}], "m": {"0": {"a/b": 1}}});
        assert_eq!(engine_path(&value, "/rules/0/id"), "$.rules[0].id");
        assert_eq!(engine_path(&value, "/m/0/a~1b"), "$.m.0.a/b");
        assert_eq!(engine_path(&value, ""), "$");
    }

    #[test]
    fn unreadable_files_mean_exit_2() {
        let report = Report::check(&["/nonexistent/bundle.json"]);
        assert!(!report.ok);
        assert_eq!(report.exit_code(), 2);
    }
}
