//! Claims passed upstream as headers on allowed requests.

use serde_json::Value;

/// Longest injected header value; longer claims are not injected.
pub const MAX_INJECTED_VALUE: usize = 4096;

/// Renders a claim as a header value: strings as they are, numbers without
/// a needless `.0`, booleans as words, lists of strings joined by `,`,
/// anything else as compact JSON. `None` when the value is empty, too long
/// or holds control characters (which could split headers).
pub fn header_value(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let clean =
        !text.is_empty() && text.len() <= MAX_INJECTED_VALUE && !text.chars().any(char::is_control);
    clean.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_claims_as_header_values() {
        assert_eq!(header_value(&json!("alice")).as_deref(), Some("alice"));
        assert_eq!(header_value(&json!(42.0)).as_deref(), Some("42"));
        assert_eq!(header_value(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(header_value(&json!(true)).as_deref(), Some("true"));
        assert_eq!(header_value(&json!(["a", "b"])).as_deref(), Some("a,b"));
        assert_eq!(
            header_value(&json!({"k": 1})).as_deref(),
            Some(r#"{"k":1}"#)
        );
    }

    #[test]
    fn refuses_values_that_could_split_headers() {
        assert_eq!(header_value(&json!("a\r\nx-admin: 1")), None);
        assert_eq!(header_value(&json!("")), None);
        assert_eq!(header_value(&json!(null)), None);
        assert_eq!(
            header_value(&json!("x".repeat(MAX_INJECTED_VALUE + 1))),
            None
        );
    }
}
