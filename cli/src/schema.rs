//! `mcp-guard schema`: the hand-written JSON Schema of bundle format v1,
//! embedded at build time from `schemas/bundle-v1.schema.json`.
//!
//! The schema describes the structure the engine's parser accepts, plus
//! the per-field checks of `Bundle::validate` that JSON Schema can express
//! (non-empty names, upper-case methods, header-name syntax, bounds).
//! Checks across fields remain engine-only: duplicate rule ids, whether an
//! `equals_path` names a capture of the rule's template, whether an
//! `equals_capture` names a capture of every resource template, duplicate template
//! captures, `hours` with `from == to`, duplicate object keys, integers
//! beyond `u64` or written as `1.0`, and the finer URL checks of the
//! `resource` section (dot segments, ports, hosts). Use `mcp-guard validate` for the
//! authoritative verdict.

/// The JSON Schema (draft 2020-12) of bundle format v1.
pub const BUNDLE_V1: &str = include_str!("../../schemas/bundle-v1.schema.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_json_with_the_draft_and_an_id() {
        let schema: serde_json::Value = serde_json::from_str(BUNDLE_V1).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
