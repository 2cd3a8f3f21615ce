//! Maps each request to its endpoint and stamps the headers every response
//! carries.

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::body::{read_limited, Body, ReadBodyError};
use crate::{chat, mcp, respond};

/// Header that marks a response as coming from this server.
pub const DEMO_UPSTREAM_HEADER: &str = "x-demo-upstream";

/// Header listing, comma-separated, sorted and lower-case, the names of the
/// request headers starting with [`IDENTITY_HEADER_PREFIX`] that reached
/// this server; empty when there were none.
pub const SEEN_HEADERS_HEADER: &str = "x-seen-headers";

/// Header set to `1` on every response whose request carried an
/// `authorization` header (the filter must not pass the client's token
/// through), `0` otherwise.
pub const SEEN_AUTHORIZATION_HEADER: &str = "x-seen-authorization";

/// Prefix of the identity headers the filter may add or must strip.
pub const IDENTITY_HEADER_PREFIX: &str = "x-mcp-";

/// Which instance of the upstream this is, for demos and tests that run
/// several (routing by policy: which cluster answered).
#[derive(Debug, Clone)]
pub struct Instance {
    /// The value of [`DEMO_UPSTREAM_HEADER`] on every answer (`1` by
    /// default).
    pub name: String,
    /// Answer every request with this status and an empty body (a broken
    /// model deployment, for fallback tests).
    pub fail_status: Option<u16>,
}

impl Default for Instance {
    fn default() -> Self {
        Self {
            name: "1".into(),
            fail_status: None,
        }
    }
}

/// Handles one request; never fails, errors become HTTP responses.
pub(crate) async fn handle(
    instance: &Instance,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let seen = seen_identity_headers(request.headers());
    let authorization = request.headers().contains_key("authorization");
    let failing = instance
        .fail_status
        .and_then(|s| StatusCode::from_u16(s).ok());
    let mut response = match failing {
        Some(status) => respond::empty(status),
        None => route(request).await,
    };
    let headers = response.headers_mut();
    let name = HeaderValue::from_str(&instance.name).unwrap_or(HeaderValue::from_static("1"));
    headers.insert(DEMO_UPSTREAM_HEADER, name);
    headers.insert(
        SEEN_AUTHORIZATION_HEADER,
        HeaderValue::from_static(if authorization { "1" } else { "0" }),
    );
    // Header names are tokens, so the joined list is always a valid value.
    if let Ok(value) = HeaderValue::from_str(&seen) {
        headers.insert(SEEN_HEADERS_HEADER, value);
    }
    Ok(response)
}

/// Sends the request to its endpoint.
async fn route(request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    match (path.as_str(), method) {
        ("/v1/chat/completions", Method::POST) => match read_limited(request.into_body()).await {
            Ok(body) => chat::respond(&body),
            Err(e) => chat::error(read_error_status(&e), &e.to_string()),
        },
        ("/v1/chat/completions", _) => respond::method_not_allowed("POST"),
        ("/mcp", Method::POST) => match read_limited(request.into_body()).await {
            Ok(body) => match mcp::respond(&body) {
                Some(reply) => respond::json(StatusCode::OK, &reply),
                None => respond::empty(StatusCode::ACCEPTED),
            },
            Err(e) => respond::json(
                read_error_status(&e),
                &serde_json::json!({ "error": e.to_string() }),
            ),
        },
        ("/mcp", _) => respond::method_not_allowed("POST"),
        ("/mcp/rug-pull", Method::POST) => rug_pull(request).await,
        ("/mcp/rug-pull", _) => respond::method_not_allowed("POST"),
        ("/healthz", Method::GET | Method::HEAD) => respond::text(StatusCode::OK, "ok"),
        ("/healthz", _) => respond::method_not_allowed("GET, HEAD"),
        _ => respond::not_found(),
    }
}

/// The status for a body that could not be read.
/// `/mcp/rug-pull`: see [`crate::rug_pull`].
async fn rug_pull(request: Request<Incoming>) -> Response<Body> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let session = header(crate::rug_pull::RUG_PULL_SESSION_HEADER);
    let accept = header("accept");
    let sse = accept.contains("text/event-stream") && !accept.contains("application/json");
    let body = match read_limited(request.into_body()).await {
        Ok(body) => body,
        Err(e) => return respond::empty(read_error_status(&e)),
    };
    match crate::rug_pull::respond(&session, &body) {
        Some(reply) if sse => respond::with_type(
            StatusCode::OK,
            "text/event-stream",
            format!("event: message\ndata: {reply}\n\n"),
        ),
        Some(reply) => respond::json(StatusCode::OK, &reply),
        None => respond::empty(StatusCode::ACCEPTED),
    }
}

fn read_error_status(error: &ReadBodyError) -> StatusCode {
    match error {
        ReadBodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ReadBodyError::Failed(_) => StatusCode::BAD_REQUEST,
    }
}

/// The value of [`SEEN_HEADERS_HEADER`] for these request headers.
fn seen_identity_headers(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with(IDENTITY_HEADER_PREFIX))
        .collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_identity_headers_sorted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-mcp-subject", HeaderValue::from_static("a"));
        headers.insert("x-mcp-decision", HeaderValue::from_static("b"));
        headers.append("x-mcp-decision", HeaderValue::from_static("c"));
        headers.insert("authorization", HeaderValue::from_static("d"));
        assert_eq!(
            seen_identity_headers(&headers),
            "x-mcp-decision,x-mcp-subject"
        );
        assert_eq!(seen_identity_headers(&HeaderMap::new()), "");
    }
}
