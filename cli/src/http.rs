//! The one HTTP client of the CLI (control service, audit checkpoints, MCP
//! servers): `ureq` over rustls (ring provider, webpki roots, or only the
//! CA of `--ca-file`). Plain `http://` is refused unless the caller passed
//! `--allow-plain-http`: a push token or a bundle on the wire in clear text
//! is an explicit choice, not a default.
//!
//! Errors name what failed and where (`cannot reach http://127.0.0.1:9
//! (connection refused)`, `TLS handshake with https://h:443 failed:
//! certificate not trusted ...`), never Rust debug forms.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use thiserror::Error;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

/// Transport options every networked command takes (global flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ClientOptions {
    /// Allow plain `http://` URLs (no TLS): tokens and bundles then travel
    /// in clear text. For local tests and loopback demos.
    #[arg(
        long,
        global = true,
        env = "MCP_GUARD_ALLOW_PLAIN_HTTP",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub allow_plain_http: bool,
    /// Trust only this PEM file's CA certificates for `https://` (a
    /// private CA) instead of the public web roots.
    #[arg(long, global = true, value_name = "PEM", env = "MCP_GUARD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// Why a request got no HTTP answer.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The URL is `http://` and `--allow-plain-http` was not given.
    #[error(
        "refusing plain http to {0}: the token and bundle would travel unencrypted; use https://, \
         or pass --allow-plain-http (env MCP_GUARD_ALLOW_PLAIN_HTTP=1) for a local test"
    )]
    PlainHttp(String),
    /// The URL is neither http nor https.
    #[error("{0}: not an http:// or https:// URL")]
    BadUrl(String),
    /// The `--ca-file` cannot be used.
    #[error("--ca-file {path}: {why}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// No connection (refused, unknown host, reset, ...).
    #[error("cannot reach {url} ({why})")]
    Unreachable {
        /// Where.
        url: String,
        /// Why, in words.
        why: String,
    },
    /// The TLS handshake failed (untrusted certificate, wrong name, ...).
    #[error("TLS handshake with {origin} failed: {why}")]
    Tls {
        /// `https://host:port`.
        origin: String,
        /// Why, in words.
        why: String,
    },
    /// No complete answer in time.
    #[error("{url} did not answer within {secs} s")]
    Timeout {
        /// Where.
        url: String,
        /// The bound.
        secs: u64,
    },
    /// The answer is larger than this command reads.
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// Where.
        url: String,
        /// The bound.
        limit: u64,
    },
    /// Anything else the transport reports.
    #[error("{url}: {why}")]
    Other {
        /// Where.
        url: String,
        /// What happened.
        why: String,
    },
}

/// A configured client: one agent, the plain-http decision, the bounds.
pub struct Client {
    agent: ureq::Agent,
    allow_plain_http: bool,
    timeout: Duration,
    max_body: u64,
}

/// One HTTP answer.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Response headers (lower-case names).
    pub headers: ureq::http::HeaderMap,
    /// The body, at most the client's limit.
    pub body: Vec<u8>,
}

impl Client {
    /// A client for `options`, giving up on a request after `timeout` and
    /// reading at most `max_body` bytes of an answer.
    pub fn new(
        options: &ClientOptions,
        timeout: Duration,
        max_body: u64,
    ) -> Result<Self, HttpError> {
        let roots = match &options.ca_file {
            None => RootCerts::WebPki,
            Some(path) => RootCerts::new_with_certs(&read_ca(path)?),
        };
        let tls = TlsConfig::builder().root_certs(roots).build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .tls_config(tls)
            .build()
            .into();
        Ok(Self {
            agent,
            allow_plain_http: options.allow_plain_http,
            timeout,
            max_body,
        })
    }

    /// Refuses a URL this client must not use, before anything is sent.
    pub fn check(&self, url: &str) -> Result<(), HttpError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("https://") {
            Ok(())
        } else if lower.starts_with("http://") {
            if self.allow_plain_http {
                Ok(())
            } else {
                Err(HttpError::PlainHttp(origin(url)))
            }
        } else {
            Err(HttpError::BadUrl(url.to_owned()))
        }
    }

    /// `GET url`.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Answer, HttpError> {
        self.check(url)?;
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.finish(url, request.call())
    }

    /// `method url` with a body (`PUT`, `POST`).
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, HttpError> {
        self.check(url)?;
        let mut request = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.finish(url, request.send(body))
    }

    fn finish(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, HttpError> {
        let mut response = response.map_err(|e| self.describe(url, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.max_body)
            .read_to_vec()
            .map_err(|e| self.describe(url, e))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A transport error in words, naming the URL.
    fn describe(&self, url: &str, error: ureq::Error) -> HttpError {
        let unreachable = |why: &str| HttpError::Unreachable {
            url: origin(url),
            why: why.to_owned(),
        };
        let tls = |why: String| HttpError::Tls {
            origin: origin(url),
            why,
        };
        match error {
            ureq::Error::Io(e) => {
                if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return tls(rustls_reason(inner));
                }
                match e.kind() {
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        HttpError::Timeout {
                            url: origin(url),
                            secs: self.timeout.as_secs(),
                        }
                    }
                    _ => unreachable(&io_reason(&e)),
                }
            }
            ureq::Error::Rustls(e) => tls(rustls_reason(&e)),
            ureq::Error::Tls(why) => tls(why.to_owned()),
            ureq::Error::Timeout(_) => HttpError::Timeout {
                url: origin(url),
                secs: self.timeout.as_secs(),
            },
            ureq::Error::HostNotFound => unreachable("host not found"),
            ureq::Error::ConnectionFailed => unreachable("connection failed"),
            ureq::Error::BodyExceedsLimit(limit) => HttpError::TooLarge {
                url: origin(url),
                limit,
            },
            ureq::Error::BadUri(_) => HttpError::BadUrl(url.to_owned()),
            // A protocol error can quote what the server sent.
            other => HttpError::Other {
                url: origin(url),
                why: crate::output::cell(&other.to_string()),
            },
        }
    }
}

/// `scheme://host:port` of a URL (no path, no credentials), as error
/// messages name a server.
pub fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if scheme.is_empty() {
        return host.to_owned();
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !host.ends_with(']');
    let scheme = scheme.to_ascii_lowercase();
    if has_port {
        format!("{scheme}://{host}")
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{scheme}://{host}:{port}")
    }
}

/// An I/O error in words, without `(os error N)`.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset by the server".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::UnexpectedEof => "the server closed the connection".into(),
        K::AddrNotAvailable => "address not available".into(),
        K::HostUnreachable => "host unreachable".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        _ => {
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            text.to_ascii_lowercase()
        }
    }
}

/// A rustls failure in words.
fn rustls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "certificate not trusted (unknown issuer; for a private CA pass \
                                 --ca-file)"
                .into(),
            C::Expired | C::ExpiredContext { .. } => "certificate expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate not valid for this host name".into()
            }
            C::Revoked => "certificate revoked".into(),
            C::BadSignature => "certificate signature does not verify".into(),
            C::BadEncoding => "certificate badly encoded".into(),
            _ => format!("certificate refused ({e})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!(
                "the server sent the TLS alert {}",
                alert.as_str().unwrap_or("unknown")
            )
        }
        other => other.to_string(),
    }
}

/// The certificates of a PEM file.
fn read_ca(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, HttpError> {
    let fail = |why: String| HttpError::CaFile {
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read: {}", io_reason(&e))))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(fail(format!("not PEM ({e})"))),
        }
    }
    if certs.is_empty() {
        return Err(fail("no CERTIFICATE block in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_scheme_host_and_port() {
        assert_eq!(origin("http://127.0.0.1:9/v1/x"), "http://127.0.0.1:9");
        assert_eq!(origin("https://h.example/v1"), "https://h.example:443");
        assert_eq!(origin("https://user:pw@h:8443/"), "https://h:8443");
        assert_eq!(origin("http://[::1]/x"), "http://[::1]:80");
    }

    #[test]
    fn plain_http_needs_the_flag() {
        let client =
            Client::new(&ClientOptions::default(), Duration::from_secs(1), 10).expect("client");
        let err = client.check("http://127.0.0.1:9/x").expect_err("refused");
        assert!(err.to_string().contains("--allow-plain-http"), "{err}");
        assert!(client.check("https://h/").is_ok());
        assert!(client.check("ftp://h/").is_err());
        let allowed = ClientOptions {
            allow_plain_http: true,
            ca_file: None,
        };
        let client = Client::new(&allowed, Duration::from_secs(1), 10).expect("client");
        assert!(client.check("HTTP://h/").is_ok());
    }
}
