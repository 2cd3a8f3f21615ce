//! The CLI over https: a real control service behind a TLS-terminating
//! proxy whose certificate (from a private CA) is made at run time. The
//! push succeeds only with the CA given (`--ca-file`); an untrusted or
//! wrongly named certificate, plain http without the flag, and a closed
//! port are each refused with a message naming what and where.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use mcp_guard_control::{BundleStore, Options, Tokens};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::Value;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const TOKEN: &str = "tls-test-token";

fn mcp_guard(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-guard"));
    command
        .args(args)
        .env_remove("MCP_GUARD_ALLOW_PLAIN_HTTP")
        .env_remove("MCP_GUARD_CA_FILE")
        .stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A CA and a server certificate for `localhost` only, both PEM/DER.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "mcp-guard cli test CA");
    let ca_pem = params.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    Pki {
        ca_pem,
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// The control service on plain loopback and a TLS proxy in front of it;
/// returns the proxy's port.
fn start(runtime: &tokio::runtime::Runtime, pki: &Pki) -> (u16, u16) {
    let digest = text(
        &{
            let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
                .arg("hash-token")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("runs");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(TOKEN.as_bytes())
                .expect("write");
            child.wait_with_output().expect("done")
        }
        .stdout,
    )
    .trim()
    .to_owned();
    let tokens = format!(r#"{{"tokens":[{{"id":"ci","sha256":"{digest}","bundles":["demo"]}}]}}"#);
    let control = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let control_port = control.local_addr().expect("addr").port();
    runtime.spawn(mcp_guard_control::serve_with(
        control,
        Arc::new(BundleStore::new()),
        Options {
            tokens: Tokens::parse(tokens.as_bytes()).expect("tokens"),
            jwks_refresh: None,
            ..Options::default()
        },
        std::future::pending(),
    ));
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let proxy = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let proxy_port = proxy.local_addr().expect("addr").port();
    runtime.spawn(async move {
        while let Ok((tcp, _)) = proxy.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) =
                    tokio::net::TcpStream::connect(("127.0.0.1", control_port)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    (proxy_port, control_port)
}

#[test]
fn push_over_https_needs_the_ca_and_plain_http_needs_the_flag() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let pki = pki();
    let (tls_port, plain_port) = start(&runtime, &pki);
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let ca: PathBuf = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca");
    let bundle = dir.join("demo.json");
    std::fs::write(
        &bundle,
        r#"{"name":"demo","version":1,"rules":[{"id":"a","effect":"allow"}]}"#,
    )
    .expect("bundle");
    let (ca, bundle) = (ca.to_string_lossy(), bundle.to_string_lossy());
    let server = format!("https://localhost:{tls_port}");
    let token_env = [("MCP_GUARD_TOKEN", TOKEN)];

    // With the private CA: stored, and read back over https.
    let pushed = mcp_guard(
        &[
            "push",
            "--server",
            &server,
            "--ca-file",
            &ca,
            "--create",
            &bundle,
        ],
        &token_env,
    );
    assert_eq!(pushed.status.code(), Some(0), "{}", text(&pushed.stderr));
    let answer: Value = serde_json::from_slice(&pushed.stdout).expect("json");
    assert_eq!(answer["version"], 1);
    let history = mcp_guard(
        &["history", "--server", &server, "demo"],
        &[("MCP_GUARD_CA_FILE", &ca)],
    );
    assert_eq!(history.status.code(), Some(0), "{}", text(&history.stderr));
    let table = text(&history.stdout);
    assert!(
        table.starts_with("VERSION  STORED-AT")
            && table.contains("\n1  ")
            && table.contains("unsigned"),
        "{table}"
    );
    assert!(!text(&history.stderr).contains(TOKEN));

    // Without it: the public roots do not know the CA.
    let untrusted = mcp_guard(&["push", "--server", &server, &bundle], &token_env);
    assert_eq!(untrusted.status.code(), Some(2));
    let err = text(&untrusted.stderr);
    assert!(
        err.contains(&format!(
            "TLS handshake with https://localhost:{tls_port} failed: certificate not trusted"
        )),
        "{err}"
    );
    assert!(
        !err.contains(TOKEN) && !err.contains("Some(") && !err.contains("UnknownIssuer"),
        "{err}"
    );

    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = mcp_guard(
        &[
            "get",
            "--server",
            &format!("https://127.0.0.1:{tls_port}"),
            "--ca-file",
            &ca,
            "demo",
        ],
        &[],
    );
    assert_eq!(wrong_name.status.code(), Some(2));
    assert!(
        text(&wrong_name.stderr).contains("not valid for this host name"),
        "{}",
        text(&wrong_name.stderr)
    );

    // Plain http to the service itself: refused unless asked for.
    let plain = format!("http://127.0.0.1:{plain_port}");
    let refused = mcp_guard(&["push", "--server", &plain, &bundle], &token_env);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("refusing plain http to http://127.0.0.1:")
            && text(&refused.stderr).contains("--allow-plain-http"),
        "{}",
        text(&refused.stderr)
    );
    let allowed = mcp_guard(
        &["get", "--server", &plain, "demo"],
        &[("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")],
    );
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stderr));

    // A closed port is named with the reason.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let unreachable = mcp_guard(
        &[
            "get",
            "--allow-plain-http",
            "--server",
            &format!("http://127.0.0.1:{port}/"),
            "demo",
        ],
        &[],
    );
    assert_eq!(unreachable.status.code(), Some(2));
    assert_eq!(
        text(&unreachable.stderr).trim(),
        format!("mcp-guard: cannot reach http://127.0.0.1:{port} (connection refused)")
    );

    // A CA file that is not PEM is named.
    let bad_ca = mcp_guard(
        &["get", "--server", &server, "--ca-file", &bundle, "demo"],
        &[],
    );
    assert_eq!(bad_ca.status.code(), Some(2));
    assert!(
        text(&bad_ca.stderr).contains("--ca-file") && text(&bad_ca.stderr).contains("CERTIFICATE"),
        "{}",
        text(&bad_ca.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
