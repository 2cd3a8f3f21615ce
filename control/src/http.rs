//! The HTTP API: routes, status codes and headers. See `control/README.md`
//! for the contract; every response is decided here, store and discovery
//! do the work.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body as HttpBody;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONNECTION,
    CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use mcp_guard_engine::bundle::{BundleIssue, MAX_BUNDLE_BYTES};
use mcp_guard_engine::fleet::PollIdentity;
use mcp_guard_engine::report::{ReportState, StatusReport, MAX_REPORT_BYTES};
use mcp_guard_engine::signing::{self, SIGNATURE_HEADER};
use mcp_guard_engine::Bundle;
use serde_json::{json, Value};

use crate::auth::{AuthError, Tokens};
use crate::body::{self, BodyError};
use crate::checkpoint_http;
use crate::checkpoints::{CheckpointBook, CheckpointLimits};
use crate::discovery::{self, Mode};
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::name::BundleName;
use crate::status::{Refused, StatusBoard};
use crate::store::{BundleStore, Commit, CommitError, Source, StoredBundle};
use crate::timefmt;

/// Every response body: the service only sends whole bodies.
pub(crate) type Body = Full<Bytes>;

/// Path prefix under which bundles are served by name.
pub const BUNDLES_PATH: &str = "/v1/bundles/";

/// Response header carrying the served bundle's version, so a filter can
/// log what it fetched without parsing the body.
pub const BUNDLE_VERSION_HEADER: &str = "x-bundle-version";

/// Longest long-poll a client may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;

/// Largest rollback request body; it is `{"to": N}`.
const MAX_ROLLBACK_BODY: usize = 4096;

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    /// The bundles.
    pub store: Arc<BundleStore>,
    /// Who may write.
    pub tokens: Tokens,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// Cleared when shutdown starts, so `/readyz` takes the instance out of
    /// load balancing while in-flight requests finish.
    pub ready: AtomicBool,
    /// What filters report about the versions they were served.
    pub status: StatusBoard,
    /// Who polls which bundle, from the identity headers of each fetch.
    pub fleet: Fleet,
    /// Countersigned decision-trail checkpoints.
    pub checkpoints: Arc<CheckpointBook>,
    /// How issuer keys behind `discovery` URLs are fetched.
    pub discovery: discovery::DiscoveryClient,
    /// Author keys pushes must be signed by, if configured.
    pub trusted_signers: Option<Arc<crate::author::TrustedSigners>>,
}

impl App {
    /// An app over `store` accepting `tokens` for writes.
    pub fn new(store: Arc<BundleStore>, tokens: Tokens) -> Self {
        Self {
            store,
            tokens,
            metrics: Arc::new(Metrics::default()),
            ready: AtomicBool::new(true),
            status: StatusBoard::default(),
            fleet: Fleet::default(),
            checkpoints: Arc::new(CheckpointBook::in_memory(
                crate::keys::generate(),
                CheckpointLimits::default(),
            )),
            discovery: discovery::DiscoveryClient::default(),
            trusted_signers: None,
        }
    }
}

/// Answers one request; never fails, errors become HTTP responses.
pub(crate) async fn handle<B>(
    app: Arc<App>,
    request: Request<B>,
) -> Result<Response<Body>, Infallible>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    Ok(route(&app, request).await)
}

/// The parts of a bundle path: `{name}`, then what follows it.
enum Target<'a> {
    Latest(&'a str),
    Versions(&'a str),
    Version(&'a str, &'a str),
    Rollback(&'a str),
    Status(&'a str),
}

fn target(rest: &str) -> Option<Target<'_>> {
    let mut parts = rest.split('/');
    let name = parts.next()?;
    let target = match (parts.next(), parts.next()) {
        (None, _) => Target::Latest(name),
        (Some("versions"), None) => Target::Versions(name),
        (Some("versions"), Some(v)) => Target::Version(name, v),
        (Some("rollback"), None) => Target::Rollback(name),
        (Some("status"), None) => Target::Status(name),
        _ => return None,
    };
    parts.next().is_none().then_some(target)
}

async fn route<B>(app: &Arc<App>, request: Request<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let readable = matches!(method, Method::GET | Method::HEAD);
    match path.as_str() {
        "/healthz" if readable => text(StatusCode::OK, "ok"),
        "/readyz" if readable => {
            if app.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
            }
        }
        // Reads are served from memory whatever the store does; this one
        // says whether writes (push, rollback) can be taken now.
        "/readyz/writes" if readable => match app.store.writable() {
            Ok(()) => text(StatusCode::OK, "writable"),
            Err(reason) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                Some(&reason),
            ),
        },
        "/metrics" if readable => {
            let mut response =
                with_body(StatusCode::OK, Bytes::from(app.metrics.render(&app.store)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            response
        }
        "/v1/keys" if readable => keys(app),
        "/v1/status" if readable => fleet_status(app, &query),
        "/healthz" | "/readyz" | "/readyz/writes" | "/metrics" | "/v1/keys" | "/v1/status" => {
            method_not_allowed("GET, HEAD")
        }
        p if checkpoint_http::owns(p) => checkpoint_http::route(app, request).await,
        _ => {
            let Some(target) = path.strip_prefix(BUNDLES_PATH).and_then(target) else {
                return error(StatusCode::NOT_FOUND, "not_found", None);
            };
            let (name, allow) = match &target {
                Target::Latest(n) => (*n, "GET, HEAD, PUT"),
                Target::Versions(n) | Target::Version(n, _) => (*n, "GET, HEAD"),
                Target::Rollback(n) => (*n, "POST"),
                Target::Status(n) => (*n, "GET, HEAD, POST"),
            };
            let name = match BundleName::parse(name) {
                Ok(name) => name,
                Err(e) => return error(StatusCode::BAD_REQUEST, "bad_name", Some(&e.to_string())),
            };
            let (parts, body) = request.into_parts();
            match (target, &method) {
                (Target::Latest(_), _) if readable => {
                    let response = get_latest(app, &name, &parts.headers, &query).await;
                    app.metrics.serve(response.status().as_u16());
                    response
                }
                (Target::Latest(_), &Method::PUT) => put(app, &name, &parts.headers, body).await,
                (Target::Versions(_), _) if readable => versions(app, &name),
                (Target::Version(_, v), _) if readable => {
                    let response = one_version(app, &name, v);
                    app.metrics.serve(response.status().as_u16());
                    response
                }
                (Target::Rollback(_), &Method::POST) => {
                    rollback(app, &name, &parts.headers, body).await
                }
                (Target::Status(_), _) if readable => status_view(app, &name),
                (Target::Status(_), &Method::POST) => status_report(app, &name, body).await,
                _ => method_not_allowed(allow),
            }
        }
    }
}

/// `GET /v1/keys`: every key versions are signed with, and which one is
/// current, so operators can pin the next key in filters before it is
/// promoted.
fn keys(app: &App) -> Response<Body> {
    let keys: Vec<Value> = app
        .store
        .signing_keys()
        .public()
        .into_iter()
        .map(|(key, role)| {
            json!({
                "id": signing::key_id(&key),
                "ed25519": signing::public_key_base64(&key),
                "status": role,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "current": signing::key_id(&app.store.verifying_key()),
            "keys": keys,
        }),
    )
}

/// `POST /v1/bundles/{name}/status`: a filter's report. Unauthenticated,
/// so bounded: the bundle must exist, the body is small and strictly
/// shaped, and the board rate-limits and caps instances.
async fn status_report<B>(app: &App, name: &BundleName, body: B) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if app.store.get(name).is_none() {
        app.metrics.report("unknown_bundle");
        return error(StatusCode::NOT_FOUND, "not_found", None);
    }
    let body = match body::collect(body, MAX_REPORT_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            if matches!(e, BodyError::TooLarge { .. }) {
                app.metrics.report("too_large");
            }
            return body_error(&e);
        }
    };
    let report = match StatusReport::parse(&body) {
        Ok(report) => report,
        Err(e) => {
            app.metrics.report("invalid");
            return error(StatusCode::BAD_REQUEST, "bad_report", Some(&e.to_string()));
        }
    };
    let rejected = report.state == ReportState::Rejected;
    // Logged after the report moves into the status table.
    let logged = rejected.then(|| {
        (
            report.instance.clone(),
            report.version,
            report.reason.map(|r| r.as_str()),
            report.active_version,
        )
    });
    match app
        .status
        .record(name.as_str(), report, timefmt::now_millis())
    {
        Ok(()) => {
            app.metrics.report("accepted");
            if rejected {
                app.metrics.report("rejected");
                if let Some((instance, version, reason, active_version)) = logged {
                    tracing::warn!(
                        bundle = name.as_str(),
                        instance,
                        state = "rejected",
                        version,
                        reason,
                        active_version,
                        "a filter rejected a bundle version (unauthenticated report)"
                    );
                }
            }
            json_response(StatusCode::ACCEPTED, &json!({ "accepted": true }))
        }
        Err(Refused::RateLimited) => {
            app.metrics.report("rate_limited");
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// `GET /v1/bundles/{name}/status`: each instance's latest report and, per
/// refused version, how many instances refused it and why.
fn status_view(app: &App, name: &BundleName) -> Response<Body> {
    let Some(latest) = app.store.get(name) else {
        return error(StatusCode::NOT_FOUND, "not_found", None);
    };
    let reports = app.status.reports(name.as_str());
    let mut rejected: std::collections::BTreeMap<(u64, &'static str), u64> = Default::default();
    for r in &reports {
        if let (ReportState::Rejected, Some(reason)) = (r.report.state, r.report.reason) {
            *rejected
                .entry((r.report.version.unwrap_or(0), reason.as_str()))
                .or_default() += 1;
        }
    }
    let instances: Vec<Value> = reports
        .iter()
        .map(|r| {
            json!({
                "instance": r.report.instance,
                "state": r.report.state,
                "version": r.report.version,
                "reason": r.report.reason.map(|c| c.as_str()),
                "active_version": r.report.active_version,
                "received_at": timefmt::rfc3339_millis(r.received_at),
            })
        })
        .collect();
    let rejected: Vec<Value> = rejected
        .into_iter()
        .map(|((version, reason), count)| {
            json!({ "version": version, "reason": reason, "instances": count })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "name": name.as_str(),
            "latest": latest.version(),
            "reports": "unauthenticated: any client that reaches the service can send them",
            "instances": instances,
            "rejected": rejected,
        }),
    )
}

/// `GET /v1/status[?bundle=NAME]`: the sync table (see
/// [`crate::fleet_view`]). A read like the bundle status page: no token.
fn fleet_status(app: &App, query: &str) -> Response<Body> {
    let only = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "bundle")
        .map(|(_, value)| BundleName::parse(value));
    let only = match only {
        None => None,
        Some(Ok(name)) => Some(name),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, "bad_name", Some(&e.to_string())),
    };
    if only.as_ref().is_some_and(|n| app.store.get(n).is_none()) {
        return error(StatusCode::NOT_FOUND, "not_found", None);
    }
    let table = crate::fleet_view::table(
        &app.store,
        &app.status,
        &app.fleet,
        only.as_ref(),
        timefmt::now_millis(),
    );
    json_response(StatusCode::OK, &table)
}

/// The value of a header sent exactly once, as text.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values
        .next()
        .is_none()
        .then(|| first.to_str().ok())
        .flatten()
}

/// `GET /v1/bundles/{name}`, with `If-None-Match` and long-poll.
async fn get_latest(
    app: &App,
    name: &BundleName,
    headers: &HeaderMap,
    query: &str,
) -> Response<Body> {
    // Subscribe before reading, so a version stored in between is seen.
    let (Some(mut changes), Some(first)) = (app.store.subscribe(name), app.store.get(name)) else {
        return error(StatusCode::NOT_FOUND, "not_found", None);
    };
    let identity = PollIdentity::from_headers(|h| single_header(headers, h));
    // The version the poller already enforces, as it says: a filter that
    // got it from another replica, ahead of this one.
    let holds = identity.as_ref().and_then(|i| i.active);
    if let Some(identity) = identity {
        let wait = requested_wait(query, headers).as_secs();
        app.fleet
            .seen(name.as_str(), identity, wait, timefmt::now_millis());
    }
    let conditions: Vec<&str> = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let is_current = |bundle: &StoredBundle| {
        conditions
            .iter()
            .any(|c| bundle.etag().matches_if_none_match(c))
    };
    // A poller ahead of this replica is never handed the older version as
    // if it were new: it waits for this replica to catch up.
    let ahead = holds.filter(|&held| held > first.version());
    if !is_current(&first) && ahead.is_none() {
        return bundle_response(&first);
    }
    let behind = |current: &StoredBundle| holds.is_some_and(|held| held > current.version());
    let unchanged = |current: &StoredBundle| {
        if behind(current) {
            return true;
        }
        let reference = ahead.unwrap_or(first.version());
        current.version() == reference && is_current(current)
    };
    let answer = |current: &StoredBundle| match holds.filter(|_| behind(current)) {
        Some(held) => replica_behind(current, held),
        None => not_modified(current),
    };
    let wait = requested_wait(query, headers);
    if wait.is_zero() {
        return answer(&first);
    }
    let _waiting = app.metrics.waiting();
    let mut closing = app.store.closing();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let Some(current) = app.store.get(name) else {
            return error(StatusCode::NOT_FOUND, "not_found", None);
        };
        if !unchanged(&current) {
            return bundle_response(&current);
        }
        if *closing.borrow_and_update() {
            return answer(&current);
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return answer(&current);
                }
            }
            _ = closing.changed() => {}
            () = tokio::time::sleep_until(deadline) => return answer(&current),
        }
    }
}

/// 503 `replica_behind`: the poller holds `held`, newer than anything this
/// replica has yet (another replica served it). Neither a 304 (this
/// replica's tag is not the poller's) nor the older version; the poller
/// keeps its bundle and asks again, here or at another replica.
fn replica_behind(current: &StoredBundle, held: u64) -> Response<Body> {
    let message = format!(
        "you hold version {held}; this replica has version {} so far",
        current.version()
    );
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "replica_behind",
        Some(&message),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Whether `request` is a long-poll: a read of a bundle that asks to
/// wait. The overflow lane refuses these (they would hold a connection
/// past the limit) and serves everything else.
pub(crate) fn asks_to_wait<B>(request: &Request<B>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request.uri().path().starts_with(BUNDLES_PATH)
        && !requested_wait(request.uri().query().unwrap_or_default(), request.headers()).is_zero()
}

/// How long the client will wait: `?wait=N` or `Prefer: wait=N` (RFC
/// 7240), capped at [`MAX_WAIT_SECS`]; zero when not asked.
fn requested_wait(query: &str, headers: &HeaderMap) -> Duration {
    let from_query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "wait")
        .and_then(|(_, value)| value.parse::<u64>().ok());
    let from_prefer = || {
        headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|p| p.trim().split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("wait"))
            .and_then(|(_, value)| value.trim().parse::<u64>().ok())
    };
    let secs = from_query.or_else(from_prefer).unwrap_or(0);
    Duration::from_secs(secs.min(MAX_WAIT_SECS))
}

/// `GET /v1/bundles/{name}/versions`.
fn versions(app: &App, name: &BundleName) -> Response<Body> {
    let Some(history) = app.store.history(name) else {
        return error(StatusCode::NOT_FOUND, "not_found", None);
    };
    let versions: Vec<Value> = history
        .iter()
        .map(|b| {
            let mut entry = json!({
                "version": b.version(),
                "etag": b.etag().as_str(),
                "digest": b.digest(),
                "stored_at": timefmt::rfc3339_millis(b.stored_at()),
                "source": b.source().as_str(),
                "by": b.by(),
            });
            if let (Some(key_id), Some(object)) = (b.signed_by(), entry.as_object_mut()) {
                object.insert("signed_by".into(), json!(key_id));
            }
            entry
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "name": name.as_str(), "versions": versions }),
    )
}

/// `GET /v1/bundles/{name}/versions/{v}`.
fn one_version(app: &App, name: &BundleName, version: &str) -> Response<Body> {
    let Ok(version) = version.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_version",
            Some("versions are positive integers"),
        );
    };
    match app.store.get_version(name, version) {
        Some(bundle) => bundle_response(&bundle),
        None => error(StatusCode::NOT_FOUND, "not_found", None),
    }
}

/// `PUT /v1/bundles/{name}`.
async fn put<B>(app: &App, name: &BundleName, headers: &HeaderMap, body: B) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (by, body) = match authorized_body(app, name, headers, body, MAX_BUNDLE_BYTES).await {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    // The exact bytes pushed, before anything parses them.
    let signed_by = match &app.trusted_signers {
        None => None,
        Some(signers) => match signers.verify(name.as_str(), &body, headers) {
            Ok(key_id) => Some(key_id),
            Err(refusal) => {
                app.metrics.push("author_refused");
                tracing::warn!(
                    bundle = name.as_str(),
                    by = %by,
                    reason = refusal.reason(),
                    error = %refusal,
                    "write refused: author signature"
                );
                return json_response(
                    StatusCode::FORBIDDEN,
                    &json!({ "error": refusal.to_string(), "reason": refusal.reason() }),
                );
            }
        },
    };
    let content = match resolve(&app.discovery, &body, Mode::Push).await {
        Ok(content) => content,
        Err(issues) => return invalid(app, issues),
    };
    match Bundle::parse(&content) {
        Err(e) => return invalid(app, e.issues()),
        Ok(bundle) if bundle.name != name.as_str() => {
            app.metrics.push("invalid");
            app.metrics.reject("name_mismatch");
            return error(
                StatusCode::BAD_REQUEST,
                "name_mismatch",
                Some(&format!(
                    "the bundle declares name \"{}\" but is pushed as \"{}\"",
                    bundle.name,
                    name.as_str()
                )),
            );
        }
        Ok(_) => {}
    }
    store_version(app, name, content, Source::Push, by, signed_by, headers).await
}

/// `POST /v1/bundles/{name}/rollback` with `{"to": V}`.
async fn rollback<B>(app: &App, name: &BundleName, headers: &HeaderMap, body: B) -> Response<Body>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (by, body) = match authorized_body(app, name, headers, body, MAX_ROLLBACK_BODY).await {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let Some(to) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("to").and_then(Value::as_u64))
    else {
        app.metrics.push("invalid");
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            Some("expected {\"to\": VERSION}"),
        );
    };
    let Some(old) = app.store.get_version(name, to) else {
        app.metrics.push("invalid");
        return error(
            StatusCode::NOT_FOUND,
            "unknown_version",
            Some(&format!("{} has no version {to}", name.as_str())),
        );
    };
    // Keys behind discovery URLs are fetched afresh: rolling back policy
    // must not roll back to keys the issuer has since retired.
    let content = match resolve(&app.discovery, old.bytes(), Mode::Stored).await {
        Ok(content) => content,
        Err(issues) => return invalid(app, issues),
    };
    // The old content keeps the author it was verified for.
    let signed_by = old.signed_by().map(str::to_owned);
    store_version(app, name, content, Source::Rollback, by, signed_by, headers).await
}

/// The content with discovery issuers resolved; untouched when there are
/// none (or it is not JSON: the engine reports that).
async fn resolve(
    client: &discovery::DiscoveryClient,
    content: &[u8],
    mode: Mode,
) -> Result<Vec<u8>, Vec<BundleIssue>> {
    let Ok(mut doc) = serde_json::from_slice::<Value>(content) else {
        return Ok(content.to_vec());
    };
    if !discovery::uses_discovery(&doc) {
        return Ok(content.to_vec());
    }
    discovery::resolve(client, &mut doc, mode).await?;
    serde_json::to_vec_pretty(&doc).map_err(|e| {
        vec![BundleIssue {
            path: "$".into(),
            message: e.to_string(),
        }]
    })
}

/// Commits a new version and answers `201`, `412`, `400` or `500`.
async fn store_version(
    app: &App,
    name: &BundleName,
    content: Vec<u8>,
    source: Source,
    by: String,
    signed_by: Option<String>,
    headers: &HeaderMap,
) -> Response<Body> {
    let if_match = match headers.get(IF_MATCH).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(value)) => Some(value.to_owned()),
        Some(Err(_)) => {
            app.metrics.push("conflict");
            return error(StatusCode::PRECONDITION_FAILED, "precondition_failed", None);
        }
    };
    let store = Arc::clone(&app.store);
    let task_name = name.clone();
    let task_by = by.clone();
    let committed = tokio::task::spawn_blocking(move || {
        store.commit(Commit {
            name: &task_name,
            content: &content,
            source,
            by: &task_by,
            signed_by: signed_by.as_deref(),
            if_match: if_match.as_deref(),
        })
    })
    .await;
    match committed {
        Ok(Ok(stored)) => {
            app.metrics.push("created");
            tracing::info!(bundle = %stored.name(), version = stored.version(), source = %stored.source().as_str(), by = %stored.by(), etag = %stored.etag().as_str(), digest = %stored.digest(), "stored bundle version");
            let mut answer = json!({
                "name": stored.name(),
                "version": stored.version(),
                "etag": stored.etag().as_str(),
                "digest": stored.digest(),
            });
            if let (Some(key_id), Some(object)) = (stored.signed_by(), answer.as_object_mut()) {
                object.insert("signed_by".into(), json!(key_id));
            }
            let mut response = json_response(StatusCode::CREATED, &answer);
            let h = response.headers_mut();
            if let Ok(etag) = HeaderValue::from_str(stored.etag().as_str()) {
                h.insert(ETAG, etag);
            }
            if let Ok(location) = HeaderValue::from_str(&format!(
                "{BUNDLES_PATH}{}/versions/{}",
                stored.name(),
                stored.version()
            )) {
                h.insert(LOCATION, location);
            }
            response
        }
        Ok(Err(CommitError::PreconditionFailed)) => {
            app.metrics.push("conflict");
            let current = app.store.get(name);
            let mut response = error(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                Some("the bundle changed since the tag given in If-Match"),
            );
            if let Some(etag) = current.and_then(|b| HeaderValue::from_str(b.etag().as_str()).ok())
            {
                response.headers_mut().insert(ETAG, etag);
            }
            response
        }
        Ok(Err(CommitError::Invalid(e))) => invalid(app, e.issues()),
        Ok(Err(e @ (CommitError::NameMismatch { .. } | CommitError::NotAnObject(_)))) => {
            app.metrics.push("invalid");
            error(
                StatusCode::BAD_REQUEST,
                "invalid_bundle",
                Some(&e.to_string()),
            )
        }
        Ok(Err(CommitError::Unavailable(reason))) => {
            app.metrics.push("unavailable");
            tracing::warn!(bundle = %name.as_str(), by = %by, reason = %reason, "write refused: the shared store is unavailable");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                Some(&format!(
                    "the version was not stored (reads keep being served): {reason}"
                )),
            );
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("2"));
            response
        }
        Ok(Err(CommitError::Io(e))) => {
            app.metrics.push("error");
            tracing::error!(bundle = %name.as_str(), by = %by, error = %e, "cannot store bundle version");
            error(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", None)
        }
        Err(e) => {
            app.metrics.push("error");
            tracing::error!(bundle = %name.as_str(), error = %e, "commit task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
        }
    }
}

/// The token id allowed to write `name`, or the 401/403 to send.
/// The error is boxed: a response is large, and this is the rare path.
fn authorize(
    app: &App,
    headers: &HeaderMap,
    name: &BundleName,
) -> Result<String, Box<Response<Body>>> {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    app.tokens.authorize(authorization, name).map_err(|e| {
        let (status, code, result) = match &e {
            AuthError::Missing | AuthError::Unknown => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "unauthorized")
            }
            AuthError::OutOfScope { .. } => (StatusCode::FORBIDDEN, "forbidden", "forbidden"),
        };
        app.metrics.push(result);
        if let AuthError::OutOfScope { token, bundle } = &e {
            tracing::warn!(token = %token, bundle = %bundle, "write refused: bundle outside the token's scope");
        }
        let mut response = error(status, code, Some(&e.to_string()));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Box::new(response)
    })
}

/// The whole request body, or `413` past `limit`.
/// The common start of every write: the caller's token id, then the body
/// read under `limit` (authorisation first, so an unauthorised caller
/// never makes the service buffer anything).
async fn authorized_body<B>(
    app: &App,
    name: &BundleName,
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<(String, Bytes), Box<Response<Body>>>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let by = authorize(app, headers, name)?;
    let body = read_body(app, body, limit).await?;
    Ok((by, body))
}

async fn read_body<B>(app: &App, body: B, limit: usize) -> Result<Bytes, Box<Response<Body>>>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    body::collect(body, limit).await.map_err(|e| {
        app.metrics.push(match e {
            BodyError::TooLarge { .. } => "too_large",
            BodyError::TimedOut(_) | BodyError::Broken => "error",
        });
        Box::new(body_error(&e))
    })
}

/// `413 too_large`, `408 body_timeout` or `400 bad_body`.
pub(crate) fn body_error(e: &BodyError) -> Response<Body> {
    match e {
        BodyError::TooLarge { .. } => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            Some(&e.to_string()),
        ),
        BodyError::TimedOut(_) => {
            let mut response = error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                Some(&e.to_string()),
            );
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            response
        }
        BodyError::Broken => error(StatusCode::BAD_REQUEST, "bad_body", None),
    }
}

/// `400 {"error":"invalid_bundle","issues":[...]}`.
fn invalid(app: &App, issues: Vec<BundleIssue>) -> Response<Body> {
    app.metrics.push("invalid");
    app.metrics.reject("invalid");
    let issues: Vec<Value> = issues
        .into_iter()
        .map(|i| json!({ "path": i.path, "message": i.message }))
        .collect();
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "invalid_bundle", "issues": issues }),
    )
}

/// `200` with the bundle bytes and its headers.
fn bundle_response(bundle: &StoredBundle) -> Response<Body> {
    let mut response = with_body(StatusCode::OK, bundle.bytes().clone());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(signature) = HeaderValue::from_str(bundle.signature()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(SIGNATURE_HEADER), signature);
    }
    add_bundle_headers(response.headers_mut(), bundle);
    response
}

/// `304` with the current version's headers.
fn not_modified(bundle: &StoredBundle) -> Response<Body> {
    let mut response = with_body(StatusCode::NOT_MODIFIED, Bytes::new());
    add_bundle_headers(response.headers_mut(), bundle);
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

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = with_body(status, Bytes::from(body.to_string()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON error: `{"error": code}`, plus a message when there is more to say.
pub(crate) fn error(status: StatusCode, code: &str, message: Option<&str>) -> Response<Body> {
    let body = match message {
        Some(message) => json!({ "error": code, "message": message }),
        None => json!({ "error": code }),
    };
    json_response(status, &body)
}

/// 405 with the methods the path does allow.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// A plain-text response, for the probes.
fn text(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = with_body(status, Bytes::from_static(text.as_bytes()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn with_body(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Empty;

    fn app() -> Arc<App> {
        let store =
            BundleStore::from_bundles([("demo", r#"{"name":"demo","version":7}"#)]).expect("valid");
        Arc::new(App::new(Arc::new(store), Tokens::none()))
    }

    async fn call(method: Method, path: &str) -> Response<Body> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Empty::<Bytes>::new())
            .expect("request");
        route(&app(), request).await
    }

    #[tokio::test]
    async fn routes() {
        let get = |p: &'static str| call(Method::GET, p);
        assert_eq!(get("/healthz").await.status(), StatusCode::OK);
        assert_eq!(get("/readyz").await.status(), StatusCode::OK);
        assert_eq!(get("/readyz/writes").await.status(), StatusCode::OK);
        assert_eq!(get("/metrics").await.status(), StatusCode::OK);
        assert_eq!(get("/v1/keys").await.status(), StatusCode::OK);
        assert_eq!(get("/v1/bundles/demo").await.status(), StatusCode::OK);
        assert_eq!(
            get("/v1/bundles/demo/versions").await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get("/v1/bundles/demo/versions/7").await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get("/v1/bundles/demo/versions/8").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/v1/bundles/demo/versions/x").await.status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            get("/v1/bundles/nope").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(get("/v1/bundles/").await.status(), StatusCode::BAD_REQUEST);
        assert_eq!(get("/v1/bundles/a/b").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/v1/bundles").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/").await.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            call(Method::PUT, "/v1/bundles/demo").await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(Method::DELETE, "/v1/bundles/demo").await.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call(Method::GET, "/v1/bundles/demo/rollback")
                .await
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn bundle_headers() {
        let response = call(Method::GET, "/v1/bundles/demo").await;
        let h = response.headers();
        assert_eq!(h[CONTENT_TYPE], "application/json");
        assert_eq!(h[BUNDLE_VERSION_HEADER], "7");
        assert_eq!(h[ETAG].len(), 34);
        assert!(h[SIGNATURE_HEADER]
            .to_str()
            .is_ok_and(|s| s.starts_with("v=2; key=")));
    }

    /// A filter that got version 8 from replica B polls replica A, which
    /// still has 7: A must not hand 7 out as new (the filter refuses it as
    /// a rollback), must not claim 304 with its own tag, and answers once
    /// it has something newer than 8.
    #[tokio::test]
    async fn a_poller_ahead_of_this_replica_is_not_handed_the_older_version() {
        let app = app();
        let store = Arc::clone(&app.store);
        let name = BundleName::parse("demo").expect("valid");
        let content = br#"{"name":"demo","version":0,"description":"b"}"#;
        let eight = crate::etag::ETag::of(&crate::version::set_version(content, 8).expect("json"));
        let poll = |wait: u64, tag: &str, active: Option<&str>| {
            let mut request = Request::builder()
                .uri(format!("/v1/bundles/demo?wait={wait}"))
                .header(IF_NONE_MATCH, tag)
                .header("x-mcp-guard-instance", "envoy-1");
            if let Some(active) = active {
                request = request.header("x-mcp-guard-active", active);
            }
            let request = request.body(Empty::<Bytes>::new()).expect("request");
            let app = Arc::clone(&app);
            async move { route(&app, request).await }
        };
        let tag = eight.as_str().to_owned();
        // No wait: told this replica is behind, not given version 7.
        let answer = poll(0, &tag, Some("8")).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().get(ETAG).is_none());
        // A long-poll runs out the same way.
        let answer = poll(1, &tag, Some("8")).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Without the version (status reports off) nothing tells it apart.
        assert_eq!(poll(0, &tag, None).await.status(), StatusCode::OK);
        // A poller at 7 or below with an unknown tag gets 7.
        let answer = poll(0, &tag, Some("7")).await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[BUNDLE_VERSION_HEADER], "7");

        // Catching up to the poller's version 8 keeps it waiting; 9 ends it.
        let waiting = tokio::spawn(poll(10, &tag, Some("8")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let commit = |note: &'static [u8]| Commit {
            name: &name,
            content: note,
            source: crate::store::Source::Push,
            by: "test",
            signed_by: None,
            if_match: None,
        };
        let stored = store.commit(commit(content)).expect("stored");
        assert_eq!(stored.etag(), &eight);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "answered the version it holds");
        store
            .commit(commit(br#"{"name":"demo","version":0,"description":"c"}"#))
            .expect("stored");
        let answer = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("answered")
            .expect("joined");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[BUNDLE_VERSION_HEADER], "9");
    }

    /// A slowloris: headers of a status report (no token needed), then a
    /// body that never comes. It used to hold the connection, and its slot
    /// under the connection limit, for ever.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_never_arrives_is_given_up() {
        let app = app();
        for path in ["/v1/bundles/demo/status", "/v1/checkpoints"] {
            let request = Request::builder()
                .method(Method::POST)
                .uri(path)
                .body(crate::body::tests::Withheld)
                .expect("request");
            // Paused clock: five minutes pass in no time.
            let answer = tokio::time::timeout(Duration::from_secs(300), route(&app, request))
                .await
                .expect("given up");
            assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT, "{path}");
            assert_eq!(answer.headers()[CONNECTION], "close");
        }
    }

    #[test]
    fn long_polls_are_told_apart() {
        let request = |method: Method, uri: &str, prefer: Option<&str>| {
            let mut r = Request::builder().method(method).uri(uri);
            if let Some(p) = prefer {
                r = r.header("prefer", p);
            }
            r.body(()).expect("request")
        };
        assert!(asks_to_wait(&request(
            Method::GET,
            "/v1/bundles/demo?wait=30",
            None
        )));
        assert!(asks_to_wait(&request(
            Method::HEAD,
            "/v1/bundles/demo?wait=1",
            None
        )));
        assert!(asks_to_wait(&request(
            Method::GET,
            "/v1/bundles/demo",
            Some("wait=5")
        )));
        assert!(!asks_to_wait(&request(
            Method::GET,
            "/v1/bundles/demo",
            None
        )));
        assert!(!asks_to_wait(&request(
            Method::GET,
            "/v1/bundles/demo?wait=0",
            None
        )));
        assert!(!asks_to_wait(&request(
            Method::PUT,
            "/v1/bundles/demo?wait=30",
            None
        )));
        assert!(!asks_to_wait(&request(
            Method::GET,
            "/metrics?wait=30",
            None
        )));
    }

    #[test]
    fn wait_parameters() {
        let mut headers = HeaderMap::new();
        assert_eq!(requested_wait("", &headers), Duration::ZERO);
        assert_eq!(
            requested_wait("a=1&wait=5", &headers),
            Duration::from_secs(5)
        );
        assert_eq!(
            requested_wait("wait=999", &headers),
            Duration::from_secs(MAX_WAIT_SECS)
        );
        headers.insert("prefer", HeaderValue::from_static("respond-async, wait=3"));
        assert_eq!(requested_wait("", &headers), Duration::from_secs(3));
        assert_eq!(requested_wait("wait=1", &headers), Duration::from_secs(1));
    }
}
