//! Filtering MCP list answers (`tools/list`, `resources/list`,
//! `prompts/list`) down to the entries the caller may use.
//!
//! Answers are read strictly ([`Options::RESPONSE`]): a duplicate
//! `result` or `tools` member could show the client a list other than the
//! one filtered, so such an answer is an error the filter turns into a
//! 502, never passed on. Lists are found by their field, not by matching
//! JSON-RPC ids (an id the upstream echoes differently, e.g. `1` for
//! `1.0`, must not let a list through unfiltered), and under case variants
//! too (`"Tools"`, `"Result"`), which case-insensitive clients read.

use serde_json::{Map, Value};

use super::TargetKind;
use crate::pins::{PinReport, ToolPins};
use crate::strict_json::{self, fold_key, is_case_variant, Options, StrictJsonError};

/// Why a list answer cannot be filtered; the filter must refuse it (502)
/// rather than pass it on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListAnswerError {
    /// Not strict JSON (duplicate keys, trailing data, ...).
    #[error("MCP answer is not strict JSON: {0}")]
    Json(StrictJsonError),
    /// Neither a JSON-RPC answer object nor a batch of them.
    #[error("MCP answer is not a JSON-RPC answer")]
    NotAnswer,
    /// A `tools` / `resources` / `prompts` member that is not an array.
    #[error("MCP answer has a list member that is not an array")]
    NotAList,
}

impl ListAnswerError {
    /// Stable snake_case code for logs and the refusal body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Json(e) => e.code(),
            Self::NotAnswer => "not_answer",
            Self::NotAList => "not_a_list",
        }
    }
}

/// The list fields of a `result`, with the kind of their entries and the
/// entry member naming each.
const LISTS: [(&str, TargetKind, &str); 3] = [
    ("tools", TargetKind::Tool, "name"),
    ("resources", TargetKind::Resource, "uri"),
    ("prompts", TargetKind::Prompt, "name"),
];

/// Removes from an MCP answer (or batch of answers) every listed entry the
/// caller may not use; call it when the request carried a list call.
///
/// `allowed(kind, name)` decides one entry; an entry without an exact,
/// unambiguous string name is removed. Returns `Ok(None)` when nothing was
/// removed (pass the body on unchanged; an empty body lists nothing),
/// `Ok(Some((body, removed)))` with the rewritten body, and `Err` when the
/// answer cannot be filtered (refuse it).
pub fn filter_list_answers(
    body: &[u8],
    allowed: impl FnMut(TargetKind, &str) -> bool,
) -> Result<Option<(Vec<u8>, usize)>, ListAnswerError> {
    let outcome = filter_list_answers_pinned(body, None, allowed)?;
    Ok(outcome.body.map(|b| (b, outcome.removed)))
}

/// What [`filter_list_answers_pinned`] did to one answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOutcome {
    /// The rewritten body; `None` when nothing was removed.
    pub body: Option<Vec<u8>>,
    /// Entries removed (by the policy or for a changed pinned tool).
    pub removed: usize,
    /// What the answer showed about pinned tools.
    pub pins: PinReport,
}

/// [`filter_list_answers`] that also checks `tools` entries against tool
/// pins: every entry of a pinned tool whose definition differs from its
/// pin is removed (the caller refuses the whole answer instead when the
/// pins say `refuse`). Unpinned tools are judged by `allowed` only.
pub fn filter_list_answers_pinned(
    body: &[u8],
    pins: Option<&ToolPins>,
    mut allowed: impl FnMut(TargetKind, &str) -> bool,
) -> Result<ListOutcome, ListAnswerError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ListOutcome::default());
    }
    let mut value = strict_json::parse(body, Options::RESPONSE).map_err(ListAnswerError::Json)?;
    let report = pins.map(|p| p.scan(&value)).unwrap_or_default();
    let mut keep = |kind: TargetKind, name: &str| {
        !(kind == TargetKind::Tool && report.mismatched.contains(name)) && allowed(kind, name)
    };
    let removed = match &mut value {
        Value::Array(answers) => {
            let mut removed = 0;
            for answer in answers.iter_mut().filter_map(Value::as_object_mut) {
                removed += filter_answer(answer, &mut keep)?;
            }
            removed
        }
        Value::Object(answer) => filter_answer(answer, &mut keep)?,
        _ => return Err(ListAnswerError::NotAnswer),
    };
    if removed == 0 {
        return Ok(ListOutcome {
            pins: report,
            ..ListOutcome::default()
        });
    }
    let body = serde_json::to_vec(&value).map_err(|_| ListAnswerError::NotAnswer)?;
    Ok(ListOutcome {
        body: Some(body),
        removed,
        pins: report,
    })
}

/// Calls `f(name, entry)` for every `tools` entry with an exact,
/// unambiguous string name, in every answer of `answers` (one answer or a
/// batch), looking where [`filter_list_answers`] filters.
pub fn for_each_tool(answers: &Value, mut f: impl FnMut(&str, &Value)) {
    let list: &[Value] = match answers {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    };
    for answer in list.iter().filter_map(Value::as_object) {
        for (key, result) in answer {
            if fold_key(key) != "result" {
                continue;
            }
            let Some(result) = result.as_object() else {
                continue;
            };
            for (field, entries) in result {
                if fold_key(field) != "tools" {
                    continue;
                }
                for entry in entries.as_array().into_iter().flatten() {
                    if let Some(name) = entry_name(entry, "name") {
                        f(name, entry);
                    }
                }
            }
        }
    }
}

/// Filters every list of one answer's `result` (and of its case variants).
fn filter_answer(
    answer: &mut Map<String, Value>,
    allowed: &mut impl FnMut(TargetKind, &str) -> bool,
) -> Result<usize, ListAnswerError> {
    let mut removed = 0;
    for (key, result) in answer.iter_mut() {
        if fold_key(key) != "result" {
            continue;
        }
        let Some(result) = result.as_object_mut() else {
            continue;
        };
        for (field, list) in result.iter_mut() {
            let field = fold_key(field);
            let Some(&(_, kind, name_key)) = LISTS.iter().find(|(f, _, _)| *f == field) else {
                continue;
            };
            let Value::Array(entries) = list else {
                return Err(ListAnswerError::NotAList);
            };
            let before = entries.len();
            entries.retain(|entry| entry_name(entry, name_key).is_some_and(|n| allowed(kind, n)));
            removed += before - entries.len();
        }
    }
    Ok(removed)
}

/// An entry's name: exact key, string value, and no case variant of the
/// key beside it (which a case-insensitive client could read instead).
fn entry_name<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    let entry = entry.as_object()?;
    if entry.keys().any(|k| is_case_variant(k, key)) {
        return None;
    }
    entry.get(key)?.as_str()
}

#[cfg(test)]
mod tests;
