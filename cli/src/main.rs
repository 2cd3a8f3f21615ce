//! `mcp-guard`: the security team's tool for mcp-guard policy bundles.
//!
//! - `validate`, `fmt`, `build`, `sign`: bundles offline (a pipeline
//!   builds and signs; the control service verifies the author signature);
//! - `explain`, `test`: "why was I denied?" and policy unit tests;
//! - `schema`, `diff`: the bundle JSON Schema, what changed;
//! - `push`, `get`, `history`, `rollback`, `status`: the control service's
//!   API (https; plain http only with `--allow-plain-http`);
//! - `audit verify`, `audit query`: the tamper-evident decision trail;
//! - `pins`: tool pins for an MCP server's current tools;
//! - `keygen`, `hash-token`: signing keys and push tokens;
//! - `completions`: shell completion scripts.
//!
//! The command line is clap (derive): per-command `--help`, `--version`,
//! env vars (MCP_GUARD_SERVER, MCP_GUARD_TOKEN, MCP_GUARD_TOKEN_FILE,
//! MCP_GUARD_ALLOW_PLAIN_HTTP, MCP_GUARD_CA_FILE). Each command's
//! arguments live in its module.
//!
//! Exit codes: 0 success / allowed, 1 invalid bundle or refused, 2 usage or
//! input error, 3 denied, 4 rollout failed.

mod audit;
mod diff;
mod explain;
mod fmt;
mod http;
mod keys;
mod locate;
mod output;
mod pins;
mod policy_test;
mod remote;
mod render;
mod request;
mod rollout;
mod schema;
mod sign;
mod time;
mod token;
mod validate;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{CommandFactory as _, Parser, Subcommand};
use mcp_guard_engine::Effect;

/// Exit code for a usage or input error.
const EXIT_USAGE: u8 = 2;
/// Exit code of `explain` when the request is denied.
const EXIT_DENIED: u8 = 3;
/// Exit status of `push --wait-rollout` when the pushed version did not
/// roll out (refused by a proxy, timed out, or no live proxy).
const EXIT_ROLLOUT: u8 = 4;

/// Check, build, sign and ship mcp-guard policy bundles; explain their
/// decisions.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-guard",
    version = env!("MCP_GUARD_VERSION"),
    after_help = "\
Examples:
  mcp-guard validate policies/demo.json
  mcp-guard explain --bundle demo.json --claims alice.json --request call.json
  mcp-guard schema > bundle-v1.schema.json
  mcp-guard build policies/demo.json -o dist/demo.json
  mcp-guard sign --key team.key dist/demo.json
  mcp-guard push --server https://control:8443 --token-file push.token dist/demo.json
  mcp-guard history --server https://control:8443 demo -o json

Exit codes: 0 ok/allowed, 1 invalid/refused/tests failed/differs, 2 usage or input error,
3 denied (explain), 4 rollout failed (push --wait-rollout)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    transport: http::ClientOptions,
}

/// Every command.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check bundles with the engine the filter enforces with (every issue, FILE:LINE:COL).
    Validate(validate::ValidateArgs),
    /// Decide one request as the filter would and show why, rule by rule.
    Explain(explain::ExplainArgs),
    /// Print the JSON Schema (draft 2020-12) of bundle format v1.
    Schema,
    /// Policy unit tests (like `opa test`) through the filter's own exchange flow.
    Test(policy_test::TestArgs),
    /// What changed between two bundle files or two stored versions.
    Diff(diff::DiffArgs),
    /// Canonical formatting of bundle JSON (2-space indent, key order kept).
    Fmt(fmt::FmtArgs),
    /// Validate a bundle and write its canonical form (the bytes to sign and push).
    Build(sign::BuildArgs),
    /// Sign a bundle file offline with an author key (writes BUNDLE.json.sig).
    Sign(sign::SignArgs),
    /// Store a bundle file as the next version of its bundle on the control service.
    Push(remote::PushArgs),
    /// Print the latest stored bundle, or one version.
    Get(remote::GetArgs),
    /// A bundle's stored versions (who, when, signed by).
    History(remote::HistoryArgs),
    /// Which proxies enforce which version (sync table), or one bundle's reports.
    Status(remote::StatusArgs),
    /// Store an older version's content as the new latest.
    Rollback(remote::RollbackArgs),
    /// Pin an MCP server's current tools (prints a `tool_pins` section).
    Pins(pins::PinsArgs),
    /// The tamper-evident decision trail in Envoy access logs.
    #[command(subcommand)]
    Audit(audit::Audit),
    /// Print a new Ed25519 signing key as JSON (seed, public key, key id).
    Keygen,
    /// Read a token on stdin; print its SHA-256 for the service's tokens file.
    HashToken,
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  mcp-guard completions bash > /etc/bash_completion.d/mcp-guard
  mcp-guard completions zsh > \"${fpath[1]}/_mcp-guard\"
  mcp-guard completions fish > ~/.config/fish/completions/mcp-guard.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the version (same as --version).
    #[command(hide = true)]
    Version,
}

fn main() -> ExitCode {
    match parse(std::env::args_os()) {
        Ok(cli) => ExitCode::from(run(cli)),
        Err(e) => {
            // Help and --version exit 0 on stdout; usage errors exit 2
            // naming the flag.
            let _ = e.print();
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
        }
    }
}

/// Parses the command line; settles which push token source counts.
fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches as _;
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    let token = match &mut cli.command {
        Command::Push(args) => Some(&mut args.token),
        Command::Rollback(args) => Some(&mut args.token),
        _ => None,
    };
    if let (Some(token), Some((_, sub))) = (token, matches.subcommand()) {
        token
            .settle(sub)
            .map_err(|why| command.error(clap::error::ErrorKind::ArgumentConflict, why))?;
    }
    Ok(cli)
}

/// One side of `diff` as JSON: a file, or a stored version fetched from
/// the control service.
fn load_side(
    side: &diff::Side,
    transport: &http::ClientOptions,
) -> Result<serde_json::Value, String> {
    let (bytes, what) = match side {
        diff::Side::File(path) => (
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        diff::Side::Stored {
            server,
            name,
            version,
        } => (
            remote::fetch_version(transport, server, name, *version).map_err(|e| e.to_string())?,
            format!("{name} v{version} on {server}"),
        ),
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(format!("{what}: not a bundle (a JSON object is expected)")),
        Err(e) => Err(format!("{what}: not JSON ({e})")),
    }
}

/// Prints to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")) + "\n"
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A result's text, or its message on stderr with the exit code.
fn finish(command: &str, result: Result<String, (String, u8)>) -> u8 {
    match result {
        Ok(text) => {
            print(&text);
            0
        }
        Err((message, code)) => {
            eprintln!("mcp-guard {command}: {message}");
            code
        }
    }
}

fn run(cli: Cli) -> u8 {
    let transport = &cli.transport;
    match cli.command {
        Command::Version => {
            print(concat!("mcp-guard ", env!("MCP_GUARD_VERSION"), "\n"));
            0
        }
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mcp-guard", &mut out);
            let _ = std::io::stdout().lock().write_all(&out);
            0
        }
        Command::Schema => {
            print(schema::BUNDLE_V1);
            0
        }
        Command::Fmt(args) => {
            let (out, err, code) = fmt::run(&args);
            print(&out);
            eprint!("{err}");
            code
        }
        Command::Build(args) => finish("build", sign::build(&args)),
        Command::Sign(args) => finish("sign", sign::sign(&args)),
        Command::Test(args) => match policy_test::run(&args, now()) {
            Ok(summary) => {
                if args.output.json() {
                    print(&to_json(&summary));
                } else {
                    print(&policy_test::table(&summary));
                }
                u8::from(summary.failed > 0)
            }
            Err(e) => {
                eprintln!("mcp-guard test: {e}");
                EXIT_USAGE
            }
        },
        Command::Diff(args) => {
            let sides = match args.sides() {
                Ok(sides) => sides,
                Err(e) => {
                    eprintln!("mcp-guard diff: {e}");
                    return EXIT_USAGE;
                }
            };
            match (
                load_side(&sides.0, transport),
                load_side(&sides.1, transport),
            ) {
                (Ok(old), Ok(new)) => {
                    let changes = diff::changes(&old, &new);
                    if args.output.json() {
                        print(&to_json(&changes));
                    } else {
                        print(&diff::table(&changes));
                    }
                    u8::from(!changes.is_empty())
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("mcp-guard diff: {e}");
                    EXIT_USAGE
                }
            }
        }
        Command::Keygen => match keys::keygen() {
            Ok(text) => {
                print(&text);
                0
            }
            Err(e) => {
                eprintln!("mcp-guard keygen: no randomness: {e}");
                EXIT_USAGE
            }
        },
        Command::Audit(audit::Audit::Verify(args)) => match audit::run_verify(&args, transport) {
            Ok((text, code)) => {
                print(&text);
                code
            }
            Err(e) => {
                eprintln!("mcp-guard audit verify: {e}");
                EXIT_USAGE
            }
        },
        Command::Audit(audit::Audit::Query(args)) => match audit::run_query(&args) {
            Ok(text) => {
                print(&text);
                0
            }
            Err(e) => {
                eprintln!("mcp-guard audit query: {e}");
                EXIT_USAGE
            }
        },
        Command::Pins(args) => match pins::run(&args, transport) {
            Ok(text) => {
                print(&text);
                0
            }
            Err(e) => {
                eprintln!("mcp-guard pins: {e}");
                EXIT_USAGE
            }
        },
        Command::HashToken => {
            let mut token = String::new();
            match std::io::Read::read_to_string(&mut std::io::stdin(), &mut token) {
                Ok(_) if !token.trim().is_empty() => {
                    print(&format!("{}\n", keys::hash_token(&token)));
                    0
                }
                Ok(_) => {
                    eprintln!("mcp-guard hash-token: no token on stdin");
                    EXIT_USAGE
                }
                Err(e) => {
                    eprintln!("mcp-guard hash-token: cannot read stdin: {e}");
                    EXIT_USAGE
                }
            }
        }
        Command::Push(args) => remote_command(&remote::Remote::Push(args), transport),
        Command::Get(args) => remote_command(&remote::Remote::Get(args), transport),
        Command::History(args) => remote_command(&remote::Remote::History(args), transport),
        Command::Status(args) => remote_command(&remote::Remote::Status(args), transport),
        Command::Rollback(args) => remote_command(&remote::Remote::Rollback(args), transport),
        Command::Validate(args) => {
            let report = validate::Report::check(&args.files);
            if args.output.json() {
                print(&to_json(&report));
            } else {
                for file in &report.files {
                    for line in file.lines() {
                        print(&format!("{line}\n"));
                    }
                }
            }
            report.exit_code()
        }
        Command::Explain(args) => match explain::run(&args, now()) {
            Ok(report) => {
                if args.output.json() {
                    print(&to_json(&report));
                } else {
                    print(&render::explain_text(&report));
                }
                if report.decision.effect == Effect::Allow {
                    0
                } else {
                    EXIT_DENIED
                }
            }
            Err(e) => {
                eprintln!("mcp-guard explain: {e}");
                EXIT_USAGE
            }
        },
    }
}

fn remote_command(command: &remote::Remote, transport: &http::ClientOptions) -> u8 {
    match remote::run(command, transport) {
        Ok(body) => {
            let _ = std::io::stdout().lock().write_all(&body);
            0
        }
        Err(e @ remote::RemoteError::Refused(_)) => {
            eprintln!("mcp-guard: {e}");
            1
        }
        Err(e @ remote::RemoteError::Rollout(_)) => {
            eprintln!("mcp-guard: {e}");
            EXIT_ROLLOUT
        }
        Err(e) => {
            eprintln!("mcp-guard: {e}");
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks (unique names, valid groups) over
    /// every command, so a clash fails here and not at a user's prompt.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn env_and_flags_fill_the_same_fields() {
        let cli = parse([
            "mcp-guard",
            "push",
            "--server",
            "https://s",
            "--token-file",
            "t",
            "--allow-plain-http",
            "b.json",
        ])
        .expect("parses");
        assert!(cli.transport.allow_plain_http);
        let Command::Push(push) = cli.command else {
            panic!("push")
        };
        assert_eq!(push.server.server, "https://s");
        assert!(push.token.token.is_none());
        for bad in [
            &["mcp-guard", "push", "--server", "s", "b.json"][..],
            &[
                "mcp-guard",
                "push",
                "--server",
                "s",
                "--token",
                "x",
                "--token-file",
                "t",
                "b",
            ],
            &[
                "mcp-guard",
                "push",
                "--server",
                "s",
                "--token",
                "x",
                "--rollout-timeout",
                "3",
                "b",
            ],
            &[
                "mcp-guard",
                "push",
                "--server",
                "s",
                "--token",
                "x",
                "--create",
                "--if-match",
                "e",
                "b",
            ],
            &["mcp-guard", "get", "--server", "s", "--to", "1", "demo"],
            &["mcp-guard", "test", "t.json", "-o", "yaml"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
