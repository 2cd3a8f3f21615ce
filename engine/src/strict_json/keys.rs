//! Key folding: which object keys some parser may take for the same one.

/// Folds a key the way case-insensitive JSON binders compare names: ASCII
/// letters to lower case, plus the four non-ASCII letters that common
/// folds map onto ASCII ones — KELVIN SIGN (U+212A) and LATIN SMALL LETTER
/// LONG S (U+017F), which Go's `encoding/json` matches to `k` and `s`, and
/// dotless / dotted I (U+0131, U+0130), which .NET and Java
/// `equalsIgnoreCase` match to `i`. So `"paramſ"` collides with `"params"`.
pub fn fold_key(key: &str) -> String {
    key.chars().map(fold_char).collect()
}

fn fold_char(c: char) -> char {
    match c {
        '\u{212A}' => 'k',
        '\u{017F}' => 's',
        '\u{0130}' | '\u{0131}' => 'i',
        c => c.to_ascii_lowercase(),
    }
}

/// Whether `key` is a case variant of `name` (equal under [`fold_key`] but
/// not byte-equal): an upstream binding case-insensitively reads it as
/// `name` while the policy does not. `name` must be ASCII lower case.
pub fn is_case_variant(key: &str, name: &str) -> bool {
    key != name && key.chars().map(fold_char).eq(name.chars())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_ascii_and_the_letters_that_fold_onto_ascii() {
        assert_eq!(fold_key("NaMe"), "name");
        assert_eq!(fold_key("paramſ"), "params");
        assert_eq!(fold_key("\u{212A}ey"), "key");
        assert_eq!(fold_key("\u{0130}D"), "id");
        assert_eq!(fold_key("\u{0131}d"), "id");
        assert_eq!(fold_key("É"), "É", "other letters are left alone");
    }

    #[test]
    fn case_variants_are_not_the_name_itself() {
        assert!(is_case_variant("Method", "method"));
        assert!(is_case_variant("METHOD", "method"));
        assert!(is_case_variant("jſonrpc", "jsonrpc"));
        assert!(!is_case_variant("method", "method"));
        assert!(!is_case_variant("methods", "method"));
        assert!(!is_case_variant("metho", "method"));
    }
}
