//! Small constructors for the responses the routes send, built without the
//! fallible `Response::builder` so no route has an error path of its own.

use bytes::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::body::{full, Body};

/// A response with `body` and the given status and content type.
pub(crate) fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    with_type(status, "application/json", value.to_string())
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    with_type(status, "text/plain; charset=utf-8", text)
}

/// A response with no body.
pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// 404 for paths this server does not serve.
pub(crate) fn not_found() -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": "not_found" }),
    )
}

/// 405 naming the methods the path does accept.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({ "error": "method_not_allowed" }),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}
