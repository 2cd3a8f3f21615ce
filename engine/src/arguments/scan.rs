//! Refusing call arguments that servers could read differently from the
//! rules, before any rule looks at them.

use serde_json::Value;

use super::path::{ArgumentPath, Step};
use crate::strict_json::fold_key;

/// Why a call's arguments were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentsError {
    /// A key on a rule's path is missing but a case variant of it is
    /// present (`Customer_ID` for `customer_id`): a case-insensitive
    /// binder reads it, the rule would not.
    #[error("argument key is a case variant of a key a rule reads")]
    CaseVariantKey,
    /// A numeric path step meets an object holding that key: some path
    /// libraries read `items.0` as `items["0"]`.
    #[error("numeric path step meets an object key")]
    NumericKey,
    /// A value a rule reads holds U+0000 (C servers cut it short).
    #[error("an argument a rule reads holds U+0000")]
    NulInString,
}

/// Checks `arguments` along every path some rule reads: every step must
/// find its member exactly or nothing like it, and the value found must
/// not hide a NUL.
pub fn check_arguments(arguments: &Value, paths: &[ArgumentPath]) -> Result<(), ArgumentsError> {
    for path in paths {
        let mut at = arguments;
        let mut found = true;
        for step in path.steps() {
            let next = match (step, at) {
                (Step::Key(key), Value::Object(map)) => {
                    let next = map.get(key);
                    if next.is_none() {
                        let folded = fold_key(key);
                        if map.keys().any(|k| fold_key(k) == folded) {
                            return Err(ArgumentsError::CaseVariantKey);
                        }
                    }
                    next
                }
                (Step::Index(i), Value::Array(items)) => items.get(*i),
                (Step::Index(i), Value::Object(map)) => {
                    if map.contains_key(&i.to_string()) {
                        return Err(ArgumentsError::NumericKey);
                    }
                    None
                }
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found && holds_nul(at) {
            return Err(ArgumentsError::NulInString);
        }
    }
    Ok(())
}

fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}
