//! The HTTP(S) client of OIDC discovery: GETs a small JSON document over
//! HTTPS (rustls, ring provider, Mozilla's roots plus an optional private
//! CA), or plain HTTP only when the operator allowed it
//! (`--allow-plain-http-discovery`, for loopback tests and demos).
//!
//! Bounded: one deadline for the whole fetch (redirects included), a size
//! cap on the body, at most [`MAX_REDIRECTS`] redirects, and never from
//! `https://` to `http://`. Written on hyper's client connection rather
//! than a full client crate: one GET of a JSON document is all it does.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use serde_json::Value;

/// Limit for a discovery document or JWKS: real ones are a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Time allowed for one fetch, connection and redirects included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 3;

/// Why a document could not be fetched. The caller names the URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute `https://` (or allowed `http://`) URL.
    #[error("{0}")]
    Url(String),
    /// Connecting, the TLS handshake, sending or reading failed, or took
    /// too long.
    #[error("{0}")]
    Transport(String),
    /// The server answered with another status than 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The body is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
}

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--discovery-ca-file {path}: {reason}")]
pub struct CaFileError {
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// How discovery documents are fetched: trusted roots and whether plain
/// HTTP is allowed.
#[derive(Clone)]
pub struct DiscoveryClient {
    tls: Option<Arc<rustls::ClientConfig>>,
    allow_plain_http: bool,
}

impl std::fmt::Debug for DiscoveryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryClient")
            .field("allow_plain_http", &self.allow_plain_http)
            .finish_non_exhaustive()
    }
}

impl Default for DiscoveryClient {
    /// HTTPS with Mozilla's roots; plain HTTP refused.
    fn default() -> Self {
        DiscoveryClient::with_roots(webpki_roots(), false)
    }
}

fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

impl DiscoveryClient {
    /// Mozilla's roots plus every certificate of `ca_file` (PEM), and plain
    /// HTTP when `allow_plain_http`.
    pub fn new(ca_file: Option<&Path>, allow_plain_http: bool) -> Result<Self, CaFileError> {
        let mut roots = webpki_roots();
        if let Some(path) = ca_file {
            let fail = |reason: String| CaFileError {
                path: path.display().to_string(),
                reason,
            };
            let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&bytes) {
                let cert = cert.map_err(|e| fail(format!("not a PEM certificate bundle: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| fail(format!("unusable CA certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(fail("no CERTIFICATE in the file".into()));
            }
        }
        Ok(DiscoveryClient::with_roots(roots, allow_plain_http))
    }

    /// Plain HTTP allowed, Mozilla's roots: for tests on loopback.
    pub fn allowing_plain_http() -> Self {
        DiscoveryClient::with_roots(webpki_roots(), true)
    }

    fn with_roots(roots: RootCertStore, allow_plain_http: bool) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The ring provider supports the default protocol versions, so the
        // `None` (every https fetch refused) is not reached in practice.
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()
            .map(|builder| {
                let mut config = builder.with_root_certificates(roots).with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(config)
            });
        DiscoveryClient {
            tls,
            allow_plain_http,
        }
    }

    /// Whether `http://` URLs are fetched.
    pub fn allows_plain_http(&self) -> bool {
        self.allow_plain_http
    }

    /// GETs a JSON document, following at most [`MAX_REDIRECTS`]
    /// redirects, within [`FETCH_TIMEOUT`].
    pub async fn fetch_json(&self, url: &str) -> Result<Value, FetchError> {
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_following(url))
            .await
            .map_err(|_| {
                FetchError::Transport(format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))
            })?
    }

    async fn fetch_following(&self, url: &str) -> Result<Value, FetchError> {
        let mut uri: Uri = url
            .parse()
            .map_err(|e| FetchError::Url(format!("not a URL: {e}")))?;
        self.check_scheme(&uri, None)?;
        for _ in 0..=MAX_REDIRECTS {
            match self.get_once(&uri).await? {
                Fetched::Body(body) => {
                    return serde_json::from_slice(&body)
                        .map_err(|e| FetchError::Json(e.to_string()))
                }
                Fetched::Redirect(location) => {
                    let next = redirect_target(&uri, &location)?;
                    self.check_scheme(&next, Some(&uri))?;
                    uri = next;
                }
            }
        }
        Err(FetchError::Transport(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// `https`, or `http` when allowed; never `https` → `http`.
    fn check_scheme(&self, uri: &Uri, from: Option<&Uri>) -> Result<(), FetchError> {
        match uri.scheme_str() {
            Some("https") => Ok(()),
            Some("http") => {
                if from.is_some_and(|from| from.scheme_str() == Some("https")) {
                    return Err(FetchError::Url(format!(
                        "redirected from https to plain http ({uri}): refused"
                    )));
                }
                if self.allow_plain_http {
                    Ok(())
                } else {
                    Err(FetchError::Url(
                        "plain http:// is refused (keys would travel unauthenticated): use https://, \
                         or start the service with --allow-plain-http-discovery for a local test"
                            .into(),
                    ))
                }
            }
            _ => Err(FetchError::Url("must be an https:// URL".into())),
        }
    }

    async fn get_once(&self, uri: &Uri) -> Result<Fetched, FetchError> {
        let authority = uri
            .authority()
            .ok_or_else(|| FetchError::Url("has no host".into()))?
            .clone();
        let https = uri.scheme_str() == Some("https");
        let host = authority.host();
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let stream = tokio::net::TcpStream::connect((bare_host, port))
            .await
            .map_err(|e| FetchError::Transport(format!("cannot connect: {e}")))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::get(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Url(e.to_string()))?;
        if https {
            let name = ServerName::try_from(bare_host.to_owned())
                .map_err(|e| FetchError::Url(format!("not a TLS server name: {e}")))?;
            let config = self
                .tls
                .as_ref()
                .ok_or_else(|| FetchError::Transport("no TLS client configuration".into()))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, stream)
                .await
                .map_err(|e| FetchError::Transport(format!("TLS handshake failed: {e}")))?;
            send(TokioIo::new(tls), request).await
        } else {
            send(TokioIo::new(stream), request).await
        }
    }
}

/// What one GET gave.
enum Fetched {
    Body(Bytes),
    Redirect(String),
}

async fn send<IO>(io: IO, request: Request<Empty<Bytes>>) -> Result<Fetched, FetchError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            let location = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(FetchError::Status(status))?;
            return Ok(Fetched::Redirect(location.to_owned()));
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status(status));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| FetchError::Transport(format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Fetched::Body(body))
    }
    .await;
    connection.abort();
    result
}

/// The absolute URL a `Location` names (absolute, or a path on the same
/// origin).
fn redirect_target(from: &Uri, location: &str) -> Result<Uri, FetchError> {
    let bad = |e: String| FetchError::Url(format!("redirect to an unusable location: {e}"));
    if location.starts_with('/') && !location.starts_with("//") {
        let scheme = from.scheme_str().unwrap_or("https");
        let authority = from.authority().map_or("", |a| a.as_str());
        return format!("{scheme}://{authority}{location}")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()));
    }
    let uri: Uri = location
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(bad(location.chars().take(200).collect()));
    }
    Ok(uri)
}
