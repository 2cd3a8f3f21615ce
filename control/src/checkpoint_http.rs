//! The checkpoint routes: `POST /v1/checkpoints` (a proxy's chain head,
//! answered with its countersignature), `GET /v1/checkpoints[?chain=ID]`
//! (what is countersigned, and the conflicts), `GET /v1/checkpoints/key`
//! (the public key that verifies the countersignatures).

use bytes::Bytes;
use hyper::body::Body as HttpBody;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use mcp_guard_engine::audit::checkpoint::{Checkpoint, MAX_CHECKPOINT_BYTES};
use mcp_guard_engine::signing;
use serde_json::json;

use crate::checkpoints::{Accepted, Refused};
use crate::http::{error, json_response, method_not_allowed, App, Body};
use crate::timefmt;

/// Path of the checkpoint collection.
pub const CHECKPOINTS_PATH: &str = "/v1/checkpoints";
/// Path of the checkpoint key.
pub const CHECKPOINT_KEY_PATH: &str = "/v1/checkpoints/key";

/// Whether `path` is one of these routes.
pub(crate) fn owns(path: &str) -> bool {
    path == CHECKPOINTS_PATH || path == CHECKPOINT_KEY_PATH
}

/// Answers a request for one of [`owns`]'s paths.
pub(crate) async fn route<B>(app: &App, request: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    match (path.as_str(), request.method()) {
        (CHECKPOINT_KEY_PATH, _) if readable => key(app),
        (CHECKPOINT_KEY_PATH, _) => method_not_allowed("GET, HEAD"),
        (_, _) if readable => list(app, &query),
        (_, &Method::POST) => post(app, request.into_body()).await,
        _ => method_not_allowed("GET, HEAD, POST"),
    }
}

fn key(app: &App) -> Response<Body> {
    let key = app.checkpoints.public_key();
    json_response(
        StatusCode::OK,
        &json!({
            "id": signing::key_id(&key),
            "ed25519": signing::public_key_base64(&key),
        }),
    )
}

/// `?chain=ID` (exact; chain ids need no escapes) or everything.
fn list(app: &App, query: &str) -> Response<Body> {
    let mut chain = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("chain", v)) if chain.is_none() => chain = Some(v),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    Some("only one chain=ID is understood"),
                )
            }
        }
    }
    let (conflicts, not_kept) = app.checkpoints.conflicts(chain);
    json_response(
        StatusCode::OK,
        &json!({
            "key": signing::key_id(&app.checkpoints.public_key()),
            "checkpoints": app.checkpoints.list(chain),
            "conflicts": conflicts,
            "conflicts_not_kept": not_kept,
        }),
    )
}

async fn post<B>(app: &App, body: B) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let body = match crate::body::collect(body, MAX_CHECKPOINT_BYTES).await {
        Ok(body) => body,
        Err(e) => return crate::http::body_error(&e),
    };
    let cp = match Checkpoint::parse(&body) {
        Ok(cp) => cp,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_checkpoint",
                Some(&e.to_string()),
            )
        }
    };
    match app.checkpoints.submit(&cp, timefmt::now_millis()) {
        Ok(Accepted::New(signed)) => json_response(StatusCode::CREATED, &json!(signed)),
        Ok(Accepted::Repeat(signed)) => json_response(StatusCode::OK, &json!(signed)),
        Err(Refused::Conflict(conflict)) => {
            tracing::warn!(
                conflict = %json!(&conflict),
                "checkpoint conflicts with the countersigned chain (unauthenticated post)"
            );
            json_response(
                StatusCode::CONFLICT,
                &json!({ "error": "conflict", "conflict": conflict }),
            )
        }
        Err(Refused::RateLimited) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(Refused::Full) => error(
            StatusCode::INSUFFICIENT_STORAGE,
            "full",
            Some("the checkpoint book is full"),
        ),
        Err(Refused::Io(e)) => {
            tracing::error!(error = %e, "cannot store a checkpoint");
            error(StatusCode::SERVICE_UNAVAILABLE, "storage", None)
        }
    }
}
