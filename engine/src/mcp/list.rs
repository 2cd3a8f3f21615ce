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
    mut allowed: impl FnMut(TargetKind, &str) -> bool,
) -> Result<Option<(Vec<u8>, usize)>, ListAnswerError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut value = strict_json::parse(body, Options::RESPONSE).map_err(ListAnswerError::Json)?;
    let removed = match &mut value {
        Value::Array(answers) => {
            let mut removed = 0;
            for answer in answers.iter_mut().filter_map(Value::as_object_mut) {
                removed += filter_answer(answer, &mut allowed)?;
            }
            removed
        }
        Value::Object(answer) => filter_answer(answer, &mut allowed)?,
        _ => return Err(ListAnswerError::NotAnswer),
    };
    if removed == 0 {
        return Ok(None);
    }
    serde_json::to_vec(&value)
        .map(|bytes| Some((bytes, removed)))
        .map_err(|_| ListAnswerError::NotAnswer)
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
