//! Reading the model and MCP calls from a request body, refusing every
//! body an upstream could read differently from the policy.
//!
//! The body must be strict JSON ([`crate::strict_json`] with
//! [`Options::REQUEST`]). On top of that, the members the policy reads
//! must be unambiguous: a top-level `model` is a string; an object with a
//! `method` is a JSON-RPC 2.0 call (`"jsonrpc":"2.0"`, string method,
//! string-number-or-null id); `params` of a targeting call is an object
//! whose `name` / `uri` is a string; no key is a case variant of a member
//! the policy reads (`"Method"` alone would be read as `method` by
//! case-insensitive binders); no string the policy reads holds U+0000
//! (C parsers cut it short).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{McpCall, TargetKind};
use crate::arguments::{check_arguments, ArgumentPath, ArgumentsError, CallArguments};
use crate::resource_template::{check_uri, UriError};
use crate::strict_json::{self, is_case_variant, FloatTexts, Options, StrictJsonError};

/// What a bundle needs read from a body beyond methods and targets, so a
/// bundle without argument or resource-template rules pays nothing more.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyOptions<'a> {
    /// Every argument path some rule reads; empty when none does, and then
    /// `params.arguments` is not read at all.
    pub argument_paths: &'a [ArgumentPath],
    /// Refuse resource URIs that are not canonical
    /// ([`crate::resource_template::check_uri`]), because a rule matches
    /// them against templates.
    pub canonical_uris: bool,
}

/// What a request body says about the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyAttrs {
    /// `model` of an OpenAI-style body.
    pub model: Option<String>,
    /// MCP calls: one, or every call of a batch.
    pub mcp: Vec<McpCall>,
    /// The body was a JSON-RPC batch.
    pub batch: bool,
}

/// Why a request body was refused; [`BodyError::code`] is the decision
/// detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not strict JSON (see [`strict_json::ErrorKind`]).
    #[error("request body is not strict JSON: {0}")]
    Json(StrictJsonError),
    /// An empty batch or an element that is not an object.
    #[error("malformed JSON-RPC batch")]
    BadBatch,
    /// A call whose `jsonrpc` is not `"2.0"`.
    #[error("JSON-RPC call without \"jsonrpc\":\"2.0\"")]
    BadJsonRpc,
    /// A `method` that is not a string.
    #[error("JSON-RPC method is not a string")]
    BadMethod,
    /// An `id` that is not a string, number or null.
    #[error("JSON-RPC id is not a string, number or null")]
    BadId,
    /// `params` of a targeting call that is not an object.
    #[error("JSON-RPC params is not an object")]
    BadParams,
    /// `params.name` / `params.uri` that is not a string.
    #[error("MCP call target is not a string")]
    BadTarget,
    /// A top-level `model` that is not a string.
    #[error("model is not a string")]
    BadModel,
    /// A key that differs only in case from a member the policy reads.
    #[error("key is a case variant of a member the policy reads")]
    CaseVariantKey,
    /// A method, target or model holding U+0000.
    #[error("a value the policy reads holds U+0000")]
    NulInString,
    /// `params.arguments` of a tool or prompt call that is not an object.
    #[error("MCP call arguments are not an object")]
    BadArguments,
    /// Arguments a rule reads that a server could read differently.
    #[error("MCP call arguments: {0}")]
    Arguments(ArgumentsError),
    /// A resource URI outside the canonical form templates match.
    #[error("resource URI: {0}")]
    ResourceUri(UriError),
}

impl BodyError {
    /// Stable snake_case code, used as the decision detail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Json(e) => e.code(),
            Self::BadBatch => "bad_batch",
            Self::BadJsonRpc => "bad_jsonrpc",
            Self::BadMethod => "bad_method",
            Self::BadId => "bad_id",
            Self::BadParams => "bad_params",
            Self::BadTarget => "bad_target",
            Self::BadModel => "bad_model",
            Self::CaseVariantKey => "case_variant_key",
            Self::NulInString => "nul_in_string",
            Self::BadArguments => "bad_arguments",
            Self::Arguments(ArgumentsError::CaseVariantKey) => "argument_case_variant_key",
            Self::Arguments(ArgumentsError::NumericKey) => "argument_numeric_key",
            Self::Arguments(ArgumentsError::NulInString) => "argument_nul_in_string",
            Self::Arguments(ArgumentsError::InexactNumber) => "argument_inexact_number",
            Self::ResourceUri(e) => e.code(),
        }
    }
}

/// Top-level members the policy reads (or that decide how it reads).
const READ_MEMBERS: [&str; 5] = ["jsonrpc", "method", "params", "id", "model"];

/// Reads the model and MCP calls from a request body, parsing it once.
///
/// An empty body carries no attributes (there is no call to run); any
/// other body must be strict JSON, whatever its content type, since a
/// lenient upstream may parse it anyway. A JSON scalar carries no
/// attributes.
pub fn read_body(body: &[u8]) -> Result<BodyAttrs, BodyError> {
    read_body_with(body, &BodyOptions::default())
}

/// [`read_body`] that also reads what `options` asks for: the arguments
/// of tool and prompt calls (with the source text of their numbers) and
/// canonical resource URIs. Still one parse of the body.
pub fn read_body_with(body: &[u8], options: &BodyOptions<'_>) -> Result<BodyAttrs, BodyError> {
    if body.is_empty() {
        return Ok(BodyAttrs::default());
    }
    let (mut value, floats) = if options.argument_paths.is_empty() {
        let value = strict_json::parse(body, Options::REQUEST).map_err(BodyError::Json)?;
        (value, FloatTexts::default())
    } else {
        strict_json::parse_keeping_floats(body, Options::REQUEST).map_err(BodyError::Json)?
    };
    let reader = CallReader {
        options,
        floats: Arc::new(floats),
    };
    let mut attrs = BodyAttrs::default();
    match &mut value {
        Value::Object(object) => {
            refuse_case_variants(object, &READ_MEMBERS)?;
            attrs.model = model_of(object)?;
            attrs.mcp.extend(reader.call_of(object)?);
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(BodyError::BadBatch);
            }
            attrs.batch = true;
            for item in items {
                let object = item.as_object_mut().ok_or(BodyError::BadBatch)?;
                refuse_case_variants(object, &READ_MEMBERS)?;
                // A batch element that is not a call (e.g. a response) is
                // ignored: only calls are decided.
                attrs.mcp.extend(reader.call_of(object)?);
            }
        }
        _ => {}
    }
    Ok(attrs)
}

fn refuse_case_variants(object: &Map<String, Value>, names: &[&str]) -> Result<(), BodyError> {
    let variant = object
        .keys()
        .any(|key| names.iter().any(|name| is_case_variant(key, name)));
    if variant {
        Err(BodyError::CaseVariantKey)
    } else {
        Ok(())
    }
}

fn checked(text: &str) -> Result<String, BodyError> {
    if text.contains('\0') {
        Err(BodyError::NulInString)
    } else {
        Ok(text.to_owned())
    }
}

fn model_of(object: &Map<String, Value>) -> Result<Option<String>, BodyError> {
    match object.get("model") {
        None => Ok(None),
        Some(Value::String(model)) => checked(model).map(Some),
        Some(_) => Err(BodyError::BadModel),
    }
}

/// Reads calls under one body's options, sharing its number texts.
struct CallReader<'o> {
    options: &'o BodyOptions<'o>,
    floats: Arc<FloatTexts>,
}

impl CallReader<'_> {
    /// The call an object makes: `None` when it has no `method` (a
    /// response, or not JSON-RPC at all). Takes the call's `arguments` out
    /// of the object when rules read them, rather than copying them.
    fn call_of(&self, object: &mut Map<String, Value>) -> Result<Option<McpCall>, BodyError> {
        let method = match object.get("method") {
            None => return Ok(None),
            Some(Value::String(method)) => checked(method)?,
            Some(_) => return Err(BodyError::BadMethod),
        };
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(BodyError::BadJsonRpc);
        }
        let id = match object.get("id") {
            None => None,
            Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id.clone()),
            Some(_) => return Err(BodyError::BadId),
        };
        let kind = TargetKind::of_method(&method);
        let target = match kind {
            Some(kind) => target_of(object.get("params"), kind)?,
            None => None,
        };
        if let (Some(TargetKind::Resource), Some(uri), true) =
            (kind, &target, self.options.canonical_uris)
        {
            check_uri(uri).map_err(BodyError::ResourceUri)?;
        }
        let arguments = match kind {
            Some(TargetKind::Tool | TargetKind::Prompt)
                if !self.options.argument_paths.is_empty() =>
            {
                self.arguments_of(object.get_mut("params"))?
            }
            _ => CallArguments::Absent,
        };
        Ok(Some(McpCall {
            method,
            target,
            id,
            arguments,
        }))
    }

    /// `params.arguments`: absent, or an object checked along every path
    /// a rule reads. (`params` is known to be an object or absent.)
    fn arguments_of(&self, params: Option<&mut Value>) -> Result<CallArguments, BodyError> {
        let Some(Value::Object(params)) = params else {
            return Ok(CallArguments::Absent);
        };
        refuse_case_variants(params, &["arguments"])?;
        match params.remove("arguments") {
            None => Ok(CallArguments::Absent),
            Some(value @ Value::Object(_)) => {
                check_arguments(&value, self.options.argument_paths, &self.floats)
                    .map_err(BodyError::Arguments)?;
                Ok(CallArguments::Sent {
                    value,
                    floats: Arc::clone(&self.floats),
                })
            }
            Some(_) => Err(BodyError::BadArguments),
        }
    }
}

fn target_of(params: Option<&Value>, kind: TargetKind) -> Result<Option<String>, BodyError> {
    let params = match params {
        None => return Ok(None),
        Some(Value::Object(params)) => params,
        Some(_) => return Err(BodyError::BadParams),
    };
    refuse_case_variants(params, &[kind.param()])?;
    match params.get(kind.param()) {
        None => Ok(None),
        Some(Value::String(target)) => checked(target).map(Some),
        Some(_) => Err(BodyError::BadTarget),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod arguments_tests;
