//! Values confirmed by their prefix, swallowed to their end.
//!
//! A secret such as a PEM private key, a JWT or a long API token can be
//! longer than anything a stream should hold back. Its detector therefore
//! decides as soon as the *start* is unmistakable (the `-----BEGIN …
//! PRIVATE KEY-----` header, a JWT header that decodes to a JSON object
//! plus a dot, `ghp_` plus 36 characters…) and hands the engine a
//! [`Tail`]: the rule saying which following bytes still belong to the
//! value. The engine writes the replacement at once and drops the rest of
//! the value as it arrives, so the hold-back is what it takes to confirm,
//! not the value's length. The rule reads only through a [`Win`], one byte
//! (a few dozen for a PEM end line) ahead, so where a value ends does not
//! depend on how the text was cut.

use super::window::{is_word, Win};

/// Longest `-----END <label>-----` line recognised, in bytes.
const MAX_END_LINE: usize = 9 + 48 + 5;

/// Which bytes continue a value confirmed by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Letters and digits (`ghp_…`, `sk_live_…`).
    Alnum,
    /// Letters, digits and `_` (`github_pat_…`).
    Word,
    /// Letters, digits and `-` (`xoxb-…`).
    AlnumDash,
    /// base64url, and a `.` when more base64url follows (JWS, JWE).
    Jwt,
    /// Credential bytes `[A-Za-z0-9-._~+/]`, then `=` padding (`pad`).
    Bearer { pad: bool },
    /// PEM body (base64, whitespace, `\` of JSON escapes, the `-`, `:`
    /// and `,` of legacy headers) up to and including an
    /// `-----END <label>-----` line.
    Pem,
}

/// Where [`Tail::advance`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The value ends before this index.
    End(usize),
    /// Undecided at this index: more bytes are needed.
    More(usize),
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_cred(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

fn is_pem_body(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'+' | b'/' | b'=' | b'-' | b':' | b',' | b' ' | b'\t' | b'\r' | b'\n' | b'\\'
        )
}

impl Tail {
    /// Walks the value from `i` as far as the received bytes allow.
    pub(crate) fn advance(&mut self, w: &Win, mut i: usize) -> Stop {
        loop {
            let b = match w.at(i) {
                Ok(Some(b)) => b,
                Ok(None) => return Stop::End(i),
                Err(_) => return Stop::More(i),
            };
            let step = match *self {
                Tail::Alnum => b.is_ascii_alphanumeric().then_some(1),
                Tail::Word => is_word(b).then_some(1),
                Tail::AlnumDash => (b.is_ascii_alphanumeric() || b == b'-').then_some(1),
                Tail::Bearer { pad: false } if is_cred(b) => Some(1),
                Tail::Bearer { .. } if b == b'=' => {
                    *self = Tail::Bearer { pad: true };
                    Some(1)
                }
                Tail::Bearer { .. } => None,
                Tail::Jwt if is_b64url(b) => Some(1),
                Tail::Jwt if b == b'.' => match w.at(i + 1) {
                    Ok(Some(c)) if is_b64url(c) => Some(2),
                    Ok(_) => None,
                    Err(_) => return Stop::More(i),
                },
                Tail::Jwt => None,
                Tail::Pem if b == b'-' => match pem_end_line(w, i) {
                    Ok(Some(n)) => return Stop::End(i + n),
                    Ok(None) => Some(1),
                    Err(()) => return Stop::More(i),
                },
                Tail::Pem => is_pem_body(b).then_some(1),
            };
            match step {
                Some(n) => i += n,
                None => return Stop::End(i),
            }
        }
    }
}

/// Length of an `-----END <label>-----` line at `i`, `None` if there is
/// none, `Err` while undecided.
fn pem_end_line(w: &Win, i: usize) -> Result<Option<usize>, ()> {
    let w = w.limit(i + MAX_END_LINE + 1);
    for (k, &want) in b"-----END ".iter().enumerate() {
        if w.at(i + k).map_err(|_| ())? != Some(want) {
            return Ok(None);
        }
    }
    let label = i + 9;
    let n = w
        .run(label, MAX_END_LINE - 9 - 5 + 1, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
        })
        .map_err(|_| ())?;
    if n == 0 || n > MAX_END_LINE - 9 - 5 {
        return Ok(None);
    }
    for k in 0..5 {
        if w.at(label + n + k).map_err(|_| ())? != Some(b'-') {
            return Ok(None);
        }
    }
    Ok(Some(9 + n + 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(t: Tail, s: &[u8]) -> Stop {
        let mut t = t;
        t.advance(&Win::new(s, 0, true, false), 0)
    }

    #[test]
    fn tails_end_where_the_value_does() {
        assert_eq!(end(Tail::Alnum, b"abc9_x"), Stop::End(4));
        assert_eq!(end(Tail::Word, b"abc9_x y"), Stop::End(6));
        assert_eq!(end(Tail::AlnumDash, b"ab-c_"), Stop::End(4));
        assert_eq!(end(Tail::Jwt, b"ab.cd.ef. next"), Stop::End(8));
        assert_eq!(end(Tail::Jwt, b"ab.cd.."), Stop::End(5));
        assert_eq!(end(Tail::Bearer { pad: false }, b"a+/b==x"), Stop::End(6));
        assert_eq!(end(Tail::Bearer { pad: false }, b"ab=c"), Stop::End(3));
        assert_eq!(
            end(Tail::Pem, b"MII\nAB==\n-----END RSA PRIVATE KEY-----\nrest"),
            Stop::End(38)
        );
        assert_eq!(end(Tail::Pem, b"MII\\nAB -- x. y"), Stop::End(12));
        assert_eq!(end(Tail::Pem, b"AB\n-----END -----!"), Stop::End(17));
    }

    #[test]
    fn undecided_lookahead_waits() {
        let mut t = Tail::Jwt;
        assert_eq!(
            t.advance(&Win::new(b"ab.", 0, false, false), 0),
            Stop::More(2)
        );
        let mut t = Tail::Pem;
        let w = Win::new(b"AB\n-----END RSA", 0, false, false);
        assert_eq!(t.advance(&w, 0), Stop::More(3));
        let mut t = Tail::Bearer { pad: false };
        let w = Win::new(b"ab==", 0, false, false);
        assert_eq!(t.advance(&w, 0), Stop::More(4));
        assert_eq!(t, Tail::Bearer { pad: true });
    }
}
