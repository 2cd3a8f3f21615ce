//! Where a JSON path (`$.rules[0].when.claims[1]`) sits in a bundle's
//! text, as line and column, so `validate` points at the place to edit the
//! way compilers do. The strict parse has already happened (serde); this
//! only reads positions from a span-keeping AST (`jsonc-parser`).

use jsonc_parser::ast::Value;
use jsonc_parser::common::Ranged;
use jsonc_parser::{parse_to_ast, CollectOptions, ParseOptions};

/// A place in the text, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

/// One step of a JSON path.
#[derive(Debug, PartialEq, Eq)]
enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

/// Splits `$.a.b[2].c` into steps; `None` for what is not such a path.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let (key, tail) = after.split_at(end);
            steps.push(Step::Key(key));
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('[') {
            let (index, tail) = after.split_once(']')?;
            steps.push(Step::Index(index.parse().ok()?));
            rest = tail;
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The position of the deepest node of `path` the text has: the node
/// itself, or for a missing member the object that lacks it. `None` when
/// the text does not parse or the path is not a JSON path.
pub fn position(text: &str, path: &str) -> Option<Position> {
    let steps = steps(path)?;
    let options = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        ..ParseOptions::default()
    };
    let parsed = parse_to_ast(text, &CollectOptions::default(), &options).ok()?;
    let mut node = parsed.value.as_ref()?;
    for step in &steps {
        let next = match (step, node) {
            // The last member of that name: what serde keeps of duplicates.
            (Step::Key(key), Value::Object(object)) => object
                .properties
                .iter()
                .rev()
                .find(|p| p.name.as_str() == *key)
                .map(|p| &p.value),
            (Step::Index(i), Value::Array(array)) => array.elements.get(*i),
            _ => None,
        };
        match next {
            Some(child) => node = child,
            None => break,
        }
    }
    Some(offset_position(text, node.start()))
}

/// Line and column of a byte offset.
pub fn offset_position(text: &str, offset: usize) -> Position {
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before.get(line_start..).map_or(0, |l| l.chars().count()) + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n  \"name\": \"demo\",\n  \"rules\": [\n    {\"id\": \"a\"},\n    {\"id\": \"é\", \"when\": {\"claims\": [1, 2]}}\n  ]\n}\n";

    #[test]
    fn paths_resolve_to_lines_and_columns() {
        let at = |path| position(TEXT, path).map(|p| (p.line, p.column));
        assert_eq!(at("$"), Some((1, 1)));
        assert_eq!(at("$.name"), Some((2, 11)));
        assert_eq!(at("$.rules[1].id"), Some((5, 12)));
        assert_eq!(at("$.rules[1].when.claims[1]"), Some((5, 40)));
        // A missing member points at the object that lacks it.
        assert_eq!(at("$.rules[0].effect"), Some((4, 5)));
        assert_eq!(at("$.rules[9]"), Some((3, 12)));
        assert_eq!(at("rules"), None);
        assert_eq!(position("{", "$"), None);
    }

    #[test]
    fn columns_count_characters() {
        // "é" is two bytes; the value after it is still at column 25.
        assert_eq!(
            position(TEXT, "$.rules[1].when").map(|p| p.column),
            Some(25)
        );
    }
}
