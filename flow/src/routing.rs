//! Routing by policy inside the exchange: the client's copy of the route
//! header out, the chosen cluster in, the body's `model` rewritten.
//!
//! What is whose: the filter *chooses* the cluster (bundle rules) and
//! names it in a request header; an Envoy route reads that header
//! (`cluster_header`) and Envoy does everything within the cluster —
//! load balancing, health checks, outlier detection, retries. The
//! filter's only other part is the cross-cluster `fallback`
//! ([`crate::fallback`]).

use mcp_guard_engine::routes::{rewrite_model, RouteChoice, DEFAULT_ROUTE_HEADER};
use mcp_guard_engine::Policy;

use crate::host::{Host, Side};
use crate::record::RouteRecord;

/// The headers a route is chosen by: the default one (what the shipped
/// Envoy configurations read) and the bundle's own.
fn route_headers(policy: Option<&Policy>) -> impl Iterator<Item = &str> {
    let own = policy
        .and_then(|p| p.routes())
        .map(|r| r.header())
        .filter(|h| *h != DEFAULT_ROUTE_HEADER);
    std::iter::once(DEFAULT_ROUTE_HEADER).chain(own)
}

/// Removes every client-sent copy of the route headers, whatever their
/// case or number, from the request and from `headers` (what rules
/// read): a client must neither pick a cluster nor skip the one its
/// policy chooses. Runs on every request, allowed or not, with or
/// without a `routes` section (the Envoy route reads the header anyway).
pub fn strip_client_copies(
    host: &mut impl Host,
    policy: Option<&Policy>,
    headers: &mut Vec<(String, String)>,
) {
    let mut removed = false;
    for name in route_headers(policy) {
        if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            host.remove_header(Side::Request, name);
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            removed = true;
        }
    }
    if removed {
        // A route an earlier filter already looked up (`jwt_authn` does)
        // resolved `cluster_header` from the client's copy: chosen again.
        host.clear_route_cache();
    }
}

/// Whether a trailer is a route header (removed like the header: an
/// upstream that merges trailers must not see a client's choice).
pub fn is_route_header(policy: Option<&Policy>, name: &str) -> bool {
    route_headers(policy).any(|h| h.eq_ignore_ascii_case(name))
}

/// Names the chosen cluster in the request's route header and makes the
/// proxy route again.
pub fn send_to(host: &mut impl Host, policy: &Policy, choice: &RouteChoice) {
    if let Some(routes) = policy.routes() {
        host.set_header(Side::Request, routes.header(), &choice.cluster);
        host.clear_route_cache();
    }
}

/// The record of a route taken.
pub fn record(choice: &RouteChoice) -> RouteRecord {
    RouteRecord {
        rule: choice.rule.to_string(),
        cluster: choice.cluster.to_string(),
        model: choice.model.as_deref().map(str::to_owned),
        fallback: choice.fallback.as_deref().map(str::to_owned),
        fell_back: false,
    }
}

/// The request body with `model` rewritten as the route asks; `Ok(None)`
/// when there is nothing to rewrite (no rewrite, or no `model` in the
/// body). `Err` carries the refusal code.
pub fn rewritten_body(choice: &RouteChoice, body: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
    let Some(model) = choice.model.as_deref() else {
        return Ok(None);
    };
    if body.is_empty() {
        return Ok(None);
    }
    rewrite_model(body, model).map_err(|e| e.code())
}

/// The calls of one JSON-RPC batch would take different routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutesDiffer;

/// One route for every call of a request: each call of a JSON-RPC batch
/// is routed on its own, and a batch whose calls would go to different
/// routes is refused: one request reaches one cluster.
pub fn one_route(
    mut choices: impl Iterator<Item = Option<RouteChoice>>,
) -> Result<Option<RouteChoice>, RoutesDiffer> {
    let Some(first) = choices.next() else {
        return Ok(None);
    };
    for other in choices {
        if other != first {
            return Err(RoutesDiffer);
        }
    }
    Ok(first)
}
