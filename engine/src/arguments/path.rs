//! Paths into a call's `arguments`: `customer_id`, `filter.region`,
//! `items.0.id`, compiled once when the bundle is parsed.

use serde_json::Value;

/// One step of an [`ArgumentPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member, by exact (unescaped) key.
    Key(String),
    /// An array element. A numeric step never reads an object member, so
    /// `items.0` means "first element of the array `items`" only.
    Index(usize),
}

/// A compiled argument path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentPath {
    text: String,
    steps: Vec<Step>,
}

/// Most steps a path may have; the request body is at most 64 deep.
pub const MAX_STEPS: usize = 32;

impl ArgumentPath {
    /// Compiles `a.b.0.c`. Steps are separated by `.` and never empty; a
    /// step of ASCII digits is an array index and must be canonical (`0`,
    /// `17`, not `007`), so one path has one meaning.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("`path` must not be empty".into());
        }
        let mut steps = Vec::new();
        for part in text.split('.') {
            if part.is_empty() {
                return Err(format!("`path` {text:?} has an empty step"));
            }
            let step = if part.bytes().all(|b| b.is_ascii_digit()) {
                if part.len() > 1 && part.starts_with('0') {
                    return Err(format!(
                        "`path` {text:?}: index `{part}` has a leading zero"
                    ));
                }
                let index = part
                    .parse()
                    .map_err(|_| format!("`path` {text:?}: index `{part}` is too large"))?;
                Step::Index(index)
            } else {
                if part.contains('\0') {
                    return Err(format!("`path` {text:?} holds U+0000"));
                }
                Step::Key(part.to_string())
            };
            steps.push(step);
        }
        if steps.len() > MAX_STEPS {
            return Err(format!("`path` has more than {MAX_STEPS} steps"));
        }
        Ok(Self {
            text: text.to_string(),
            steps,
        })
    }

    /// The path as written in the bundle.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The steps, first to last.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The value at this path, if every step finds one.
    pub fn get<'v>(&self, arguments: &'v Value) -> Option<&'v Value> {
        self.steps
            .iter()
            .try_fold(arguments, |value, step| match (step, value) {
                (Step::Key(key), Value::Object(map)) => map.get(key),
                (Step::Index(i), Value::Array(items)) => items.get(*i),
                _ => None,
            })
    }
}
