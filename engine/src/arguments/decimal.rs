//! Exact decimal values of JSON numbers, so a range or equality test sees
//! the number that was sent rather than the double it rounds to.

use std::cmp::Ordering;

use serde_json::Number;

use crate::strict_json::FloatTexts;

/// An exact decimal: `(-1)^negative × 0.d1d2…dn × 10^exp`, with no leading
/// or trailing zero digit; zero has no digits and is never negative, so
/// `-0`, `0.0` and `0e5` are one value and `1e2`, `100`, `100.0` another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Decimal {
    /// Reads a JSON number's text (RFC 8259 grammar, or Rust's `{:e}`
    /// form of a double). Exponents beyond `i64` saturate, which keeps
    /// every comparison against a bundle bound right. `None` when the text
    /// is not a number.
    pub fn parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (rest.get(..at)?, Some(rest.get(at + 1..)?)),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut exp = parse_exponent(exponent)?;
        exp = exp.saturating_add(i64::try_from(int.len()).unwrap_or(i64::MAX));
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        exp = exp.saturating_sub(i64::try_from(leading).unwrap_or(i64::MAX));
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Some(Self::zero());
        }
        Some(Self {
            negative,
            digits,
            exp,
        })
    }

    fn zero() -> Self {
        Self {
            negative: false,
            digits: Vec::new(),
            exp: 0,
        }
    }

    /// The value a bundle (or a claim) holds: integers exactly, doubles as
    /// the shortest decimal that reads back as the same double — the
    /// number its author wrote.
    pub fn of_number(number: &Number) -> Option<Self> {
        if number.is_f64() {
            let double = number.as_f64()?;
            Self::parse(&format!("{double:e}"))
        } else {
            Self::parse(&number.to_string())
        }
    }

    /// Every exact value a number of a request body may have been sent as:
    /// the integer itself, or each source text that was read as this
    /// double. A test on the number holds only if it holds for all.
    pub fn candidates(number: &Number, floats: &FloatTexts) -> Vec<Self> {
        if number.is_f64() {
            let texts = number.as_f64().map_or(&[][..], |d| floats.texts_of(d));
            if !texts.is_empty() {
                return texts.iter().filter_map(|t| Self::parse(t)).collect();
            }
        }
        Self::of_number(number).into_iter().collect()
    }
}

impl Decimal {
    /// Whether every JSON parser reads this number as one value that keeps
    /// its order against other such numbers: an integer of magnitude at
    /// most 2^53 (exact in a double), or at most 15 significant digits
    /// (every such decimal survives a trip through a double) with a
    /// magnitude between 1e-307 and 1e307 (no underflow or overflow).
    /// `1000.0000000000000001` is not: a double reads it as 1000.
    pub fn is_portable(&self) -> bool {
        const MAX_SAFE: u64 = 1 << 53;
        let len = i64::try_from(self.digits.len()).unwrap_or(i64::MAX);
        if self.digits.is_empty() {
            return true;
        }
        if self.exp >= len && self.exp <= 16 {
            let magnitude = self
                .digits
                .iter()
                .map(|&d| u64::from(d))
                .chain(std::iter::repeat(0))
                .take(usize::try_from(self.exp).unwrap_or(0))
                .fold(0u64, |acc, d| acc.saturating_mul(10).saturating_add(d));
            if magnitude <= MAX_SAFE {
                return true;
            }
        }
        len <= 15 && (-306..=308).contains(&self.exp)
    }
}

fn parse_exponent(exponent: Option<&str>) -> Option<i64> {
    let Some(text) = exponent else {
        return Some(0);
    };
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |d: &Self| match (d.digits.is_empty(), d.negative) {
            (true, _) => 0i8,
            (false, true) => -1,
            (false, false) => 1,
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let magnitude = self
            .exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits));
        if a < 0 {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn one_value_has_one_form() {
        assert_eq!(d("1e2"), d("100"));
        assert_eq!(d("100.000"), d("0.1e3"));
        assert_eq!(d("-0"), d("0"));
        assert_eq!(d("-0.0e-7"), d("0"));
        assert_eq!(d("007"), d("7"));
        assert_ne!(d("1000.0000000000000001"), d("1000"));
    }

    #[test]
    fn order_is_exact() {
        assert!(d("1000.0000000000000001") > d("1000"));
        assert!(d("999.99999999999999999") < d("1000"));
        assert!(d("-1000.0000000000000001") < d("-1000"));
        assert!(d("12345678901234567890123") > d("12345678901234567890122"));
        assert!(d("1e-400") > d("0"));
        assert!(d("-1e-400") < d("0"));
        assert!(d("1e400") > d("1.7976931348623157e308"));
        assert!(d("9e99999999999999999999999") > d("1e400"));
        assert!(d("1e-99999999999999999999999") > d("0"));
        assert!(d("1e-99999999999999999999999") < d("1e-400"));
        assert!(d("-5") < d("3"));
        assert!(d("0.5") < d("0.55"));
    }

    #[test]
    fn bundle_numbers_are_what_the_author_wrote() {
        let n: Number = serde_json::from_str("0.1").unwrap();
        assert_eq!(Decimal::of_number(&n), Some(d("0.1")));
        let n: Number = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(Decimal::of_number(&n), Some(d("18446744073709551615")));
        let n: Number = serde_json::from_str("-9223372036854775808").unwrap();
        assert_eq!(Decimal::of_number(&n), Some(d("-9223372036854775808")));
    }

    #[test]
    fn portable_numbers_read_alike_everywhere() {
        for text in [
            "0",
            "-0",
            "1000",
            "1e3",
            "0.1",
            "123456789012345",
            "9007199254740992",
            "-9007199254740992",
            "1e300",
            "1.5e-300",
            "999999999999999e2",
        ] {
            assert!(d(text).is_portable(), "{text}");
        }
        for text in [
            "1000.0000000000000001",
            "9007199254740993",
            "12345678901234567890",
            "0.1234567890123456",
            "1e-400",
            "1e400",
            "-9007199254740993",
        ] {
            assert!(!d(text).is_portable(), "{text}");
        }
    }

    #[test]
    fn non_numbers_are_refused() {
        for text in ["", "-", "e5", "1e", "1.2.3", "0x10", "1e+", "NaN", "inf"] {
            assert_eq!(Decimal::parse(text), None, "{text}");
        }
    }
}
