//! The HTTP API: routes, status codes and headers. No I/O besides the
//! store lookup, so every response is decided here.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::name::BundleName;
use crate::store::{BundleStore, StoredBundle};

/// Every response body: the service only sends whole bodies.
pub(crate) type Body = Full<Bytes>;

/// Path prefix under which bundles are served by name.
pub const BUNDLES_PATH: &str = "/v1/bundles/";

/// Response header carrying the served bundle's `version` field, so a
/// filter can log what it fetched without parsing the body.
pub const BUNDLE_VERSION_HEADER: &str = "x-bundle-version";

/// Answers one request; never fails, errors become HTTP responses.
pub(crate) async fn handle<B>(
    store: Arc<BundleStore>,
    request: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(respond(
        &store,
        request.method(),
        request.uri().path(),
        request.headers(),
    ))
}

/// The response to a request with this method, path and headers.
pub(crate) fn respond(
    store: &BundleStore,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Body> {
    let readable = matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/healthz" if readable => text(StatusCode::OK, "ok"),
        "/readyz" if readable => text(StatusCode::OK, "ready"),
        "/healthz" | "/readyz" => method_not_allowed(),
        _ => match path.strip_prefix(BUNDLES_PATH) {
            Some(name) if readable => bundle(store, name, headers),
            Some(_) => method_not_allowed(),
            None => error(StatusCode::NOT_FOUND, "not_found", None),
        },
    }
}

/// `GET /v1/bundles/{name}`.
fn bundle(store: &BundleStore, name: &str, headers: &HeaderMap) -> Response<Body> {
    let name = match BundleName::parse(name) {
        Ok(name) => name,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_name", Some(&e.to_string())),
    };
    let Some(bundle) = store.get(&name) else {
        return error(StatusCode::NOT_FOUND, "not_found", None);
    };
    let current = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| bundle.etag().matches_if_none_match(value));
    let mut response = if current {
        with_status(StatusCode::NOT_MODIFIED, Full::default())
    } else {
        let mut response = with_status(StatusCode::OK, Full::new(bundle.bytes().clone()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    add_bundle_headers(response.headers_mut(), &bundle);
    response
}

/// Headers sent with a bundle and with its 304.
fn add_bundle_headers(headers: &mut HeaderMap, bundle: &StoredBundle) {
    // Tags are quoted hex, always a valid header value.
    if let Ok(etag) = HeaderValue::from_str(bundle.etag().as_str()) {
        headers.insert(ETAG, etag);
    }
    headers.insert(BUNDLE_VERSION_HEADER, HeaderValue::from(bundle.version()));
    // Caches may keep a bundle but must ask whether it is still current.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// A JSON error: `{"error": code}`, plus a message when there is more to say.
fn error(status: StatusCode, code: &str, message: Option<&str>) -> Response<Body> {
    let body = match message {
        Some(message) => json!({ "error": code, "message": message }),
        None => json!({ "error": code }),
    };
    let mut response = with_status(status, Full::new(Bytes::from(body.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 405; every path this service has is read-only for now.
fn method_not_allowed() -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// A plain-text response, for the probes.
fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = with_status(status, Full::new(Bytes::from_static(text.as_bytes())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn with_status(status: StatusCode, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> BundleStore {
        BundleStore::from_bundles([("demo", r#"{"name":"demo","version":7}"#)]).expect("valid")
    }

    fn get(path: &str) -> Response<Body> {
        respond(&store(), &Method::GET, path, &HeaderMap::new())
    }

    #[test]
    fn routes() {
        assert_eq!(get("/healthz").status(), StatusCode::OK);
        assert_eq!(get("/readyz").status(), StatusCode::OK);
        assert_eq!(get("/v1/bundles/demo").status(), StatusCode::OK);
        assert_eq!(get("/v1/bundles/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/v1/bundles/").status(), StatusCode::BAD_REQUEST);
        assert_eq!(get("/v1/bundles/a/b").status(), StatusCode::BAD_REQUEST);
        assert_eq!(get("/v1/bundles").status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/").status(), StatusCode::NOT_FOUND);
        let put = respond(
            &store(),
            &Method::PUT,
            "/v1/bundles/demo",
            &HeaderMap::new(),
        );
        assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn bundle_headers() {
        let response = get("/v1/bundles/demo");
        let h = response.headers();
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(h[BUNDLE_VERSION_HEADER], "7");
        assert_eq!(h[ETAG].len(), 34);
    }
}
