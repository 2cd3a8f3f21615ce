//! `mcp-guard fmt`: the canonical text of a bundle (or any JSON file):
//! 2-space indent, `"key": value`, keys in the order written, numbers and
//! strings spelled exactly as written, one trailing newline. `build`
//! writes this form too, so a reviewed diff is about content, not layout.
//!
//! The re-indenter is hand-written on purpose: `serde_json::Value` sorts
//! keys (its `preserve_order` feature would change map order for every
//! crate of the workspace, the engine's digests included) and re-spells
//! numbers (`1.0` → `1.0`, but `1e2` → `100.0`). The text is parsed by
//! serde_json first, so only valid JSON reaches it.

use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use thiserror::Error;

/// Arguments of `fmt`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Without -w or --check, prints the canonical form to stdout.

Examples:
  mcp-guard fmt -w policies/*.json
  mcp-guard fmt --check policies/*.json   # exit 1 and the list when one would change")]
pub struct FmtArgs {
    /// JSON files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// List the files whose text is not canonical; exit 1 when there is
    /// one. Writes nothing.
    #[arg(long, conflicts_with = "write")]
    pub check: bool,
    /// Rewrite the files in place (only those that change).
    #[arg(short = 'w', long = "write")]
    pub write: bool,
}

/// A file that cannot be formatted.
#[derive(Debug, Error)]
pub enum FmtError {
    /// Not readable.
    #[error("{path}: error: cannot read: {why}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        why: std::io::Error,
    },
    /// Not JSON, located like `validate` does.
    #[error("{path}:{line}:{column}: not JSON: {why}")]
    Syntax {
        /// The file.
        path: String,
        /// Line from 1.
        line: usize,
        /// Column from 1.
        column: usize,
        /// serde_json's reason, without its own position.
        why: String,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("{path}: error: nested deeper than {MAX_DEPTH} arrays and objects")]
    TooDeep {
        /// The file.
        path: String,
    },
    /// Not writable.
    #[error("{path}: error: cannot write: {why}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        why: std::io::Error,
    },
}

/// Deepest nesting `fmt` lays out: serde_json's own recursion limit, so
/// every file `validate` reads formats. Without a bound, indentation makes
/// the output quadratic in the depth (`[` x 100,000 then `]` x 100,000,
/// 200 KB, would indent to ~20 GB), and serde's check of the text does not
/// bound depth when it ignores values.
pub const MAX_DEPTH: usize = 128;

/// The canonical text of the JSON in `bytes` (read from `path`).
pub fn canonical(path: &Path, bytes: &[u8]) -> Result<String, FmtError> {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        let why = e.to_string();
        let why = why
            .split(" at line ")
            .next()
            .unwrap_or(why.as_str())
            .to_owned();
        return Err(FmtError::Syntax {
            path: path.display().to_string(),
            line: e.line(),
            column: e.column(),
            why,
        });
    }
    // Valid JSON is valid UTF-8 (serde_json checks).
    let text = String::from_utf8_lossy(bytes);
    reindent(&text).ok_or_else(|| FmtError::TooDeep {
        path: path.display().to_string(),
    })
}

/// Re-indents valid JSON text; `None` past [`MAX_DEPTH`].
fn reindent(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push('"');
                let mut escaped = false;
                for s in chars.by_ref() {
                    out.push(s);
                    match (escaped, s) {
                        (true, _) => escaped = false,
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                // This container is level depth + 1 (`[[]]` is 2).
                if depth >= MAX_DEPTH {
                    return None;
                }
                out.push(c);
                // Skip whitespace to see whether the container is empty.
                while chars.peek().is_some_and(|n| n.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    if let Some(close) = chars.next() {
                        out.push(close);
                    }
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    out.push('\n');
    Some(out)
}

/// Runs `fmt`: what to print, and the exit code (0, 1 with `--check` when
/// a file would change, 2 when one cannot be read or is not JSON).
pub fn run(args: &FmtArgs) -> (String, String, u8) {
    let (mut out, mut err, mut code) = (String::new(), String::new(), 0u8);
    for path in &args.files {
        let result = std::fs::read(path)
            .map_err(|why| FmtError::Read {
                path: path.display().to_string(),
                why,
            })
            .and_then(|bytes| canonical(path, &bytes).map(|text| (bytes, text)));
        let (bytes, text) = match result {
            Ok(pair) => pair,
            Err(e) => {
                err.push_str(&format!("{e}\n"));
                code = 2;
                continue;
            }
        };
        let changes = bytes != text.as_bytes();
        if args.check {
            if changes {
                out.push_str(&format!("{}\n", path.display()));
                code = code.max(1);
            }
        } else if args.write {
            if changes {
                if let Err(why) = write_atomic(path, text.as_bytes()) {
                    err.push_str(&format!(
                        "{}\n",
                        FmtError::Write {
                            path: path.display().to_string(),
                            why
                        }
                    ));
                    code = 2;
                } else {
                    out.push_str(&format!("formatted {}\n", path.display()));
                }
            }
        } else {
            out.push_str(&text);
        }
    }
    (out, err, code)
}

/// Writes `bytes` to `path` through a temporary file in the same
/// directory and a rename, so a crash never leaves half a bundle.
///
/// The temporary file is created exclusively (`O_CREAT|O_EXCL`, which also
/// refuses a symlink at that name): in a shared directory another user
/// who planted a symlink at the predictable temporary name must not get
/// an arbitrary file of ours truncated and overwritten. An existing
/// `path` keeps its permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let permissions = std::fs::metadata(path).ok().map(|m| m.permissions());
    let (tmp, mut file) = create_temporary(path, &name)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| match permissions {
            Some(p) => file.set_permissions(p),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A new temporary file beside `path`, never an existing file or symlink.
fn create_temporary(path: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    let pid = std::process::id();
    let mut last = None;
    for attempt in 0..16u32 {
        let tmp = path.with_file_name(format!(".{name}.mcp-guard-{pid}-{attempt}.tmp"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_so_the_output_is_too() {
        let at = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(canonical(Path::new("t.json"), at(MAX_DEPTH).as_bytes()).is_ok());
        // 200 KB of brackets used to indent to ~20 GB (the process was
        // killed for memory); now a clear error.
        let err = canonical(Path::new("t.json"), at(100_000).as_bytes())
            .expect_err("too deep")
            .to_string();
        assert!(err.contains("nested deeper than 128"), "{err}");
        assert!(canonical(Path::new("t.json"), at(MAX_DEPTH + 1).as_bytes()).is_err());
        // Brackets inside strings are not nesting.
        let quoted = format!("[\"{}\"]", "[".repeat(1000));
        assert!(canonical(Path::new("t.json"), quoted.as_bytes()).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_never_writes_through_a_planted_symlink() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-fmt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").expect("victim");
        let out = dir.join("out.json");
        // Every temporary name this process could pick (old and new
        // schemes) is a symlink to the victim.
        let pid = std::process::id();
        let mut planted = vec![format!(".out.json.mcp-guard-{pid}.tmp")];
        planted.extend((0..15).map(|i| format!(".out.json.mcp-guard-{pid}-{i}.tmp")));
        for name in &planted {
            std::os::unix::fs::symlink(&victim, dir.join(name)).expect("symlink");
        }
        write_atomic(&out, b"{}\n").expect("write");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
        assert_eq!(std::fs::read(&out).expect("out"), b"{}\n");
        assert!(!std::fs::symlink_metadata(&out).expect("out").is_symlink());
        // OUT itself a symlink (planted, or to the source): replaced by
        // the new file, never written through.
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&victim, &link).expect("symlink");
        write_atomic(&link, b"[]\n").expect("write");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
        assert!(!std::fs::symlink_metadata(&link).expect("link").is_symlink());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_keeps_the_permissions_of_the_file_it_replaces() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("mcp-guard-fmt-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("b.json");
        std::fs::write(&file, b"[]").expect("file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        write_atomic(&file, b"[]\n").expect("write");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    fn fmt(text: &str) -> String {
        canonical(Path::new("t.json"), text.as_bytes()).expect("json")
    }

    #[test]
    fn keeps_key_order_numbers_and_escapes() {
        assert_eq!(
            fmt(r#"{"z":1e2,"a":[ ],"m":{},"s":"a\"b, {c}: [d]","l":[1,{"k":null}]}"#),
            "{\n  \"z\": 1e2,\n  \"a\": [],\n  \"m\": {},\n  \"s\": \"a\\\"b, {c}: [d]\",\n  \"l\": [\n    1,\n    {\n      \"k\": null\n    }\n  ]\n}\n"
        );
        assert_eq!(fmt(" 7 "), "7\n");
        let once = fmt(r#"{"a":{"b":[1,2]}}"#);
        assert_eq!(fmt(&once), once, "idempotent");
    }

    #[test]
    fn agrees_with_serde_json_pretty_when_keys_are_sorted() {
        let value = serde_json::json!({"a": [1, {"b": "x\u{1}y"}], "c": {"d": true}, "e": []});
        let pretty = serde_json::to_string_pretty(&value).expect("json") + "\n";
        assert_eq!(fmt(&value.to_string()), pretty);
    }

    #[test]
    fn locates_syntax_errors() {
        let err = canonical(Path::new("b.json"), b"{\n  \"a\": 1,\n  }").expect_err("bad");
        let text = err.to_string();
        assert!(text.starts_with("b.json:3:3: not JSON: "), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }
}
