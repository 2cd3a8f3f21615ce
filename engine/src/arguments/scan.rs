//! Refusing call arguments that servers could read differently from the
//! rules, before any rule looks at them.

use serde_json::Value;

use super::decimal::Decimal;
use super::path::{ArgumentPath, Step};
use crate::strict_json::{fold_key, FloatTexts};

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
    /// A number a rule reads that parsers read as different values
    /// (see [`Decimal::is_portable`]).
    #[error("an argument a rule reads is a number parsers read differently")]
    InexactNumber,
}

/// Checks `arguments` along every path some rule reads: every step must
/// find its member exactly or nothing like it, and the value found must
/// not hide a NUL or a number parsers read differently.
pub fn check_arguments(
    arguments: &Value,
    paths: &[ArgumentPath],
    floats: &FloatTexts,
) -> Result<(), ArgumentsError> {
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
        if found {
            check_value(at, floats)?;
        }
    }
    Ok(())
}

/// The value a rule reads, and everything inside it.
fn check_value(value: &Value, floats: &FloatTexts) -> Result<(), ArgumentsError> {
    match value {
        Value::String(s) if s.contains('\0') => Err(ArgumentsError::NulInString),
        Value::Number(n) => {
            let candidates = Decimal::candidates(n, floats);
            if !candidates.is_empty() && candidates.iter().all(Decimal::is_portable) {
                Ok(())
            } else {
                Err(ArgumentsError::InexactNumber)
            }
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_value(v, floats)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                Err(ArgumentsError::NulInString)
            } else {
                check_value(v, floats)
            }
        }),
        _ => Ok(()),
    }
}
