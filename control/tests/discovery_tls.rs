//! OIDC discovery over HTTPS: a real TLS issuer (certificate made at run
//! time by a private CA) serves a discovery document and a JWKS. The
//! service embeds the keys when it trusts the CA (`--discovery-ca-file`),
//! refuses an untrusted certificate, refuses plain http:// without
//! `--allow-plain-http-discovery`, and refuses a discovery document or a
//! redirect that sends it from https to http.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mcp_guard_control::discovery::DiscoveryClient;
use mcp_guard_control::{BundleStore, Options};
use mcp_guard_engine::signing::SigningKey;
use serde_json::{json, Value};
use support::{get, options, put, scratch_dir, start_with, TEAM_A_TOKEN};

/// A CA and a server certificate for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("params");
    let cert = params.signed_by(&key, &ca).expect("cert");
    Pki {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

/// What the issuer answers for `/.well-known/openid-configuration`.
#[derive(Clone, Copy)]
enum Doc {
    /// `jwks_uri` on the same https origin.
    Https,
    /// `jwks_uri` pointing at a plain http:// listener (a downgrade).
    JwksOverHttp(SocketAddr),
    /// 302 to the plain http:// listener.
    RedirectToHttp(SocketAddr),
    /// Served over plain HTTP: `jwks_uri` on the same http origin.
    Plain,
    /// 302 to itself, forever.
    RedirectLoop,
    /// A body larger than the service reads.
    Huge,
}

/// Serves `doc` and a one-key JWKS over TLS; returns its address.
async fn tls_issuer(pki: &Pki, doc: Doc) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // An untrusting client aborts the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service =
                    service_fn(move |request: Request<hyper::body::Incoming>| async move {
                        Ok::<_, Infallible>(answer(addr, doc, request.uri().path()))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// A plain-HTTP listener serving the same JWKS.
async fn plain_jwks() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service_fn(move |request: Request<hyper::body::Incoming>| async move {
                Ok::<_, Infallible>(answer(addr, Doc::Plain, request.uri().path()))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn answer(addr: SocketAddr, doc: Doc, path: &str) -> Response<Full<Bytes>> {
    let body = match (path, doc) {
        ("/.well-known/openid-configuration", Doc::RedirectToHttp(plain)) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(
                hyper::header::LOCATION,
                format!("http://{plain}/.well-known/openid-configuration")
                    .parse()
                    .expect("location"),
            );
            return response;
        }
        ("/.well-known/openid-configuration", Doc::RedirectLoop) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(
                hyper::header::LOCATION,
                "/.well-known/openid-configuration"
                    .parse()
                    .expect("location"),
            );
            return response;
        }
        ("/.well-known/openid-configuration", Doc::Huge) => {
            return Response::new(Full::new(Bytes::from(vec![b' '; 2 * 1024 * 1024])));
        }
        ("/.well-known/openid-configuration", Doc::JwksOverHttp(plain)) => json!({
            "issuer": format!("https://{addr}"),
            "jwks_uri": format!("http://{plain}/jwks"),
        }),
        ("/.well-known/openid-configuration", Doc::Plain) => json!({
            "issuer": format!("https://{addr}"),
            "jwks_uri": format!("http://{addr}/jwks"),
        }),
        ("/.well-known/openid-configuration", _) => json!({
            "issuer": format!("https://{addr}"),
            "jwks_uri": format!("https://{addr}/jwks"),
        }),
        _ => json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "tls-k1",
            "x": URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&[7; 32]).verifying_key().as_bytes()),
        }]}),
    };
    Response::new(Full::new(Bytes::from(body.to_string())))
}

fn bundle(issuer: SocketAddr, scheme: &str) -> String {
    json!({
        "name": "demo", "version": 1,
        "identity": {"verify": {"issuers": [{
            "iss": format!("https://{issuer}"),
            "audiences": ["mcp"],
            "algorithms": ["EdDSA"],
            "discovery": format!("{scheme}://{issuer}/.well-known/openid-configuration"),
        }]}},
        "rules": [{"id": "all", "effect": "allow"}],
    })
    .to_string()
}

fn ca_file(test: &str, pki: &Pki) -> std::path::PathBuf {
    let dir = scratch_dir(test);
    let path = dir.join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).expect("write ca");
    path
}

/// Pushes `body` to a service using `client`; returns the status and the
/// JSON answer.
async fn push_with(client: DiscoveryClient, body: &str) -> (u16, Value, Option<Value>) {
    let server = start_with(
        BundleStore::new(),
        Options {
            discovery: client,
            ..options()
        },
    )
    .await;
    let reply = put(server.addr, "demo", Some(TEAM_A_TOKEN), &[], body).await;
    let served = get(server.addr, "/v1/bundles/demo", &[]).await;
    let stored = (served.status == 200).then(|| served.json());
    server.stop().await.expect("clean shutdown");
    (reply.status, reply.json(), stored)
}

fn first_issue(answer: &Value) -> String {
    answer["issues"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn https_discovery_with_a_private_ca_embeds_the_keys() {
    let pki = pki();
    let issuer = tls_issuer(&pki, Doc::Https).await;
    let ca = ca_file("discovery-tls-ok", &pki);
    let client = DiscoveryClient::new(Some(&ca), false).expect("ca file");
    let (status, answer, stored) = push_with(client, &bundle(issuer, "https")).await;
    assert_eq!(status, 201, "{answer}");
    let stored = stored.expect("stored");
    assert_eq!(
        stored["identity"]["verify"]["issuers"][0]["jwks"]["keys"][0]["kid"],
        "tls-k1"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_nothing_stored() {
    let pki = pki();
    let issuer = tls_issuer(&pki, Doc::Https).await;
    // Mozilla's roots only: the run-time CA is unknown.
    let (status, answer, stored) =
        push_with(DiscoveryClient::default(), &bundle(issuer, "https")).await;
    assert_eq!(status, 400, "{answer}");
    let message = first_issue(&answer);
    assert!(
        message.contains(&format!(
            "https://{issuer}/.well-known/openid-configuration"
        )) && message.contains("TLS handshake failed"),
        "{message}"
    );
    assert!(stored.is_none());
    // Another CA's certificate does not help either.
    let other = pki_other_ca_file();
    let client = DiscoveryClient::new(Some(&other), false).expect("ca file");
    let (status, _, stored) = push_with(client, &bundle(issuer, "https")).await;
    assert_eq!(status, 400);
    assert!(stored.is_none());
}

fn pki_other_ca_file() -> std::path::PathBuf {
    ca_file("discovery-tls-other-ca", &pki())
}

#[tokio::test]
async fn plain_http_needs_the_flag() {
    let plain = plain_jwks().await;
    let body = json!({
        "name": "demo", "version": 1,
        "identity": {"verify": {"issuers": [{
            "iss": format!("https://{plain}"),
            "audiences": ["mcp"],
            "algorithms": ["EdDSA"],
            "discovery": format!("http://{plain}/.well-known/openid-configuration"),
        }]}},
        "rules": [{"id": "all", "effect": "allow"}],
    })
    .to_string();
    let (status, answer, stored) = push_with(DiscoveryClient::default(), &body).await;
    assert_eq!(status, 400, "{answer}");
    let message = first_issue(&answer);
    assert!(
        message.contains(&format!("http://{plain}/"))
            && message.contains("--allow-plain-http-discovery"),
        "{message}"
    );
    assert!(stored.is_none());
    let (status, answer, _) = push_with(DiscoveryClient::allowing_plain_http(), &body).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn no_downgrade_from_https_to_http() {
    let pki = pki();
    let plain = plain_jwks().await;
    let ca = ca_file("discovery-tls-downgrade", &pki);
    // A discovery document (over https) whose jwks_uri is http://.
    let issuer = tls_issuer(&pki, Doc::JwksOverHttp(plain)).await;
    let client = DiscoveryClient::new(Some(&ca), false).expect("ca file");
    let (status, answer, stored) = push_with(client, &bundle(issuer, "https")).await;
    assert_eq!(status, 400, "{answer}");
    let message = first_issue(&answer);
    assert!(
        message.contains(&format!("http://{plain}/jwks")) && message.contains("refused"),
        "{message}"
    );
    assert!(stored.is_none());
    // Allowed with the flag (the operator chose plain HTTP).
    let client = DiscoveryClient::new(Some(&ca), true).expect("ca file");
    let (status, answer, _) = push_with(client, &bundle(issuer, "https")).await;
    assert_eq!(status, 201, "{answer}");
    // A redirect from https to http is refused even with the flag.
    let redirecting = tls_issuer(&pki, Doc::RedirectToHttp(plain)).await;
    let client = DiscoveryClient::new(Some(&ca), true).expect("ca file");
    let (status, answer, stored) = push_with(client, &bundle(redirecting, "https")).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        first_issue(&answer).contains("redirected from https to plain http"),
        "{answer}"
    );
    assert!(stored.is_none());
}

#[tokio::test]
async fn redirect_loops_and_huge_documents_are_bounded() {
    let pki = pki();
    let ca = ca_file("discovery-tls-bounds", &pki);
    for (doc, needle) in [
        (Doc::RedirectLoop, "more than 3 redirects"),
        (Doc::Huge, "reading the body"),
    ] {
        let issuer = tls_issuer(&pki, doc).await;
        let client = DiscoveryClient::new(Some(&ca), false).expect("ca file");
        let (status, answer, stored) = push_with(client, &bundle(issuer, "https")).await;
        assert_eq!(status, 400, "{answer}");
        assert!(first_issue(&answer).contains(needle), "{answer}");
        assert!(stored.is_none());
    }
}

#[test]
fn a_bad_ca_file_is_named() {
    let dir = scratch_dir("discovery-tls-bad-ca");
    let path = dir.join("not-a-ca.pem");
    std::fs::write(&path, "hello").expect("write");
    let e = DiscoveryClient::new(Some(&path), false).expect_err("no certificate");
    let text = e.to_string();
    assert!(
        text.contains("--discovery-ca-file") && text.contains("not-a-ca.pem"),
        "{text}"
    );
    let missing = DiscoveryClient::new(Some(&dir.join("absent.pem")), false).expect_err("absent");
    assert!(missing.to_string().contains("absent.pem"), "{missing}");
}
