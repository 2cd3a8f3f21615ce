//! `mcp-guard test`: policy unit tests, like `opa test`. A file of cases
//! (claims or a token, a request, optionally the upstream's answer) with
//! the expected decision, status, reason, rule, headers the upstream sees
//! and what reaches the client. Each case runs through the filter's own
//! exchange flow on an in-memory host, so a passing test describes what the
//! filter does, not what a second implementation thinks it does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::{deliver_response_body, MemoryHost};
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::request::RequestSpec;

/// Arguments of `test`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "\
Examples:
  mcp-guard test policies/demo.tests.json
  mcp-guard test cases.json --bundle candidate.json -o json")]
pub struct TestArgs {
    /// Test files.
    #[arg(value_name = "TESTS.json", required = true)]
    pub files: Vec<PathBuf>,
    /// A bundle that overrides the files' own `bundle`.
    #[arg(long, value_name = "BUNDLE.json")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    pub output: crate::output::OutputArg,
}

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The bundle under test, relative to the test file.
    #[serde(default)]
    bundle: Option<PathBuf>,
    /// The cases, run in order, each on a fresh exchange.
    tests: Vec<Case>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Claims as Envoy's `jwt_authn` hands them over.
    #[serde(default)]
    claims: Option<Map<String, Value>>,
    /// Or a token, sent as `Authorization: Bearer`: the filter verifies it
    /// itself when the bundle configures `identity.verify`.
    #[serde(default)]
    token: Option<String>,
    request: RequestSpec,
    #[serde(default)]
    response: Option<ResponseSpec>,
    expect: Expect,
}

/// The upstream's answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseSpec {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Any JSON value (sent as its text) or a string (sent as is).
    #[serde(default)]
    body: Option<Value>,
}

fn ok() -> u16 {
    200
}

/// What the case expects; absent members are not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// `allow` or `deny`.
    #[serde(default)]
    decision: Option<String>,
    /// The reason code (`allowed`, `default_deny`, `rule_deny`, ...).
    #[serde(default)]
    reason: Option<String>,
    /// The deciding rule's id; `null` for none.
    #[serde(default, deserialize_with = "present")]
    rule: Option<Option<String>>,
    /// The status the client gets: the filter's own reply, else the
    /// upstream's.
    #[serde(default)]
    status: Option<u16>,
    /// Headers the upstream receives; `null` = must be absent.
    #[serde(default)]
    upstream_headers: BTreeMap<String, Option<String>>,
    /// The exact body the client gets (JSON compared as JSON).
    #[serde(default)]
    response_body: Option<Value>,
    /// Strings the client's body must contain.
    #[serde(default)]
    response_contains: Vec<String>,
    /// Strings the client's body must not contain.
    #[serde(default)]
    response_excludes: Vec<String>,
}

/// `Some(None)` for an explicit `null`, so "no rule" can be expected.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Why a test file could not be run.
#[derive(Debug, Error)]
pub enum TestError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The test file is not one.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The bundle is invalid.
    #[error("{path}: invalid bundle: {issues}")]
    Bundle {
        /// The bundle file.
        path: String,
        /// Its issues, `; `-joined.
        issues: String,
    },
}

/// One case's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The test file.
    pub file: String,
    /// The case name.
    pub name: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// What differed, one line each.
    pub failures: Vec<String>,
}

/// Every case of every file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Cases, in file order.
    pub cases: Vec<Verdict>,
    /// How many passed.
    pub passed: usize,
    /// How many failed.
    pub failed: usize,
}

/// Runs every file; `now` is the default request time (Unix seconds).
pub fn run(args: &TestArgs, now: u64) -> Result<Summary, TestError> {
    let mut cases = Vec::new();
    for file in &args.files {
        cases.extend(run_file(file, args.bundle.as_deref(), now)?);
    }
    let passed = cases.iter().filter(|c| c.passed).count();
    Ok(Summary {
        failed: cases.len() - passed,
        passed,
        cases,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TestError> {
    std::fs::read(path).map_err(|source| TestError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn run_file(file: &Path, bundle: Option<&Path>, now: u64) -> Result<Vec<Verdict>, TestError> {
    let format = |message: String| TestError::Format {
        path: file.display().to_string(),
        message,
    };
    let tests: TestFile =
        serde_json::from_slice(&read(file)?).map_err(|e| format(e.to_string()))?;
    let bundle_path = match (bundle, &tests.bundle) {
        (Some(given), _) => given.to_path_buf(),
        (None, Some(relative)) => file
            .parent()
            .map_or_else(|| relative.clone(), |dir| dir.join(relative)),
        (None, None) => return Err(format("no `bundle` in the file and no --bundle".into())),
    };
    let policy = Policy::compile(&read(&bundle_path)?).map_err(|e| TestError::Bundle {
        path: bundle_path.display().to_string(),
        issues: e
            .issues()
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    let active = Arc::new(ActivePolicy::new(policy, None));
    let mut names = std::collections::HashSet::new();
    let mut verdicts = Vec::new();
    for case in &tests.tests {
        if !names.insert(case.name.as_str()) {
            return Err(format(format!("two tests are named `{}`", case.name)));
        }
        if case.claims.is_some() && case.token.is_some() {
            return Err(format(format!(
                "`{}`: give `claims` or `token`, not both",
                case.name
            )));
        }
        let now = match &case.request.time {
            Some(t) => t
                .unix()
                .map_err(|e| format(format!("`{}`: {e}", case.name)))?,
            None => now,
        };
        let failures = check(&case.expect, &run_case(&active, case, now));
        verdicts.push(Verdict {
            file: file.display().to_string(),
            name: case.name.clone(),
            passed: failures.is_empty(),
            failures,
        });
    }
    Ok(verdicts)
}

/// What one exchange did.
struct Outcome {
    decision: Option<(String, String, Option<String>)>,
    status: Option<u16>,
    upstream_headers: Vec<(String, String)>,
    client_body: Vec<u8>,
}

fn run_case(active: &Arc<ActivePolicy>, case: &Case, now: u64) -> Outcome {
    let mut host = MemoryHost::at(now.saturating_mul(1000));
    if let Some(claims) = &case.claims {
        let key = active.policy.bundle().identity.jwt_authn_metadata.clone();
        host.set_claims(&key, &Value::Object(claims.clone()));
    }
    let spec = &case.request;
    let mut headers = vec![
        (":method".to_string(), spec.method.clone()),
        (":path".to_string(), spec.path.clone()),
        (":authority".to_string(), spec.authority()),
    ];
    headers.extend(spec.header_pairs());
    if let Some(token) = &case.token {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    host.request.headers = headers;
    let mut exchange = Exchange::new(Some(Arc::clone(active)));
    match spec.body_bytes() {
        Some(body) => {
            let len = body.len();
            host.request.body = body;
            if exchange.on_request_headers(&mut host, false) == Next::Pause || !exchange.decided() {
                exchange.on_request_body(&mut host, len, true);
            }
        }
        None => {
            exchange.on_request_headers(&mut host, true);
        }
    }
    let decision = exchange.record().decision.as_ref().map(|d| {
        (
            d.effect.as_str().to_owned(),
            d.reason.as_str().to_owned(),
            d.rule_id.as_deref().map(str::to_owned),
        )
    });
    let upstream_headers = host.request.headers.clone();
    if let Some(reply) = host.replies.first() {
        return Outcome {
            decision,
            status: u16::try_from(reply.status).ok(),
            upstream_headers,
            client_body: reply.body.clone(),
        };
    }
    let Some(response) = &case.response else {
        return Outcome {
            decision,
            status: None,
            upstream_headers,
            client_body: Vec::new(),
        };
    };
    let body = match &response.body {
        None => Vec::new(),
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(value) => value.to_string().into_bytes(),
    };
    let mut response_headers = vec![(":status".to_string(), response.status.to_string())];
    response_headers.extend(
        response
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
    );
    if !body.is_empty() {
        response_headers.push(("content-length".into(), body.len().to_string()));
    }
    host.response.headers = response_headers;
    let paused = exchange.on_response_headers(&mut host, body.is_empty()) == Next::Pause;
    let client = if body.is_empty() {
        Vec::new()
    } else {
        deliver_response_body(&mut exchange, &mut host, &body, &[], false, paused)
    };
    // A refusal of the answer replaces it with the filter's own reply.
    let (status, client_body) = match host.replies.last() {
        Some(reply) => (u16::try_from(reply.status).ok(), reply.body.clone()),
        None => (Some(response.status), client),
    };
    Outcome {
        decision,
        status,
        upstream_headers,
        client_body,
    }
}

fn check(expect: &Expect, got: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    let (effect, reason, rule) = match &got.decision {
        Some((e, r, rule)) => (Some(e.as_str()), Some(r.as_str()), rule.clone()),
        None => (None, None, None),
    };
    let shown = |v: Option<&str>| v.unwrap_or("(none)").to_owned();
    if let Some(want) = &expect.decision {
        if effect != Some(want.as_str()) {
            failures.push(format!(
                "decision: expected {want}, got {} (rule {}, reason {})",
                shown(effect),
                shown(rule.as_deref()),
                shown(reason)
            ));
        }
    }
    if let Some(want) = &expect.reason {
        if reason != Some(want.as_str()) {
            failures.push(format!("reason: expected {want}, got {}", shown(reason)));
        }
    }
    if let Some(want) = &expect.rule {
        if want != &rule {
            failures.push(format!(
                "rule: expected {}, got {}",
                shown(want.as_deref()),
                shown(rule.as_deref())
            ));
        }
    }
    if let Some(want) = expect.status {
        if got.status != Some(want) {
            failures.push(format!(
                "status: expected {want}, got {}",
                got.status
                    .map_or_else(|| "(no answer)".to_owned(), |s| s.to_string())
            ));
        }
    }
    for (name, want) in &expect.upstream_headers {
        let name = name.to_ascii_lowercase();
        let value = got
            .upstream_headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str());
        if value != want.as_deref() {
            failures.push(format!(
                "upstream header {name}: expected {}, got {}",
                want.as_deref()
                    .map_or_else(|| "absent".to_owned(), |v| format!("{v:?}")),
                value.map_or_else(|| "absent".to_owned(), |v| format!("{v:?}"))
            ));
        }
    }
    let text = String::from_utf8_lossy(&got.client_body);
    if let Some(want) = &expect.response_body {
        let same = match (want, serde_json::from_slice::<Value>(&got.client_body)) {
            (Value::String(s), _) if *s == text => true,
            (want, Ok(actual)) => *want == actual,
            _ => false,
        };
        if !same {
            failures.push(format!("response body: expected {want}, got {text}"));
        }
    }
    for needle in &expect.response_contains {
        if !text.contains(needle.as_str()) {
            failures.push(format!("response body lacks {needle:?}: {text}"));
        }
    }
    for needle in &expect.response_excludes {
        if text.contains(needle.as_str()) {
            failures.push(format!("response body contains {needle:?}"));
        }
    }
    failures
}

/// The summary as `opa test` prints it: failures with their reasons, then
/// `PASS: n/N` (and `FAIL: n/N`).
pub fn table(summary: &Summary) -> String {
    use crate::output::cell;
    // Failures quote what the server under test answered: escaped, like
    // every string the CLI did not write itself.
    let mut out = String::new();
    for case in &summary.cases {
        let (file, name) = (cell(&case.file), cell(&case.name));
        if case.passed {
            out.push_str(&format!("PASS  {file}: {name}\n"));
        } else {
            out.push_str(&format!("FAIL  {file}: {name}\n"));
            for failure in &case.failures {
                out.push_str(&format!("        {}\n", cell(failure)));
            }
        }
    }
    let total = summary.cases.len();
    out.push_str(&format!("{}\n", "-".repeat(60)));
    out.push_str(&format!("PASS: {}/{total}\n", summary.passed));
    if summary.failed > 0 {
        out.push_str(&format!("FAIL: {}/{total}\n", summary.failed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_escapes_names_and_quoted_answers() {
        let summary = Summary {
            cases: vec![Verdict {
                file: "t\u{1b}[2J.json".into(),
                name: "case\u{202e}".into(),
                passed: false,
                failures: vec!["response body lacks \"x\": \u{1b}]0;owned\u{7}\nPASS  fake".into()],
            }],
            passed: 0,
            failed: 1,
        };
        let text = table(&summary);
        assert!(
            !text.chars().any(|c| c != '\n' && crate::output::hidden(c)),
            "{text:?}"
        );
        assert!(!text.contains("\nPASS  fake"), "{text}");
    }
}
