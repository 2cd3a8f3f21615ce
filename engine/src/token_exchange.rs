//! OAuth 2.0 Token Exchange (RFC 8693) for upstreams that need their own
//! credential: the bundle's `token_exchange` section, the request the
//! filter sends to the identity provider, and the strict reading of its
//! answer. Pure (no I/O): the flow sends and caches, this only builds and
//! checks, so every refusal is unit-tested here.
//!
//! The client secret is deliberately *not* part of the bundle: bundles are
//! signed but readable by anyone who can fetch them from the control
//! service. It lives in the filter's plugin configuration, next to the
//! rest of the proxy's own secrets.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

mod subject;

pub use subject::subject_is_caller;

/// `grant_type` of a token exchange (RFC 8693 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Token type URI of an OAuth access token (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Token type URI of a JWT (RFC 8693 §3); an access token may be issued
/// as one.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Largest answer body read from the token endpoint.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Largest exchanged token accepted (it becomes a request header).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The bundle's `token_exchange` section: how to obtain, for each caller,
/// a token for this upstream in exchange for the caller's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenExchange {
    /// Envoy cluster of the identity provider's token endpoint.
    pub cluster: String,
    /// `:authority` sent to the token endpoint.
    pub authority: String,
    /// Path of the token endpoint, e.g. `/oauth2/token`.
    pub path: String,
    /// `audience` parameter: the logical name of the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// `resource` parameter: the absolute URI of the upstream (RFC 8707).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `scope` values asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Type of the caller's token as sent (`subject_token_type`).
    #[serde(default = "default_subject_token_type")]
    pub subject_token_type: String,
    /// The filter's client id at the identity provider (HTTP Basic, RFC
    /// 6749 §2.3.1); its secret is in the plugin configuration.
    pub client_id: String,
    /// Timeout of one exchange.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most exchanged tokens kept (0: no caching, one exchange per request).
    #[serde(default = "default_max_cache_entries")]
    pub max_cache_entries: usize,
    /// A cached token is dropped this long before it expires.
    #[serde(default = "default_expiry_skew_secs")]
    pub expiry_skew_secs: u64,
}

fn default_subject_token_type() -> String {
    ACCESS_TOKEN_TYPE.into()
}

fn default_timeout_ms() -> u64 {
    2_000
}

fn default_max_cache_entries() -> usize {
    10_000
}

fn default_expiry_skew_secs() -> u64 {
    30
}

/// Printable ASCII without spaces: what may go into a header value or an
/// `:authority` / `:path` unescaped.
fn visible(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 6749 §3.3 `scope-token`.
fn scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl TokenExchange {
    /// Problems with the section, as (path below `$.token_exchange`,
    /// message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |at: &str, msg: &str| out.push((at.to_owned(), msg.to_owned()));
        if self.cluster.is_empty() || !visible(&self.cluster) {
            add("cluster", "must be an Envoy cluster name");
        }
        if !visible(&self.authority) {
            add("authority", "must be a host[:port] without spaces");
        }
        if !self.path.starts_with('/') || !visible(&self.path) {
            add("path", "must be an absolute path starting with `/`");
        }
        match (&self.audience, &self.resource) {
            (None, None) => add("audience", "set `audience` and/or `resource`"),
            (Some(a), _) if a.is_empty() => add("audience", "must not be empty"),
            _ => {}
        }
        if let Some(r) = &self.resource {
            let absolute = r.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+')
                    && !rest.is_empty()
            });
            if !absolute || r.contains('#') || !visible(r) {
                add(
                    "resource",
                    "must be an absolute URI without a fragment (RFC 8707)",
                );
            }
        }
        for (i, s) in self.scopes.iter().enumerate() {
            if !scope_token(s) {
                add(&format!("scopes[{i}]"), "must be an RFC 6749 scope token");
            }
        }
        if !visible(&self.subject_token_type) {
            add("subject_token_type", "must be a token type URI");
        }
        if self.client_id.is_empty() || self.client_id.chars().any(char::is_control) {
            add("client_id", "must not be empty");
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            add("timeout_ms", "must be between 1 and 60000");
        }
        if self.max_cache_entries > 1_000_000 {
            add("max_cache_entries", "must be at most 1000000");
        }
        if self.expiry_skew_secs > 3_600 {
            add("expiry_skew_secs", "must be at most 3600");
        }
        out
    }

    /// What the issued token is for, as a digest: part of every cache key,
    /// so a token issued for one audience, scope set or identity provider
    /// is never served for another.
    pub fn target_digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [
            self.cluster.as_str(),
            &self.authority,
            &self.path,
            self.audience.as_deref().unwrap_or("\u{0}"),
            self.resource.as_deref().unwrap_or("\u{0}"),
            &self.subject_token_type,
            &self.client_id,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        for s in &self.scopes {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        h.finalize().into()
    }

    /// The form-encoded body of the exchange request (RFC 8693 §2.1).
    pub fn request_body(&self, subject_token: &str) -> String {
        let mut body = String::with_capacity(256 + subject_token.len());
        push_param(&mut body, "grant_type", GRANT_TYPE);
        if let Some(resource) = &self.resource {
            push_param(&mut body, "resource", resource);
        }
        if let Some(audience) = &self.audience {
            push_param(&mut body, "audience", audience);
        }
        if !self.scopes.is_empty() {
            push_param(&mut body, "scope", &self.scopes.join(" "));
        }
        push_param(&mut body, "requested_token_type", ACCESS_TOKEN_TYPE);
        push_param(&mut body, "subject_token", subject_token);
        push_param(&mut body, "subject_token_type", &self.subject_token_type);
        body
    }

    /// Headers of the exchange request, pseudo-headers included, with the
    /// client authenticated by HTTP Basic (RFC 6749 §2.3.1: both halves
    /// form-encoded first).
    pub fn request_headers(&self, client_secret: &str) -> Vec<(&'static str, String)> {
        let mut pair = String::new();
        form_encode(&mut pair, &self.client_id);
        pair.push(':');
        form_encode(&mut pair, client_secret);
        let basic = base64::engine::general_purpose::STANDARD.encode(pair);
        vec![
            (":method", "POST".to_owned()),
            (":path", self.path.clone()),
            (":authority", self.authority.clone()),
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("accept", "application/json".to_owned()),
            ("cache-control", "no-store".to_owned()),
            ("authorization", format!("Basic {basic}")),
        ]
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(out: &mut String, value: &str) {
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

fn push_param(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(name);
    out.push('=');
    form_encode(out, value);
}

/// SHA-256 of a subject token: cache keys never hold a caller's token.
pub fn subject_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The caller's bearer token from the request's `Authorization` values:
/// exactly one header, scheme `Bearer` (any case), a token68 value.
pub fn bearer_token<'a>(values: &[&'a str]) -> Result<&'a str, ExchangeError> {
    let [value] = values else {
        return Err(if values.is_empty() {
            ExchangeError::NoBearerToken
        } else {
            ExchangeError::AmbiguousAuthorization
        });
    };
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(ExchangeError::NoBearerToken)?;
    let token = token.trim_start_matches(' ');
    let token68 = !token.is_empty()
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        });
    if !scheme.eq_ignore_ascii_case("bearer") || !token68 {
        return Err(ExchangeError::NoBearerToken);
    }
    Ok(token)
}

/// A token the identity provider issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The token to send upstream as `Authorization: Bearer`.
    pub access_token: String,
    /// Lifetime in seconds, when the provider said.
    pub expires_in: Option<u64>,
}

/// Why an exchange failed; each maps to the `detail` of the 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ExchangeError {
    /// No `Authorization: Bearer` on the request.
    #[error("the request carries no bearer token")]
    NoBearerToken,
    /// More than one `Authorization` header.
    #[error("the request carries more than one Authorization header")]
    AmbiguousAuthorization,
    /// The bearer token is not the token that identified the caller
    /// ([`subject_is_caller`]).
    #[error("the bearer token is not the token that identified the caller")]
    SubjectNotCaller,
    /// The plugin configuration has no client secret.
    #[error("no token_exchange.client_secret in the plugin configuration")]
    NoClientSecret,
    /// The proxy refused to send the request (unknown cluster...).
    #[error("the exchange request could not be sent")]
    CalloutRefused,
    /// No answer: connection failure, reset or timeout.
    #[error("the token endpoint did not answer")]
    NoAnswer,
    /// An answer other than 200.
    #[error("the token endpoint answered with an error status")]
    Status,
    /// The body is not the JSON object of RFC 8693 §2.2.1.
    #[error("the token endpoint's answer is not readable JSON")]
    Unparseable,
    /// No usable `access_token`.
    #[error("the answer has no usable access_token")]
    MissingAccessToken,
    /// `token_type` is not `Bearer`.
    #[error("the answer's token_type is not Bearer")]
    WrongTokenType,
    /// `issued_token_type` is missing or not an access token.
    #[error("the answer's issued_token_type is not an access token")]
    WrongIssuedTokenType,
}

impl ExchangeError {
    /// Stable snake_case code for the 503's `detail` and the logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoBearerToken => "no_bearer_token",
            Self::AmbiguousAuthorization => "ambiguous_authorization",
            Self::SubjectNotCaller => "subject_not_caller",
            Self::NoClientSecret => "no_client_secret",
            Self::CalloutRefused => "callout_refused",
            Self::NoAnswer => "no_answer",
            Self::Status => "error_status",
            Self::Unparseable => "unparseable_answer",
            Self::MissingAccessToken => "missing_access_token",
            Self::WrongTokenType => "wrong_token_type",
            Self::WrongIssuedTokenType => "wrong_issued_token_type",
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: Option<serde_json::Value>,
    issued_token_type: Option<serde_json::Value>,
    token_type: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
}

/// Reads the token endpoint's answer strictly: status 200, a JSON object
/// with a header-safe `access_token`, `token_type` `Bearer` and an
/// `issued_token_type` naming an access token (or a JWT).
pub fn parse_answer(status: Option<&str>, body: &[u8]) -> Result<Issued, ExchangeError> {
    match status {
        None => return Err(ExchangeError::NoAnswer),
        Some("200") => {}
        Some(_) => return Err(ExchangeError::Status),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(ExchangeError::Unparseable);
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|_| ExchangeError::Unparseable)?;
    let token = match answer.access_token {
        Some(serde_json::Value::String(t))
            if !t.is_empty() && t.len() <= MAX_TOKEN_BYTES && visible(&t) =>
        {
            t
        }
        _ => return Err(ExchangeError::MissingAccessToken),
    };
    match answer
        .token_type
        .as_ref()
        .and_then(serde_json::Value::as_str)
    {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        _ => return Err(ExchangeError::WrongTokenType),
    }
    match answer
        .issued_token_type
        .as_ref()
        .and_then(serde_json::Value::as_str)
    {
        Some(ACCESS_TOKEN_TYPE | JWT_TOKEN_TYPE) => {}
        _ => return Err(ExchangeError::WrongIssuedTokenType),
    }
    let expires_in = match answer.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or(ExchangeError::Unparseable)?),
    };
    Ok(Issued {
        access_token: token,
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> TokenExchange {
        serde_json::from_value(serde_json::json!({
            "cluster": "idp", "authority": "idp.example", "path": "/oauth2/token",
            "audience": "mcp-tools", "scopes": ["tools.read", "tools.call"],
            "client_id": "mcp guard&co"
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_validation() {
        let s = section();
        assert_eq!(s.subject_token_type, ACCESS_TOKEN_TYPE);
        assert_eq!((s.timeout_ms, s.max_cache_entries), (2_000, 10_000));
        assert!(s.problems().is_empty());
        let mut bad = s.clone();
        bad.audience = None;
        bad.path = "oauth2/token".into();
        bad.scopes.push("a b".into());
        bad.resource = Some("mcp.example/x#frag".into());
        bad.timeout_ms = 0;
        let paths: Vec<String> = bad.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            ["path", "resource", "scopes[2]", "timeout_ms"].map(String::from)
        );
        bad.resource = None;
        assert!(bad.problems().iter().any(|(p, _)| p == "audience"));
    }

    #[test]
    fn request_is_form_encoded_with_basic_auth() {
        let s = section();
        let body = s.request_body("a.b+c/=");
        assert_eq!(
            body,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &audience=mcp-tools&scope=tools.read+tools.call\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &subject_token=a.b%2Bc%2F%3D\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
        );
        let headers = s.request_headers("p:w");
        let auth = &headers
            .iter()
            .find(|(k, _)| *k == "authorization")
            .unwrap()
            .1;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"mcp+guard%26co:p%3Aw");
    }

    #[test]
    fn target_digest_separates_audiences_and_scopes() {
        let a = section();
        let mut b = a.clone();
        b.audience = Some("other".into());
        let mut c = a.clone();
        c.scopes.pop();
        assert_ne!(a.target_digest(), b.target_digest());
        assert_ne!(a.target_digest(), c.target_digest());
        assert_eq!(a.target_digest(), section().target_digest());
    }

    #[test]
    fn bearer_token_is_strict() {
        assert_eq!(bearer_token(&["Bearer abc.def"]), Ok("abc.def"));
        assert_eq!(bearer_token(&["bearer abc"]), Ok("abc"));
        assert_eq!(bearer_token(&[]), Err(ExchangeError::NoBearerToken));
        assert_eq!(
            bearer_token(&["Bearer a", "Bearer b"]),
            Err(ExchangeError::AmbiguousAuthorization)
        );
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ",
        ] {
            assert_eq!(
                bearer_token(&[bad]),
                Err(ExchangeError::NoBearerToken),
                "{bad}"
            );
        }
    }

    #[test]
    fn answers_are_read_strictly() {
        let ok = br#"{"access_token":"tok-1","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":60}"#;
        assert_eq!(
            parse_answer(Some("200"), ok),
            Ok(Issued {
                access_token: "tok-1".into(),
                expires_in: Some(60)
            })
        );
        let cases: &[(Option<&str>, &[u8], ExchangeError)] = &[
            (None, b"", ExchangeError::NoAnswer),
            (Some("500"), ok, ExchangeError::Status),
            (Some("200"), b"not json", ExchangeError::Unparseable),
            (Some("200"), b"[]", ExchangeError::Unparseable),
            (
                Some("200"),
                br#"{"token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
                ExchangeError::MissingAccessToken,
            ),
            (
                Some("200"),
                b"{\"access_token\":\"a\\r\\nx: y\",\"token_type\":\"Bearer\"}",
                ExchangeError::MissingAccessToken,
            ),
            (
                Some("200"),
                br#"{"access_token":"a","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
                ExchangeError::WrongTokenType,
            ),
            (
                Some("200"),
                br#"{"access_token":"a","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:refresh_token"}"#,
                ExchangeError::WrongIssuedTokenType,
            ),
            (
                Some("200"),
                br#"{"access_token":"a","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:jwt","expires_in":-5}"#,
                ExchangeError::Unparseable,
            ),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                parse_answer(*status, body),
                Err(*want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
