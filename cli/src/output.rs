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

/// Whether `c` must not reach a terminal as is: control characters
/// (escape sequences, newlines), bidi overrides and isolates, and other
/// invisible format characters (zero-width, soft hyphen, BOM, line and
/// paragraph separators). One set for every printer of the CLI.
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32, 0x00ad | 0x061c | 0x180e | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb)
}

/// A cell as printable text: [`hidden`] characters (a caller- or
/// server-chosen string could hold escape sequences, newlines or bidi
/// controls) shown as `\u` escapes.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if hidden(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Appends `c` as JSON-style `\u` escapes (two for a character outside
/// the Basic Multilingual Plane).
pub fn push_escaped(out: &mut String, c: char) {
    let mut units = [0u16; 2];
    for u in c.encode_utf16(&mut units) {
        out.push_str(&format!("\\u{u:04x}"));
    }
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

    #[test]
    fn invisible_and_bidi_characters_are_escaped() {
        // RLM, LRM, ALM, zero-width space, line separator, BOM: none is a
        // control character, each can reorder or hide what a reader sees.
        for c in [
            '\u{200f}', '\u{200e}', '\u{061c}', '\u{200b}', '\u{2028}', '\u{feff}',
        ] {
            let shown = cell(&format!("a{c}b"));
            assert!(!shown.contains(c), "{c:?} -> {shown}");
            assert!(shown.starts_with("a\\u") && shown.ends_with('b'), "{shown}");
        }
        assert_eq!(cell("\u{1b}[2J"), "\\u001b[2J");
        assert_eq!(cell("déjà vu ✓"), "déjà vu ✓");
    }
}
