//! `-o table|json` (and the older `--json`) for every command that prints
//! data, and the aligned text columns tables are printed with.

use clap::{Args, ValueEnum};

/// How a command prints what it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns / lines for a human.
    #[default]
    Table,
    /// Pretty JSON for scripts (shapes documented in cli/README.md).
    Json,
}

/// The output flags: `-o/--output table|json`, `--json` = `-o json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub struct OutputArg {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Same as `-o json`.
    #[arg(long)]
    pub json: bool,
}

impl OutputArg {
    /// Whether JSON was asked for (either spelling).
    pub fn json(&self) -> bool {
        self.json || self.output == Format::Json
    }
}

/// A cell as printable text: control characters (a caller-chosen string
/// could hold escape sequences or newlines) shown escaped.
pub fn cell(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                format!("\\u{:04x}", u32::from(c))
                    .chars()
                    .collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Rows as left-aligned columns separated by two spaces, the header first.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (w, c)) in widths.iter().zip(row).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            line.extend(std::iter::repeat_n(
                ' ',
                w.saturating_sub(c.chars().count()),
            ));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_cells_escape() {
        let text = columns(
            &["A", "BB"],
            &[
                vec!["long".into(), "x".into()],
                vec![cell("a\nb"), "y".into()],
            ],
        );
        assert_eq!(text, "A         BB\nlong      x\na\\u000ab  y\n");
    }
}
