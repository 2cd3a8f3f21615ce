//! Request-line and header checks made before any rule is read: what the
//! policy matches must be what the upstream acts on.

use mcp_guard_engine::request_line::{check_authority, check_path};
use mcp_guard_engine::Policy;

/// Folds a header name the way upstreams that map `_` to `-` (CGI, WSGI,
/// many frameworks) and case-insensitive ones do.
fn folded(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// What to do about the request's header names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeaderPlan {
    /// Client-sent headers to remove: every spelling of a header the
    /// bundle injects (`x-mcp-tenant`, `x_mcp_tenant`, `X_Mcp-Tenant`).
    pub strip: Vec<String>,
}

/// Names in `fields` that spell a header the bundle injects (any case,
/// `_` for `-`): client copies to remove from headers or trailers.
pub fn forged_injected(policy: &Policy, fields: &[(String, String)]) -> Vec<String> {
    let injected: Vec<String> = policy
        .bundle()
        .inject
        .iter()
        .map(|i| folded(&i.header))
        .collect();
    let mut names: Vec<String> = Vec::new();
    for (name, _) in fields {
        if injected.contains(&folded(name)) && !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Plans the header clean-up, or refuses: a header the rules read may not
/// arrive twice or under a second spelling (the rules would read one and
/// the upstream might read the other).
pub fn plan_headers(
    policy: &Policy,
    headers: &[(String, String)],
) -> Result<HeaderPlan, &'static str> {
    let read = policy.header_names();
    let plan = HeaderPlan {
        strip: forged_injected(policy, headers),
    };
    for (i, (name, _)) in headers.iter().enumerate() {
        let fold = folded(name);
        if plan.strip.contains(name) {
            continue;
        }
        if !read.iter().any(|r| folded(r) == fold) {
            continue;
        }
        if name.contains('_') && !read.contains(name) {
            return Err("ambiguous_header");
        }
        let again = headers
            .iter()
            .skip(i.saturating_add(1))
            .any(|(other, _)| folded(other) == fold);
        if again {
            return Err("duplicate_header");
        }
    }
    Ok(plan)
}

/// The request line in the form rules are matched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedLine {
    /// The path without the query, already in normal form (never
    /// rewritten: the upstream gets exactly the bytes checked).
    pub path: String,
    /// The host, lower case, without port or trailing dot.
    pub host: String,
}

/// Checks the request line: a path or host not in normal form is refused
/// (never guessed), so what the rules match is what the upstream serves.
/// `Err` carries the refusal's detail code.
pub fn check_request_line(path: &str, authority: &str) -> Result<CheckedLine, &'static str> {
    let normal = check_path(path).map_err(|e| e.code())?;
    // No authority at all (HTTP/1.0 without Host) names no host a rule
    // could match; Envoy itself refuses it on HTTP/1.1 and HTTP/2.
    let host = if authority.is_empty() {
        String::new()
    } else {
        check_authority(authority)
            .map_err(|e| e.code())?
            .as_str()
            .to_owned()
    };
    Ok(CheckedLine {
        path: normal.path.to_owned(),
        host,
    })
}
