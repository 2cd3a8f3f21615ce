//! Response scrubbing. This first detector masks e-mail addresses in place,
//! leaving every other byte untouched, so JSON and SSE framing survive.
//!
//! It is safe inside JSON string values: an address never absorbs a quote
//! or a backslash, and an escape sequence right before an address (`\n`,
//! `\u0041`) is kept whole so the output stays valid JSON.

/// Replacement written for each e-mail address.
pub const EMAIL_MASK: &[u8] = b"[EMAIL]";

/// What a scrub pass found, by type; values are never recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// E-mail addresses masked.
    pub emails: usize,
}

impl ScrubReport {
    /// Total values masked.
    pub fn total(&self) -> usize {
        self.emails
    }
}

/// A configured scrubber.
#[derive(Debug, Clone, Copy)]
pub struct Scrubber {
    /// Mask e-mail addresses.
    pub email: bool,
}

impl Scrubber {
    /// Scrubs `input` into `out` (cleared first). Returns what was masked;
    /// when nothing was, `out` equals `input`.
    pub fn scrub(&self, input: &[u8], out: &mut Vec<u8>) -> ScrubReport {
        out.clear();
        out.reserve(input.len());
        let mut report = ScrubReport::default();
        if !self.email {
            out.extend_from_slice(input);
            return report;
        }
        let mut copied = 0;
        let mut search = 0;
        while let Some(offset) = input[search..].iter().position(|&b| b == b'@') {
            let at = search + offset;
            match email_around(input, at, copied) {
                Some((start, end)) => {
                    out.extend_from_slice(&input[copied..start]);
                    out.extend_from_slice(EMAIL_MASK);
                    report.emails += 1;
                    copied = end;
                    search = end;
                }
                None => search = at + 1,
            }
        }
        out.extend_from_slice(&input[copied..]);
        report
    }
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Finds the address around the `@` at `at`, not reaching before `floor`.
fn email_around(input: &[u8], at: usize, floor: usize) -> Option<(usize, usize)> {
    let mut start = at;
    while start > floor && is_local_byte(input[start - 1]) {
        start -= 1;
    }
    start = skip_escape_tail(input, start, at);
    while start < at && input[start] == b'.' {
        start += 1;
    }
    if start == at || input[at - 1] == b'.' {
        return None;
    }
    let mut end = at + 1;
    while end < input.len() && is_domain_byte(input[end]) {
        end += 1;
    }
    while end > at + 1 && matches!(input[end - 1], b'.' | b'-') {
        end -= 1;
    }
    valid_domain(&input[at + 1..end]).then_some((start, end))
}

/// If the bytes just before `start` open a JSON/C escape (`\n`, `\u0041`),
/// moves `start` past the escape's payload so the escape stays intact.
fn skip_escape_tail(input: &[u8], start: usize, at: usize) -> usize {
    let backslashes = input[..start]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    if backslashes % 2 == 0 || start >= at {
        return start;
    }
    let skip = if input[start] == b'u' { 5 } else { 1 };
    (start + skip).min(at)
}

/// A domain needs at least two labels, no empty label, and a final label
/// of two or more letters.
fn valid_domain(domain: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(input: &str) -> (String, usize) {
        let mut out = Vec::new();
        let report = Scrubber { email: true }.scrub(input.as_bytes(), &mut out);
        (String::from_utf8(out).unwrap(), report.emails)
    }

    #[test]
    fn masks_addresses_and_keeps_the_rest() {
        assert_eq!(
            scrub("mail jane.doe+ai@mail.example.com, or bob@x.io."),
            ("mail [EMAIL], or [EMAIL].".into(), 2)
        );
    }

    #[test]
    fn leaves_non_addresses_alone() {
        for s in [
            "@handle",
            "a@b",
            "user@localhost",
            "x@1.2.3.4",
            "v1.2@3",
            "a@b.c",
            "git@-x.com",
            "a@@b.com",
            ".@x.com",
        ] {
            assert_eq!(scrub(s), (s.to_string(), 0), "{s}");
        }
    }

    #[test]
    fn json_stays_valid_around_escapes() {
        let json = r#"{"a":"line\njane@example.com","b":"\u0041bob@example.org","c":"\\carol@example.net"}"#;
        let (out, n) = scrub(json);
        assert_eq!(n, 3);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], "line\n[EMAIL]");
        assert_eq!(v["b"], "A[EMAIL]");
        assert_eq!(v["c"], "\\[EMAIL]");
    }

    #[test]
    fn disabled_scrubber_copies() {
        let mut out = Vec::new();
        let r = Scrubber { email: false }.scrub(b"a@example.com", &mut out);
        assert_eq!((out.as_slice(), r.total()), (&b"a@example.com"[..], 0));
    }
}
