//! Command-line parsing: a small hand-written parser, so the tool has no
//! argument-parsing dependency and its errors read the way we want.

use std::path::PathBuf;

use thiserror::Error;

/// The usage text printed by `mcp-guard help` and after usage errors.
pub const USAGE: &str = "\
mcp-guard: check mcp-guard policy bundles and explain their decisions

USAGE:
    mcp-guard validate [--json] BUNDLE.json [BUNDLE.json ...]
    mcp-guard explain --bundle BUNDLE.json (--claims CLAIMS.json | --token JWT | --token-file FILE)
                      --request REQUEST.json [--json]
    mcp-guard schema
    mcp-guard diff OLD.json NEW.json [-o table|json]
    mcp-guard diff --server URL NAME V1 V2 [-o table|json]
    mcp-guard push --server URL --token-file FILE BUNDLE.json [--if-match ETAG | --create]
                   [--wait-rollout [--rollout-timeout SECONDS]]
    mcp-guard get --server URL NAME [--version V]
    mcp-guard history --server URL NAME
    mcp-guard status --server URL [--json] [NAME]
    mcp-guard rollback --server URL --token-file FILE NAME --to V
    mcp-guard pins --url MCP-URL [--token TOKEN]
    mcp-guard audit verify LOGFILE... [--checkpoints FILE | --server URL] [--key KEY]...
                           [--rotated] [--json]
    mcp-guard audit query LOGFILE... [--sub S] [--tool T] [--model M] [--decision allow|deny]
                          [--since TIME] [--until TIME] [--json]
    mcp-guard keygen
    mcp-guard hash-token < TOKEN
    mcp-guard help | --help | -h
    mcp-guard version | --version | -V

COMMANDS:
    validate   Check bundles with the engine the filter enforces with. Prints
               `ok: FILE: NAME vVERSION, N rules`, or one
               `FILE:LINE:COLUMN: JSON-PATH: MESSAGE` line per issue, every
               issue of the file in one run (structural ones from the bundle
               JSON Schema too). Exit 0 when all are valid, 1 when one is invalid,
               2 when a file cannot be read.
    explain    Decide a request as the filter would and show, rule by rule (deny
               rules first), which conditions held and what the request had.
               Exit 0 when allowed, 3 when denied, 2 on bad input.
    schema     Print the JSON Schema (draft 2020-12) of bundle format v1.
    diff       What changed between two bundle files, or two stored versions of
               a bundle: rules (and routes, limits: any list of objects with
               an `id`) matched by id, other sections member by member; one
               `+`/`-`/`~` line per change and a summary, or -o json. Exit 0
               when equal, 1 when they differ, 2 on bad input.
    push       Store BUNDLE.json as the next version of its bundle on the control
               service (the service assigns the version). Prints
               {name, version, etag, digest}. With --if-match, only if the
               current version still has that ETag. The bundle must exist
               unless --create is given (a mistyped name is refused, not
               stored as a new bundle). Exit 1 when refused (the
               issues are printed), 2 on usage or connection errors.
               With --wait-rollout, then polls /v1/status until every live
               proxy of the bundle enforces the new version (exit 0, prints
               how long), a proxy rejects it (names it and the reason), no
               live proxy polls the bundle, or --rollout-timeout (default
               120 s) passes: exit 4 in those three cases.
    get        Print the latest bundle, or version V.
    history    Print the version list (version, etag, digest, stored_at,
               source, by).
    status     Without NAME: the sync table of every proxy polling the service
               (bundle, instance, pod, active and latest version, state
               synced/behind/rejected/stale, last error, last seen), as
               columns or --json. Identity headers are unauthenticated hints.
               With NAME: what the filters report for bundle NAME: each Envoy's
               active version or the version it rejected and why (bad
               signature, wrong name, rollback, ...), and a `rejected` list
               of versions with the number of instances refusing each.
               Reports are unauthenticated hints, not proof.
    rollback   Store version V's content as a new version.
    pins       Ask an MCP server (Streamable HTTP: initialize, then tools/list
               page by page) for its tools and print a `tool_pins` section
               pinning each one's current name/description/inputSchema
               (sha256 of their canonical JSON, as the filter computes it).
               Review the tools first: a pin approves what the server shows now.
    audit verify
               Check the tamper-evident decision trail in Envoy access logs
               (several files = one stream, oldest first): every chain's
               records must run from seq 1 without gap, repeat or reordering,
               every hash must recompute, and every checkpoint the control
               service countersigned must match. --server fetches the
               checkpoints (and the key, trust on first use, unless --key);
               --checkpoints reads them from a file and needs --key (file or
               base64/hex; repeat it during a key rotation). Prints one
               `FILE:LINE: KIND: chain C seq N: ...` line per finding and a
               summary per chain. --rotated: the oldest files are gone, so
               chains may start after seq 1 (the first record left of each
               is then unprovable unless a checkpoint sits right before it).
               Exit 0 all chains verify, 1 findings, 2 bad
               input.
    audit query
               Print the decision records that match every filter given
               (TIME: RFC 3339 or ms since the epoch; --until is exclusive).
               Does not verify: run audit verify first.
    keygen     Print a new Ed25519 signing key as JSON: seed (secret, for
               mcp-guard-control --signing-key), public key, key id.
    hash-token Read a token on stdin; print its SHA-256 for the tokens file.

EXPLAIN INPUTS:
    --claims FILE      JSON object of the caller's (already verified) claims.
    --token JWT        A compact JWT. Verified when the bundle configures token
    --token-file FILE  verification; otherwise its payload is decoded WITHOUT
                       signature verification (a warning says so). The token is
                       never printed.
    --request FILE     {\"method\": \"POST\", \"path\": \"/mcp\", \"host\"?: \"...\",
                        \"headers\"?: {\"name\": \"value\"}, \"body\"?: JSON or string,
                        \"time\"?: \"2026-01-05T10:00:00Z\" or unix seconds}
    --json             Print a machine-readable report instead of text.
";

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `validate`: check one or more bundle files.
    Validate {
        /// Bundle files, in the order given.
        files: Vec<PathBuf>,
        /// Print a JSON report.
        json: bool,
    },
    /// `explain`: decide one request and show why.
    Explain(ExplainArgs),
    /// `schema`: print the bundle JSON Schema.
    Schema,
    /// `diff`: what changed between two bundles.
    Diff(crate::diff::DiffArgs),
    /// `push`, `get`, `history`, `rollback`: talk to the control service.
    Remote(crate::remote::Remote),
    /// `pins`: print tool pins for an MCP server's tools.
    Pins(crate::pins::PinsArgs),
    /// `audit verify` / `audit query`: the decision trail.
    Audit(crate::audit::Audit),
    /// `keygen`: print a new signing key.
    Keygen,
    /// `hash-token`: hash a token read on stdin.
    HashToken,
    /// `help`: print the usage text.
    Help,
    /// `version`: print the tool's version.
    Version,
}

/// Where the caller's identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// A JSON file holding the claims object.
    ClaimsFile(PathBuf),
    /// A token given on the command line.
    Token(String),
    /// A file holding a token.
    TokenFile(PathBuf),
}

/// Arguments of `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Claims or token.
    pub identity: IdentitySource,
    /// The request description file.
    pub request: PathBuf,
    /// Print a JSON report.
    pub json: bool,
}

/// A command line that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgsError {
    /// No command given.
    #[error("no command given")]
    NoCommand,
    /// The command is not one we know.
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    /// An option this command does not take.
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    /// An option given without its value.
    #[error("option `{0}` needs a value")]
    MissingValue(&'static str),
    /// An option given twice, or two options that exclude each other.
    #[error("`{0}` given more than once")]
    Repeated(&'static str),
    /// A required option is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A positional argument where none is expected.
    #[error("unexpected argument `{0}`")]
    Unexpected(String),
    /// Two options that exclude each other.
    #[error("`{0}` and `{1}` exclude each other")]
    Conflict(&'static str, &'static str),
}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<Command, ArgsError>
where
    I: IntoIterator<Item = String>,
{
    let mut args = args.into_iter();
    let command = args.next().ok_or(ArgsError::NoCommand)?;
    let rest: Vec<String> = args.collect();
    match command.as_str() {
        "validate" => parse_validate(rest),
        "explain" => parse_explain(rest),
        "schema" => no_arguments(rest, Command::Schema),
        "diff" => {
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                return Ok(Command::Help);
            }
            crate::diff::parse(rest).map(Command::Diff)
        }
        "keygen" => no_arguments(rest, Command::Keygen),
        "pins" => crate::pins::parse(rest),
        "audit" => crate::audit::parse(rest),
        "hash-token" => no_arguments(rest, Command::HashToken),
        "push" | "get" | "history" | "rollback" | "status" => {
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                return Ok(Command::Help);
            }
            crate::remote::parse(&command, rest).map(Command::Remote)
        }
        "help" | "--help" | "-h" => Ok(Command::Help),
        "version" | "--version" | "-V" => no_arguments(rest, Command::Version),
        other if other.starts_with('-') => Err(ArgsError::UnknownOption(other.to_string())),
        other => Err(ArgsError::UnknownCommand(other.to_string())),
    }
}

fn no_arguments(rest: Vec<String>, command: Command) -> Result<Command, ArgsError> {
    match rest.into_iter().next() {
        None => Ok(command),
        Some(arg) if arg == "--help" || arg == "-h" => Ok(Command::Help),
        Some(arg) => Err(ArgsError::Unexpected(arg)),
    }
}

fn parse_validate(rest: Vec<String>) -> Result<Command, ArgsError> {
    let mut files = Vec::new();
    let mut json = false;
    let mut options_done = false;
    for arg in rest {
        match arg.as_str() {
            _ if options_done => files.push(PathBuf::from(arg)),
            "--" => options_done = true,
            "--json" if json => return Err(ArgsError::Repeated("--json")),
            "--json" => json = true,
            "--help" | "-h" => return Ok(Command::Help),
            s if s.starts_with('-') && s.len() > 1 => return Err(ArgsError::UnknownOption(arg)),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if files.is_empty() {
        return Err(ArgsError::Missing("bundle file to validate"));
    }
    Ok(Command::Validate { files, json })
}

/// Stores an option's value, refusing a second one.
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    name: &'static str,
) -> Result<(), ArgsError> {
    if slot.is_some() {
        return Err(ArgsError::Repeated(name));
    }
    *slot = Some(value);
    Ok(())
}

/// One argument as a flag: `--opt=value` gives the name and an inline
/// value; anything else is the name alone, and a flag that needs a value
/// then takes the next argument (`--opt value`).
pub(crate) struct Flag {
    pub(crate) name: String,
    pub(crate) inline: Option<String>,
}

impl Flag {
    pub(crate) fn split(arg: &str) -> Self {
        match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => Self {
                name: n.to_string(),
                inline: Some(v.to_string()),
            },
            _ => Self {
                name: arg.to_string(),
                inline: None,
            },
        }
    }

    /// The flag's value: the inline one, else the next argument.
    pub(crate) fn value(
        &self,
        args: &mut impl Iterator<Item = String>,
        flag: &'static str,
    ) -> Result<String, ArgsError> {
        self.inline
            .clone()
            .or_else(|| args.next())
            .ok_or(ArgsError::MissingValue(flag))
    }
}

fn parse_explain(rest: Vec<String>) -> Result<Command, ArgsError> {
    let mut bundle = None;
    let mut identity = None;
    let mut request = None;
    let mut json = false;
    let mut args = rest.into_iter();
    while let Some(arg) = args.next() {
        let flag = Flag::split(&arg);
        let mut value = |name: &'static str| flag.value(&mut args, name);
        match flag.name.as_str() {
            "--bundle" => set_once(&mut bundle, PathBuf::from(value("--bundle")?), "--bundle")?,
            "--request" => set_once(
                &mut request,
                PathBuf::from(value("--request")?),
                "--request",
            )?,
            "--claims" => set_once(
                &mut identity,
                IdentitySource::ClaimsFile(value("--claims")?.into()),
                "--claims/--token/--token-file",
            )?,
            "--token" => set_once(
                &mut identity,
                IdentitySource::Token(value("--token")?),
                "--claims/--token/--token-file",
            )?,
            "--token-file" => set_once(
                &mut identity,
                IdentitySource::TokenFile(value("--token-file")?.into()),
                "--claims/--token/--token-file",
            )?,
            "--json" if flag.inline.is_none() => {
                if json {
                    return Err(ArgsError::Repeated("--json"));
                }
                json = true;
            }
            "--help" | "-h" => return Ok(Command::Help),
            s if s.starts_with('-') => return Err(ArgsError::UnknownOption(arg)),
            _ => return Err(ArgsError::Unexpected(arg)),
        }
    }
    Ok(Command::Explain(ExplainArgs {
        bundle: bundle.ok_or(ArgsError::Missing("--bundle"))?,
        identity: identity.ok_or(ArgsError::Missing("--claims, --token or --token-file"))?,
        request: request.ok_or(ArgsError::Missing("--request"))?,
        json,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, ArgsError> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn validate_takes_files_and_json() {
        assert_eq!(
            args(&["validate", "--json", "a.json", "b.json"]),
            Ok(Command::Validate {
                files: vec!["a.json".into(), "b.json".into()],
                json: true
            })
        );
        assert_eq!(
            args(&["validate"]),
            Err(ArgsError::Missing("bundle file to validate"))
        );
        assert_eq!(
            args(&["validate", "--", "-odd.json"]),
            Ok(Command::Validate {
                files: vec!["-odd.json".into()],
                json: false
            })
        );
    }

    #[test]
    fn explain_needs_bundle_identity_and_request() {
        let parsed = args(&[
            "explain",
            "--bundle=b.json",
            "--token",
            "x.y.z",
            "--request",
            "r.json",
        ]);
        assert_eq!(
            parsed,
            Ok(Command::Explain(ExplainArgs {
                bundle: "b.json".into(),
                identity: IdentitySource::Token("x.y.z".into()),
                request: "r.json".into(),
                json: false,
            }))
        );
        assert_eq!(
            args(&["explain", "--bundle", "b", "--request", "r"]),
            Err(ArgsError::Missing("--claims, --token or --token-file"))
        );
        assert_eq!(
            args(&["explain", "--claims", "c", "--token", "t"]),
            Err(ArgsError::Repeated("--claims/--token/--token-file"))
        );
        assert_eq!(
            args(&["explain", "--bundle"]),
            Err(ArgsError::MissingValue("--bundle"))
        );
    }

    #[test]
    fn unknown_things_are_named() {
        assert_eq!(
            args(&["frobnicate"]),
            Err(ArgsError::UnknownCommand("frobnicate".into()))
        );
        assert_eq!(
            args(&["explain", "--verbose"]),
            Err(ArgsError::UnknownOption("--verbose".into()))
        );
        assert_eq!(args(&[]), Err(ArgsError::NoCommand));
        assert_eq!(
            args(&["schema", "extra"]),
            Err(ArgsError::Unexpected("extra".into()))
        );
    }
}
