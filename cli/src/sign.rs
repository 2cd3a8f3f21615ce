//! `mcp-guard build` and `mcp-guard sign`: a team's pipeline validates a
//! bundle, writes its canonical form, and signs the exact bytes offline
//! with a key that never leaves the pipeline; `push` sends the signature
//! and the service verifies it against the team's trusted keys (format:
//! [`mcp_guard_engine::author_signing`]).

use std::path::{Path, PathBuf};

use mcp_guard_engine::author_signing::{author_sign, sha256_hex, SignatureFile};
use mcp_guard_engine::signing::{self, SigningKey};
use serde_json::Value;

use crate::validate::{check_bytes, Outcome};

/// Arguments of `build`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Validates SRC like `validate` (every issue, exit 1), writes its canonical form (as `fmt`) to OUT
and prints the bundle name, version and the SHA-256 of OUT: the bytes to sign and push.

Example:
  mcp-guard build policies/demo.json -o dist/demo.json && mcp-guard sign --key team.key dist/demo.json")]
pub struct BuildArgs {
    /// The bundle source.
    #[arg(value_name = "SRC")]
    pub src: PathBuf,
    /// Where the built bundle goes.
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: PathBuf,
    /// Allow OUT to be SRC (rewrite the source in canonical form).
    #[arg(long)]
    pub in_place: bool,
}

/// Arguments of `sign`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
KEYFILE is `mcp-guard keygen` output (its \"seed\" is used) or a bare seed (base64 or hex).
The signature covers the bundle's name and the SHA-256 of the file's exact bytes: sign what
you push (the output of `build`), and sign again after any change.

Example:
  mcp-guard keygen > team.key        # give its \"ed25519\" public key to the service
  mcp-guard sign --key team.key dist/demo.json   # writes dist/demo.json.sig")]
pub struct SignArgs {
    /// Signing key file; repeat to sign with several keys.
    #[arg(long = "key", value_name = "KEYFILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// The bundle file to sign (exact bytes).
    #[arg(value_name = "BUNDLE.json")]
    pub bundle: PathBuf,
    /// Where the signature goes (default BUNDLE.json.sig).
    #[arg(short = 'o', long = "out", value_name = "SIG")]
    pub out: Option<PathBuf>,
}

/// The bundle in `bytes` validated like `validate`: its name and version,
/// or the issue lines.
fn validated(path: &Path, bytes: &[u8]) -> Result<(String, u64), String> {
    let report = check_bytes(path, bytes);
    match &report.outcome {
        Outcome::Valid { name, version, .. } => Ok((name.clone(), *version)),
        _ => Err(report.lines().join("\n")),
    }
}

/// Whether two paths name the same file (OUT may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty())?;
            Some(parent.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    match (resolve(a), resolve(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Runs `build`: the line to print, or (message, exit code).
pub fn build(args: &BuildArgs) -> Result<String, (String, u8)> {
    let bytes = std::fs::read(&args.src)
        .map_err(|e| (format!("cannot read {}: {e}", args.src.display()), 2))?;
    if same_file(&args.src, &args.out) && !args.in_place {
        return Err((
            format!(
                "{} is the source: pass --in-place to rewrite it, or choose another -o",
                args.out.display()
            ),
            2,
        ));
    }
    let (name, version) = validated(&args.src, &bytes).map_err(|lines| (lines, 1))?;
    let text = crate::fmt::canonical(&args.src, &bytes).map_err(|e| (e.to_string(), 1))?;
    crate::fmt::write_atomic(&args.out, text.as_bytes())
        .map_err(|e| (format!("cannot write {}: {e}", args.out.display()), 2))?;
    Ok(format!(
        "built {} v{version} -> {} sha256 {}\n",
        crate::output::cell(&name),
        args.out.display(),
        sha256_hex(text.as_bytes())
    ))
}

/// A signing key from a key file: `keygen`'s JSON (its `seed`) or a bare
/// seed. The file's content is never printed.
fn read_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let seed = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => match map.get("seed") {
            Some(Value::String(seed)) => seed.clone(),
            _ => {
                return Err(format!(
                    "{}: no \"seed\" in the key JSON (a public key cannot sign)",
                    path.display()
                ))
            }
        },
        _ => text.trim().to_owned(),
    };
    signing::signing_key_from_text(&seed).map_err(|_| {
        format!(
            "{}: not an Ed25519 seed (base64 or hex, 32 bytes)",
            path.display()
        )
    })
}

/// Runs `sign`: the line to print, or (message, exit code).
pub fn sign(args: &SignArgs) -> Result<String, (String, u8)> {
    let bytes = std::fs::read(&args.bundle)
        .map_err(|e| (format!("cannot read {}: {e}", args.bundle.display()), 2))?;
    let (name, version) = validated(&args.bundle, &bytes).map_err(|lines| (lines, 1))?;
    let keys: Vec<SigningKey> = args
        .keys
        .iter()
        .map(|k| read_key(k))
        .collect::<Result<_, _>>()
        .map_err(|e| (e, 2))?;
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let file = SignatureFile {
        name: name.clone(),
        sha256: sha256_hex(&bytes),
        signature: author_sign(&name, &bytes, &refs),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.sig", args.bundle.display())));
    let json = serde_json::to_string_pretty(&file).map_err(|e| (e.to_string(), 2))? + "\n";
    crate::fmt::write_atomic(&out, json.as_bytes())
        .map_err(|e| (format!("cannot write {}: {e}", out.display()), 2))?;
    let ids: Vec<String> = keys
        .iter()
        .map(|k| signing::key_id(&k.verifying_key()))
        .collect();
    Ok(format!(
        "signed {} v{version} (sha256 {}) with key {} -> {}\n",
        crate::output::cell(&name),
        file.sha256,
        ids.join(", "),
        out.display()
    ))
}
