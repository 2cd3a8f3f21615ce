//! Bundle names: the key filters subscribe by, used in URLs and (later) in
//! file names, so restricted to a small safe alphabet.

use std::fmt;

/// Longest bundle name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A valid bundle name: 1 to [`MAX_NAME_LEN`] characters from
/// `A-Z a-z 0-9 . _ -`.
///
/// Holding one proves the check was made, so code past the HTTP and file
/// boundaries never sees a name with `/`, `%` or other surprises.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleName(String);

/// Why a string is not a bundle name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("bundle name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("bundle name is {0} characters long, the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    /// The name has a character outside the allowed set.
    #[error("bundle name has {0:?}; allowed are A-Z a-z 0-9 . _ -")]
    BadChar(char),
}

impl BundleName {
    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(NameError::BadChar(bad));
        }
        // All characters are ASCII here, so bytes are characters.
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(name.len()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BundleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for name in [
            "a",
            "demo",
            "Team_A-prod.v2",
            "...",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            assert_eq!(
                BundleName::parse(name).map(|n| n.to_string()).as_deref(),
                Ok(name)
            );
        }
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(BundleName::parse(""), Err(NameError::Empty));
        assert_eq!(
            BundleName::parse(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong(MAX_NAME_LEN + 1))
        );
        for (name, bad) in [("a/b", '/'), ("a%2e", '%'), ("a b", ' '), ("é", 'é')] {
            assert_eq!(
                BundleName::parse(name),
                Err(NameError::BadChar(bad)),
                "{name}"
            );
        }
    }
}
