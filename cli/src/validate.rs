//! `mcp-guard validate`: offline bundle validation with the engine's own
//! parser, so a bundle that passes here is one the filter accepts.

use std::path::Path;

use mcp_guard_engine::bundle::BundleIssue;
use mcp_guard_engine::Bundle;
use serde::Serialize;

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
    /// The engine rejects the bundle; every issue it found.
    Invalid {
        /// Issues, each located by JSON path.
        issues: Vec<BundleIssue>,
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
    /// Text lines for humans: `ok: …` or one `file: path: message` per issue.
    pub fn lines(&self) -> Vec<String> {
        match &self.outcome {
            Outcome::Valid {
                name,
                version,
                rules,
            } => vec![format!(
                "ok: {}: {name} v{version}, {rules} rule{}",
                self.file,
                if *rules == 1 { "" } else { "s" }
            )],
            Outcome::Invalid { issues } => issues
                .iter()
                .map(|i| format!("{}: {}: {}", self.file, i.path, i.message))
                .collect(),
            Outcome::Unreadable { error } => vec![format!("{}: error: {error}", self.file)],
        }
    }
}

/// Validates one bundle file.
pub fn check_file(path: &Path) -> FileReport {
    let file = path.display().to_string();
    let outcome = match std::fs::read(path) {
        Err(e) => Outcome::Unreadable {
            error: format!("cannot read: {e}"),
        },
        Ok(bytes) => match Bundle::parse(&bytes) {
            Ok(bundle) => Outcome::Valid {
                rules: bundle.rules.len(),
                name: bundle.name,
                version: bundle.version,
            },
            Err(e) => Outcome::Invalid { issues: e.issues() },
        },
    };
    FileReport { file, outcome }
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
    fn issue_lines_carry_file_and_path() {
        let report = FileReport {
            file: "b.json".into(),
            outcome: Outcome::Invalid {
                issues: vec![BundleIssue {
                    path: "$.rules[0].id".into(),
                    message: "duplicate rule id".into(),
                }],
            },
        };
        assert_eq!(report.lines(), ["b.json: $.rules[0].id: duplicate rule id"]);
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
    fn unreadable_files_mean_exit_2() {
        let report = Report::check(&["/nonexistent/bundle.json"]);
        assert!(!report.ok);
        assert_eq!(report.exit_code(), 2);
    }
}
