//! Conditions on the arguments of an MCP call (`when.mcp.arguments`):
//! call-time checks on `params.arguments` of `tools/call` and
//! `prompts/get`, such as "`customer_id` is one of the caller's
//! `customers`" or "`amount` is at most 1000".
//!
//! Semantics are strict so that what the rule sees is what the server
//! acts on:
//! - equality is type-strict (`42` and `"42"` differ) and numbers compare
//!   by exact decimal value (`1e2` = `100` = `100.0`, `-0` = `0`), using
//!   the number's source text, never the double it rounds to;
//! - `min` / `max` are inclusive exact decimal bounds;
//! - a number a rule reads must be read alike by every parser (an integer
//!   within ±2^53, or at most 15 significant digits within 1e±307), else
//!   the body is refused: `1000.0000000000000001` is 1000 to a double but
//!   not to a decimal parser, so no rule may decide on it;
//! - a path step of digits indexes an array only, never an object key;
//! - an absent argument fails every test except `exists: false`;
//! - `in_claim`: a scalar must equal one of the claim's values (an array
//!   claim, or a string claim as one value); an array argument must be
//!   non-empty with every element in the claim.
//!
//! Each test is compiled when the bundle is parsed: an unknown operator,
//! two operators in one test or a bad path is a bundle error at its JSON
//! path.

mod decimal;
mod path;
mod scan;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::strict_json::FloatTexts;

pub use decimal::Decimal;
pub use path::{ArgumentPath, Step};
pub use scan::{check_arguments, ArgumentsError};

/// Operator names of an argument test, for error messages.
pub const ARGUMENT_OPERATORS: &[&str] = &[
    "equals",
    "one_of",
    "prefix",
    "min",
    "max",
    "exists",
    "in_claim",
    "equals_claim",
];

/// One test on one argument, written `{"path": P, OPERATOR: OPERAND}`
/// (`min` and `max` may appear together).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", into = "Map<String, Value>")]
pub struct ArgumentTest {
    path: ArgumentPath,
    op: ArgumentOp,
    /// The test as written, for serialising and explaining.
    source: Map<String, Value>,
}

/// What an [`ArgumentTest`] checks.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgumentOp {
    /// Equal to this value (type-strict, numbers by exact value).
    Equals(Value),
    /// Equal to one of these values.
    OneOf(Vec<Value>),
    /// A string starting with this prefix.
    Prefix(String),
    /// A number within these inclusive bounds.
    Range {
        /// Lower bound, inclusive.
        min: Option<Decimal>,
        /// Upper bound, inclusive.
        max: Option<Decimal>,
    },
    /// Present (`true`) or absent (`false`).
    Exists(bool),
    /// Among the caller's values of this claim.
    InClaim(String),
    /// Equal to the caller's value of this claim.
    EqualsClaim(String),
}

/// The arguments of one call, as the policy sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CallArguments {
    /// None were sent, or the bundle reads none: every test but
    /// `exists: false` fails.
    #[default]
    Absent,
    /// `params.arguments` as sent, with the source text of its doubles.
    Sent {
        /// The arguments object.
        value: Value,
        /// Source texts of the body's numbers read as doubles.
        floats: Arc<FloatTexts>,
    },
    /// Not a call but a listed tool or prompt judged for visibility:
    /// argument tests are call-time checks, so an allow rule's tests hold
    /// and a deny rule's do not (the tool stays listed; its calls are
    /// checked when made).
    Listing,
}

impl From<ArgumentTest> for Map<String, Value> {
    fn from(test: ArgumentTest) -> Self {
        test.source
    }
}

fn operand_error(op: &str, wanted: &str) -> String {
    format!("`{op}` must be {wanted}")
}

/// A bound every parser reads alike, so the request's number and the
/// bound compare the same way in the filter and in the server.
fn number_bound(op: &str, value: &Value) -> Result<Decimal, String> {
    let bound = value
        .as_number()
        .and_then(Decimal::of_number)
        .ok_or_else(|| operand_error(op, "a number"))?;
    if bound.is_portable() {
        Ok(bound)
    } else {
        Err(operand_error(
            op,
            "an integer within ±2^53 or a number of at most 15 significant digits",
        ))
    }
}

fn claim_path(op: &str, value: &Value) -> Result<String, String> {
    match value.as_str() {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(operand_error(op, "a non-empty claim path")),
    }
}

impl TryFrom<Map<String, Value>> for ArgumentTest {
    type Error = String;

    /// Requires `path` plus exactly one operator (or `min` and `max`),
    /// naming the offender otherwise.
    fn try_from(source: Map<String, Value>) -> Result<Self, String> {
        let path = match source.get("path") {
            Some(Value::String(p)) => ArgumentPath::parse(p)?,
            Some(_) => return Err("`path` must be a string".into()),
            None => return Err("missing field `path`".into()),
        };
        let ops: Vec<(&String, &Value)> = source.iter().filter(|(k, _)| *k != "path").collect();
        for (op, _) in &ops {
            if !ARGUMENT_OPERATORS.contains(&op.as_str()) {
                return Err(format!(
                    "unknown operator `{op}`; expected one of {}",
                    ARGUMENT_OPERATORS.join(", ")
                ));
            }
        }
        let is_bound = |k: &str| k == "min" || k == "max";
        let op = match ops.as_slice() {
            [] => {
                return Err(format!(
                    "missing operator; expected one of {}",
                    ARGUMENT_OPERATORS.join(", ")
                ))
            }
            [(a, _), (b, _), ..] if !(ops.len() == 2 && is_bound(a) && is_bound(b)) => {
                return Err(format!("one operator per test, found `{a}` and `{b}`"));
            }
            [(op, operand)] if !is_bound(op) => compile_op(op, operand)?,
            bounds => {
                let mut min = None;
                let mut max = None;
                for (op, operand) in bounds {
                    let bound = number_bound(op, operand)?;
                    if op.as_str() == "min" {
                        min = Some(bound);
                    } else {
                        max = Some(bound);
                    }
                }
                if let (Some(lo), Some(hi)) = (&min, &max) {
                    if lo > hi {
                        return Err("`min` is greater than `max`".into());
                    }
                }
                ArgumentOp::Range { min, max }
            }
        };
        Ok(Self { path, op, source })
    }
}

fn compile_op(op: &str, operand: &Value) -> Result<ArgumentOp, String> {
    Ok(match op {
        "equals" => ArgumentOp::Equals(operand.clone()),
        "one_of" => match operand {
            Value::Array(items) if !items.is_empty() => ArgumentOp::OneOf(items.clone()),
            _ => return Err(operand_error(op, "a non-empty array")),
        },
        "prefix" => match operand {
            Value::String(p) if !p.is_empty() => ArgumentOp::Prefix(p.clone()),
            _ => return Err(operand_error(op, "a non-empty string")),
        },
        "exists" => match operand {
            Value::Bool(b) => ArgumentOp::Exists(*b),
            _ => return Err(operand_error(op, "true or false")),
        },
        "in_claim" => ArgumentOp::InClaim(claim_path(op, operand)?),
        "equals_claim" => ArgumentOp::EqualsClaim(claim_path(op, operand)?),
        _ => return Err(format!("unknown operator `{op}`")),
    })
}

impl ArgumentTest {
    /// The compiled path.
    pub fn path(&self) -> &ArgumentPath {
        &self.path
    }

    /// The compiled operator.
    pub fn op(&self) -> &ArgumentOp {
        &self.op
    }

    /// The test as written, for explanations.
    pub fn describe(&self) -> String {
        Value::Object(self.source.clone()).to_string()
    }

    /// Whether the test holds for a call's `arguments` object (`None`
    /// when none was sent).
    pub fn holds(&self, arguments: Option<&Value>, floats: &FloatTexts, claims: &Claims) -> bool {
        let value = arguments.and_then(|a| self.path.get(a));
        let Some(value) = value else {
            return self.op == ArgumentOp::Exists(false);
        };
        match &self.op {
            ArgumentOp::Exists(wanted) => *wanted,
            ArgumentOp::Equals(expected) => strict_eq(value, floats, expected),
            ArgumentOp::OneOf(options) => options.iter().any(|o| strict_eq(value, floats, o)),
            ArgumentOp::Prefix(prefix) => value
                .as_str()
                .is_some_and(|s| s.starts_with(prefix.as_str())),
            ArgumentOp::Range { min, max } => value.as_number().is_some_and(|n| {
                let candidates = Decimal::candidates(n, floats);
                !candidates.is_empty()
                    && candidates.iter().all(|c| {
                        min.as_ref().is_none_or(|lo| c >= lo)
                            && max.as_ref().is_none_or(|hi| c <= hi)
                    })
            }),
            ArgumentOp::InClaim(claim) => claims
                .get(claim)
                .is_some_and(|c| in_claim(value, floats, c)),
            ArgumentOp::EqualsClaim(claim) => claims
                .get(claim)
                .is_some_and(|c| strict_eq(value, floats, c)),
        }
    }
}

/// Type-strict deep equality of a sent value (whose doubles have source
/// texts in `floats`) with a bundle or claim value; numbers compare by
/// exact decimal value, and a sent double equals only if every text it
/// may have been sent as does.
pub fn strict_eq(sent: &Value, floats: &FloatTexts, other: &Value) -> bool {
    match (sent, other) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            let candidates = Decimal::candidates(a, floats);
            let expected = Decimal::of_number(b);
            !candidates.is_empty() && candidates.iter().all(|c| Some(c) == expected.as_ref())
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| strict_eq(x, floats, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| strict_eq(x, floats, y)))
        }
        _ => false,
    }
}

/// The values a claim grants: its elements, or a scalar claim itself.
fn claim_values(claim: &Value) -> &[Value] {
    match claim {
        Value::Array(items) => items,
        other => std::slice::from_ref(other),
    }
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn in_claim(sent: &Value, floats: &FloatTexts, claim: &Value) -> bool {
    let granted = claim_values(claim);
    let one = |v: &Value| is_scalar(v) && granted.iter().any(|g| strict_eq(v, floats, g));
    match sent {
        Value::Array(items) => !items.is_empty() && items.iter().all(one),
        other => one(other),
    }
}

#[cfg(test)]
mod tests;
