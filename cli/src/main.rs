//! `mcp-guard`: the security team's tool for mcp-guard policy bundles.
//!
//! - `validate`: offline validation with the engine the filter enforces with;
//! - `explain`: "why was I denied?" for one request, rule by rule;
//! - `schema`: the JSON Schema of bundle format v1;
//! - `push`, `get`, `history`, `rollback`, `status`: the control service's API;
//! - `audit verify`, `audit query`: the tamper-evident decision trail;
//! - `pins`: tool pins for an MCP server's current tools;
//! - `keygen`, `hash-token`: the service's signing key and push tokens.
//!
//! Exit codes: 0 success / allowed, 1 invalid bundle, 2 usage or input
//! error, 3 denied.

mod args;
mod audit;
mod diff;
mod explain;
mod keys;
mod locate;
mod pins;
mod remote;
mod render;
mod request;
mod rollout;
mod schema;
mod time;
mod token;
mod validate;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use args::{ArgsError, Command};
use mcp_guard_engine::Effect;

/// Exit code for a usage or input error.
const EXIT_USAGE: u8 = 2;
/// Exit code of `explain` when the request is denied.
const EXIT_DENIED: u8 = 3;
/// Exit status of `push --wait-rollout` when the pushed version did not
/// roll out (refused by a proxy, timed out, or no live proxy).
const EXIT_ROLLOUT: u8 = 4;

fn main() -> ExitCode {
    let argv: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().map_err(|_| ()))
        .collect();
    let Ok(argv) = argv else {
        eprintln!("mcp-guard: arguments must be UTF-8");
        return ExitCode::from(EXIT_USAGE);
    };
    match args::parse(argv) {
        Ok(command) => ExitCode::from(run(command)),
        Err(e) => usage_error(&e),
    }
}

fn usage_error(error: &ArgsError) -> ExitCode {
    eprintln!("mcp-guard: {error}\n\n{}", args::USAGE);
    ExitCode::from(EXIT_USAGE)
}

/// One side of `diff` as JSON: a file, or a stored version fetched from
/// the control service.
fn load_side(side: &diff::Side) -> Result<serde_json::Value, String> {
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
            remote::fetch_version(server, name, *version).map_err(|e| e.to_string())?,
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

fn run(command: Command) -> u8 {
    match command {
        Command::Help => {
            print(args::USAGE);
            0
        }
        Command::Version => {
            print(concat!("mcp-guard ", env!("CARGO_PKG_VERSION"), "\n"));
            0
        }
        Command::Schema => {
            print(schema::BUNDLE_V1);
            0
        }
        Command::Diff(args) => match (load_side(&args.old), load_side(&args.new)) {
            (Ok(old), Ok(new)) => {
                let changes = diff::changes(&old, &new);
                if args.json {
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
        },
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
        Command::Audit(audit::Audit::Verify(args)) => match audit::run_verify(&args) {
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
        Command::Pins(args) => match pins::run(&args) {
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
        Command::Remote(remote) => match remote::run(&remote) {
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
        },
        Command::Validate { files, json } => {
            let report = validate::Report::check(&files);
            if json {
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
        Command::Explain(args) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match explain::run(&args, now) {
                Ok(report) => {
                    if args.json {
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
            }
        }
    }
}
