//! Labels that turn a bare number into a value: `SSN: 123456789`,
//! `"social_security_number": "123456789"`.
//!
//! Nine digits in a row are usually an order number, an id or an amount,
//! so an SSN written without separators is reported only right after a
//! label naming it. A label is a short list of words (see [`LABELS`]),
//! matched case-insensitively as whole words: split at `_`, `-`, `.`, a
//! space or a camel-case step (`socialSecurityNumber`, `customer_ssn`,
//! `employeeSSN` all end with a label; `lessons`, `ssn_count`, `order_id`
//! do not). Words before the label do not matter, words after it do:
//! the label must end the key, or be followed only by gap bytes
//! (`:`, `=`, `#`, `-`, spaces, quotes, `|`, `*`, backticks, `(`, `.`,
//! backslashes and `\n`-style escapes, [`MAX_GAP`] bytes at most) and at
//! most one of the words `is`/`was` before the number.
//!
//! Everything is read backwards from the number through the engine's
//! bounded look-behind, so the answer is the same however the text was
//! chunked; at most `MAX_GAP + 4 + MAX_WORDS * (MAX_WORD + 1)` bytes are
//! read, well inside the engine's 80-byte look-behind.

use super::window::Win;

/// Gap bytes allowed between a label and its number.
pub(crate) const MAX_GAP: usize = 8;
/// Longest label word (`identification`).
const MAX_WORD: usize = 14;
/// Most words in a label.
const MAX_WORDS: usize = 3;

/// SSN labels, as words in reading order. Deliberately absent: `tin` and
/// `tax id` (also a business's EIN, and `tin` is an English word), `id`
/// alone, `ss`, plurals (`SSNs: 1, 2` lists would be labelled once).
pub(crate) const LABELS: &[&[&str]] = &[
    &["ssn"],
    &["ssn", "number"],
    &["ssn", "no"],
    &["ssn", "num"],
    &["ssn", "nr"],
    &["social", "security", "number"],
    &["social", "security", "no"],
    &["social", "security", "num"],
    &["social", "security"],
    &["socialsecuritynumber"],
    &["socialsecurityno"],
    &["socialsecurity"],
    &["national", "id"],
    &["national", "id", "number"],
    &["national", "id", "no"],
    &["nationalid"],
    &["taxpayer", "id"],
    &["taxpayer", "id", "number"],
    &["taxpayer", "identification", "number"],
    &["taxpayerid"],
];

/// Words allowed between a label and its number (`SSN is 123456789`).
const FILLERS: &[&str] = &["is", "was"];

/// The last words before a position, last word first, lowercased.
struct Words {
    words: [[u8; MAX_WORD]; MAX_WORDS],
    lens: [usize; MAX_WORDS],
    n: usize,
}

impl Words {
    /// Word `k` counting back from the end (`None` past the words read or
    /// for a word too long to be a label word).
    fn get(&self, k: usize) -> Option<&[u8]> {
        if k >= self.n {
            return None;
        }
        let len = *self.lens.get(k)?;
        self.words.get(k)?.get(..len)
    }
}

/// Reads up to [`MAX_WORDS`] words ending at `end`, each split from the
/// one before by a single `_`, `-`, `.`, space or a camel-case step.
/// A word longer than [`MAX_WORD`] ends the reading (and matches nothing).
fn words_before(w: &Win, end: usize) -> Words {
    let mut out = Words {
        words: [[0; MAX_WORD]; MAX_WORDS],
        lens: [0; MAX_WORDS],
        n: 0,
    };
    let mut i = end;
    while out.n < MAX_WORDS {
        let mut s = i;
        while let Some(c) = w.before(s) {
            if !c.is_ascii_alphabetic() {
                break;
            }
            // `employeeSSN`, `socialSecurity`: an upper-case letter after
            // a lower-case one starts a word.
            let cur = w.before(s + 1).filter(|_| s < i);
            if c.is_ascii_lowercase() && cur.is_some_and(|b| b.is_ascii_uppercase()) {
                break;
            }
            s -= 1;
            if i - s > MAX_WORD {
                return out;
            }
        }
        if s == i {
            return out;
        }
        let (Some(slot), Some(len)) = (out.words.get_mut(out.n), out.lens.get_mut(out.n)) else {
            return out;
        };
        for (k, dst) in slot.iter_mut().enumerate().take(i - s) {
            *dst = w.before(s + k + 1).unwrap_or(0).to_ascii_lowercase();
        }
        *len = i - s;
        out.n += 1;
        i = match w.before(s) {
            Some(c) if c.is_ascii_alphabetic() => s,
            Some(b'_' | b'-' | b'.' | b' ')
                if w.before(s - 1).is_some_and(|c| c.is_ascii_alphabetic()) =>
            {
                s - 1
            }
            _ => return out,
        };
    }
    out
}

/// The words from `skip` back (last word first) end with a label.
fn ends_with_label(words: &Words, skip: usize) -> bool {
    LABELS.iter().any(|label| {
        label
            .iter()
            .rev()
            .enumerate()
            .all(|(k, want)| words.get(skip + k) == Some(want.as_bytes()))
    })
}

/// A gap byte between a label and its number.
fn is_gap(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b':'
            | b'='
            | b'#'
            | b'-'
            | b'"'
            | b'\''
            | b'|'
            | b'*'
            | b'`'
            | b'('
            | b'.'
            | b'\\'
    )
}

/// Is the number starting at `p` preceded by an SSN label? The window's
/// [`Win::lead_label`] says the text itself is the value of a key that
/// was one (JSON mode), which counts when only gap bytes precede `p`.
pub(crate) fn ssn_label_before(w: &Win, p: usize) -> bool {
    let mut i = p;
    loop {
        if i == 0 && w.lead_label {
            return true;
        }
        match w.before(i) {
            Some(b) if is_gap(b) => i -= 1,
            // `\n`, `\t`, `\r` escapes of JSON served as text.
            Some(b'n' | b't' | b'r')
                if w.escapes && w.before(i - 1) == Some(b'\\') && w.escape_ends_at(i) =>
            {
                i -= 2;
            }
            _ => break,
        }
        if p - i > MAX_GAP {
            return false;
        }
    }
    if i == p {
        // Glued to a word (`ssn123456789`).
        return false;
    }
    let words = words_before(w, i);
    if ends_with_label(&words, 0) {
        return true;
    }
    let filler = words
        .get(0)
        .is_some_and(|f| FILLERS.iter().any(|x| x.as_bytes() == f));
    filler && ends_with_label(&words, 1)
}

/// Does a JSON key (its last bytes, unescaped) name an SSN?
pub(crate) fn ssn_key(key: &[u8]) -> bool {
    // Every key of a JSON answer comes here: most end in a letter no
    // label ends in, and need no word split.
    let Some(last) = key.last().map(u8::to_ascii_lowercase) else {
        return false;
    };
    let may_end_a_label = LABELS.iter().any(|label| {
        label
            .last()
            .and_then(|word| word.as_bytes().last())
            .is_some_and(|&end| end == last)
    });
    if !may_end_a_label {
        return false;
    }
    let w = Win::new(key, 0, true, false);
    ends_with_label(&words_before(&w, key.len()), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last-letter shortcut never changes the answer: every label in
    /// every spelling, and keys that end near one, against the full word
    /// split.
    #[test]
    fn ssn_key_shortcut_agrees_with_the_word_split() {
        let mut keys: Vec<String> = Vec::new();
        for label in LABELS {
            for sep in ["_", "-", "", " ", "."] {
                let joined = label.join(sep);
                keys.push(joined.clone());
                keys.push(joined.to_ascii_uppercase());
                keys.push(format!("employee{sep}{joined}"));
                keys.push(format!("{joined}x"));
                keys.push(format!("{joined}_"));
                keys.push(format!("{joined}s"));
            }
            let camel: String = label
                .iter()
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            keys.push(format!("employee{camel}"));
        }
        keys.extend(["id", "nr", "no", "name", "contact", "", "n", "Y", "9"].map(String::from));
        for key in keys {
            let w = Win::new(key.as_bytes(), 0, true, false);
            let full = ends_with_label(&words_before(&w, key.len()), 0);
            assert_eq!(ssn_key(key.as_bytes()), full, "{key:?}");
        }
    }

    fn before(text: &str) -> bool {
        let p = text.len() - 9;
        ssn_label_before(&Win::new(text.as_bytes(), 0, true, true), p)
    }

    #[test]
    fn labels_in_text() {
        for t in [
            "SSN: 123456789",
            "ssn=123456789",
            "SSN#123456789",
            "SSN # 123456789",
            "social security number 123456789",
            "Social Security No. 123456789",
            "Social Security No.: 123456789",
            "\"ssn\": \"123456789",
            "\"ssn\":123456789",
            "\\\"ssn\\\": \\\"123456789",
            "customer_ssn=123456789",
            "employeeSSN: 123456789",
            "socialSecurityNumber: 123456789",
            "SocialSecurityNumber=123456789",
            "national_id: 123456789",
            "taxpayer-id 123456789",
            "my SSN is 123456789",
            "**SSN:** 123456789",
            "| SSN | 123456789",
            "SSN:\\n123456789",
            "user.ssn=123456789",
        ] {
            assert!(before(t), "{t}");
        }
    }

    #[test]
    fn not_labels() {
        for t in [
            "id: 123456789",
            "order_id: 123456789",
            "Order #123456789",
            "ssn123456789",
            "ssn_count: 123456789",
            "lessons 123456789",
            "unless n 123456789",
            "ss n 123456789",
            "SSN verified, order 123456789",
            "ssn:          123456789",
            "tin: 123456789",
            "tax id: 123456789",
            "SSN is not 123456789",
            "SSN/123456789",
            "SSN+123456789",
            "routing number 123456789",
            "123456789",
            "national 123456789",
            "SSNs: 123456789",
            "ssnhash: 123456789",
        ] {
            assert!(!before(t), "{t}");
        }
    }

    #[test]
    fn keys() {
        for k in [
            "ssn",
            "SSN",
            "social_security_number",
            "socialSecurityNumber",
            "national_id",
            "nationalId",
            "taxpayer_id",
            "spouse_ssn",
            "applicant.ssn",
            "employeeSSN",
        ] {
            assert!(ssn_key(k.as_bytes()), "{k}");
        }
        for k in [
            "id",
            "order_id",
            "ssn_count",
            "ssn_last4",
            "lessn",
            "national",
            "",
            "x_averyveryverylongwordssn",
        ] {
            assert!(!ssn_key(k.as_bytes()), "{k}");
        }
    }

    #[test]
    fn lead_label_counts_only_at_the_start() {
        let mut w = Win::new(b"123456789", 0, true, false);
        assert!(!ssn_label_before(&w, 0));
        w.lead_label = true;
        assert!(ssn_label_before(&w, 0));
        let mut w2 = Win::new(b" # 123456789", 0, true, false);
        w2.lead_label = true;
        assert!(ssn_label_before(&w2, 3));
        let mut w3 = Win::new(b"order 123456789", 0, true, false);
        w3.lead_label = true;
        assert!(!ssn_label_before(&w3, 6));
    }
}
