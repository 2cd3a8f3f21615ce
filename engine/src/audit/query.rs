//! Finding decision records by subject, tool, model, decision and time.
//! Query does not verify: run [`super::verify`] first to know the records
//! can be trusted.

use serde_json::Value;

use super::record::{extract, LineRecord};
use super::verify::LogFile;

/// What to keep; every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The `sub` member.
    pub sub: Option<String>,
    /// The `mcp_target` member (tool name for `tools/call`).
    pub tool: Option<String>,
    /// The `model` member.
    pub model: Option<String>,
    /// The `decision` member (`allow` / `deny`).
    pub decision: Option<String>,
    /// `ts` at or after, ms since the epoch.
    pub since: Option<u64>,
    /// `ts` before, ms since the epoch.
    pub until: Option<u64>,
}

/// One matching record.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The record as parsed.
    pub record: Value,
}

impl Filter {
    fn keeps(&self, record: &Value) -> bool {
        let text = |key: &str, want: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| record.get(key).and_then(Value::as_str) == Some(w.as_str()))
        };
        let ts = record.get("ts").and_then(Value::as_u64);
        text("sub", &self.sub)
            && text("mcp_target", &self.tool)
            && text("model", &self.model)
            && text("decision", &self.decision)
            && self.since.is_none_or(|s| ts.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| ts.is_some_and(|t| t < u))
    }
}

/// Every readable record of `files`, in order, that `filter` keeps.
pub fn query(files: &[LogFile], filter: &Filter) -> Vec<Match> {
    let mut out = Vec::new();
    for file in files {
        for (n, raw) in file.bytes.split(|b| *b == b'\n').enumerate() {
            let Ok(line) = std::str::from_utf8(raw) else {
                continue;
            };
            let LineRecord::Record(text) = extract(line) else {
                continue;
            };
            let Ok(record) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if record.is_object() && filter.keeps(&record) {
                out.push(Match {
                    file: file.name.clone(),
                    line: n + 1,
                    record,
                });
            }
        }
    }
    out
}
