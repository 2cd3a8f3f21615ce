//! `mcp-guard explain`: decides one request exactly as the filter would —
//! the filter's own exchange flow runs it on an in-memory host, so the
//! request-line, header and body checks are the same — and collects, for
//! every call of the request, the engine's rule-by-rule explanation.

use std::path::Path;

use mcp_guard_engine::bundle::BundleIssue;
use mcp_guard_engine::mcp::BodyAttrs;
use mcp_guard_engine::policy::Explanation;
use mcp_guard_engine::{
    BodyRefusal, Bundle, Claims, Decision, McpCall, Policy, Reason, RequestAttrs,
};
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use std::path::PathBuf;

use crate::output::OutputArg;
use crate::request::RequestSpec;
use crate::time::format_rfc3339;
use crate::token::{claims_from_token, verify_config, TokenError, TokenOutcome};

/// The warning shown whenever claims come from an unverified token.
pub const UNVERIFIED_WARNING: &str = "claims decoded without signature verification: the bundle \
configures no token verification, so the token's signature, issuer, audience and expiry were \
NOT checked (in production Envoy's jwt_authn does that before the filter sees the claims)";

/// Why `explain` could not produce a decision (exit code 2).
#[derive(Debug, Error)]
pub enum ExplainError {
    /// An input file could not be read.
    #[error("cannot read {what} `{path}`: {source}")]
    Read {
        /// Which input (`bundle`, `request`, …).
        what: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An input file is not what it should be.
    #[error("{what} `{path}`: {message}")]
    BadInput {
        /// Which input.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The bundle is rejected by the engine; the filter would not load it.
    #[error("bundle `{path}` is invalid (run `mcp-guard validate` for details):{}", issue_lines(.issues))]
    BundleInvalid {
        /// The file.
        path: String,
        /// Every issue.
        issues: Vec<BundleIssue>,
    },
    /// The token cannot be read.
    #[error("token: {0}")]
    Token(#[from] TokenError),
}

fn issue_lines(issues: &[BundleIssue]) -> String {
    issues.iter().map(|i| format!("\n  {i}")).collect()
}

/// The bundle a decision was made with.
#[derive(Debug, Clone, Serialize)]
pub struct BundleInfo {
    /// The bundle file.
    pub file: String,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: u64,
    /// Whether the whole bundle is in dry-run mode.
    pub dry_run: bool,
}

/// Where the claims came from.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityInfo {
    /// `claims_file`, `token_verified`, `token_rejected` or `token_unverified`.
    pub source: &'static str,
    /// Whether a signature was checked (false for a claims file too).
    pub verified: bool,
    /// Set when the claims were not verified by this tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
    /// The caller, by the bundle's subject claim.
    pub subject: Option<String>,
}

/// One MCP JSON-RPC call of the request.
#[derive(Debug, Clone, Serialize)]
pub struct CallInfo {
    /// JSON-RPC method.
    pub method: String,
    /// Tool name, resource URI or prompt name.
    pub target: Option<String>,
    /// JSON-RPC id.
    pub id: Option<Value>,
}

impl From<&McpCall> for CallInfo {
    fn from(call: &McpCall) -> Self {
        Self {
            method: call.method.clone(),
            target: call.target.clone(),
            id: call.id.clone(),
        }
    }
}

/// The request as the filter sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestInfo {
    /// HTTP method.
    pub method: String,
    /// Path without query string.
    pub path: String,
    /// Host without port.
    pub host: String,
    /// Model (body `model` or the bundle's model header).
    pub model: Option<String>,
    /// Request time, RFC 3339.
    pub time: String,
    /// Request time, Unix seconds.
    pub now_unix: u64,
    /// Whether the body was a JSON-RPC batch.
    pub batch: bool,
    /// The MCP calls read from the body.
    pub calls: Vec<CallInfo>,
}

/// The explanation of one MCP call (or of the request when it has none).
#[derive(Debug, Clone, Serialize)]
pub struct CallExplanation {
    /// The call explained; `None` for a request without MCP calls.
    pub call: Option<CallInfo>,
    /// Its decision and every rule's trace.
    #[serde(flatten)]
    pub explanation: Explanation,
}

/// Everything `explain` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The decision the filter makes for the whole request.
    pub decision: Decision,
    /// The bundle used.
    pub bundle: BundleInfo,
    /// Where the claims came from.
    pub identity: IdentityInfo,
    /// The request as seen.
    pub request: RequestInfo,
    /// Remarks on how the request was decided (body not read, decided
    /// before any rule, …).
    pub notes: Vec<String>,
    /// Rule-by-rule explanations; one per MCP call for a batch; empty when
    /// the request was decided before the rules (bad token, body).
    pub explanations: Vec<CallExplanation>,
}

/// The caller's identity as given on the command line, already read.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A claims object.
    Claims(Claims),
    /// A raw token.
    Token(String),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ExplainError> {
    std::fs::read(path).map_err(|source| ExplainError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn bad(what: &'static str, path: &Path, message: impl ToString) -> ExplainError {
    ExplainError::BadInput {
        what,
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Arguments of `explain`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(group(clap::ArgGroup::new("identity").required(true).args(["claims", "token", "token_file"])))]
#[command(after_help = "\
Request file: {\"method\": \"POST\", \"path\": \"/mcp\", \"host\"?: \"...\", \"headers\"?: {...},
               \"body\"?: JSON or string, \"time\"?: \"2026-01-05T10:00:00Z\" or unix seconds}
Exit 0 when allowed, 3 when denied, 2 on bad input.

Examples:
  mcp-guard explain --bundle demo.json --claims alice.json --request call.json
  mcp-guard explain --bundle demo.json --token-file alice.jwt --request call.json -o json")]
pub struct ExplainArgs {
    /// The bundle file.
    #[arg(long, value_name = "BUNDLE.json")]
    pub bundle: PathBuf,
    /// JSON object of the caller's (already verified) claims.
    #[arg(long, value_name = "CLAIMS.json")]
    pub claims: Option<PathBuf>,
    /// A compact JWT: verified when the bundle configures token
    /// verification, else decoded WITHOUT verification (a warning says
    /// so). Never printed.
    #[arg(long, value_name = "JWT")]
    pub token: Option<String>,
    /// A file holding the JWT.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The request description file.
    #[arg(long, value_name = "REQUEST.json")]
    pub request: PathBuf,
    #[command(flatten)]
    pub output: OutputArg,
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

impl ExplainArgs {
    /// The one identity given (clap requires exactly one).
    pub fn identity(&self) -> IdentitySource {
        match (&self.claims, &self.token, &self.token_file) {
            (Some(path), _, _) => IdentitySource::ClaimsFile(path.clone()),
            (None, Some(token), _) => IdentitySource::Token(token.clone()),
            (None, None, Some(path)) => IdentitySource::TokenFile(path.clone()),
            (None, None, None) => IdentitySource::Token(String::new()),
        }
    }
}

/// Reads the inputs named on the command line and explains the request.
pub fn run(args: &ExplainArgs, now_unix: u64) -> Result<Report, ExplainError> {
    let bundle_text = read("bundle", &args.bundle)?;
    let identity = match &args.identity() {
        IdentitySource::Token(token) => Identity::Token(token.clone()),
        IdentitySource::TokenFile(path) => {
            let bytes = read("token file", path)?;
            let text =
                String::from_utf8(bytes).map_err(|_| bad("token file", path, "not UTF-8"))?;
            Identity::Token(text)
        }
        IdentitySource::ClaimsFile(path) => {
            let bytes = read("claims", path)?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => Identity::Claims(Claims::new(map)),
                Ok(_) => return Err(bad("claims", path, "must be a JSON object")),
                Err(e) => return Err(bad("claims", path, format!("not JSON: {e}"))),
            }
        }
    };
    let spec: RequestSpec = serde_json::from_slice(&read("request", &args.request)?)
        .map_err(|e| bad("request", &args.request, e))?;
    let now = match &spec.time {
        Some(t) => t.unix().map_err(|e| bad("request", &args.request, e))?,
        None => now_unix,
    };
    evaluate(&args.bundle, &bundle_text, identity, &spec, now)
}

/// Explains `spec` at `now` against the bundle text.
pub fn evaluate(
    bundle_file: &Path,
    bundle_text: &[u8],
    identity: Identity,
    spec: &RequestSpec,
    now: u64,
) -> Result<Report, ExplainError> {
    let bundle = Bundle::parse(bundle_text).map_err(|e| ExplainError::BundleInvalid {
        path: bundle_file.display().to_string(),
        issues: e.issues(),
    })?;
    // The bundle parsed, so its text is JSON.
    let bundle_json: Value = serde_json::from_slice(bundle_text).unwrap_or(Value::Null);
    let bundle_info = BundleInfo {
        file: bundle_file.display().to_string(),
        name: bundle.name.clone(),
        version: bundle.version,
        dry_run: bundle.dry_run,
    };
    let subject_claim = bundle.identity.subject_claim.clone();
    let policy = Policy::new(bundle).map_err(|e| ExplainError::BundleInvalid {
        path: bundle_file.display().to_string(),
        issues: e.issues(),
    })?;

    let (claims, mut identity_info, token_rejection) = match identity {
        Identity::Claims(claims) => (claims, identity_info("claims_file", false, None), None),
        Identity::Token(raw) => {
            let config = verify_config(&bundle_json)?;
            match claims_from_token(&raw, config.as_ref(), now)? {
                TokenOutcome::Verified(c) => (c, identity_info("token_verified", true, None), None),
                TokenOutcome::Rejected(code) => (
                    Claims::default(),
                    identity_info("token_rejected", false, None),
                    Some(code),
                ),
                TokenOutcome::Unverified(c) => (
                    c,
                    identity_info("token_unverified", false, Some(UNVERIFIED_WARNING)),
                    None,
                ),
            }
        }
    };
    identity_info.subject = claims.get_str(&subject_claim).map(str::to_owned);

    let authority = spec.authority();
    let headers = spec.header_pairs();
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let base = RequestAttrs::new(&spec.method, &spec.path, &authority)
        .with_headers(&header_refs)
        .at(now);

    let mut notes = Vec::new();
    let mut early: Option<Decision> = None;
    if let Some(code) = token_rejection {
        notes.push(format!(
            "the token was rejected ({code}): decided before any rule"
        ));
        early = Some(policy.deny_for(Reason::InvalidToken).with_detail(code));
    }
    let body = spec.body_bytes();
    let mut attrs = BodyAttrs::default();
    match (&body, policy.needs_body()) {
        (Some(_), false) => notes
            .push("body not read: no rule of this bundle looks at the model or MCP calls".into()),
        (Some(bytes), true) if early.is_none() => match policy.request_body(bytes) {
            Ok(a) => attrs = a,
            Err(refusal) => {
                notes.push(body_refusal_note(&refusal, bytes.len(), &policy));
                early = Some(policy.refuse_body(refusal));
            }
        },
        _ => {}
    }

    let model: Option<String> = match policy.request_model(&attrs, base.headers) {
        Ok(model) => model.map(str::to_owned),
        Err(refusal) => {
            if early.is_none() {
                notes.push(body_refusal_note(&refusal, 0, &policy));
                early = Some(policy.refuse_body(refusal));
            }
            None
        }
    };
    let request = base.with_model(model.as_deref());
    let request_info = RequestInfo {
        method: request.method.to_string(),
        path: request.path.to_string(),
        host: request.host.to_string(),
        model: model.clone(),
        time: format_rfc3339(now),
        now_unix: now,
        batch: attrs.batch,
        calls: attrs.mcp.iter().map(CallInfo::from).collect(),
    };

    let (decision, explanations) = match early {
        Some(decision) => (decision, Vec::new()),
        None if attrs.mcp.is_empty() => {
            let explanation = policy.explain(&claims, &request);
            (
                explanation.decision.clone(),
                vec![CallExplanation {
                    call: None,
                    explanation,
                }],
            )
        }
        None => {
            let explanations = attrs
                .mcp
                .iter()
                .map(|call| CallExplanation {
                    call: Some(CallInfo::from(call)),
                    explanation: policy.explain(&claims, &request.with_mcp(Some(call))),
                })
                .collect();
            (
                policy.decide_calls(&claims, &request, &attrs.mcp),
                explanations,
            )
        }
    };
    // The filter's own exchange flow has the last word: request-line,
    // header and body checks it makes before any rule are the same here.
    let flow = flow_decision(&policy, &claims, spec, now);
    let decision = match flow {
        Some(flow)
            if matches!(
                flow.reason,
                Reason::InvalidRequest | Reason::InvalidBody | Reason::BodyTooLarge
            ) && flow.reason != decision.reason =>
        {
            notes.push(format!(
                "the filter refuses this request before the rules: {}{}",
                flow.reason.as_str(),
                flow.detail.map(|d| format!(" ({d})")).unwrap_or_default()
            ));
            flow
        }
        // Resource-server duties (the bundle's `resource` section).
        Some(flow) if flow.reason == Reason::InsufficientScope => {
            notes.push(
                "no rule allows this request, but an allow rule would with the scopes it \
                 requires: the filter answers 403 insufficient_scope naming them"
                    .into(),
            );
            flow
        }
        Some(flow) if flow.reason == Reason::InvalidToken && flow.detail == Some("audience") => {
            notes.push(
                "the token's aud does not name this server (resource.resource or \
                 resource.audiences): the filter answers 401 invalid_token (audience)"
                    .into(),
            );
            flow
        }
        _ => decision,
    };
    Ok(Report {
        decision,
        bundle: bundle_info,
        identity: identity_info,
        request: request_info,
        notes,
        explanations,
    })
}

/// Why the filter refuses this body, in words, naming the detail code.
fn body_refusal_note(refusal: &BodyRefusal, len: usize, policy: &Policy) -> String {
    match (refusal.reason, refusal.detail) {
        (Reason::BodyTooLarge, _) => format!(
            "the body is {len} bytes, over limits.max_request_body_bytes ({})",
            policy.bundle().limits.max_request_body_bytes
        ),
        (_, Some("bad_batch")) => "the body is a malformed JSON-RPC batch (bad_batch)".into(),
        (_, Some("model_mismatch")) => {
            "the body's model and the model header differ (model_mismatch): the upstream may read either"
                .into()
        }
        (_, Some(code)) => format!(
            "the body is refused ({code}): a body the rules read must be strict JSON, \
             unambiguous to every parser"
        ),
        (_, None) => "the body is refused".into(),
    }
}

/// Runs the request through the filter's exchange flow on an in-memory
/// host, with the claims as `jwt_authn` would hand them over.
fn flow_decision(
    policy: &Policy,
    claims: &Claims,
    spec: &RequestSpec,
    now: u64,
) -> Option<Decision> {
    let metadata_key = policy.bundle().identity.jwt_authn_metadata.clone();
    let active = std::sync::Arc::new(ActivePolicy::new(policy.clone(), None));
    let mut host = MemoryHost::at(now.saturating_mul(1000));
    host.set_claims(&metadata_key, &Value::Object(claims.0.clone()));
    let mut headers = vec![
        (":method".to_string(), spec.method.clone()),
        (":path".to_string(), spec.path.clone()),
        (":authority".to_string(), spec.authority()),
    ];
    headers.extend(spec.header_pairs());
    host.request.headers = headers;
    let mut exchange = Exchange::new(Some(active));
    match spec.body_bytes() {
        Some(body) => {
            let len = body.len();
            host.request.body = body;
            // Paused for the body, or allowed on MCP headers with the body
            // still to verify: either way the body finishes the decision.
            exchange.on_request_headers(&mut host, false);
            if !exchange.decided() {
                exchange.on_request_body(&mut host, len, true);
            }
        }
        None => {
            exchange.on_request_headers(&mut host, true);
        }
    }
    exchange.record().decision.clone()
}

fn identity_info(
    source: &'static str,
    verified: bool,
    warning: Option<&'static str>,
) -> IdentityInfo {
    IdentityInfo {
        source,
        verified,
        warning,
        subject: None,
    }
}
