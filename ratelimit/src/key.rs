//! The Redis key of one counter.
//!
//! The encoding is injective: two different (domain, entries, unit,
//! window) tuples never share a key, whatever bytes the entries hold.
//! Every caller-supplied string is length-prefixed (`<len>:<bytes>`), so a
//! value holding `:` or `|` or a whole forged key cannot run into the next
//! field: `[("a", "b:c")]` and `[("a:b", "c")]` are different keys.
//! Naive joining (`domain|key=value|...`) is how a caller who controls one
//! value (a model name, a user id) reaches someone else's counter.

use crate::proto::Unit;

/// The prefix of every key: the service's namespace and the encoding's
/// version (a new encoding gets a new prefix instead of reusing counters).
pub const PREFIX: &[u8] = b"mcpg:rl:1:";

/// Appends `<len>:<bytes>` to `out`.
fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(field.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(field);
}

/// The key of the counter of `entries` (key, value pairs, in order) in
/// `domain` for the `unit` window starting at `window_start`:
/// `mcpg:rl:1:<unit>:<window_start>:` then the length-prefixed domain and
/// entry keys and values.
pub fn counter_key<'a>(
    domain: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    unit: Unit,
    window_start: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(PREFIX);
    out.extend_from_slice((unit as i32).to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(window_start.to_string().as_bytes());
    out.push(b':');
    push_field(&mut out, domain.as_bytes());
    for (key, value) in entries {
        push_field(&mut out, key.as_bytes());
        push_field(&mut out, value.as_bytes());
    }
    out
}

/// The length of [`counter_key`]'s result without building it (bounds
/// are checked before anything is allocated for the key).
pub fn counter_key_len<'a>(
    domain: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    window_start: i64,
) -> usize {
    let field = |s: &str| s.len().to_string().len() + 1 + s.len();
    let mut len = PREFIX.len() + 2 + window_start.to_string().len() + 1 + field(domain);
    for (key, value) in entries {
        len += field(key) + field(value);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn key(domain: &str, entries: &[(&str, &str)]) -> Vec<u8> {
        counter_key(domain, entries.iter().copied(), Unit::Minute, 60)
    }

    #[test]
    fn separators_in_values_do_not_collide() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("d", &[("a", "b:c")]),
            ("d", &[("a:b", "c")]),
            ("d", &[("a", "b"), ("c", "d")]),
            ("d", &[("a", "b1:c1:d")]),
            ("d", &[("a", "b"), ("1:c", "1:d")]),
            ("d:1:a", &[("1", "b")]),
            ("d", &[("1:a", "b")]),
            ("d", &[("a", "")]),
            ("d", &[("a", "1:")]),
            ("", &[("1:d", "a")]),
            ("d", &[]),
            ("d", &[("", "")]),
            ("d", &[("", ""), ("", "")]),
        ];
        let keys: HashSet<Vec<u8>> = cases.iter().map(|(d, e)| key(d, e)).collect();
        assert_eq!(keys.len(), cases.len());
    }

    #[test]
    fn unit_and_window_are_part_of_the_key() {
        let e = [("model", "m")];
        let a = counter_key("d", e, Unit::Second, 60);
        let b = counter_key("d", e, Unit::Minute, 60);
        let c = counter_key("d", e, Unit::Minute, 120);
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert!(b.starts_with(PREFIX));
    }

    #[test]
    fn predicted_length_matches() {
        let e = [("model", "llama:3"), ("user", "ü")];
        for (unit, start) in [(Unit::Second, 0), (Unit::Year, 1_796_094_855)] {
            assert_eq!(
                counter_key("dom", e, unit, start).len(),
                counter_key_len("dom", e, start)
            );
        }
    }
}
